"""The REST API, health endpoints and Prometheus metrics, mounted into the Reflex app."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.api.routes import admin, auth, callbacks, datasets, jobs, projects, training
from app.api.security import SecurityMiddleware
from services.db import get_engine
from services.errors import DomainError
from services.ratelimit import RateLimited

api = FastAPI(title="Vision AI Training Platform API", version="1")
api.add_middleware(SecurityMiddleware)

v1 = APIRouter(prefix="/api/v1")
for module in (auth, projects, datasets, jobs, callbacks, admin, training):
    v1.include_router(module.router)
api.include_router(v1)


@api.exception_handler(DomainError)
async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
    return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)


@api.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@api.get("/readyz", include_in_schema=False)
def readyz() -> dict[str, str]:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"status": "ready"}


@api.get("/metrics", include_in_schema=False)
def metrics() -> PlainTextResponse:
    return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)
