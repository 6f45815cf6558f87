"""HTTP API of the trainer (protocol v1): start, status, cancel, health, plugins, predict, export.

Endpoints only parse and shape; `JobSupervisor` holds the rules. Nothing here imports torch,
so the server starts in a fraction of a second and survives any job crash.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse

from trainer_runner.errors import UserError
from trainer_runner.inference import ExportRequest, ModelService, PredictRequest
from trainer_runner.plugins import PLUGINS, get_plugin
from trainer_runner.plugins.spec import FieldError
from trainer_runner.schemas import JobStatus, StartJobRequest
from trainer_runner.settings import TrainerSettings
from trainer_runner.supervisor import JobSupervisor, StaleAttempt, TrainerBusy

REAP_INTERVAL_S = 1.0


def create_app(settings: TrainerSettings | None = None) -> FastAPI:
    """Build the app around one supervisor; tests pass their own settings."""
    settings = settings or TrainerSettings()
    supervisor = JobSupervisor(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()

        def reap_loop() -> None:
            # Finds children that died, so their attempt is reported even if nobody asks.
            while not stop.wait(REAP_INTERVAL_S):
                supervisor.reap()

        reaper = threading.Thread(target=reap_loop, name="reaper", daemon=True)
        reaper.start()
        try:
            yield
        finally:
            stop.set()
            supervisor.shutdown()

    app = FastAPI(title="vtp trainer", version="1", lifespan=lifespan)
    app.state.supervisor = supervisor
    app.state.settings = settings
    models = ModelService(settings)
    app.state.models = models

    @app.exception_handler(FieldError)
    async def field_error(_: Request, exc: FieldError) -> JSONResponse:
        # Same shape as FastAPI's own 422s: `detail[].loc` names the field, ctx.allowed the fix.
        return JSONResponse(status_code=422, content={"detail": exc.detail()})

    @app.exception_handler(UserError)
    async def user_error(_: Request, exc: UserError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    def _not_found(job_id: str) -> HTTPException:
        return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown job {job_id}")

    @app.post("/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=JobStatus)
    def start_job(request: StartJobRequest) -> JobStatus:
        get_plugin(request.framework).validate(request)  # FieldError/UserError -> 422
        try:
            return supervisor.start(request)
        except StaleAttempt as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
        except TrainerBusy as exc:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=str(exc),
                headers={"Retry-After": str(settings.retry_after_s)},
            ) from exc

    @app.get("/jobs/{job_id}", response_model=JobStatus)
    def get_job(job_id: str) -> JobStatus:
        found = supervisor.status(job_id)
        if found is None:
            raise _not_found(job_id)
        return found

    @app.post("/jobs/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobStatus)
    def cancel_job(job_id: str) -> JobStatus:
        found = supervisor.cancel(job_id)
        if found is None:
            raise _not_found(job_id)
        return found

    @app.get("/plugins")
    def list_plugins() -> dict[str, Any]:
        """Frameworks, their tasks, models and typed hyperparameters: enough to build a form."""
        return {"frameworks": [plugin.spec.describe() for plugin in PLUGINS.values()]}

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict[str, Any]:
        return models.predict(request)

    @app.post("/export")
    def export(request: ExportRequest) -> dict[str, Any]:
        return models.export(request)

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return {
            "status": "ok",
            "running_jobs": supervisor.running_count(),
            "max_concurrent_jobs": settings.max_concurrent_jobs,
        }

    return app


app = create_app()
