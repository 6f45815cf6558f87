"""Chaos tests: real processes, real signals. Each prints: fault, outcome, time to recover."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.reliability
FAST_RECOVERY = {"VTP_HEARTBEAT_TIMEOUT_S": "6", "VTP_RECONCILE_INTERVAL_S": "2"}


def _pids(marker: bytes, needle: bytes) -> list[int]:
    """Processes whose command line holds `marker` and whose command line or environment holds
    `needle` (a port or data dir, so only this test's stack is touched)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker in cmdline and (needle in cmdline or needle in environ):
            found.append(int(pid))
    return found


def _trainer_pids(stack: StackProcess) -> list[int]:
    return _pids(b"trainer_runner", f"TRAINER_PORT={stack.ports['trainer']}".encode())


def test_trainer_killed_mid_epoch_resumes_from_checkpoint(tmp_path: Path, output_dir: Path) -> None:
    stack = StackProcess(
        data_dir=tmp_path / "data",
        trainer_dir=tmp_path / "trainer",
        log_path=output_dir / "stack-chaos-trainer.log",
        # A checkpoint every epoch, so the kill lands after one was stored (the default
        # interval, 60 s, is longer than this whole job) and the new attempt resumes from it.
        extra_env={**FAST_RECOVERY, "TRAINER_CHECKPOINT_INTERVAL_S": "0"},
    )
    stack.start()
    try:
        api = Api(stack.api_url, stack.username, stack.password)
        pid = api.project_id()
        epochs = 6
        job = api.start_job(pid, api.datasets(pid)[0]["id"], epochs=epochs, imgsz=96)
        deadline = time.monotonic() + 300
        while len(api.job(pid, job["id"])["metrics"]) < 2:
            assert time.monotonic() < deadline, "training did not reach epoch 2"
            time.sleep(0.3)
        victims = _trainer_pids(stack)
        assert len(victims) >= 2, "expected the trainer server and its job process"
        for victim in victims:
            os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()

        final = api.wait_finished(pid, job["id"], timeout_s=400)
        recovered_s = time.monotonic() - killed_at
        print(
            f"\nfault=trainer SIGKILL mid-epoch outcome={final['state']} attempt={final['attempt']} "
            f"time_to_recover={recovered_s:.1f}s"
        )
        assert final["state"] == "succeeded", final
        assert final["attempt"] == 2
        # One point per epoch across both attempts; the second resumed, not restarted: the kill
        # came after epoch 1's callback, which follows the upload of epoch 1's checkpoint.
        assert [m["epoch"] for m in final["metrics"]] == list(range(epochs))
        second = [e["epoch"] for e in stack.callbacks(job["id"], {"epoch"}) if e["attempt"] == 2]
        assert second and min(second) >= 2 and second == list(range(min(second), epochs)), second
        assert "trainer exited with code -9" in "\n".join(stack.lines)
    finally:
        stack.stop()


def _wait_state(api: Api, pid: int, job_id: int, states: set[str], timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while (job := api.job(pid, job_id))["state"] not in states:
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}"
        time.sleep(0.1)
    return job


def test_worker_killed_mid_dispatch_neither_loses_nor_duplicates(tmp_path: Path, output_dir: Path) -> None:
    stack = StackProcess(
        data_dir=tmp_path / "data",
        trainer_dir=tmp_path / "trainer",
        log_path=output_dir / "stack-chaos-worker.log",
        extra_env=FAST_RECOVERY,
    )
    stack.start()
    try:
        api = Api(stack.api_url, stack.username, stack.password)
        pid = api.project_id()
        trainer = _trainer_pids(stack)
        worker = _pids(b"services.runtime.worker.WorkerSettings", f"VTP_DATA_DIR={stack.data_dir}".encode())
        # Hold the worker while the job is created (that asks the live trainer for its catalogue),
        # then freeze the trainer so the worker's hand-over hangs: the dispatcher blocks on the
        # trainer's GET /capacity (job still queued) or on its POST /jobs (dispatching).
        os.kill(worker[0], signal.SIGSTOP)
        job = api.start_job(pid, api.datasets(pid)[0]["id"], epochs=3)
        for p in trainer:
            os.kill(p, signal.SIGSTOP)
        os.kill(worker[0], signal.SIGCONT)
        time.sleep(3)  # the dispatcher wakes and is now stuck talking to the frozen trainer
        assert api.job(pid, job["id"])["state"] in {"queued", "dispatching"}
        os.kill(worker[0], signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(1)
        for p in trainer:
            os.kill(p, signal.SIGCONT)
        final = api.wait_finished(pid, job["id"], timeout_s=300)
        print(
            f"\nfault=worker SIGKILL mid-dispatch outcome={final['state']} attempt={final['attempt']} "
            f"time_to_recover={time.monotonic() - killed_at:.1f}s"
        )
        assert final["state"] == "succeeded", final
        assert [m["epoch"] for m in final["metrics"]] == [0, 1, 2]
        # However often the job was offered, the trainer ran each (job, attempt) once.
        assert len(set(_job_dirs(stack))) == final["attempt"]
    finally:
        stack.stop()


def _job_dirs(stack: StackProcess) -> list[str]:
    return [d.name for d in (stack.trainer_dir / "scratch" / "jobs").iterdir() if d.is_dir()]


def test_redis_restart_with_jobs_queued(tmp_path: Path, output_dir: Path) -> None:
    stack = StackProcess(
        data_dir=tmp_path / "data",
        trainer_dir=tmp_path / "trainer",
        log_path=output_dir / "stack-chaos-redis.log",
        extra_env=FAST_RECOVERY,
    )
    stack.start()
    try:
        api = Api(stack.api_url, stack.username, stack.password)
        pid = api.project_id()
        version = api.datasets(pid)[0]["id"]
        # One job trains; the trainer's capacity is 1, so the next two wait in the queue.
        jobs = [api.start_job(pid, version, epochs=2) for _ in range(3)]
        _wait_state(api, pid, jobs[0]["id"], {"running"})
        time.sleep(1.5)  # past Redis' once-a-second AOF fsync
        redis = _pids(b"redis-server", str(stack.ports["redis"]).encode())
        assert len(redis) == 1
        os.kill(redis[0], signal.SIGKILL)
        killed_at = time.monotonic()
        finals = [api.wait_finished(pid, j["id"], timeout_s=400) for j in jobs]
        print(
            f"\nfault=redis SIGKILL with 2 jobs queued outcome={[f['state'] for f in finals]} "
            f"time_to_recover={time.monotonic() - killed_at:.1f}s"
        )
        assert [f["state"] for f in finals] == ["succeeded"] * 3
        for final in finals:
            assert [m["epoch"] for m in final["metrics"]] == [0, 1]
        assert "redis exited with code -9" in "\n".join(stack.lines)
    finally:
        stack.stop()
