"""`vtp up` as an operator meets it: clear one-line errors before anything starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from services.runtime.stack import port_free
from tests.utils.stack import BIN, ROOT, StackProcess

pytestmark = pytest.mark.reliability


def test_port_taken_names_port_and_setting(tmp_path: Path) -> None:
    stack = StackProcess(data_dir=tmp_path / "data", trainer_dir=tmp_path / "t", log_path=tmp_path / "log")
    env = stack.env()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", stack.ports["mlflow"]))
        taken.listen()
        result = subprocess.run(
            [str(BIN / "vtp"), "up"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert (
        f"Port {stack.ports['mlflow']} (mlflow) is already in use: set VTP_MLFLOW_PORT to a free port"
        in result.stderr
    )
    assert not (tmp_path / "data" / "redis").exists(), "nothing should start when a port is taken"


def _child_pid(marker: bytes, env_entry: bytes) -> int:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in cmdline and env_entry in environ:
            return int(pid)
    raise AssertionError(f"no process with {marker!r}")


def test_dead_child_is_reported_and_restarted(tmp_path: Path) -> None:
    stack = StackProcess(data_dir=tmp_path / "data", trainer_dir=tmp_path / "t", log_path=tmp_path / "log")
    stack.start()
    marker, env_entry = b"services.runtime.worker.WorkerSettings", f"VTP_DATA_DIR={stack.data_dir}".encode()
    try:
        first = _child_pid(marker, env_entry)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while "vtp: worker ready" not in stack.lines[-5:] and time.monotonic() < deadline:
            time.sleep(0.2)
        second = _child_pid(marker, env_entry)
        assert second != first
        output = "\n".join(stack.lines)
        assert "worker exited with code -9; last lines of its log" in output
        assert "Starting worker for" in output  # the tail of the dead child's log
        assert "vtp: restarting worker" in output
        # A child that keeps dying stops the whole stack, and every port is released.
        for _ in range(2):
            os.kill(_child_pid(marker, env_entry), signal.SIGKILL)
            time.sleep(3)
        assert stack.process is not None and stack.process.wait(60) == 1
    finally:
        stack.stop()
    assert "worker died 3 times in 300s; stopping" in "\n".join(stack.lines)
    for name, port in stack.ports.items():
        assert port_free("127.0.0.1", port), f"{name} still listens on {port}"
