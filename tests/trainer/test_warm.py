"""The local executor's warm job process (`TRAINER_WARM_JOB_PROCESS`): started ahead while no
job runs, handed the next CPU job, replaced once that job is over, stopped with the server;
turned off, every job gets a process of its own started for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.conftest import wait_until
from trainer_runner.executors.local import LocalExecutor
from trainer_runner.schemas import StartJobRequest
from trainer_runner.settings import TrainerSettings

pytestmark = pytest.mark.trainer


def _settings(tmp_path: Path, warm: bool) -> TrainerSettings:
    return TrainerSettings(
        scratch_dir=tmp_path / "scratch",
        gpus=0,
        warm_job_process=warm,
        callback_drain_budget_s=0,  # the refused job's callback goes nowhere: do not wait for it
        mlflow_tracking_uri="",
    )


def _refused_job(job_id: str) -> StartJobRequest:
    """A job its process refuses at once (no such model), after being handed the spec."""
    return StartJobRequest.model_validate(
        {
            "job_id": job_id,
            "framework": "ultralytics",
            "task": "detect",
            "model": "no-such-model.yaml",
            "hyperparameters": {"epochs": 1},
            "device": "cpu",
            "dataset_uri": "s3://nowhere/dataset/",
            "output_uri": f"s3://nowhere/jobs/{job_id}/",
            "callback_url": "http://127.0.0.1:9/callbacks",
            "callback_secret": "s" * 32,
        }
    )


def _finished(executor: LocalExecutor, job_id: str) -> str:
    def final() -> str | None:
        status = executor.status(job_id)
        return status.state if status and status.state in {"failed", "succeeded", "cancelled"} else None

    return str(wait_until(final, 120, f"{job_id} to end"))


def test_the_warm_process_takes_the_next_job_and_is_replaced(tmp_path: Path) -> None:
    executor = LocalExecutor(_settings(tmp_path, warm=True))
    try:
        executor.poll()
        warm = executor._warm
        # What it was started with (its /proc cmdline is empty until its exec completes).
        assert warm is not None and [str(a) for a in warm.args][-2:] == ["trainer_runner.job", "--warm"]

        executor.start(_refused_job("w1"))
        assert executor._attempts[("w1", 1)].process is warm  # the job ran in the warm process
        assert executor._warm is None  # none is started while the job holds its slot
        assert _finished(executor, "w1") == "failed"
        error = executor.status("w1").error  # type: ignore[union-attr]
        assert error is not None and "no-such-model.yaml" in error.message

        executor.poll()  # the slot is free again: a new one warms up for the next job
        assert executor._warm is not None and executor._warm is not warm
    finally:
        executor.shutdown(timeout_s=10)
    assert executor._warm is None and warm.poll() is not None


def test_without_a_warm_process_each_job_starts_its_own(tmp_path: Path) -> None:
    executor = LocalExecutor(_settings(tmp_path, warm=False))
    try:
        executor.poll()
        assert executor._warm is None
        executor.start(_refused_job("c1"))
        process = executor._attempts[("c1", 1)].process
        assert process is not None and str(tmp_path) in " ".join(map(str, process.args))
        assert _finished(executor, "c1") == "failed"
        executor.poll()
        assert executor._warm is None
    finally:
        executor.shutdown(timeout_s=10)
