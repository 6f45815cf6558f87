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


def _pids(stack: StackProcess, marker: bytes) -> list[int]:
    found = []
    entry = f"TRAINER_PORT={stack.ports['trainer']}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in cmdline and entry in environ:
            found.append(int(pid))
    return found


def test_trainer_killed_mid_epoch_resumes_from_checkpoint(tmp_path: Path, output_dir: Path) -> None:
    stack = StackProcess(
        data_dir=tmp_path / "data",
        trainer_dir=tmp_path / "trainer",
        log_path=output_dir / "stack-chaos-trainer.log",
        extra_env=FAST_RECOVERY,
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
        victims = _pids(stack, b"trainer_runner")
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
        # Every epoch reported exactly once across both attempts; the second resumed, not restarted.
        assert [m["epoch"] for m in final["metrics"]] == list(range(epochs))
        assert "trainer exited with code -9" in "\n".join(stack.lines)
    finally:
        stack.stop()
