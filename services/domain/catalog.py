"""The trainer's plugin catalogue (GET /plugins): what may be trained, and with which settings.

The trainer is the one authority on frameworks, tasks, models and hyperparameters; the backend
reads its catalogue over HTTP (services.infra.trainer_client), keeps it for a short while, and checks
every new job against it before anything is queued. Shapes follow docs/trainer-protocol.md:

    {"frameworks": [{"name", "description", "any_model", "export_formats",
                     "tasks": [{"name", "models": [...], "hyperparameters": [
                         {"name", "type": "int|float|bool|str", "default", "min"?, "max"?,
                          "choices"?, "help"?}]}]}]}

Errors: InvalidInput (a field the catalogue does not allow: the message names the field and
what is allowed), TrainerUnavailable (no catalogue could be fetched and none is cached).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from services.errors import DomainError, InvalidInput
from services.infra.trainer_client import TrainerClient

TTL_S = 30.0
DEVICES = ("auto", "cpu", "cuda")
_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


class TrainerUnavailable(DomainError):
    """The trainer could not be asked what it can train."""

    status_code = 503


@dataclass(frozen=True)
class Catalog:
    """A parsed GET /plugins document with lookups that raise InvalidInput naming the field."""

    doc: dict[str, Any]

    @property
    def frameworks(self) -> list[dict[str, Any]]:
        return list(self.doc.get("frameworks") or [])

    def framework(self, name: str) -> dict[str, Any]:
        for framework in self.frameworks:
            if framework["name"] == name:
                return framework
        allowed = [f["name"] for f in self.frameworks]
        raise InvalidInput(f"framework: unknown framework {name!r}; allowed: {allowed}")

    def task(self, framework: str, task: str) -> dict[str, Any]:
        tasks = self.framework(framework).get("tasks") or []
        for entry in tasks:
            if entry["name"] == task:
                found: dict[str, Any] = entry
                return found
        allowed = [t["name"] for t in tasks]
        raise InvalidInput(f"task: unknown task {task!r} for {framework}; allowed: {allowed}")

    def check_model(self, framework: str, task: str, model: str) -> None:
        entry = self.task(framework, task)
        models = list(entry.get("models") or [])
        if model in models:
            return
        if self.framework(framework).get("any_model") and _plausible_model_name(model):
            return
        raise InvalidInput(f"model: unknown model {model!r} for {framework}/{task}; allowed: {models}")

    def hyperparameters(self, framework: str, task: str) -> list[dict[str, Any]]:
        return list(self.task(framework, task).get("hyperparameters") or [])

    def export_formats(self, framework: str) -> list[str]:
        return list(self.framework(framework).get("export_formats") or [])

    def tasks_of(self) -> set[str]:
        return {t["name"] for f in self.frameworks for t in f.get("tasks") or []}


def _plausible_model_name(model: str) -> bool:
    return 0 < len(model) <= 120 and all(c.isalnum() or c in "._-/" for c in model)


def coerce(spec: dict[str, Any], value: Any) -> Any:
    """One hyperparameter value -> its declared type, within range/choices; raises InvalidInput."""
    name, kind = spec["name"], spec.get("type", "str")
    target = _TYPES.get(kind, str)
    try:
        if target is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in {"true", "false", "1", "0", "yes", "no", "on", "off"}:
                    raise ValueError(value)
                value = lowered in {"true", "1", "yes", "on"}
            elif not isinstance(value, bool | int):
                raise ValueError(value)
            value = bool(value)
        elif target is int:
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            value = int(str(value).strip()) if isinstance(value, str) else int(value)
        elif target is float:
            if isinstance(value, bool):
                raise ValueError(value)
            value = float(value)
        else:
            value = str(value)
    except (TypeError, ValueError) as exc:
        word = {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(kind, "text")
        raise InvalidInput(f"{name} must be {word}, got {value!r}") from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number, got {value}")
    low, high = spec.get("min"), spec.get("max")
    if target in (int, float) and ((low is not None and value < low) or (high is not None and value > high)):
        raise InvalidInput(f"{name} must be between {low} and {high}, got {value}")
    choices = spec.get("choices")
    if choices and value not in choices:
        raise InvalidInput(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def validate_hyperparameters(specs: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    """Every declared hyperparameter with its value (given, or the default), type-checked."""
    known = {spec["name"]: spec for spec in specs}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidInput(f"hyperparameters: unknown hyperparameter(s) {unknown}; allowed: {sorted(known)}")
    return {name: coerce(spec, values.get(name, spec.get("default"))) for name, spec in known.items()}


def field_errors(specs: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, str]:
    """Per-field messages for a form (empty when everything is valid); blanks mean "the default"."""
    errors: dict[str, str] = {}
    for spec in specs:
        raw = values.get(spec["name"])
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            continue
        try:
            coerce(spec, raw)
        except InvalidInput as exc:
            errors[spec["name"]] = exc.message
    return errors


# --- fetching, with a short cache -------------------------------------------------------------

_lock = threading.Lock()
_cached: tuple[float, Catalog] | None = None


def _fetch(base_url: str) -> dict[str, Any]:
    client = TrainerClient(base_url=base_url, timeout_s=10.0)
    return client.plugins_sync()


def get_catalog(*, max_age_s: float = TTL_S) -> Catalog:
    """The trainer's catalogue, at most `max_age_s` old. A stale copy is used while the trainer
    is briefly unreachable; with none at all, TrainerUnavailable."""
    global _cached
    now = time.monotonic()
    with _lock:
        if _cached is not None and now - _cached[0] < max_age_s:
            return _cached[1]
    base_url = TrainerClient.from_settings().base_url
    try:
        catalog = Catalog(_fetch(base_url))
    except (httpx.HTTPError, ValueError) as exc:
        with _lock:
            if _cached is not None and now - _cached[0] < 10 * max_age_s:
                return _cached[1]
        raise TrainerUnavailable(
            "The trainer service is not reachable, so the list of models and settings is unknown "
            f"right now ({type(exc).__name__}). Try again in a minute; if it persists, ask an "
            "administrator to check the trainer."
        ) from exc
    with _lock:
        _cached = (now, catalog)
    return catalog


def clear_cache() -> None:
    global _cached
    with _lock:
        _cached = None
