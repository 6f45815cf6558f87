"""`vtp up` as an operator meets it: clear one-line errors before anything starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from services.stack import port_free
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


def test_dead_child_is_reported_and_everything_stops(tmp_path: Path) -> None:
    stack = StackProcess(data_dir=tmp_path / "data", trainer_dir=tmp_path / "t", log_path=tmp_path / "log")
    stack.start()
    try:
        worker = _child_pid(b"services.worker.WorkerSettings", f"VTP_DATA_DIR={stack.data_dir}".encode())
        os.kill(worker, signal.SIGKILL)
        assert stack.process is not None
        assert stack.process.wait(60) == 1
    finally:
        stack.stop()
    output = "\n".join(stack.lines)
    assert "worker exited with code -9; last lines of its log" in output
    assert "Starting worker for 1 functions" in output  # the tail of the dead child's log
    for name, port in stack.ports.items():
        assert port_free("127.0.0.1", port), f"{name} still listens on {port}"
