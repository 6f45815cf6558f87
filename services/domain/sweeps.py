"""Hyperparameter sweeps: the search space rules, and the Optuna study behind each sweep.

A sweep searches the plugin catalogue's hyperparameters of one framework/task. Each entry of its
search space is fixed, an int/float range (optionally log-scaled) or a list of choices; every
hyperparameter it does not name keeps the catalogue's default. Values are checked against the
catalogue exactly like a job's (type, min/max, choices), so no trial can be refused later.

Optuna does the optimising, through its ask-and-tell interface: the study lives in Optuna's RDB
storage inside the platform's own database (the URL of services.infra.db), so trials, their
values and their intermediate values survive restarts of every process. Samplers are not stored
by Optuna; `study_of` builds the sweep's sampler again each time, seeded with the sweep's seed
plus the number of trials so far, so a restarted worker does not draw the same parameters twice.

Errors: InvalidInput (the message names the field: `search_space.lr0.low`, `objective`, ...).
"""

from __future__ import annotations

import logging
import math
import re
from functools import lru_cache
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState
from sqlmodel import Session, col, select

from services.domain import catalog, jobs
from services.domain.models import Job, Sweep, SweepState, User, id_of
from services.domain.schemas import SweepCreate
from services.errors import InvalidInput
from services.infra.db import database_url

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
DIRECTIONS = ("maximize", "minimize")
KINDS = ("fixed", "int", "float", "choice")
MAX_CHOICES = 50
# A grid sweep expands int ranges into their values; past this many grid points, use choices.
MAX_GRID_POINTS = 500
# Names the trainer gives its per-epoch metrics (`map50_95`, `val_box_loss`, `top1`, `lr`, ...).
METRIC_NAME = re.compile(r"^[A-Za-z0-9_./-]{1,64}$")
# Optuna user attribute on a trial added for a retried trial job (not asked by the sampler).
RETRY_ATTR = "vtp_retry_of_job"


# --- the search space -------------------------------------------------------------------------


def _number(spec: dict[str, Any], value: Any, where: str) -> Any:
    try:
        return catalog.coerce(spec, value)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from exc


def _entry(spec: dict[str, Any], entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise InvalidInput(f"{where} must be an object with a type ({', '.join(KINDS)})")
    kind = entry.get("type")
    declared = spec.get("type", "str")
    if kind == "fixed":
        if "value" not in entry:
            raise InvalidInput(f"{where}.value is missing")
        return {"type": "fixed", "value": _number(spec, entry["value"], where)}
    if kind in ("int", "float"):
        if declared != kind:
            raise InvalidInput(
                f"{where}.type: {spec['name']} is a{'n' if declared == 'int' else ''} {declared}; "
                f"a {kind} range does not fit it (use type {declared!r}, 'choice' or 'fixed')"
            )
        for end in ("low", "high"):
            if entry.get(end) is None:
                raise InvalidInput(f"{where}.{end} is missing: a range needs low and high")
        low = _number(spec, entry["low"], f"{where}.low")
        high = _number(spec, entry["high"], f"{where}.high")
        if not low < high:
            raise InvalidInput(f"{where}: low ({low}) must be below high ({high}); for one value use 'fixed'")
        log_scale = entry.get("log", False)
        if not isinstance(log_scale, bool):
            raise InvalidInput(f"{where}.log must be true or false")
        if log_scale and low <= 0:
            raise InvalidInput(f"{where}: a log range needs low above 0, got {low}")
        return {"type": kind, "low": low, "high": high, "log": log_scale}
    if kind == "choice":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise InvalidInput(f"{where}.choices must be a non-empty list")
        if len(choices) > MAX_CHOICES:
            raise InvalidInput(f"{where}.choices: at most {MAX_CHOICES} choices, got {len(choices)}")
        values: list[Any] = []
        for index, choice in enumerate(choices):
            value = _number(spec, choice, f"{where}.choices[{index}]")
            if value not in values:
                values.append(value)
        return {"type": "choice", "choices": values}
    raise InvalidInput(f"{where}.type must be one of {list(KINDS)}, got {kind!r}")


def validate_space(specs: list[dict[str, Any]], space: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The search space in its stored form, every value of its declared type; raises InvalidInput."""
    known = {spec["name"]: spec for spec in specs}
    unknown = sorted(set(space) - set(known))
    if unknown:
        raise InvalidInput(f"search_space: unknown hyperparameter(s) {unknown}; allowed: {sorted(known)}")
    checked = {name: _entry(known[name], entry, f"search_space.{name}") for name, entry in space.items()}
    if not any(entry["type"] != "fixed" for entry in checked.values()):
        raise InvalidInput(
            "search_space: nothing to search; give at least one hyperparameter a range or choices"
        )
    return checked


def distributions(space: dict[str, dict[str, Any]]) -> dict[str, BaseDistribution]:
    """Optuna's distributions of the searched (non-fixed) hyperparameters."""
    found: dict[str, BaseDistribution] = {}
    for name, entry in space.items():
        if entry["type"] == "int":
            found[name] = IntDistribution(int(entry["low"]), int(entry["high"]), log=bool(entry.get("log")))
        elif entry["type"] == "float":
            found[name] = FloatDistribution(
                float(entry["low"]), float(entry["high"]), log=bool(entry.get("log"))
            )
        elif entry["type"] == "choice":
            found[name] = CategoricalDistribution(entry["choices"])
    return found


def fixed_values(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: entry["value"] for name, entry in space.items() if entry["type"] == "fixed"}


def grid(space: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """The grid sampler's points: choices as given, int ranges expanded; float ranges refused."""
    points: dict[str, list[Any]] = {}
    for name, entry in space.items():
        if entry["type"] == "choice":
            points[name] = list(entry["choices"])
        elif entry["type"] == "int":
            if entry["log"]:
                raise InvalidInput(
                    f"search_space.{name}: a grid cannot walk a log range; list choices instead"
                )
            points[name] = list(range(int(entry["low"]), int(entry["high"]) + 1))
        elif entry["type"] == "float":
            raise InvalidInput(
                f"search_space.{name}: a grid needs a finite list of values; "
                "give choices instead of a float range"
            )
    size = math.prod(len(v) for v in points.values())
    if size > MAX_GRID_POINTS:
        raise InvalidInput(f"search_space: the grid has {size} points; at most {MAX_GRID_POINTS}")
    return points


def check_settings(*, objective: str, direction: str, sampler: str, pruner: str) -> None:
    if not METRIC_NAME.match(objective):
        raise InvalidInput(
            f"objective: {objective!r} is not a metric name (letters, digits and _ . / - only), "
            "for example map50_95, top1 or val_loss"
        )
    if direction not in DIRECTIONS:
        raise InvalidInput(f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")
    if sampler not in SAMPLERS:
        raise InvalidInput(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    if pruner not in PRUNERS:
        raise InvalidInput(f"pruner must be one of {list(PRUNERS)}, got {pruner!r}")


def epochs_of(space: dict[str, dict[str, Any]], specs: list[dict[str, Any]]) -> int:
    """The most epochs a trial can train (Hyperband's largest budget)."""
    entry = space.get("epochs")
    default = next((s.get("default") for s in specs if s["name"] == "epochs"), None)
    if entry is None:
        return int(default or 1)
    if entry["type"] == "fixed":
        return int(entry["value"])
    if entry["type"] == "choice":
        return int(max(entry["choices"]))
    return int(entry["high"])


# --- Optuna -----------------------------------------------------------------------------------


@lru_cache
def _storage(url: str) -> optuna.storages.RDBStorage:
    # The database's `alembic_version` is ours (alembic/), not Optuna's: skip Optuna's schema
    # check, which reads that table. Migration 0009 creates Optuna's tables.
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 30}}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True)


def storage() -> optuna.storages.RDBStorage:
    return _storage(database_url())


def study_name(sweep_id: int) -> str:
    return f"vtp-sweep-{sweep_id}"


class _AskTellGrid(optuna.samplers.GridSampler):
    """Optuna's grid sampler, less its `study.stop()` once the grid is covered: that call works
    only inside `study.optimize`, and with ask-and-tell the sweep ends by counting its trials
    (`Sweep.n_trials` is capped at the grid's size)."""

    def after_trial(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def _sampler(sweep: Sweep, trials_so_far: int) -> optuna.samplers.BaseSampler:
    seed = None if sweep.seed is None else sweep.seed + trials_so_far
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sweep.sampler == "grid":
        # The grid's order is a shuffle by the seed, and trial n takes point n: one seed for the
        # whole sweep, or trials would repeat points.
        stable = sweep.seed if sweep.seed is not None else (sweep.id or 0)
        return _AskTellGrid(grid(sweep.search_space), seed=stable)  # type: ignore[arg-type]
    # TPE's first trials are random: a third of a small sweep, at most Optuna's usual ten.
    startup = max(1, min(10, sweep.n_trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def _pruner(sweep: Sweep, max_epochs: int) -> optuna.pruners.BasePruner:
    if sweep.pruner == "median":
        # Compare with the trials finished so far from the first epoch on; wait for a quarter
        # of a small sweep (at most five trials) before stopping anything.
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, min(5, sweep.n_trials // 4)))
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1))
    return optuna.pruners.NopPruner()


def study_of(sweep: Sweep, *, max_epochs: int = 100) -> optuna.Study:
    """The sweep's study, created on first use, with its sampler and pruner."""
    store = storage()
    trials_so_far = len(trials_of(sweep))
    return optuna.create_study(
        study_name=sweep.study_name,
        storage=store,
        direction="maximize" if sweep.direction == "maximize" else "minimize",
        sampler=_sampler(sweep, trials_so_far),
        pruner=_pruner(sweep, max_epochs),
        load_if_exists=True,
    )


def trials_of(sweep: Sweep) -> list[FrozenTrial]:
    """The study's trials (none before the worker's first step created the study). A finished
    sweep's study no longer changes: its trials are read once per process (the sweep page)."""
    if sweep.state == SweepState.finished:
        return list(_final_trials(database_url(), sweep.study_name))
    return _read_trials(sweep.study_name)


def _read_trials(name: str) -> list[FrozenTrial]:
    store = storage()
    try:
        return store.get_all_trials(store.get_study_id_from_name(name), deepcopy=False)
    except KeyError:
        return []


@lru_cache(maxsize=32)
def _final_trials(url: str, name: str) -> tuple[FrozenTrial, ...]:
    """`url`: the database's, so two databases' studies of one name never share an entry."""
    return tuple(_read_trials(name))


def asked(trials: list[FrozenTrial]) -> int:
    """Trials the sampler proposed (not those added for a retried trial job)."""
    return sum(1 for t in trials if RETRY_ATTR not in t.user_attrs)


def is_better(value: float, than: float | None, direction: str) -> bool:
    return than is None or (value > than if direction == "maximize" else value < than)


def best_of(values: list[float], direction: str) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return max(finite) if direction == "maximize" else min(finite)


def best_trial(trials: list[FrozenTrial], direction: str) -> FrozenTrial | None:
    best: FrozenTrial | None = None
    for trial in trials:
        if trial.state != TrialState.COMPLETE or trial.value is None:
            continue
        if best is None or is_better(trial.value, best.value, direction):
            best = trial
    return best


def importances(sweep: Sweep, trials: list[FrozenTrial]) -> tuple[dict[str, float], str]:
    """optuna.importance's parameter importances, or a note saying why there are none yet."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    searched = [n for n, e in sweep.search_space.items() if e["type"] != "fixed"]
    if len(searched) < 2:
        return {}, "Importances compare two or more searched hyperparameters."
    if len(complete) < 3:
        return {}, f"Importances need 3 finished trials; {len(complete)} so far."
    try:
        study = optuna.load_study(study_name=sweep.study_name, storage=storage())
        # PED-ANOVA: milliseconds for hundreds of trials, where the default fANOVA's random
        # forest takes seconds on each new finished trial (the page computes it live).
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        found = optuna.importance.get_param_importances(study, evaluator=evaluator, params=searched)
    except (RuntimeError, ValueError) as exc:  # e.g. every trial had the same parameters
        return {}, f"Importances unavailable: {exc}"
    return {k: float(v) for k, v in found.items()}, ""


IMPORTANCE_ATTR = "vtp_importances"  # the study's user attribute that keeps them


def complete_count(trials: list[FrozenTrial]) -> int:
    return sum(1 for t in trials if t.state == TrialState.COMPLETE)


def saved_importances(sweep: Sweep, complete: int) -> tuple[dict[str, float], str] | None:
    """The importances saved with the study for `complete` finished trials, or None when none
    were saved for that many (importing `optuna.importance` costs seconds: sklearn and scipy)."""
    store = storage()
    try:
        attrs = store.get_study_user_attrs(store.get_study_id_from_name(sweep.study_name))
    except KeyError:
        return None
    saved = attrs.get(IMPORTANCE_ATTR)
    if not isinstance(saved, dict) or saved.get("complete") != complete:
        return None
    return {str(k): float(v) for k, v in saved.get("importances", {}).items()}, str(saved.get("note", ""))


def save_importances(sweep: Sweep, trials: list[FrozenTrial]) -> tuple[dict[str, float], str]:
    """Compute the importances for the trials finished so far and keep them with the study, so
    the sweep page reads them instead of computing them on each visit."""
    found, note = importances(sweep, trials)
    store = storage()
    try:
        study_id = store.get_study_id_from_name(sweep.study_name)
    except KeyError:
        return found, note
    value = {"complete": complete_count(trials), "importances": found, "note": note}
    store.set_study_user_attr(study_id, IMPORTANCE_ATTR, value)
    return found, note


# --- rows -------------------------------------------------------------------------------------


def _first_value(entry: dict[str, Any]) -> Any:
    if entry["type"] == "fixed":
        return entry["value"]
    return entry["choices"][0] if entry["type"] == "choice" else entry["low"]


def new_sweep(session: Session, *, project_id: int, user: User, request: SweepCreate) -> Sweep:
    """A validated running sweep, written and flushed (the caller checks the quota, audits and
    commits, then asks the worker for its first trials). Raises InvalidInput or NotFound."""
    check_settings(
        objective=request.objective,
        direction=request.direction,
        sampler=request.sampler,
        pruner=request.pruner,
    )
    plugins = catalog.get_catalog()
    specs = plugins.hyperparameters(request.framework, request.task)
    space = validate_space(specs, request.search_space)
    n_trials = request.n_trials
    if request.sampler == "grid":
        n_trials = min(n_trials, math.prod(len(v) for v in grid(space).values()))
    # One trial exactly as the first would be, through the job rules (dataset version, task,
    # model, device, resources, every hyperparameter): a sweep whose trials would be refused is
    # refused now, with the job's own message.
    probe = {name: _first_value(entry) for name, entry in space.items()}
    jobs.new_job(
        session,
        project_id=project_id,
        user=user,
        dataset_version_id=request.dataset_version_id,
        framework=request.framework,
        task=request.task,
        model=request.model,
        hyperparameters=probe,
        device=request.device,
        resources=request.resources,
    )
    sweep = Sweep(
        project_id=project_id,
        dataset_version_id=request.dataset_version_id,
        created_by=id_of(user),
        name=(request.name.strip() or f"sweep of {request.model.removesuffix('.yaml')}")[:120],
        framework=request.framework,
        task=request.task,
        model=request.model,
        device=request.device,
        resources=request.resources.model_dump(exclude_defaults=True),
        search_space=space,
        objective=request.objective,
        direction=request.direction,
        n_trials=n_trials,
        parallelism=min(request.parallelism, n_trials),
        sampler=request.sampler,
        pruner=request.pruner,
        seed=request.seed,
    )
    session.add(sweep)
    session.flush()
    sweep.study_name = study_name(id_of(sweep))
    session.add(sweep)
    return sweep


def get_sweep(session: Session, *, sweep_id: int, project_id: int | None = None) -> Sweep:
    from services.errors import NotFound

    sweep = session.get(Sweep, sweep_id)
    if sweep is None or (project_id is not None and sweep.project_id != project_id):
        raise NotFound(f"Sweep {sweep_id} does not exist")
    return sweep


def list_sweeps(session: Session, *, project_id: int, limit: int = 200) -> list[Sweep]:
    query = select(Sweep).where(Sweep.project_id == project_id).order_by(col(Sweep.id).desc()).limit(limit)
    return list(session.exec(query).all())


def trial_jobs(session: Session, *, sweep_id: int) -> list[Job]:
    """The sweep's jobs, oldest first (a retried trial has several: the newest counts)."""
    return list(session.exec(select(Job).where(Job.sweep_id == sweep_id).order_by(col(Job.id))).all())


def active_sweep_ids(session: Session) -> list[int]:
    return list(session.exec(select(Sweep.id).where(Sweep.state == SweepState.running)).all())  # type: ignore[arg-type]


def trial_params(space: dict[str, dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """A trial's hyperparameters: the fixed ones and what the sampler chose."""
    return {**fixed_values(space), **params}


def parent_run_of(session: Session, job: Job) -> str | None:
    """The MLflow run a trial's run nests under: its sweep's, once the worker has opened it."""
    if job.sweep_id is None:
        return None
    sweep = session.get(Sweep, job.sweep_id)
    return sweep.mlflow_run_id if sweep is not None else None
