"""Keeps track of the job children of one trainer: start, idempotency, capacity, cancel, reaping.

The HTTP layer only parses and shapes; the rules live here. Each attempt is a child process
talking through files in `{scratch}/jobs/{job_id}-{attempt}/` (see `trainer_runner.job`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from trainer_runner.callbacks import CallbackSender
from trainer_runner.schemas import (
    FINAL_STATES,
    CallbackError,
    CallbackEvent,
    JobStatus,
    StartJobRequest,
)
from trainer_runner.settings import TrainerSettings
from trainer_runner.workdir import CANCEL_FILE, SPEC_FILE, read_status, write_status

log = logging.getLogger(__name__)


class TrainerBusy(Exception):  # noqa: N818 - a condition, answered with 429
    """Every job slot is taken; the caller should retry later."""


class StaleAttempt(Exception):  # noqa: N818
    """A newer attempt of the same job is already known here."""


@dataclass
class Attempt:
    job_id: str
    attempt: int
    work_dir: Path
    request: StartJobRequest | None = None  # None for attempts recovered after a restart
    process: subprocess.Popen[bytes] | None = None
    final_state: str | None = None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def holds_slot(self) -> bool:
        """Running and not yet final: a child that reported its end is only exiting, so the
        backend may dispatch the next job at once instead of waiting out a 429."""
        return self.is_running() and read_status(self.work_dir).get("state") not in FINAL_STATES

    def status(self) -> JobStatus:
        recorded = read_status(self.work_dir)
        state = self.final_state or recorded.get("state") or "accepted"
        return JobStatus(job_id=self.job_id, attempt=self.attempt, state=state, epoch=recorded.get("epoch"))


class JobSupervisor:
    """All attempts this trainer knows about, guarded by one lock."""

    def __init__(self, settings: TrainerSettings) -> None:
        self.settings = settings
        self.jobs_dir = settings.scratch_dir / "jobs"
        self._attempts: dict[tuple[str, int], Attempt] = {}
        self._lock = threading.RLock()
        self._reporters: list[threading.Thread] = []
        self._recover()

    def _recover(self) -> None:
        """Know attempts a previous server process ran; those not finished are lost (failed)."""
        if not self.jobs_dir.is_dir():
            return
        for work_dir in self.jobs_dir.iterdir():
            recorded = read_status(work_dir)
            if "job_id" not in recorded or "attempt" not in recorded:
                continue
            state = recorded.get("state")
            item = Attempt(
                str(recorded["job_id"]),
                int(recorded["attempt"]),
                work_dir,
                final_state=state if state in FINAL_STATES else "failed",
            )
            self._attempts[(item.job_id, item.attempt)] = item

    def _latest(self, job_id: str) -> Attempt | None:
        candidates = [a for (jid, _), a in self._attempts.items() if jid == job_id]
        return max(candidates, key=lambda a: a.attempt, default=None)

    def running_count(self) -> int:
        """Attempts holding a job slot."""
        with self._lock:
            return sum(a.holds_slot() for a in self._attempts.values())

    def start(self, request: StartJobRequest) -> JobStatus:
        """Start an attempt, or answer the state of the same one (idempotent on job_id:attempt)."""
        with self._lock:
            self.reap()
            known = self._attempts.get((request.job_id, request.attempt))
            if known is not None:
                return known.status()
            latest = self._latest(request.job_id)
            if latest is not None and latest.attempt > request.attempt:
                raise StaleAttempt(f"attempt {latest.attempt} of job {request.job_id} is newer")
            if latest is not None and latest.holds_slot():
                # The backend gave up on the old attempt; it stops at its next batch.
                self._request_cancel(latest)
            if self.running_count() >= self.settings.max_concurrent_jobs:
                raise TrainerBusy(f"{self.settings.max_concurrent_jobs} job(s) already running")
            item = self._spawn(request)
            self._attempts[(request.job_id, request.attempt)] = item
            log.info("job accepted", extra={"job_id": request.job_id, "attempt": request.attempt})
            return item.status()

    def _spawn(self, request: StartJobRequest) -> Attempt:
        work_dir = self.jobs_dir / f"{request.job_id}-{request.attempt}"
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / CANCEL_FILE).unlink(missing_ok=True)
        spec = work_dir / SPEC_FILE
        # The spec carries the callback secret: readable by this user only.
        fd = os.open(spec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(request.model_dump_json())
        write_status(work_dir, job_id=request.job_id, attempt=request.attempt, state="accepted", epoch=None)
        process = subprocess.Popen(
            [sys.executable, "-m", "trainer_runner.job", str(spec)],
            env={**os.environ, **self.settings.child_env(), "PYTHONPATH": _child_pythonpath()},
            cwd=work_dir,
            start_new_session=True,  # a Ctrl-C meant for the server does not hit the job
        )
        return Attempt(request.job_id, request.attempt, work_dir, request=request, process=process)

    def status(self, job_id: str) -> JobStatus | None:
        with self._lock:
            self.reap()
            latest = self._latest(job_id)
            return latest.status() if latest else None

    def cancel(self, job_id: str) -> JobStatus | None:
        """Ask the latest attempt to stop at its next batch (a flag file the child polls)."""
        with self._lock:
            latest = self._latest(job_id)
            if latest is None:
                return None
            if latest.is_running():
                self._request_cancel(latest)
            return latest.status()

    @staticmethod
    def _request_cancel(item: Attempt) -> None:
        (item.work_dir / CANCEL_FILE).touch()
        log.info("cancel requested", extra={"job_id": item.job_id, "attempt": item.attempt})

    def reap(self) -> None:
        """Collect exited children; one that died without a final state is reported failed here."""
        with self._lock:
            for item in self._attempts.values():
                if item.final_state or item.process is None or item.process.poll() is None:
                    continue
                state = read_status(item.work_dir).get("state")
                if state in FINAL_STATES:
                    item.final_state = state
                    continue
                item.final_state = "failed"
                (item.work_dir / SPEC_FILE).unlink(missing_ok=True)  # it holds the callback secret
                message = f"trainer job process exited with code {item.process.returncode}"
                write_status(item.work_dir, state="failed", error={"kind": "transient", "message": message})
                log.error("job process died", extra={"job_id": item.job_id, "attempt": item.attempt})
                if item.request is not None:
                    reporter = threading.Thread(
                        target=_report_crash, args=(item.request, message), daemon=True
                    )
                    reporter.start()
                    self._reporters.append(reporter)

    def shutdown(self, timeout_s: float | None = None) -> None:
        """SIGTERM every child, then wait (`shutdown_timeout_s`): each stops at its next batch,
        uploads last.pt, reports a transient failure (so the backend resumes it elsewhere) and
        delivers its buffered callbacks. A child still there after the wait is killed and
        reported failed (transient) by `reap`, so no attempt is left `running`."""
        timeout_s = self.settings.shutdown_timeout_s if timeout_s is None else timeout_s
        with self._lock:
            running = [a for a in self._attempts.values() if a.is_running()]
        for item in running:
            assert item.process is not None
            item.process.send_signal(signal.SIGTERM)
        log.info("stopping job processes", extra={"count": len(running)})
        deadline = time.monotonic() + timeout_s
        for item in running:
            assert item.process is not None
            try:
                item.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.error("job process ignored SIGTERM; killed", extra={"job_id": item.job_id})
                item.process.kill()
                item.process.wait()
        self.reap()
        # A killed child's crash report runs in a thread: give it a moment before we exit.
        for thread in list(self._reporters):
            thread.join(timeout=15)


def _child_pythonpath() -> str:
    """The child imports this very package, installed or not, whatever its cwd."""
    package_root = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)


def _report_crash(request: StartJobRequest, message: str) -> None:
    """A killed child (OOM killer, segfault) cannot say so itself; transient: resume may work."""
    sender = CallbackSender(request.callback_url, request.callback_secret)
    try:
        sender.send(
            CallbackEvent(
                job_id=request.job_id,
                attempt=request.attempt,
                type="finished",
                state="failed",
                error=CallbackError(kind="transient", message=message),
            )
        )
    finally:
        sender.close()
