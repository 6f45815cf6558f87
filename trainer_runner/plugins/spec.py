"""What a plugin accepts, as data: tasks, models and typed hyperparameters with ranges.

`GET /plugins` serves these so a UI can generate its form; `check_request` enforces them so an
unknown model or hyperparameter is a 422 that names the field and the allowed values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from trainer_runner.errors import UserError

ParamType = Literal["int", "float", "bool", "str"]


class FieldError(UserError):
    """A request field is invalid; `loc` names it (pydantic style) and `allowed` what would do."""

    def __init__(self, loc: tuple[str, ...], message: str, allowed: Any = None) -> None:
        super().__init__(f"{'.'.join(loc)}: {message}")
        self.loc = loc
        self.message = message
        self.allowed = allowed

    def detail(self) -> list[dict[str, Any]]:
        """The 422 body's `detail`, shaped like FastAPI's own validation errors."""
        item: dict[str, Any] = {
            "loc": ["body", *self.loc],
            "msg": self.message,
            "type": "value_error",
        }
        if self.allowed is not None:
            item["ctx"] = {"allowed": self.allowed}
        return [item]


@dataclass(frozen=True)
class HyperParam:
    """One hyperparameter a UI may show: its type, default and range (or choices)."""

    name: str
    type: ParamType
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""
    tasks: tuple[str, ...] | None = None  # None: every task of the plugin

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default}
        for key in ("min", "max", "help"):
            if getattr(self, key) not in (None, ""):
                out[key] = getattr(self, key)
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.tasks is not None:
            out["tasks"] = list(self.tasks)
        return out

    def check(self, value: Any) -> Any:
        """The value if it fits, else a `FieldError` naming this hyperparameter."""
        loc = ("hyperparameters", self.name)
        ok_type = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
        }[self.type]
        if not ok_type:
            raise FieldError(loc, f"must be a {self.type}, not {value!r}")
        if self.type == "float" and not math.isfinite(value):
            raise FieldError(loc, f"must be a finite number, not {value!r}")
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            raise FieldError(
                loc,
                f"{value!r} is outside {self.min}..{self.max}",
                {"min": self.min, "max": self.max},
            )
        if self.choices is not None and value not in self.choices:
            raise FieldError(loc, f"{value!r} is not one of {list(self.choices)}", list(self.choices))
        return value


@dataclass(frozen=True)
class PluginSpec:
    """Everything `GET /plugins` says about one framework."""

    name: str
    description: str
    tasks: dict[str, tuple[str, ...]]  # task -> suggested models
    hyperparameters: tuple[HyperParam, ...]
    any_model: bool = False  # models beyond the list are accepted if the plugin can build them
    export_formats: tuple[str, ...] = ("onnx", "torchscript")
    extra: dict[str, Any] = field(default_factory=dict)

    def params_for(self, task: str) -> list[HyperParam]:
        return [p for p in self.hyperparameters if p.tasks is None or task in p.tasks]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tasks": [
                {
                    "name": task,
                    "models": list(models),
                    "hyperparameters": [p.describe() for p in self.params_for(task)],
                }
                for task, models in self.tasks.items()
            ],
            "any_model": self.any_model,
            "export_formats": list(self.export_formats),
            **self.extra,
        }

    def check_task_and_hyperparameters(self, task: str, hyper: dict[str, Any]) -> None:
        """Task and every hyperparameter known and in range; `FieldError` otherwise."""
        if task not in self.tasks:
            raise FieldError(("task",), f"{self.name} does not train task {task!r}", sorted(self.tasks))
        params = {p.name: p for p in self.params_for(task)}
        for name, value in hyper.items():
            if name not in params:
                raise FieldError(
                    ("hyperparameters", name),
                    f"unknown hyperparameter for {self.name}/{task}",
                    sorted(params),
                )
            params[name].check(value)

    def check_model(self, task: str, model: str) -> None:
        if model not in self.tasks[task]:
            raise FieldError(
                ("model",),
                f"{model!r} is not a {self.name} model for {task}",
                list(self.tasks[task]),
            )

    def defaults(self, task: str) -> dict[str, Any]:
        return {p.name: p.default for p in self.params_for(task)}
