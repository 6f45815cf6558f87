"""The pure pieces of the sweep UI: the train form's search boxes, the trial table, the figures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from components.sweep_charts import history_figure, importance_figure, parallel_figure
from services.domain.schemas import SweepDetail, SweepTrial
from services.errors import InvalidInput
from state.sweep_state import space_text, trial_rows
from state.training_helpers import form_search_space, search_entry, search_error_field

pytestmark = pytest.mark.sweeps
LR0 = {"name": "lr0", "type": "float", "min": 1e-6, "max": 1.0}
OPTIMIZER = {"name": "optimizer", "type": "str", "choices": ["SGD", "AdamW"]}
EPOCHS = {"name": "epochs", "type": "int", "min": 1, "max": 1000}


def test_search_boxes_become_a_search_space() -> None:
    assert search_entry(LR0, " 0.0001..0.1 log ") == {
        "type": "float",
        "low": "0.0001",
        "high": "0.1",
        "log": True,
    }
    assert search_entry(EPOCHS, "1..3") == {"type": "int", "low": "1", "high": "3", "log": False}
    assert search_entry(OPTIMIZER, "SGD, AdamW") == {"type": "choice", "choices": ["SGD", "AdamW"]}
    assert search_entry(EPOCHS, "5 | 10") == {"type": "choice", "choices": [5, 10]}
    assert search_entry(LR0, "") is None
    form = {"search_lr0": "0.001..0.01", "epochs": "3", "search_optimizer": "", "optimizer": ""}
    assert form_search_space([LR0, EPOCHS, OPTIMIZER], form) == {
        "lr0": {"type": "float", "low": "0.001", "high": "0.01", "log": False},
        "epochs": {"type": "fixed", "value": "3"},
    }


def test_search_box_mistakes_name_the_field() -> None:
    with pytest.raises(InvalidInput, match="optimizer: a range needs a number setting"):
        search_entry(OPTIMIZER, "a..b")
    with pytest.raises(InvalidInput, match="lr0: write a range as low..high"):
        search_entry(LR0, "0.1..1 squared")
    with pytest.raises(InvalidInput, match="optimizer must be one of"):
        search_entry(OPTIMIZER, "SGD, Lion")
    assert search_error_field("search_space.lr0.low: lr0 must be between", ["lr0"]) == "lr0"
    assert search_error_field("search_space.optimizer.choices[1]: ...", ["optimizer"]) == "optimizer"
    assert search_error_field("objective: 'x y' is not a metric name", ["lr0"]) == ""


def _detail(trials: list[SweepTrial], **extra: Any) -> SweepDetail:
    return SweepDetail(
        id=1,
        project_id=1,
        dataset_version_id=1,
        name="s",
        framework="ultralytics",
        task="detect",
        model="yolo11n.yaml",
        search_space={
            "lr0": {"type": "float", "low": 0.0001, "high": 0.1, "log": True},
            "optimizer": {"type": "choice", "choices": ["SGD", "AdamW"]},
            "epochs": {"type": "fixed", "value": 5},
        },
        objective="map50",
        direction="maximize",
        n_trials=3,
        parallelism=1,
        sampler="tpe",
        pruner="median",
        seed=None,
        state="running",
        message="",
        mlflow_run_id=None,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        finished_at=None,
        trials=trials,
        **extra,
    )


TRIALS = [
    SweepTrial(
        number=0,
        state="COMPLETE",
        job_id=10,
        job_state="succeeded",
        params={"lr0": 0.01, "optimizer": "SGD"},
        value=0.5,
        intermediate={0: 0.2, 1: 0.5},
    ),
    SweepTrial(
        number=1,
        state="PRUNED",
        job_id=11,
        job_state="cancelled",
        params={"lr0": 0.0002, "optimizer": "AdamW"},
        value=None,
        intermediate={0: 0.05},
        pruned_epoch=0,
    ),
    SweepTrial(
        number=2,
        state="COMPLETE",
        job_id=12,
        job_state="succeeded",
        params={"lr0": 0.03, "optimizer": "AdamW"},
        value=0.4,
        intermediate={0: 0.3, 1: 0.4},
    ),
]


def test_trial_rows_newest_first_with_pruned_epoch_and_best() -> None:
    rows = trial_rows(_detail(TRIALS, best_job_id=10))
    assert [r["number"] for r in rows] == ["2", "1", "0"]
    assert rows[1]["state"] == "pruned at epoch 1" and rows[1]["value"] == "—"
    assert rows[2]["best"] == "yes" and rows[2]["params"] == "lr0=0.01, optimizer=SGD"
    assert rows[0]["href"] == "/jobs/12" and rows[0]["epochs"] == "2"
    assert space_text(_detail([]).search_space) == [
        {"name": "lr0", "text": "0.0001 to 0.1 (log)"},
        {"name": "optimizer", "text": "one of SGD, AdamW"},
        {"name": "epochs", "text": "fixed at 5"},
    ]


def test_figures_show_best_so_far_trials_by_parameter_and_importances() -> None:
    raw = [t.model_dump() for t in TRIALS]
    history = history_figure(raw, "map50", "maximize")
    best = next(t for t in history.data if t.name == "best so far")
    assert list(best.y) == [0.5, 0.5]  # trial 2 (0.4) does not beat trial 0
    pruned = next(t for t in history.data if t.name.startswith("pruned"))
    assert list(pruned.x) == [1] and list(pruned.y) == [0.05]
    parallel = parallel_figure(raw, ["lr0", "optimizer"], "map50", log_params={"lr0"})
    assert list(parallel.layout.xaxis.ticktext) == ["lr0", "optimizer", "map50"]
    assert all(t.type == "scatter" for t in parallel.data)  # SVG: no WebGL parcoords
    *lines, points = parallel.data
    assert len(points.x) == 2 and points.marker.showscale  # finished trials only, with the colour scale
    drawn = [y for trace in lines for y in trace.y]
    assert drawn.count(None) == 2 and len(drawn) == 2 * 4  # one line of 3 points per trial
    ticks = {a.text for a in parallel.layout.annotations}
    assert {"AdamW", "SGD"} <= ticks  # the categorical axis names its choices
    empty = importance_figure({}, "Importances need 3 finished trials; 2 so far.")
    assert empty.layout.annotations[0].text.startswith("Importances need 3")
    bars = importance_figure({"lr0": 0.8, "optimizer": 0.2}, "").data[0]
    assert list(bars.y) == ["optimizer", "lr0"]
