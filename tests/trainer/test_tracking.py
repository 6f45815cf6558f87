"""MLflow logging against a real MLflow tracking server; failures never raise."""

from __future__ import annotations

import pytest

from trainer_runner.tracking import Tracker

pytestmark = pytest.mark.trainer


def test_tracker_logs_params_and_epoch_metrics(mlflow_uri: str, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = mlflow_uri
    tracker = Tracker(uri, "project-1", "job-42")
    tracker.log_params({"epochs": 2, "imgsz": 64, "model": "yolo11n.yaml"})
    tracker.log_metrics({"map50": 0.1, "train_box_loss": 2.0}, step=0)
    tracker.log_metrics({"map50": 0.3, "train_box_loss": 1.5}, step=1)
    tracker.end("succeeded")
    assert tracker.close(120), tracker.summary()
    assert tracker.run_id and tracker.summary()["complete"]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "job-42"
    assert run.data.params["imgsz"] == "64"
    history = client.get_metric_history(tracker.run_id, "map50")
    assert [(m.step, m.value) for m in history] == [(0, 0.1), (1, 0.3)]
    assert client.get_experiment(run.info.experiment_id).name == "project-1"

    # A second job of the project finds the experiment; a refused call is dropped, not retried.
    second = Tracker(uri, "project-1", "job-43")
    second.log_params({"epochs": 2})
    second.log_params({"epochs": 3})  # MLflow refuses to change a logged param (400)
    second.log_metrics({"map50": 0.5}, step=0)
    second.end("failed")
    assert second.close(60), second.summary()
    run2 = client.get_run(second.run_id)
    assert run2.info.experiment_id == run.info.experiment_id and run2.info.status == "FAILED"
    assert run2.data.params["epochs"] == "2" and run2.data.metrics["map50"] == 0.5


def test_epoch_metrics_held_for_the_interval_go_together_and_a_flush_sends_them_at_once(
    mlflow_uri: str, monkeypatch
) -> None:
    """A job sends MLflow at most one metrics request per interval (several epochs in it); the
    end of the job does not wait the interval out."""
    import time

    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    tracker = Tracker(mlflow_uri, "project-1", "job-44", start_wait_s=60, metrics_interval_s=600)
    client = MlflowClient(tracking_uri=mlflow_uri)
    tracker.log_metrics({"map50": 0.1}, step=0)  # the first request goes at once
    deadline = time.monotonic() + 60
    while tracker.pending():
        assert time.monotonic() < deadline, tracker.summary()
        time.sleep(0.1)
    for step in (1, 2):  # the next ones wait for the interval
        tracker.log_metrics({"map50": 0.1 * (step + 1)}, step=step)
    time.sleep(1)
    assert tracker.pending() == 2
    assert [m.step for m in client.get_metric_history(tracker.run_id, "map50")] == [0]
    started = time.monotonic()
    tracker.end("succeeded")
    assert tracker.close(120), tracker.summary()
    assert time.monotonic() - started < 60  # not the 600 s interval
    history = client.get_metric_history(tracker.run_id, "map50")
    assert [(m.step, round(m.value, 3)) for m in history] == [(0, 0.1), (1, 0.2), (2, 0.3)]


def test_only_an_mlflow_server_url_is_accepted() -> None:
    from trainer_runner.settings import TrainerSettings

    with pytest.raises(ValueError, match="mlflow_tracking_uri"):
        TrainerSettings(mlflow_tracking_uri="sqlite:///mlflow.db")
    with pytest.raises(ValueError, match="must be an http"):
        Tracker("file:///tmp/mlruns", "x", "job-1")


def test_tracker_off_or_unreachable_is_a_no_op(monkeypatch) -> None:
    assert Tracker("", "x", "job-1").run_id is None
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    broken = Tracker("http://127.0.0.1:9", "x", "job-1")  # nothing listens on port 9
    assert broken.run_id is None
    broken.log_metrics({"map50": 1.0}, step=0)  # returns at once: buffered, never raises
    broken.end("failed")
    assert not broken.close(3)
    summary = broken.summary()
    assert summary["complete"] is False and summary["pending"] == 3  # create, metrics, end
    assert summary["failures"] >= 1
