"""One job attempt: `python -m trainer_runner.job SPEC` (local executor: a child of the
trainer server) or `python -m trainer_runner.job --spec-from-env` (Ray executor: the entrypoint
of a Ray Job, on whichever node Ray placed it). The very same runner in both.

A process per attempt means a crash, an OOM kill or a cancel never takes the server down, and
the memory of torch is returned to the OS when the attempt ends. A local child talks to the
server through the files of `trainer_runner.workdir` in its scratch folder; a job on another
machine learns of a cancel from a marker object in storage (`cancel_marker`), and tells its
final state by its exit code (`EXIT_CODES`).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from trainer_runner import errortracking
from trainer_runner.callbacks import CallbackSender
from trainer_runner.dataset import PreparedDataset, prepare_dataset
from trainer_runner.errors import JobCancelled, classify
from trainer_runner.evaluation import evaluate
from trainer_runner.logs import REQUEST_ID_ENV, TailHandler, configure_logging
from trainer_runner.outbox import OUTBOX_DIR, CallbackOutbox
from trainer_runner.plugins import JobContext, get_plugin, primary_device, resolve_device
from trainer_runner.predictions import SAMPLE_IMAGES, draw
from trainer_runner.schemas import CallbackError, CallbackEvent, EventState, EventType, StartJobRequest
from trainer_runner.settings import TrainerSettings
from trainer_runner.storage import (
    S3Uri,
    download_file,
    make_s3_client,
    parse_s3_uri,
    upload_bytes,
    upload_file,
    upload_json,
)
from trainer_runner.threads import lower_this_thread
from trainer_runner.tracking import Tracker
from trainer_runner.uploads import UPLOADS_DIR, UploadQueue
from trainer_runner.validation import summarise
from trainer_runner.workdir import CANCEL_FILE, LOG_FILE, SPEC_FILE, WARM_ARG, read_status, write_status

log = logging.getLogger("trainer_runner.job")

# Protocol layout under output_uri: logical artifact name -> key.
OUTPUT_KEYS = {
    "last_checkpoint": "checkpoints/last.pt",
    "best_checkpoint": "checkpoints/best.pt",
    "results_csv": "artifacts/results.csv",
    "log": "logs/trainer.jsonl",
    "dataset_report": "artifacts/dataset_report.json",
    "predictions": "artifacts/predictions/predictions.json",
    "predictions_val": "artifacts/predictions/val.json",
    "predictions_test": "artifacts/predictions/test.json",
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
# Final state -> exit code: how a job on a Ray node tells its end to a gateway that cannot read
# its files. Any other code (a signal, a crash) means the attempt was lost.
EXIT_CODES = {"succeeded": 0, "failed": 3, "cancelled": 4}
SPEC_ENV = "TRAINER_JOB_SPEC"
WARM_FRAMEWORK = "ultralytics"  # the default framework of a job: the one worth importing ahead
OOM_MESSAGE = "out of memory: lower batch or imgsz"


def cancel_marker(output_uri: str, attempt: int) -> S3Uri:
    """Object whose presence asks the attempt to stop at its next batch (checkpoint kept)."""
    return parse_s3_uri(output_uri).join(f"control/attempt-{attempt}.cancel")


def progress_marker(output_uri: str, attempt: int) -> S3Uri:
    """Object holding the attempt's speed as of its last epoch: how a job on a Ray node tells
    its gateway's /metrics (a local child writes the same into its status file)."""
    return parse_s3_uri(output_uri).join(f"control/attempt-{attempt}.progress.json")


class JobRunner:
    """Runs one attempt end to end and reports it: callbacks, status file, uploads, MLflow."""

    def __init__(self, spec_path: Path, settings: TrainerSettings) -> None:
        self.work_dir = spec_path.parent
        self.spec = StartJobRequest.model_validate_json(spec_path.read_text())
        self.settings = settings
        self.output = parse_s3_uri(self.spec.output_uri)
        self.tail = TailHandler()
        # Ray passes it in the environment; the local executor in the status file (its warm
        # process was started before the request).
        self.request_id = os.environ.get(REQUEST_ID_ENV) or read_status(self.work_dir).get("request_id")
        self.sender = CallbackSender(
            self.spec.callback_url,
            self.spec.callback_secret,
            timeout_s=settings.callback_timeout_s,
            request_id=self.request_id,
        )
        # Every callback goes through the on-disk outbox: training never waits for the backend.
        self.outbox = CallbackOutbox(
            self.work_dir / OUTBOX_DIR,
            self.sender,
            max_backoff_s=settings.callback_max_backoff_s,
            max_batch=settings.callback_batch_max,
        )
        self.s3: Any = None
        self.tracker: Tracker | None = None
        self.device: str | None = None
        self.epoch: int | None = None
        self.uploaded: dict[str, str] = {}
        self.test_metrics: dict[str, float] = {}  # v1.5: best.pt on the test split
        self.ctx: JobContext | None = None
        self.dataset: PreparedDataset | None = None
        self.interrupted = False  # SIGTERM: the trainer is going away, not the user cancelling
        self._sigterm_at: float | None = None
        self._stop_heartbeat = threading.Event()
        self._remote_cancel = threading.Event()
        self._upload_lock = threading.Lock()
        self._checkpoint_due = 0.0  # monotonic time the next last.pt upload is due
        # Newest epoch whose last.pt is in storage: what a resumed attempt would continue after.
        self.checkpoint_epoch: int | None = None
        # Per-epoch uploads and epoch callbacks, in order, off the training thread.
        self.uploads = UploadQueue(self.work_dir / UPLOADS_DIR, self._upload_snapshot)

    # -- signals from the server -------------------------------------------------------------
    def is_cancelled(self) -> bool:
        return self.interrupted or self._remote_cancel.is_set() or (self.work_dir / CANCEL_FILE).exists()

    def _cancel_poll_loop(self) -> None:
        """Look for the cancel marker in storage every `cancel_poll_s` (a job on another node)."""
        lower_this_thread()
        marker = cancel_marker(self.spec.output_uri, self.spec.attempt)
        while not self._stop_heartbeat.wait(self.settings.cancel_poll_s):
            try:
                self.s3.head_object(Bucket=marker.bucket, Key=marker.key)
            except Exception:  # absent (404) or storage down: keep training, look again later
                continue
            log.info("cancel marker found")
            self._remote_cancel.set()
            return

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if not self.interrupted:
            self.interrupted = True
            # The server waits shutdown_timeout_s for us: bound what is left from now on.
            self._sigterm_at = time.monotonic()

    def _s3_budget(self) -> float:
        """Retry budget of one transfer: shorter once the trainer is shutting down."""
        if self.interrupted:
            return min(self.settings.s3_retry_budget_s, self.settings.sigterm_budget_s)
        return self.settings.s3_retry_budget_s

    # -- reporting ---------------------------------------------------------------------------
    def _event(self, type_: EventType, state: EventState = "running", **fields: Any) -> CallbackEvent:
        """Every event carries the MLflow run id once it is known: training does not wait for
        MLflow to create the run (importing its client alone takes a second of CPU)."""
        if self.tracker is not None:
            fields.setdefault("mlflow_run_id", self.tracker.run_id)
        fields.setdefault("checkpoint_epoch", self.checkpoint_epoch)
        return CallbackEvent(
            job_id=self.spec.job_id,
            attempt=self.spec.attempt,
            type=type_,
            state=state,
            device=self.device,
            **fields,
        )

    def _heartbeat_loop(self) -> None:
        lower_this_thread()  # helper work yields to training (trainer_runner/threads.py)
        while not self._stop_heartbeat.wait(self.spec.heartbeat_interval_s):
            self.outbox.put_heartbeat(
                self._event("heartbeat", epoch=self.ctx_epoch(), log_tail=self.tail.tail())
            )

    def ctx_epoch(self) -> int | None:
        if self.ctx is not None and self.ctx.epoch is not None:
            return self.ctx.epoch
        return self.epoch

    def on_epoch(
        self,
        epoch: int,
        total_epochs: int,
        metrics: dict[str, float],
        validation: dict[str, Any] | None = None,
    ) -> None:
        """A finished epoch: status file and MLflow now; validation JSON in S3 and then the
        callback on the upload thread, after the checkpoints queued before it."""
        self.epoch = epoch
        # What /metrics shows of this attempt (trainer_runner.metrics, through the executor).
        speed: dict[str, float] = {k: metrics[k] for k in ("epoch_time_s", "images_per_s") if k in metrics}
        speed["mlflow_failures"] = self.tracker.failures if self.tracker is not None else 0
        write_status(self.work_dir, state="running", epoch=epoch, pid=os.getpid(), **speed)
        log.info("epoch finished", extra={"epoch": epoch, "metrics": metrics})
        if self.tracker is not None:
            self.tracker.log_metrics(metrics, step=epoch)

        def report() -> None:
            summary = self._upload_validation(epoch, validation) if validation else None
            self._upload_progress(speed)
            self.outbox.put(
                self._event(
                    "epoch",
                    epoch=epoch,
                    total_epochs=total_epochs,
                    metrics=metrics,
                    validation=summary,
                )
            )

        self.uploads.submit(report)

    def _upload_progress(self, speed: dict[str, float]) -> None:
        if not speed or self.uploads.skipping:
            return
        marker = progress_marker(self.spec.output_uri, self.spec.attempt)
        try:
            upload_json(self.s3, speed, marker, budget_s=min(self._s3_budget(), 10.0))
        except Exception as exc:  # only /metrics misses it
            log.warning("progress upload failed", extra={"error": str(exc)})

    def _upload_validation(self, epoch: int, docs: dict[str, Any]) -> dict[str, Any] | None:
        """`artifacts/epoch-{n:03d}/{name}.json` per document; the summary for the callback."""
        uris: dict[str, str] = {}
        for name, doc in docs.items():
            key = f"artifacts/epoch-{epoch:03d}/{name}.json"
            if self.uploads.skipping:  # the trainer is stopping: callbacks first
                log.warning("validation upload skipped", extra={"artifact": key})
                continue
            try:
                uris[name] = upload_json(self.s3, doc, self.output.join(key), budget_s=self._s3_budget())
            except Exception as exc:  # a lost chart must not end training
                log.warning("validation upload failed", extra={"artifact": key, "error": str(exc)})
        return summarise(docs, uris)

    def on_checkpoint(self, path: Path) -> None:
        """Queue last.pt for upload (a snapshot: the framework rewrites the file next epoch),
        at most once per `checkpoint_interval_s`.

        Storing a checkpoint every epoch costs a few megabytes of S3 traffic and CPU per epoch,
        on the cores training uses; for short epochs that was a fifth of the job's time. A
        resumed attempt re-runs the epochs after the stored checkpoint and reports them again;
        the backend replaces those points. The final last.pt is uploaded by `_finish`.
        """
        now = time.monotonic()
        if now < self._checkpoint_due:
            return
        self._checkpoint_due = now + self.settings.checkpoint_interval_s
        # The framework saves at the end of the epoch it is in.
        self.uploads.checkpoint(path, self.ctx_epoch())

    def _upload_snapshot(self, snapshot: Path, epoch: int | None) -> None:
        if self._upload("last_checkpoint", snapshot, background=True) and epoch is not None:
            self.checkpoint_epoch = epoch

    def _upload(self, name: str, path: Path, background: bool = False) -> bool:
        """Upload with retries; the artifact is recorded (and so reported) only once stored.
        Under one lock, so an older snapshot never lands after the final upload of a file.
        True when it was stored."""
        if not path.exists():
            return False
        try:
            with self._upload_lock:
                if background and self.uploads.skipping:
                    log.warning("checkpoint upload skipped", extra={"artifact": name})
                    return False
                uri = upload_file(
                    self.s3, path, self.output.join(OUTPUT_KEYS[name]), budget_s=self._s3_budget()
                )
            self.uploaded[name] = uri
            return True
        except Exception as exc:  # an upload failure must not end training; the next one may work
            log.warning("upload failed", extra={"artifact": name, "error": str(exc)})
            return False

    # -- the attempt -------------------------------------------------------------------------
    def run(self) -> str:
        """Run the attempt; returns the final state. Never raises for a job failure."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        ids = {"job_id": self.spec.job_id, "attempt": self.spec.attempt, "request_id": self.request_id}
        configure_logging(
            {k: v for k, v in ids.items() if v is not None},
            self.work_dir / LOG_FILE,
            fmt=self.settings.log_format,
        )
        errortracking.init(self.settings, "trainer-job", tags=ids)
        logging.getLogger().addHandler(self.tail)
        write_status(self.work_dir, state="running", epoch=None, pid=os.getpid())
        log.info(
            "job started",
            extra={
                "framework": self.spec.framework,
                "model": self.spec.model,
                "resources": self.spec.resources.model_dump(),
                # What this process was given: its own GPUs, or "" for a CPU job.
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "host": os.uname().nodename,
            },
        )

        state: EventState = "failed"
        error, heartbeat = None, None
        artifacts: dict[str, Path] = {}
        final_metrics: dict[str, float] = {}
        try:
            plugin = get_plugin(self.spec.framework)
            plugin.validate(self.spec)
            self.s3 = make_s3_client(self.settings)
            self.device = resolve_device(self.spec.device, self.spec.resources.gpus)
            self.tracker = Tracker(
                self.settings.mlflow_tracking_uri,
                self.spec.mlflow_experiment,
                f"job-{self.spec.job_id}",
                tags={
                    "vtp_job_id": self.spec.job_id,
                    "vtp_attempt": str(self.spec.attempt),
                    # MLflow's own tag for nesting: a sweep's trials show under the sweep's run.
                    **(
                        {"mlflow.parentRunId": self.spec.mlflow_parent_run_id}
                        if self.spec.mlflow_parent_run_id
                        else {}
                    ),
                },
                start_wait_s=self.settings.tracking_start_wait_s,
                max_backoff_s=self.settings.tracking_max_backoff_s,
            )
            self.tracker.log_params(self._params())
            total = None if self.spec.resume_from_uri else int(self.spec.hyperparameters.get("epochs", 100))
            self.outbox.put(self._event("started", total_epochs=total))
            heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
            heartbeat.start()
            if self.settings.cancel_poll_s > 0:
                threading.Thread(target=self._cancel_poll_loop, name="cancel-poll", daemon=True).start()

            dataset = self.dataset = prepare_dataset(
                self.s3,
                parse_s3_uri(self.spec.dataset_uri),
                self.work_dir / "dataset",
                self.spec.task,
            )
            resume = None
            if self.spec.resume_from_uri:
                resume = download_file(
                    self.s3,
                    parse_s3_uri(self.spec.resume_from_uri),
                    self.work_dir / "resume" / "last.pt",
                    budget_s=self._s3_budget(),
                )
            init = None
            if self.spec.init_weights and resume is None:
                source = parse_s3_uri(self.spec.init_weights)
                # Keep the suffix: it tells a .safetensors file from a pickle.
                init = download_file(
                    self.s3,
                    source,
                    self.work_dir / "init" / ("weights" + Path(source.key).suffix),
                    budget_s=self._s3_budget(),
                )
            if self.is_cancelled():
                raise JobCancelled("cancelled before training started")
            self.ctx = JobContext(
                spec=self.spec,
                work_dir=self.work_dir,
                cache_dir=self.settings.scratch_dir,
                run_dir=self.work_dir / "runs" / "train",
                data_yaml=dataset.data_yaml,
                dataset_root=dataset.root,
                classes=dataset.classes,
                device=self.device,
                torch_threads=self.settings.resolved_torch_threads(),
                resume_checkpoint=resume,
                init_weights=init,
                is_cancelled=self.is_cancelled,
                on_epoch=self.on_epoch,
                on_checkpoint=self.on_checkpoint,
            )
            artifacts = self.ctx.artifacts
            self._checkpoint_due = time.monotonic() + self.settings.checkpoint_interval_s
            plugin.train(self.ctx)
            final_metrics = self.ctx.final_metrics
            state = "succeeded"
            self._sample_predictions(plugin, artifacts.get("best_checkpoint"))
            self._evaluate(plugin, artifacts.get("best_checkpoint"))
        except JobCancelled:
            if self.interrupted:
                error = CallbackError(
                    kind="transient",
                    message="trainer stopped (SIGTERM); resume from last checkpoint",
                )
            else:
                state = "cancelled"
            log.info("job stopped", extra={"interrupted": self.interrupted})
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if type(exc).__name__ == "OutOfMemoryError":  # torch's, on the GPU or the host
                message = f"{OOM_MESSAGE} ({message})"
            error = CallbackError(kind=classify(exc), message=message[:2000])
            log.exception("job failed", extra={"error_kind": error.kind})
        finally:
            self._stop_heartbeat.set()
            if heartbeat is not None:
                heartbeat.join(timeout=15)
        return self._finish(state, error, artifacts, final_metrics)

    def _stop_deadline(self) -> float | None:
        """After SIGTERM, queued transfers get sigterm_budget_s in all; otherwise no limit."""
        if self._sigterm_at is None:
            return None
        return self._sigterm_at + self.settings.sigterm_budget_s

    def _drain(self) -> None:
        """Stay alive until the buffered callbacks and MLflow data are delivered, or until
        callback_drain_budget_s is spent (sigterm_budget_s once the trainer is stopping)."""
        started = time.monotonic()
        budget = self.settings.callback_drain_budget_s

        def deadline() -> float:
            end = started + budget
            if self._sigterm_at is not None:
                end = min(end, self._sigterm_at + self.settings.sigterm_budget_s)
            return end

        delivered = False
        while True:
            # Short rounds, so a SIGTERM arriving meanwhile shortens the wait.
            round_end = min(deadline(), time.monotonic() + 1.0)
            delivered = not self.outbox.pending()
            tracked = self.tracker is None or self.tracker.complete
            # A sender that gave up (a bug, a refused run) cannot drain: do not wait for it.
            done = (delivered or not self.outbox.active) and (
                tracked or self.tracker is None or not self.tracker.active
            )
            if done or time.monotonic() >= deadline():
                break
            if not delivered:
                self.outbox.wait_empty(round_end)
            else:
                self.tracker.flush(max(round_end - time.monotonic(), 0.0))  # type: ignore[union-attr]
        delivered = self.outbox.drain(0.0)
        tracked = self.tracker.close(0.0) if self.tracker is not None else True
        self.sender.close()
        log.info(
            "job process exiting",
            extra={
                "callbacks_delivered": delivered,
                "tracking_complete": tracked,
                "drain_s": round(time.monotonic() - started, 1),
            },
        )

    def _sample_predictions(self, plugin: Any, best: Path | None) -> None:
        """Predictions of the best model on a few validation images: PNGs plus one JSON."""
        if best is None or not best.exists() or self.dataset is None:
            return
        from PIL import Image

        root = self.dataset.root
        split = "val" if self.dataset.counts["val"] else "train"
        folder = root / split if self.spec.task == "classify" else root / "images" / split
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        try:
            model = plugin.load_model(best, primary_device(self.device or "cpu"))
            items = []
            for index, path in enumerate(images[:SAMPLE_IMAGES]):
                with Image.open(path) as opened:
                    image = opened.convert("RGB")
                result = model.predict(image, 0.25)
                if "probabilities" in result:
                    result["probabilities"] = result["probabilities"][:5]
                png = io.BytesIO()
                draw(image, result).save(png, format="PNG")
                key = f"artifacts/predictions/{index:02d}_{path.stem}.png"
                uri = upload_bytes(
                    self.s3,
                    png.getvalue(),
                    self.output.join(key),
                    "image/png",
                    budget_s=self._s3_budget(),
                )
                items.append({"image": path.name, "drawn_uri": uri, **result})
            doc = {"task": self.spec.task, "classes": model.classes, "images": items}
            self.uploaded["predictions"] = upload_json(
                self.s3,
                doc,
                self.output.join(OUTPUT_KEYS["predictions"]),
                budget_s=self._s3_budget(),
            )
        except Exception as exc:  # the model is trained; a failed drawing must not fail the job
            log.warning("sample predictions failed", extra={"error": str(exc)})

    def _evaluate(self, plugin: Any, best: Path | None) -> None:
        """Test metrics (MLflow and the `finished` event) and the per-image predictions JSON
        of val and test (`trainer_runner.evaluation`)."""
        if best is None or not best.exists() or self.dataset is None or self.ctx is None:
            return
        try:
            result = evaluate(
                plugin,
                self.ctx,
                self.dataset,
                best,
                primary_device(self.device or "cpu"),
                self.spec.predictions_max_images,
                self.is_cancelled,
            )
        except Exception as exc:  # the model is trained; its evaluation must not fail the job
            log.warning("end-of-job evaluation failed", extra={"error": str(exc)})
            return
        self.test_metrics = result.test_metrics
        if self.tracker is not None and self.test_metrics:
            self.tracker.log_metrics(self.test_metrics, step=self.epoch or 0)
        for split, doc in result.documents.items():
            key = OUTPUT_KEYS[f"predictions_{split}"]
            try:
                self.uploaded[f"predictions_{split}"] = upload_json(
                    self.s3, doc, self.output.join(key), budget_s=self._s3_budget()
                )
            except Exception as exc:  # the other split and the test metrics still count
                log.warning("predictions not uploaded", extra={"artifact": key, "error": str(exc)})

    def _params(self) -> dict[str, Any]:
        return {
            **self.spec.hyperparameters,
            "framework": self.spec.framework,
            "task": self.spec.task,
            "model": self.spec.model,
            "dataset_uri": self.spec.dataset_uri,
            "device": self.device,
            "attempt": self.spec.attempt,
            "init_weights": self.spec.init_weights or "scratch",
        }

    def _finish(
        self,
        state: EventState,
        error: CallbackError | None,
        artifacts: dict[str, Path],
        metrics: dict[str, float],
    ) -> str:
        """Upload what exists, close MLflow, then tell the backend (log uploaded last)."""
        # Every queued epoch upload and callback first: the final callback comes after them,
        # and the final last.pt upload after any older snapshot's.
        self.uploads.drain(self._stop_deadline)
        if self.s3 is not None:
            for name, path in artifacts.items():
                if self._upload(name, path) and name == "last_checkpoint":
                    self.checkpoint_epoch = self.epoch  # last.pt holds the last finished epoch
            if self.dataset is not None:
                try:
                    self.uploaded["dataset_report"] = upload_json(
                        self.s3,
                        self.dataset.report(),
                        self.output.join(OUTPUT_KEYS["dataset_report"]),
                        budget_s=self._s3_budget(),
                    )
                except Exception as exc:
                    log.warning("dataset report not uploaded", extra={"error": str(exc)})
        tracking: dict[str, Any] | None = None
        if self.tracker is not None:
            self.tracker.end(state)
            # Bounded: a dead MLflow delays the final callback by at most tracking_flush_s.
            flush_s = self.settings.tracking_flush_s
            self.tracker.flush(min(flush_s, 5.0) if self.interrupted else flush_s)
            tracking = self.tracker.summary()
            if not tracking["complete"]:
                log.warning("tracking incomplete at the end of the job", extra=tracking)
        self._clean_scratch()  # before the final state: a free slot means a clean scratch
        write_status(
            self.work_dir,
            state=state,
            epoch=self.epoch,
            pid=os.getpid(),
            error=error.model_dump() if error else None,
        )
        log.info("job finished", extra={"state": state, "artifacts": self.uploaded})
        if self.s3 is not None:
            self._upload("log", self.work_dir / LOG_FILE)
        self.outbox.put(
            self._event(
                "finished",
                state=state,
                epoch=self.epoch,
                metrics=metrics or None,
                test_metrics=self.test_metrics or None,
                artifacts=dict(self.uploaded),
                error=error,
                log_tail=self.tail.tail(),
                dataset=self.dataset.report() if self.dataset else None,
                tracking=tracking,
            )
        )
        self._drain()
        if not self.outbox.pending():
            shutil.rmtree(self.work_dir / OUTBOX_DIR, ignore_errors=True)
        return state

    def _clean_scratch(self) -> None:
        """Outputs live in object storage now; scratch is only a cache. The spec holds the
        callback secret (the outbox keeps it in memory only)."""
        for leftover in ("dataset", "runs", "resume", "init", UPLOADS_DIR, SPEC_FILE):
            target = self.work_dir / leftover
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)


def spec_from_env(settings: TrainerSettings) -> Path:
    """Write the spec passed in `TRAINER_JOB_SPEC` to this node's scratch (0600): from here on
    the attempt runs exactly as a local child does."""
    request = StartJobRequest.model_validate_json(os.environ.pop(SPEC_ENV))
    work_dir = settings.scratch_dir / "jobs" / f"{request.job_id}-{request.attempt}"
    work_dir.mkdir(parents=True, exist_ok=True)
    spec = work_dir / SPEC_FILE
    fd = os.open(spec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(request.model_dump_json())
    write_status(work_dir, job_id=request.job_id, attempt=request.attempt, state="accepted", epoch=None)
    return spec


def warm_up(settings: TrainerSettings) -> None:
    """Import torch and the default framework as a job of this trainer would (same threads,
    same offline configuration), before there is a job: importing them is most of a short
    job's start-up, CPU-bound, and the same for every job."""
    make_s3_client(settings)  # boto3 keeps the service models it loaded (0.2 s of CPU)
    preload = getattr(get_plugin(WARM_FRAMEWORK), "preload", None)
    if preload is not None:
        preload(settings.scratch_dir, settings.resolved_torch_threads())


def run_warm(settings: TrainerSettings, stdin: IO[str]) -> int:
    """A job process started ahead of its job (the local executor's `warm_job_process`): warm
    up, then wait for the path of a spec on stdin and run that attempt, in its folder, exactly
    as a process started for it would. An empty line or a closed stdin: not needed, exit."""
    try:
        warm_up(settings)
    except Exception as exc:  # the job imports again and reports what is wrong itself
        print(f"warm-up failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    line = stdin.readline().strip()
    if not line:
        return 0
    spec = Path(line)
    os.chdir(spec.parent)
    return run_attempt(spec, settings)


def run_attempt(spec: Path, settings: TrainerSettings) -> int:
    """Run the attempt a spec describes with the runner for its kind (warm or cold, the same)."""
    runner: type[JobRunner] = JobRunner
    if StartJobRequest.model_validate_json(spec.read_text()).kind == "batch_inference":
        from trainer_runner.batch import BatchRunner  # v1.5: the same reporting, another task

        runner = BatchRunner
    state = runner(spec, settings).run()
    return EXIT_CODES.get(state, EXIT_CODES["failed"])


def main(argv: list[str] | None = None) -> int:
    """Exit code: `EXIT_CODES` of the final state; 2 for a bad command line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            f"usage: python -m trainer_runner.job (SPEC_JSON | --spec-from-env | {WARM_ARG})", file=sys.stderr
        )
        return 2
    settings = TrainerSettings()
    if args[0] == WARM_ARG:
        return run_warm(settings, sys.stdin)
    spec = spec_from_env(settings) if args[0] == "--spec-from-env" else Path(args[0])
    return run_attempt(spec, settings)


if __name__ == "__main__":
    sys.exit(main())
