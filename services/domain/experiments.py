"""Runs side by side, and usage analytics: read models over many jobs at once.

Built for hundreds of runs: one query for the runs, one for all their metrics (never a query per
run). Pure shaping helpers (`final_metrics`, `hyperparameter_rows`, `daily_counts`, ...) take
plain data and are unit-tested without a database.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, func, select

from services.domain.models import Job, JobMetric, JobTag, Membership, Project, User, aware, id_of
from services.errors import InvalidInput

MAX_COMPARE = 500
# A metric the compare page opens on, first one a run reported wins.
PREFERRED_METRICS = ("map50_95", "map50", "top1", "mask_map50_95", "val_loss", "val_box_loss")


@dataclass
class RunSet:
    runs: list[dict[str, Any]] = field(default_factory=list)
    # job id -> [{"epoch": n, metric: value, ...}] sorted by epoch
    curves: dict[int, list[dict[str, float]]] = field(default_factory=dict)


def run_summary(job: Job, owner: str) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "state": str(job.state),
        "model": job.model,
        "framework": job.framework,
        "task": job.task,
        "owner": owner,
        "dataset_version_id": job.dataset_version_id,
        "hyperparameters": dict(job.hyperparameters or {}),
        "created_at": aware(job.created_at),
        "final_metrics": dict(job.final_metrics or {}),
        # best.pt on the test split (`test/<metric>`), beside the validation curves.
        "test_metrics": dict(job.test_metrics or {}),
    }


RUN_SORTS: dict[str, Any] = {
    "newest": col(Job.id).desc(),
    "oldest": col(Job.id).asc(),
    "name": col(Job.name).asc(),
    "model": col(Job.model).asc(),
    "state": col(Job.state).asc(),
}


QUERY_HELP = (
    "Filter runs with words (name or model) and terms such as params.lr0>=0.01, params.optimizer=SGD, "
    "metrics.map50_95>0.5, tag:baseline, dataset:3, model:yolo11n"
)
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$")
_COMPARISON = re.compile(r"^(params|metrics)\.(.+?)(>=|<=|!=|=|>|<)(.*)$")
_OPERATORS: dict[str, Any] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "!=": lambda a, b: a != b,
    "=": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


@dataclass
class RunQuery:
    """A parsed run filter (see `parse_run_query`), every term ANDed."""

    words: list[str] = field(default_factory=list)
    # (column "params"|"metrics", key, operator, value): the value a float where it parses as one.
    comparisons: list[tuple[str, str, str, float | str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    datasets: list[int] = field(default_factory=list)
    models: list[str] = field(default_factory=list)


def parse_run_query(text: str) -> RunQuery:
    """Parse the run list's filter box, in the spirit of MLflow's search syntax users know.

    Bad terms are refused with what to write instead, rather than silently matching nothing.
    """
    query = RunQuery()
    for term in text.split():
        found = _COMPARISON.match(term)
        if found:
            column, key, operator, raw = found.groups()
            if not raw:
                raise InvalidInput(
                    f"'{term}' needs a value after '{operator}' (for example {column}.{key}{operator}0.5)"
                )
            value: float | str
            try:
                value = float(raw)
            except ValueError:
                if operator not in ("=", "!="):
                    raise InvalidInput(
                        f"'{term}': '{operator}' compares numbers; '{raw}' is not one"
                    ) from None
                value = raw
            if column == "metrics" and isinstance(value, str):
                raise InvalidInput(f"'{term}': metrics are numbers; '{raw}' is not one")
            query.comparisons.append((column, key, operator, value))
        elif term.startswith(("params.", "metrics.")):
            raise InvalidInput(f"'{term}' needs a comparison, for example {term}>=0.5. {QUERY_HELP}")
        elif term.startswith("tag:"):
            tag = term.removeprefix("tag:")
            if not TAG_PATTERN.match(tag):
                raise InvalidInput(f"'{term}': a tag is 1-40 letters, digits, '_', '.', ':' or '-'")
            query.tags.append(tag)
        elif term.startswith("dataset:"):
            raw = term.removeprefix("dataset:")
            if not raw.isdigit():
                raise InvalidInput(f"'{term}': write the dataset version's number, for example dataset:3")
            query.datasets.append(int(raw))
        elif term.startswith("model:"):
            query.models.append(term.removeprefix("model:"))
        else:
            query.words.append(term)
    return query


def _query_filters(query: RunQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    for word in query.words:
        where.append(col(Job.name).icontains(word) | col(Job.model).icontains(word))
    for model in query.models:
        where.append(col(Job.model).icontains(model))
    if query.datasets:
        where.append(col(Job.dataset_version_id).in_(query.datasets))
    for tag in query.tags:
        where.append(col(Job.id).in_(select(JobTag.job_id).where(JobTag.tag == tag)))
    for column, key, operator, value in query.comparisons:
        source = col(Job.hyperparameters) if column == "params" else col(Job.final_metrics)
        element = source[key]
        if isinstance(value, float):
            where.append(_OPERATORS[operator](element.as_float(), value))
        else:
            where.append(_OPERATORS[operator](element.as_string(), value))
    return where


def _order(sort: str) -> Any:
    """`metric:<name>` sorts by that final metric, best (highest) first, runs without it last."""
    if sort.startswith("metric:") and len(sort) > len("metric:"):
        return col(Job.final_metrics)[sort.removeprefix("metric:")].as_float().desc().nulls_last()
    return RUN_SORTS.get(sort, RUN_SORTS["newest"])


def list_runs(
    session: Session,
    *,
    project_id: int,
    search: str = "",
    states: list[str] | None = None,
    offset: int = 0,
    limit: int = 25,
    sort: str = "newest",
) -> tuple[list[dict[str, Any]], int]:
    """One page of a project's runs for the picker and how many match in all.

    Filtered (`parse_run_query`), sorted and paged in the database (three queries whatever the
    project's size), so a project with thousands of runs lists as fast as one with ten.
    """
    # Training runs only: a batch inference run has no curves or settings to compare.
    where: list[Any] = [
        Job.project_id == project_id,
        Job.kind == "train",
        *_query_filters(parse_run_query(search)),
    ]
    if states:
        where.append(col(Job.state).in_(states))
    total = session.exec(select(func.count()).select_from(Job).where(*where)).one()
    rows = session.exec(
        select(Job, User.username)
        .join(User, col(User.id) == col(Job.created_by))
        .where(*where)
        .order_by(_order(sort), col(Job.id).desc())
        .offset(max(0, offset))
        .limit(max(1, min(limit, MAX_COMPARE)))
    ).all()
    runs = [run_summary(job, owner) for job, owner in rows]
    tags = tags_of(session, [r["id"] for r in runs])
    for run in runs:
        run["tags"] = tags.get(run["id"], [])
    return runs, int(total)


def tags_of(session: Session, job_ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    if job_ids:
        for job_id, tag in session.exec(
            select(JobTag.job_id, JobTag.tag).where(col(JobTag.job_id).in_(job_ids)).order_by(col(JobTag.tag))
        ).all():
            found[job_id].append(tag)
    return dict(found)


def set_tags(session: Session, job: Job, tags: Iterable[str]) -> list[str]:
    """Replace a run's tags; each checked, duplicates folded."""
    wanted = sorted({t.strip() for t in tags if t.strip()})
    bad = [t for t in wanted if not TAG_PATTERN.match(t)]
    if bad:
        raise InvalidInput(f"Tag {bad[0]!r}: a tag is 1-40 letters, digits, '_', '.', ':' or '-'")
    if len(wanted) > 20:
        raise InvalidInput("A run has at most 20 tags")
    for row in session.exec(select(JobTag).where(JobTag.job_id == job.id)).all():
        session.delete(row)
    session.flush()
    for tag in wanted:
        session.add(JobTag(job_id=id_of(job), tag=tag))
    return wanted


def compare_runs(session: Session, *, project_id: int, job_ids: Iterable[int]) -> RunSet:
    """The chosen runs with every epoch's metrics: two queries whatever the number of runs."""
    ids = sorted({int(i) for i in job_ids})[:MAX_COMPARE]
    if not ids:
        return RunSet()
    rows = session.exec(
        select(Job, User.username)
        .join(User, col(User.id) == col(Job.created_by))
        .where(Job.project_id == project_id, col(Job.id).in_(ids))
        .order_by(col(Job.id))
    ).all()
    runs = [run_summary(job, owner) for job, owner in rows]
    visible = [r["id"] for r in runs]
    curves: dict[int, list[dict[str, float]]] = {i: [] for i in visible}
    if visible:
        for job_id, epoch, metrics in session.exec(
            select(JobMetric.job_id, JobMetric.epoch, JobMetric.metrics)
            .where(col(JobMetric.job_id).in_(visible))
            .order_by(col(JobMetric.job_id), col(JobMetric.epoch))
        ).all():
            curves[job_id].append({"epoch": float(epoch), **_numeric(metrics)})
    return RunSet(runs=runs, curves=curves)


def _numeric(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in (metrics or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def metric_names(curves: Mapping[int, list[dict[str, float]]]) -> list[str]:
    names = {k for rows in curves.values() for row in rows for k in row if k != "epoch"}
    preferred = [m for m in PREFERRED_METRICS if m in names]
    return preferred + sorted(names - set(preferred))


def final_metrics(curves: Mapping[int, list[dict[str, float]]]) -> dict[int, dict[str, float]]:
    """Each run's last reported epoch (the numbers a run ended with)."""
    return {
        job_id: {k: v for k, v in rows[-1].items() if k != "epoch"} for job_id, rows in curves.items() if rows
    }


def hyperparameter_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per hyperparameter: {"name", "values": [str per run], "differs": bool}; differing first."""
    names = sorted({name for run in runs for name in run["hyperparameters"]})
    rows = []
    for name in names:
        values = ["" if name not in r["hyperparameters"] else str(r["hyperparameters"][name]) for r in runs]
        rows.append({"name": name, "values": values, "differs": len(set(values)) > 1})
    for extra in ("model", "dataset_version_id"):
        # No dataset version: a batch run over an uploaded zip of images.
        values = ["uploaded images" if r[extra] is None else str(r[extra]) for r in runs]
        rows.insert(0, {"name": extra, "values": values, "differs": len(set(values)) > 1})
    return sorted(rows, key=lambda r: not r["differs"])


def sort_rows(rows: list[dict[str, Any]], key: str, *, descending: bool) -> list[dict[str, Any]]:
    """Sort table rows by a column; missing values always last."""
    present = [r for r in rows if isinstance(r.get(key), int | float | str) and r.get(key) != ""]
    missing = [r for r in rows if r not in present]
    return sorted(present, key=lambda r: r[key], reverse=descending) + missing


# --- analytics ------------------------------------------------------------------------------------


@dataclass
class Usage:
    days: list[str] = field(default_factory=list)
    # group -> per-day counts, aligned with `days`
    jobs_per_day: dict[str, list[int]] = field(default_factory=dict)
    # group -> {"jobs", "finished", "succeeded", "success_rate", "cpu_hours", "gpu_hours",
    #           "queue_wait_median_s", "queue_wait_p90_s"}
    summary: dict[str, dict[str, float]] = field(default_factory=dict)


def visible_projects(session: Session, *, user: User) -> dict[int, str]:
    """Projects whose analytics the user may see: their own; platform admins see all."""
    query = select(Project.id, Project.name).where(col(Project.deleted_at).is_(None))
    if not user.is_platform_admin:
        query = query.join(Membership, col(Membership.project_id) == col(Project.id)).where(
            Membership.user_id == user.id
        )
    return {pid: name for pid, name in session.exec(query).all() if pid is not None}


def job_facts(session: Session, *, project_ids: Iterable[int], since: datetime) -> list[dict[str, Any]]:
    ids = list(project_ids)
    if not ids:
        return []
    # Only the columns the figures need: whole Job rows (their JSON columns parsed, an ORM object
    # built per job) cost most of the analytics request's CPU.
    rows = session.execute(
        select_columns(
            col(Job.project_id),
            col(User.username),
            col(Job.state),
            col(Job.trainer_device),
            col(Job.device),
            col(Job.created_at),
            col(Job.started_at),
            col(Job.finished_at),
        )
        .join(User, col(User.id) == col(Job.created_by))
        .where(col(Job.project_id).in_(ids), col(Job.created_at) >= since)
    ).all()
    return [
        {
            "project_id": project_id,
            "user": owner,
            "state": str(state),
            "device": trainer_device or device,
            "created_at": aware(created_at),
            "started_at": aware(started_at),
            "finished_at": aware(finished_at),
        }
        for project_id, owner, state, trainer_device, device, created_at, started_at, finished_at in rows
    ]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def usage(facts: list[dict[str, Any]], *, group_key: str, today: date, days: int, now: datetime) -> Usage:
    """Jobs per day, success rate, compute hours (CPU vs GPU), queue wait per group (pure)."""
    day_list = [today - timedelta(days=days - 1 - i) for i in range(days)]
    index = {d: i for i, d in enumerate(day_list)}
    result = Usage(days=[d.isoformat() for d in day_list])
    waits: dict[str, list[float]] = defaultdict(list)
    for fact in facts:
        group = str(fact[group_key])
        counts = result.jobs_per_day.setdefault(group, [0] * days)
        day = fact["created_at"].astimezone(UTC).date()
        if day in index:
            counts[index[day]] += 1
        s = result.summary.setdefault(
            group, {"jobs": 0, "finished": 0, "succeeded": 0, "cpu_hours": 0.0, "gpu_hours": 0.0}
        )
        s["jobs"] += 1
        if fact["state"] in {"succeeded", "failed", "cancelled"}:
            s["finished"] += 1
            s["succeeded"] += fact["state"] == "succeeded"
        if fact["started_at"] is not None:
            end = fact["finished_at"] or now
            hours = max(0.0, (end - fact["started_at"]).total_seconds() / 3600)
            gpu = "cuda" in str(fact["device"]) or "gpu" in str(fact["device"])
            s["gpu_hours" if gpu else "cpu_hours"] += hours
            waits[group].append(max(0.0, (fact["started_at"] - fact["created_at"]).total_seconds()))
    for group, s in result.summary.items():
        s["success_rate"] = s["succeeded"] / s["finished"] if s["finished"] else 0.0
        s["queue_wait_median_s"] = _percentile(waits[group], 0.5)
        s["queue_wait_p90_s"] = _percentile(waits[group], 0.9)
    return result


def analytics(session: Session, *, user: User, group_by: str = "project", days: int = 30) -> Usage:
    """Usage over the user's projects (all projects for platform admins), grouped by project or user."""
    projects = visible_projects(session, user=user)  # membership decides what a user sees
    now = datetime.now(UTC)
    facts = job_facts(session, project_ids=projects, since=now - timedelta(days=days))
    if group_by == "project":
        for fact in facts:
            fact["project"] = projects.get(fact["project_id"], str(fact["project_id"]))
    key = "project" if group_by == "project" else "user"
    return usage(facts, group_key=key, today=now.date(), days=days, now=now)


# --- downsampling for charts ----------------------------------------------------------------------

CHART_POINTS = 300  # points per run and metric a chart receives, whatever the epoch count


def lttb(xs: Sequence[float], ys: Sequence[float], threshold: int = CHART_POINTS) -> list[int]:
    """Indices of the points Largest-Triangle-Three-Buckets keeps (Steinarsson, 2013).

    Keeps the first and last points and, from each bucket between, the point that makes the
    largest triangle with the point kept before and the next bucket's mean: peaks and dips
    survive, unlike taking every n-th point.
    """
    n = len(xs)
    if threshold >= n or threshold < 3:
        return list(range(n))
    kept = [0]
    size = (n - 2) / (threshold - 2)
    a = 0
    for i in range(threshold - 2):
        start, end = int(i * size) + 1, int((i + 1) * size) + 1
        nxt_start, nxt_end = end, min(int((i + 2) * size) + 1, n)
        if nxt_start >= nxt_end:
            nxt_start, nxt_end = n - 1, n
        avg_x = sum(xs[nxt_start:nxt_end]) / (nxt_end - nxt_start)
        avg_y = sum(ys[nxt_start:nxt_end]) / (nxt_end - nxt_start)
        best, best_area = start, -1.0
        for j in range(start, min(end, n - 1)):
            area = abs((xs[a] - avg_x) * (ys[j] - ys[a]) - (xs[a] - xs[j]) * (avg_y - ys[a]))
            if area > best_area:
                best, best_area = j, area
        kept.append(best)
        a = best
    kept.append(n - 1)
    return kept


def chart_series(
    rows: Sequence[Mapping[str, float]], metric: str, threshold: int = CHART_POINTS
) -> tuple[list[float], list[float]]:
    """One run's (epochs, values) of `metric`, downsampled with LTTB to at most `threshold` points."""
    xs = [float(r["epoch"]) for r in rows if metric in r]
    ys = [float(r[metric]) for r in rows if metric in r]
    keep = lttb(xs, ys, threshold)
    return [xs[i] for i in keep], [ys[i] for i in keep]
