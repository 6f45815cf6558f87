"""Search-space validation against the trainer's real catalogue: each mistake gets a message that
names the field and says what to fix; a valid space comes back in its stored form."""

from __future__ import annotations

from typing import Any

import pytest

from services.domain import catalog, sweeps
from services.errors import InvalidInput
from trainer_runner.plugins import PLUGINS

pytestmark = pytest.mark.sweeps


def _specs(framework: str = "ultralytics", task: str = "detect") -> list[dict[str, Any]]:
    doc = {"frameworks": [plugin.spec.describe() for plugin in PLUGINS.values()]}
    return catalog.Catalog(doc).hyperparameters(framework, task)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"learning_rate": {"type": "float", "low": 0.1, "high": 1}},
            "unknown hyperparameter(s) ['learning_rate']",
        ),
        ({"lr0": {"type": "float", "low": 0.1}}, "search_space.lr0.high is missing"),
        ({"lr0": {"type": "float", "low": 0.1, "high": 0.01}}, "low (0.1) must be below high (0.01)"),
        (
            {"weight_decay": {"type": "float", "low": 0.0, "high": 0.1, "log": True}},
            "a log range needs low above 0",
        ),
        ({"lr0": {"type": "float", "low": 0.001, "high": 5.0}}, "search_space.lr0.high: lr0 must be between"),
        ({"epochs": {"type": "float", "low": 1, "high": 3}}, "epochs is an int; a float range does not fit"),
        ({"epochs": {"type": "int", "low": 1.5, "high": 3}}, "epochs must be a whole number, got 1.5"),
        (
            {"optimizer": {"type": "choice", "choices": []}},
            "search_space.optimizer.choices must be a non-empty",
        ),
        ({"optimizer": {"type": "choice", "choices": ["SGD", "Lion"]}}, "search_space.optimizer.choices[1]"),
        ({"lr0": {"type": "range", "low": 0.1, "high": 1}}, "search_space.lr0.type must be one of"),
        ({"lr0": 0.01}, "search_space.lr0 must be an object"),
        ({"epochs": {"type": "fixed", "value": 3}}, "nothing to search"),
        ({"epochs": {"type": "fixed"}}, "search_space.epochs.value is missing"),
    ],
)
def test_bad_search_space_is_refused_with_what_to_fix(space: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        sweeps.validate_space(_specs(), space)
    assert message in refused.value.message


def test_valid_space_is_stored_typed_and_becomes_optuna_distributions() -> None:
    space = sweeps.validate_space(
        _specs(),
        {
            "lr0": {"type": "float", "low": "0.0001", "high": 0.1, "log": True},
            "epochs": {"type": "int", "low": 1, "high": 3},
            "optimizer": {"type": "choice", "choices": ["SGD", "AdamW", "SGD"]},
            "imgsz": {"type": "fixed", "value": "64"},
        },
    )
    assert space["lr0"] == {"type": "float", "low": 0.0001, "high": 0.1, "log": True}
    assert space["optimizer"]["choices"] == ["SGD", "AdamW"]  # duplicates dropped
    assert space["imgsz"] == {"type": "fixed", "value": 64}
    found = sweeps.distributions(space)
    assert set(found) == {"lr0", "epochs", "optimizer"}
    assert found["lr0"].log  # type: ignore[attr-defined]
    assert sweeps.fixed_values(space) == {"imgsz": 64}
    assert sweeps.trial_params(space, {"lr0": 0.01}) == {"imgsz": 64, "lr0": 0.01}


def test_grid_needs_finite_values() -> None:
    space = sweeps.validate_space(
        _specs(),
        {"epochs": {"type": "int", "low": 1, "high": 3}, "lr0": {"type": "float", "low": 0.01, "high": 0.1}},
    )
    with pytest.raises(InvalidInput, match="give choices instead of a float range"):
        sweeps.grid(space)
    del space["lr0"]
    assert sweeps.grid(space) == {"epochs": [1, 2, 3]}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"objective": "mAP 50"}, "objective: 'mAP 50' is not a metric name"),
        ({"direction": "up"}, "direction must be one of ['maximize', 'minimize']"),
        ({"sampler": "cmaes"}, "sampler must be one of ['tpe', 'random', 'grid']"),
        ({"pruner": "patient"}, "pruner must be one of ['median', 'hyperband', 'none']"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, str], message: str) -> None:
    given = {
        "objective": "map50_95",
        "direction": "maximize",
        "sampler": "tpe",
        "pruner": "median",
        **settings,
    }
    with pytest.raises(InvalidInput) as refused:
        sweeps.check_settings(**given)
    assert message in refused.value.message
