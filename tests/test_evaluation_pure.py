"""The pure parts of the end-of-job evaluation (trainer side) and of the job page's figures
(backend side): label conversion, fallback top-k, `test/` names, a job's splits, the cap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.domain import jobs
from services.domain.models import Job
from services.domain.schemas import JobDetail
from state.job_state import batch_view, final_figures
from trainer_runner.dataset import PreparedDataset
from trainer_runner.evaluation import labelled_images, prefixed, topk_metrics, truth_boxes


def test_truth_boxes_are_pixels_of_the_original_image() -> None:
    boxes = truth_boxes([[1, 0.5, 0.25, 0.5, 0.5]], 200, 100, "detect")
    assert boxes == [{"class_id": 1, "box": [50.0, 0.0, 150.0, 50.0]}]
    polygon = truth_boxes([[0, 0.1, 0.2, 0.5, 0.2, 0.5, 0.6]], 100, 100, "segment")[0]
    assert polygon["box"] == [10.0, 20.0, 50.0, 60.0]
    assert polygon["polygon"] == [[10.0, 20.0], [50.0, 20.0], [50.0, 60.0]]


def test_fallback_topk_and_test_names() -> None:
    records = [
        {"truth": {"class_id": 0}, "predictions": [{"class_id": 0}, {"class_id": 1}]},
        {"truth": {"class_id": 1}, "predictions": [{"class_id": 0}, {"class_id": 1}]},
        {"truth": {"class_id": 2}, "predictions": [{"class_id": 0}]},
    ]
    assert topk_metrics(records) == {"top1": pytest.approx(1 / 3), "top5": pytest.approx(2 / 3)}
    assert topk_metrics([]) == {}
    assert prefixed({"map50": 0.5}) == {"test/map50": 0.5}


def test_prepared_images_find_their_manifest_entries(tmp_path: Path) -> None:
    """Prepared names start with the manifest index; that is how a file finds its labels."""
    manifest = {
        "images": [
            {"path": "a/one.png", "split": "val", "labels": [[0, 0.5, 0.5, 0.2, 0.2]]},
            {"path": "b/two.png", "split": "train", "labels": []},
            {"path": "c/three.png", "split": "val", "labels": []},
        ]
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    root = tmp_path / "yolo"
    for name in ("000002_three.png", "000000_one.png", "000000_one.txt"):
        (root / "images" / "val").mkdir(parents=True, exist_ok=True)
        (root / "images" / "val" / name).write_bytes(b"")
    dataset = PreparedDataset(root, root / "data.yaml", ["cat"], {"train": 1, "val": 2, "test": 0})
    found = labelled_images(dataset, "detect", "val")
    assert [(i.path, i.rows) for i in found] == [
        ("a/one.png", [[0.0, 0.5, 0.5, 0.2, 0.2]]),
        ("c/three.png", []),
    ]
    assert labelled_images(dataset, "detect", "test") == []


def _job(**fields: object) -> Job:
    return Job(
        id=1,
        project_id=1,
        dataset_version_id=1,
        created_by=1,
        name="j",
        framework="ultralytics",
        task="detect",
        model="yolo11n.yaml",
        callback_secret="s",
        **fields,
    )


def test_a_finished_event_records_which_split_each_figure_comes_from() -> None:
    job = _job()
    jobs._store_best_metrics(
        job,
        {"metrics": {"map50": 0.4}, "test_metrics": {"test/map50": 0.3}, "dataset": {"counts": {"val": 4}}},
    )
    assert (job.val_metrics, job.test_metrics) == ({"map50": 0.4}, {"test/map50": 0.3})
    assert job.metric_splits == {"val_metrics": "val", "test_metrics": "test"}
    # No val images: the trainer validated on train, and the record says so.
    jobs._store_best_metrics(job, {"metrics": {"map50": 0.9}, "dataset": {"counts": {"val": 0}}})
    assert job.metric_splits == {"val_metrics": "train"} and job.test_metrics == {}
    detail = JobDetail.model_validate({**JobDetail.of(job).model_dump(), "metrics": []})
    assert final_figures(detail) == [{"name": "map50", "value": "0.9000", "split": "train"}]


def test_a_batch_run_shows_its_summary_not_metrics() -> None:
    """A batch run reports counts when it finishes; its page shows them as what they are."""
    job = _job(kind="batch_inference")
    jobs._store_best_metrics(job, {"metrics": {"images": 12.0, "failed_images": 1.0, "images_per_s": 40.0}})
    detail = JobDetail.model_validate({**JobDetail.of(job).model_dump(), "metrics": []})
    assert final_figures(detail) == []
    summary = {
        "images": 12,
        "failed_images": 1,
        "predictions": 30,
        "images_per_s": 41.27,
        "counts": {"a": 30},
    }
    downloads = {
        "predictions_jsonl": "http://s/j",
        "predictions_csv": "http://s/c",
        "inference_summary": "http://s/s",
    }
    view = batch_view({"summary": summary, "downloads": downloads})
    assert view.text == "11 of 12 images done, 1 failed (unreadable); 30 predictions at 41.3 images/s."
    assert {f["label"]: f["value"] for f in view.facts} == {
        "Images done": "11 of 12",
        "Failed (unreadable)": "1",
        "Predictions": "30",
        "Speed": "41.3 images/s",
        "Results files": "JSON Lines, CSV, Summary",
    }
    assert [link["label"] for link in view.links] == ["JSON Lines", "CSV", "Summary"]
    assert batch_view({"summary": {}}).text == "Results appear when the run finishes."


def test_the_predictions_cap_goes_to_the_trainer() -> None:
    spec = jobs.dispatch_spec(
        _job(predictions_max_images=7), dataset_uri="s3://b/d/", callback_url="http://h/cb", heartbeat_s=5
    )
    assert spec["predictions_max_images"] == 7


def test_the_train_form_cap_field() -> None:
    from services.errors import InvalidInput
    from state.train_state import predictions_cap

    assert predictions_cap({}) == 500
    assert predictions_cap({"predictions_max_images": " 0 "}) == 0
    for bad in ("-1", "2.5", "10001", "many"):
        with pytest.raises(InvalidInput, match="predictions_max_images: enter a whole number"):
            predictions_cap({"predictions_max_images": bad})
