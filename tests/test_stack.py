"""`vtp up` as an operator meets it: clear one-line errors before anything starts."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

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
