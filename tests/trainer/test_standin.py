"""The plugin author's one command: the stand-in backend trains the template plugin end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.trainer.conftest import ROOT

pytestmark = pytest.mark.trainer


def test_standin_runs_one_training_with_the_template_plugin(tmp_path) -> None:
    keep = tmp_path / "standin"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer_runner.standin",
            "--plugin",
            "trainer_runner.plugins.template:TemplatePlugin",
            "--epochs",
            "2",
            "--imgsz",
            "32",
            "--keep",
            str(keep),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "POST /jobs template/classify/tiny-cnn" in out
    assert out.count("[callback] epoch") == 2
    assert "[callback] finished state=succeeded" in out
    for key in (
        "jobs/standin-1/checkpoints/last.pt",
        "jobs/standin-1/artifacts/epoch-001/confusion_matrix.json",
        "jobs/standin-1/artifacts/predictions/predictions.json",
    ):
        assert key in out, out[-3000:]
    assert "job succeeded" in out


def test_standin_reports_a_failing_plugin(tmp_path) -> None:
    """A plugin reference that does not load is an error at once, not a hang."""
    result = subprocess.run(
        [sys.executable, "-m", "trainer_runner.standin", "--plugin", "no_such_module:Plugin"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "no_such_module" in result.stderr
