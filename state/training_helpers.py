"""Pure helpers for the training pages (form, jobs list, job detail, models): unit-tested, no Reflex."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from components.tokens import RUN_PALETTE
from services.domain.catalog import coerce, field_errors
from services.domain.models import aware
from services.errors import InvalidInput

STALE_AFTER_S = 15.0
LIVE_STATES = frozenset({"dispatching", "running"})


# --- the generated training form --------------------------------------------------------------------


def _number_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def param_fields(specs: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One flat row per hyperparameter, ready for the form: strings only."""
    rows = []
    for spec in specs:
        kind = str(spec.get("type", "str"))
        if kind == "str" and spec.get("choices"):
            widget = "select"
        elif kind == "bool":
            widget = "bool"
        elif kind in {"int", "float"}:
            widget = "number"
        else:
            widget = "text"
        low, high = spec.get("min"), spec.get("max")
        if low is not None and high is not None:
            hint = f"{_number_text(low)} to {_number_text(high)}"
        elif spec.get("choices"):
            hint = "one of " + ", ".join(str(c) for c in spec["choices"])
        else:
            hint = {"bool": "yes or no", "int": "whole number", "float": "number"}.get(kind, "text")
        default = spec.get("default")
        rows.append(
            {
                "name": str(spec["name"]),
                "label": str(spec["name"]).replace("_", " "),
                "type": kind,
                "widget": widget,
                "default": "true"
                if default is True
                else "false"
                if default is False
                else _number_text(default),
                "min": _number_text(low),
                "max": _number_text(high),
                "step": "1" if kind == "int" else "any",
                "hint": hint,
                "help": str(spec.get("help") or ""),
                "id": f"hp-{spec['name']}",
            }
        )
    return rows


def param_choices(specs: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    return {str(s["name"]): [str(c) for c in s.get("choices") or []] for s in specs}


def form_hyperparameters(specs: Iterable[Mapping[str, Any]], form: Mapping[str, Any]) -> dict[str, Any]:
    """Form strings -> typed values for the fields the user filled (blank = the trainer's default)."""
    chosen: dict[str, Any] = {}
    for spec in specs:
        raw = form.get(spec["name"])
        if raw is None or str(raw).strip() == "":
            continue
        chosen[spec["name"]] = coerce(spec, str(raw).strip())
    return chosen


def form_errors(specs: list[Mapping[str, Any]], form: Mapping[str, Any]) -> dict[str, str]:
    return field_errors([dict(s) for s in specs], {k: str(v) for k, v in form.items()})


def error_field(exc: InvalidInput, names: Iterable[str]) -> str:
    """Which form field a service error is about ('' when it is about the whole form)."""
    message = exc.message
    head = message.split(":", 1)[0].strip()
    if head in {"framework", "task", "model", "device", "dataset_version_id"} or head in names:
        return head
    for name in names:
        if message.startswith(f"{name} "):
            return name
    return ""


# --- jobs list and job detail -----------------------------------------------------------------------


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def staleness(
    state: str,
    last_heard: datetime | None,
    started: datetime | None,
    now: datetime,
    *,
    after_s: float = STALE_AFTER_S,
) -> str:
    """A warning when a live job has not been heard from for a while, saying since when ('' if fresh)."""
    if state not in LIVE_STATES:
        return ""
    heard = aware(last_heard) or aware(started)
    if heard is None:
        return ""
    silent = (now - heard).total_seconds()
    if silent < after_s:
        return ""
    return (
        f"No update from the trainer for {ago(silent)} (last heard {heard.strftime('%H:%M:%S')} UTC). "
        "The numbers below may be out of date; the platform checks on the trainer by itself "
        "and resumes the job if it was lost."
    )


def stale_in(
    state: str, last_heard: datetime | None, started: datetime | None, now: datetime
) -> float | None:
    """Seconds until `staleness` would start warning, or None when it never will by itself (the
    job is not live, or the warning shows already)."""
    heard = aware(last_heard) or aware(started)
    if state not in LIVE_STATES or heard is None:
        return None
    left = STALE_AFTER_S - (now - heard).total_seconds()
    return left if left > 0 else None


def mlflow_run_url(base: str, run_id: str | None, experiment_id: str | None = None) -> str:
    """The MLflow UI link for a run ('' without a run id)."""
    if not run_id:
        return ""
    base = base.rstrip("/")
    if experiment_id:
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"{base}/#/runs/{run_id}"


def box_overlays(result: Mapping[str, Any]) -> list[dict[str, str]]:
    """/predict boxes -> absolutely positioned overlays in percent of the image (CSS-ready)."""
    width, height = float(result.get("width") or 0), float(result.get("height") or 0)
    if width <= 0 or height <= 0:
        return []
    overlays = []
    for box in result.get("boxes") or []:
        x1, y1, x2, y2 = (float(v) for v in box["box"])
        colour = RUN_PALETTE[int(box.get("class_id", 0)) % len(RUN_PALETTE)]
        overlays.append(
            {
                "left": f"{100 * max(0.0, x1) / width:.2f}%",
                "top": f"{100 * max(0.0, y1) / height:.2f}%",
                "width": f"{100 * max(0.0, x2 - x1) / width:.2f}%",
                "height": f"{100 * max(0.0, y2 - y1) / height:.2f}%",
                "label": f"{box.get('class_name', box.get('class_id'))} {float(box.get('score', 0)):.2f}",
                "color": colour,
            }
        )
    return overlays


def prediction_rows(result: Mapping[str, Any]) -> list[dict[str, str]]:
    """Boxes or class probabilities as table rows {label, score, box}."""
    rows = [
        {
            "label": str(b.get("class_name", b.get("class_id"))),
            "score": f"{float(b.get('score', 0)):.3f}",
            "box": ", ".join(f"{float(v):.0f}" for v in b.get("box") or []),
        }
        for b in result.get("boxes") or []
    ]
    rows += [
        {
            "label": str(p.get("class_name", p.get("class_id"))),
            "score": f"{float(p.get('score', 0)):.3f}",
            "box": "",
        }
        for p in (result.get("probabilities") or [])[:10]
    ]
    return rows


# --- the train form's Sweep mode --------------------------------------------------------------------

# What a sweep may optimise, suggested per task (any metric the trainer reports per epoch works).
OBJECTIVES: dict[str, list[str]] = {
    "detect": ["map50_95", "map50", "precision", "recall", "val_box_loss", "val_cls_loss"],
    "segment": ["mask_map50_95", "map50_95", "mask_map50", "val_seg_loss"],
    "classify": ["top1", "top5", "val_loss"],
}


def default_direction(objective: str) -> str:
    """Losses go down, everything else up."""
    return "minimize" if "loss" in objective else "maximize"


def search_entry(spec: Mapping[str, Any], text: str) -> dict[str, Any] | None:
    """One "search" box of the Sweep form -> a search-space entry (None: not searched).

    `0.0001..0.1 log` is a range (log-scaled with `log`), `SGD, AdamW` (or `16 | 32`) a list of
    choices, one value a fixed value. The server checks types and ranges (services.domain.sweeps).
    """
    raw = text.strip()
    if not raw:
        return None
    name = str(spec["name"])
    kind = str(spec.get("type", "str"))
    if ".." in raw:
        bounds, _, flag = raw.partition(" ")
        low, _, high = bounds.partition("..")
        if kind not in {"int", "float"}:
            raise InvalidInput(f"{name}: a range needs a number setting; list choices instead (a, b, c)")
        if flag.strip() not in {"", "log"}:
            raise InvalidInput(f"{name}: write a range as low..high, or low..high log")
        return {"type": kind, "low": low.strip(), "high": high.strip(), "log": flag.strip() == "log"}
    separator = "," if "," in raw else "|" if "|" in raw else None
    if separator:
        choices = [part.strip() for part in raw.split(separator) if part.strip()]
        return {"type": "choice", "choices": [coerce(dict(spec), c) for c in choices]}
    return {"type": "fixed", "value": raw}


def form_search_space(
    specs: Iterable[Mapping[str, Any]], form: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The Sweep form's search space: each `search_<name>` box, else the value box as a fixed
    value (blank: the default, not sent). Raises InvalidInput naming the hyperparameter."""
    space: dict[str, dict[str, Any]] = {}
    for spec in specs:
        name = str(spec["name"])
        entry = search_entry(spec, str(form.get(f"search_{name}") or ""))
        if entry is None:
            value = str(form.get(name) or "").strip()
            if value:
                entry = {"type": "fixed", "value": value}
        if entry is not None:
            space[name] = entry
    return space


def search_error_field(message: str, names: Iterable[str]) -> str:
    """`search_space.lr0.low: ...` or `lr0: ...` -> `lr0` (the field to mark), else ''."""
    head = message.split(":", 1)[0].strip().removeprefix("search_space.").split(".")[0].split("[")[0]
    return head if head in set(names) else ""
