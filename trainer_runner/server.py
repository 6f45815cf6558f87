"""HTTP API of the trainer (protocol v1.5): start, status, cancel, capacity, health, plugins,
predict, export, inspect.

Endpoints only parse and shape; the executor (`trainer_runner.executors`, chosen by
`TRAINER_EXECUTOR`) holds the rules of placement. Nothing here imports torch, so the server
starts in a fraction of a second and survives any job crash.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from trainer_runner import metrics as trainer_metrics
from trainer_runner.errors import UserError
from trainer_runner.executors import Executor, ExecutorUnavailable, NoCapacity, StaleAttempt, make_executor
from trainer_runner.inference import ExportRequest, ModelService, PredictRequest
from trainer_runner.logs import REQUEST_ID_HEADER, bound
from trainer_runner.plugins import PLUGINS, get_plugin
from trainer_runner.plugins.spec import FieldError
from trainer_runner.schemas import PROTOCOL_VERSION, Capacity, InspectRequest, JobStatus, StartJobRequest
from trainer_runner.settings import TrainerSettings

POLL_INTERVAL_S = 1.0
log = logging.getLogger(__name__)


def create_app(settings: TrainerSettings | None = None) -> FastAPI:
    """Build the app around one executor; tests pass their own settings."""
    settings = settings or TrainerSettings()
    executor: Executor = make_executor(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()

        def poll_loop() -> None:
            # Finds attempts that died, so they are reported lost even if nobody asks.
            while not stop.wait(POLL_INTERVAL_S):
                try:
                    executor.poll()
                except Exception:  # a cluster that does not answer must not end the loop
                    log.exception("executor poll failed")

        poller = threading.Thread(target=poll_loop, name="executor-poll", daemon=True)
        poller.start()
        try:
            yield
        finally:
            stop.set()
            executor.shutdown()

    app = FastAPI(title="vtp trainer", version=PROTOCOL_VERSION, lifespan=lifespan)
    app.state.executor = executor
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
    def start_job(
        request: StartJobRequest, request_id: Annotated[str | None, Header(alias=REQUEST_ID_HEADER)] = None
    ) -> JobStatus:
        if request.kind == "train":  # a batch job's framework is read from its checkpoint
            get_plugin(request.framework).validate(request)  # FieldError/UserError -> 422
        try:
            with bound(request_id=request_id, job_id=request.job_id, attempt=request.attempt):
                return executor.start(request, request_id=request_id)
        except StaleAttempt as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc

    @app.exception_handler(NoCapacity)
    async def no_capacity(_: Request, exc: NoCapacity) -> JSONResponse:
        # Never accepted and left pending: the backend keeps the job queued and says why.
        return JSONResponse(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            content={"detail": exc.detail, "waiting_for": exc.waiting_for},
            headers={"Retry-After": str(settings.retry_after_s)},
        )

    @app.exception_handler(ExecutorUnavailable)
    async def executor_unavailable(_: Request, exc: ExecutorUnavailable) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": str(exc)},
            headers={"Retry-After": str(settings.retry_after_s)},
        )

    @app.get("/capacity", response_model=Capacity)
    def capacity() -> Capacity:
        """Nodes with their CPUs and GPUs, total and free: what the dispatcher places by."""
        return executor.capacity()

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        """Slots, GPUs busy/free and the speed of running attempts, from the executor."""
        body = trainer_metrics.exposition(executor, settings.max_concurrent_jobs)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/jobs/{job_id}", response_model=JobStatus)
    def get_job(job_id: str) -> JobStatus:
        found = executor.status(job_id)
        if found is None:
            raise _not_found(job_id)
        return found

    @app.post("/jobs/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobStatus)
    def cancel_job(job_id: str) -> JobStatus:
        found = executor.cancel(job_id)
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

    @app.post("/inspect")
    def inspect(request: InspectRequest) -> dict[str, Any]:
        """v1.5: framework, task, architecture and classes of an uploaded weights file; 422 when
        it cannot be loaded safely (the message names the problem and the refused modes)."""
        return models.inspect(request)

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return {
            "status": "ok",
            "executor": executor.name,
            "protocol": PROTOCOL_VERSION,
            "running_jobs": executor.running_count(),
            "max_concurrent_jobs": settings.max_concurrent_jobs,
        }

    return app


app = create_app()
