"""The REST API, health endpoints and Prometheus metrics, mounted into the Reflex app."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.api.overload import LoadShedding, count_shed, overloaded
from app.api.routes import (
    admin,
    auth,
    callbacks,
    datasets,
    inference,
    jobs,
    notifications,
    oidc,
    predictions,
    projects,
    registry,
    sweeps,
    training,
)
from app.api.security import SecurityMiddleware
from app.api.telemetry import Telemetry
from services.errors import DomainError, Overloaded
from services.infra import metrics as vtp_metrics
from services.infra.db import get_engine
from services.infra.ratelimit import RateLimited

api = FastAPI(title="Vision AI Training Platform API", version="1")
api.add_middleware(SecurityMiddleware)
api.add_middleware(oidc.SsoCookie)
# Outermost (added last): a request past capacity is answered 503 before any other work.
api.add_middleware(LoadShedding)
# Outside even that: a shed request still gets its request id, log line and latency sample.
api.add_middleware(Telemetry)
api.add_exception_handler(PoolTimeout, overloaded)
api.add_exception_handler(OperationalError, overloaded)


class ErrorBody(BaseModel):
    """What every refused request answers (a `DomainError`): one human-readable sentence."""

    detail: str


# Every route may be refused with these (see `_domain_error`); documenting them lets clients and the
# schemathesis test check their shape. A route's own `responses` entry for a code takes precedence.
DOMAIN_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 429, 503)
}

v1 = APIRouter(prefix="/api/v1", responses=DOMAIN_ERROR_RESPONSES)
for module in (
    auth,
    oidc,
    projects,
    datasets,
    jobs,
    callbacks,
    admin,
    training,
    notifications,
    registry,
    inference,
    sweeps,
    predictions,
):
    v1.include_router(module.router)
api.include_router(v1)


def _openapi() -> dict[str, Any]:
    """FastAPI's schema, corrected where it does not describe what the API answers.

    A 422 comes either from request validation (`detail` is a list of errors) or from a service's
    `InvalidInput` (`detail` is one sentence, like every other refusal); FastAPI only knows the first.
    """
    if api.openapi_schema is None:
        doc = get_openapi(title=api.title, version=api.version, routes=api.routes)
        validation = doc.get("components", {}).get("schemas", {}).get("HTTPValidationError")
        if validation is not None:
            listed = validation["properties"]["detail"]
            validation["properties"]["detail"] = {
                "title": listed.get("title", "Detail"),
                "anyOf": [{k: v for k, v in listed.items() if k != "title"}, {"type": "string"}],
            }
        api.openapi_schema = doc
    return api.openapi_schema


api.openapi = _openapi  # type: ignore[method-assign]


@api.exception_handler(DomainError)
async def _domain_error(request: Request, exc: DomainError) -> JSONResponse:
    limited = isinstance(exc, RateLimited | Overloaded)
    if isinstance(exc, Overloaded):
        count_shed(request.url.path, cause=exc.cause, content_type=request.headers.get("content-type", ""))
    headers = {"Retry-After": str(exc.retry_after_s)} if limited else None
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
    """Events of every web and worker process (multiprocess mode) plus the record's state."""
    return PlainTextResponse(vtp_metrics.exposition(), media_type=vtp_metrics.CONTENT_TYPE_LATEST)
