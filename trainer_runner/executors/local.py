"""The `local` executor: attempts are child processes of this trainer, on this machine.

Each attempt is `python -m trainer_runner.job SPEC`, talking to the server through files in
`{scratch}/jobs/{job_id}-{attempt}/` (see `trainer_runner.workdir`). The executor owns the
machine's GPUs (detected, or `TRAINER_GPUS` fake ones for tests) and `TRAINER_CPU_SLOTS`: an
attempt gets whole GPUs of its own through `CUDA_VISIBLE_DEVICES` and its share of CPU slots,
and nothing is ever handed out twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainer_runner.executors.base import (
    Executor,
    LostReporter,
    NoCapacity,
    StaleAttempt,
    effective_resources,
)
from trainer_runner.lost import MemoryWatch, describe_exit, own_cgroup_dir
from trainer_runner.resources import cpus_needed, waiting_for
from trainer_runner.schemas import (
    FINAL_STATES,
    Capacity,
    JobStatus,
    NodeCapacity,
    StartJobRequest,
)
from trainer_runner.settings import TrainerSettings
from trainer_runner.workdir import CANCEL_FILE, SPEC_FILE, WARM_ARG, read_status, write_status

log = logging.getLogger(__name__)

NODE_ID = "local"


@dataclass
class Attempt:
    job_id: str
    attempt: int
    work_dir: Path
    request: StartJobRequest | None = None  # None for attempts recovered after a restart
    process: subprocess.Popen[bytes] | None = None
    final_state: str | None = None
    gpu_ids: list[str] = field(default_factory=list)
    cpus: float = 0.0
    memory: MemoryWatch | None = None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def holds_slot(self) -> bool:
        """Running and not yet final: a child that reported its end is only exiting, so the
        backend may dispatch the next job at once instead of waiting out a 429."""
        return self.is_running() and read_status(self.work_dir).get("state") not in FINAL_STATES

    def status(self) -> JobStatus:
        recorded = read_status(self.work_dir)
        state = self.final_state or recorded.get("state") or "accepted"
        error = recorded.get("error") if state == "failed" else None
        return JobStatus.model_validate(
            {
                "job_id": self.job_id,
                "attempt": self.attempt,
                "state": state,
                "epoch": recorded.get("epoch"),
                "error": error or None,
            }
        )


def detect_gpus() -> tuple[list[str], str | None]:
    """(CUDA device ids a child may be given, their accelerator name) without importing torch:
    `nvidia-smi` answers in a few milliseconds, torch would cost the server 700 MB."""
    if shutil.which("nvidia-smi") is None:
        return [], None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return [], None
    names = [line.strip() for line in out.splitlines() if line.strip()]
    ids = [str(i) for i in range(len(names))]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:  # this server was itself given some GPUs: share only those
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        ids = [i for i in ids if not i.isdigit() or int(i) < len(names)]
    return ids, accelerator_name(names[0]) if names else None


def accelerator_name(device_name: str) -> str:
    """'NVIDIA H200' -> 'H200', 'NVIDIA GeForce RTX 4090' -> 'GeForce-RTX-4090'."""
    name = device_name.removeprefix("NVIDIA").strip()
    return "-".join(name.split()) or device_name


class LocalExecutor(Executor):
    """All attempts this trainer runs as children, guarded by one lock."""

    name = "local"

    def __init__(self, settings: TrainerSettings) -> None:
        self.settings = settings
        self.jobs_dir = settings.scratch_dir / "jobs"
        if settings.gpus is not None:
            self.gpu_ids = [str(i) for i in range(settings.gpus)]
            self.accelerator = settings.accelerator
        else:
            self.gpu_ids, detected = detect_gpus()
            self.accelerator = settings.accelerator or detected
        self._cgroup = own_cgroup_dir()
        self._attempts: dict[tuple[str, int], Attempt] = {}
        self._lock = threading.RLock()
        self._lost = LostReporter()
        # A job process started ahead, torch imported, waiting for the next CPU job's spec.
        self._warm: subprocess.Popen[bytes] | None = None
        self._closing = False  # shutting down: no new warm process
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
            if state not in FINAL_STATES:
                message = "the trainer restarted while this attempt ran"
                write_status(work_dir, state="failed", error={"kind": "lost", "message": message})
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

    def _holding(self) -> list[Attempt]:
        return [a for a in self._attempts.values() if a.holds_slot()]

    def running_count(self) -> int:
        with self._lock:
            return len(self._holding())

    def _node(self) -> NodeCapacity:
        holding = self._holding()
        used_gpus = {gpu for a in holding for gpu in a.gpu_ids}
        return NodeCapacity(
            node_id=NODE_ID,
            alive=True,
            cpus_total=self.settings.cpu_slots,
            cpus_free=max(self.settings.cpu_slots - sum(a.cpus for a in holding), 0.0),
            gpus_total=len(self.gpu_ids),
            gpus_free=len([g for g in self.gpu_ids if g not in used_gpus]),
            accelerator=self.accelerator,
        )

    def capacity(self) -> Capacity:
        with self._lock:
            self.poll()
            return Capacity(executor="local", jobs_running=len(self._holding()), nodes=[self._node()])

    def start(self, request: StartJobRequest) -> JobStatus:
        with self._lock:
            self.poll()
            known = self._attempts.get((request.job_id, request.attempt))
            if known is not None:
                return known.status()
            latest = self._latest(request.job_id)
            if latest is not None and latest.attempt > request.attempt:
                raise StaleAttempt(f"attempt {latest.attempt} of job {request.job_id} is newer")
            if latest is not None and latest.holds_slot():
                # The backend gave up on the old attempt; it stops at its next batch.
                self._request_cancel(latest)
            limit = self.settings.max_concurrent_jobs
            if limit and self.running_count() >= limit:
                raise NoCapacity(
                    "the trainer", f"{limit} job(s) already running (TRAINER_MAX_CONCURRENT_JOBS)"
                )
            resources = effective_resources(request)
            node = self._node()
            refused = waiting_for(resources, [node])
            if refused is not None:
                raise NoCapacity(*refused)
            used = {gpu for a in self._holding() for gpu in a.gpu_ids}
            gpu_ids = [g for g in self.gpu_ids if g not in used][: resources.gpus]
            item = self._spawn(request, gpu_ids, cpus_needed(resources, node))
            self._attempts[(request.job_id, request.attempt)] = item
            log.info(
                "job accepted",
                extra={"job_id": request.job_id, "attempt": request.attempt, "gpus": gpu_ids},
            )
            return item.status()

    def _child_env(self, gpu_ids: list[str]) -> dict[str, str]:
        return {
            **os.environ,
            **self.settings.child_env(),
            "PYTHONPATH": _child_pythonpath(),
            # Only its own GPUs; "" hides every GPU from a CPU job.
            "CUDA_VISIBLE_DEVICES": ",".join(gpu_ids),
        }

    def _keep_warm(self) -> None:
        """Have a warm job process ready (`warm_job_process`) on a trainer without GPUs.

        Started only while no attempt holds a slot: its imports take seconds of CPU, which a
        running job would lose. The next CPU job then starts with torch already imported.
        """
        if not self.settings.warm_job_process or self.gpu_ids or self._closing:
            return
        if self._warm is not None and self._warm.poll() is None:
            return
        if self._holding():
            return
        # Outside jobs/: nothing it might write before its job is taken for an attempt folder.
        self.settings.scratch_dir.mkdir(parents=True, exist_ok=True)
        self._warm = subprocess.Popen(
            [sys.executable, "-m", "trainer_runner.job", WARM_ARG],
            env=self._child_env([]),
            cwd=self.settings.scratch_dir,
            stdin=subprocess.PIPE,
            start_new_session=True,
        )

    def _take_warm(self, spec: Path) -> subprocess.Popen[bytes] | None:
        """Hand `spec` to the warm process; None when there is none alive to take it."""
        warm, self._warm = self._warm, None
        if warm is None or warm.stdin is None or warm.poll() is not None:
            return None
        try:
            warm.stdin.write(f"{spec}\n".encode())
            warm.stdin.close()
        except OSError:  # it died just now: start the job the ordinary way
            warm.kill()
            warm.wait()
            return None
        return warm

    def _stop_warm(self) -> None:
        warm, self._warm = self._warm, None
        if warm is None:
            return
        if warm.stdin is not None:
            warm.stdin.close()  # an empty stdin tells it it is not needed
        warm.terminate()  # without waiting for its imports to finish
        try:
            warm.wait(timeout=10)
        except subprocess.TimeoutExpired:
            warm.kill()
            warm.wait()

    def _spawn(self, request: StartJobRequest, gpu_ids: list[str], cpus: float) -> Attempt:
        work_dir = self.jobs_dir / f"{request.job_id}-{request.attempt}"
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / CANCEL_FILE).unlink(missing_ok=True)
        spec = work_dir / SPEC_FILE
        # The spec carries the callback secret: readable by this user only.
        fd = os.open(spec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(request.model_dump_json())
        write_status(work_dir, job_id=request.job_id, attempt=request.attempt, state="accepted", epoch=None)
        process = self._take_warm(spec) if not gpu_ids else None
        if process is None:
            process = subprocess.Popen(
                [sys.executable, "-m", "trainer_runner.job", str(spec)],
                env=self._child_env(gpu_ids),
                cwd=work_dir,
                start_new_session=True,  # a Ctrl-C meant for the server does not hit the job
            )
        return Attempt(
            request.job_id,
            request.attempt,
            work_dir,
            request=request,
            process=process,
            gpu_ids=gpu_ids,
            cpus=cpus,
            memory=MemoryWatch.start(self._cgroup),
        )

    def status(self, job_id: str) -> JobStatus | None:
        with self._lock:
            self.poll()
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

    def poll(self) -> None:
        """Collect exited children; one that died without a final state is lost, reported here
        with what is known of why (signal, OOM evidence)."""
        with self._lock:
            for item in self._attempts.values():
                if item.final_state or item.process is None:
                    continue
                if item.process.poll() is None:
                    if item.memory is not None:
                        item.memory.sample(item.process.pid)
                    continue
                state = read_status(item.work_dir).get("state")
                if state in FINAL_STATES:
                    item.final_state = state
                    continue
                item.final_state = "failed"
                (item.work_dir / SPEC_FILE).unlink(missing_ok=True)  # it holds the callback secret
                evidence = item.memory.oom_evidence() if item.memory else None
                message = describe_exit(item.process.returncode, evidence)
                write_status(item.work_dir, state="failed", error={"kind": "lost", "message": message})
                if item.request is not None:
                    self._lost.report(item.request, message)
            self._keep_warm()

    def shutdown(self, timeout_s: float | None = None) -> None:
        """SIGTERM every child, then wait (`shutdown_timeout_s`): each stops at its next batch,
        uploads last.pt, reports a transient failure (so the backend resumes it elsewhere) and
        delivers its buffered callbacks. A child still there after the wait is killed and
        reported lost by `poll`, so no attempt is left `running`."""
        timeout_s = self.settings.shutdown_timeout_s if timeout_s is None else timeout_s
        with self._lock:
            self._closing = True
            self._stop_warm()
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
        self.poll()
        # A killed child's lost report runs in a thread: give it a moment before we exit.
        self._lost.join()


def _child_pythonpath() -> str:
    """The child imports this very package, installed or not, whatever its cwd."""
    package_root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
