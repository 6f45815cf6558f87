"""Runs as users compare them, and usage analytics. Reads only: audited when refused."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from sqlmodel import col, select

from services.actions.core import Actor, Audit, operation
from services.domain import experiments
from services.domain.models import Job, SavedComparison
from services.domain.permissions import Action
from services.domain.schemas import SavedComparisonCreate, SavedComparisonPublic
from services.errors import InvalidInput, NotFound


def runs(
    actor: Actor,
    *,
    project_id: int,
    search: str = "",
    states: list[str] | None = None,
    offset: int = 0,
    limit: int = 25,
    sort: str = "newest",
) -> tuple[list[dict[str, Any]], int]:
    """One page of the project's runs for the picker, and how many match."""
    with operation(actor, "job.list", record=Audit.refusals) as op:
        op.authorize(Action.job_read, project_id=project_id)
        return experiments.list_runs(
            op.session,
            project_id=project_id,
            search=search,
            states=states,
            offset=offset,
            limit=limit,
            sort=sort,
        )


def set_run_tags(actor: Actor, *, project_id: int, job_id: int, tags: Iterable[str]) -> list[str]:
    """Replace a run's tags (members and up; tags are shared labels, not ownership)."""
    with operation(actor, "job.tag", target=f"job:{job_id}") as op:
        op.authorize(Action.job_tag, project_id=project_id)
        job = op.session.get(Job, job_id)
        if job is None or job.project_id != project_id:
            raise NotFound(f"Job {job_id} does not exist in this project")
        saved = experiments.set_tags(op.session, job, tags)
        op.detail = ",".join(saved)
        return saved


def compare(actor: Actor, *, project_id: int, job_ids: Iterable[int]) -> experiments.RunSet:
    """The chosen runs with every epoch's metrics (runs of other projects are silently left out)."""
    with operation(actor, "job.compare", record=Audit.refusals) as op:
        op.authorize(Action.job_read, project_id=project_id)
        return experiments.compare_runs(op.session, project_id=project_id, job_ids=job_ids)


def analytics(actor: Actor, *, group_by: str = "project", days: int = 30) -> tuple[experiments.Usage, bool]:
    """Jobs per day, success rate, compute hours and queue wait over the projects the user is in
    (every project for platform admins, which the second value says)."""
    with operation(actor, "analytics.read", record=Audit.refusals) as op:
        usage = experiments.analytics(op.session, user=op.me, group_by=group_by, days=days)
        return usage, op.me.is_platform_admin


def _public(row: SavedComparison) -> SavedComparisonPublic:
    assert row.id is not None
    return SavedComparisonPublic(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        job_ids=list(row.job_ids),
        metric=row.metric,
        only_differences=row.only_differences,
        created_by=row.created_by,
    )


def save_comparison(
    actor: Actor, *, project_id: int, request: SavedComparisonCreate
) -> SavedComparisonPublic:
    """Save a named selection of the project's runs and its view; members of the project open it by URL."""
    with operation(actor, "comparison.save") as op:
        op.authorize(Action.job_read, project_id=project_id)
        found = experiments.compare_runs(op.session, project_id=project_id, job_ids=request.job_ids)
        missing = sorted(set(request.job_ids) - {r["id"] for r in found.runs})
        if missing:
            raise InvalidInput(f"job_ids: no such runs in this project: {missing}")
        row = SavedComparison(
            project_id=project_id,
            name=request.name.strip(),
            job_ids=sorted(set(request.job_ids)),
            metric=request.metric,
            only_differences=request.only_differences,
            created_by=op.me_id,
        )
        op.session.add(row)
        op.session.flush()
        op.target = f"comparison:{row.id}"
        return _public(row)


def get_comparison(actor: Actor, *, project_id: int | None, comparison_id: int) -> SavedComparisonPublic:
    """A saved comparison; NotFound for anyone outside its project (existence is not leaked)."""
    with operation(
        actor, "comparison.read", target=f"comparison:{comparison_id}", record=Audit.refusals
    ) as op:
        row = op.session.get(SavedComparison, comparison_id)
        if row is None or (project_id is not None and row.project_id != project_id):
            raise NotFound(f"Saved comparison {comparison_id} does not exist")
        try:
            op.authorize(Action.job_read, project_id=row.project_id)
        except NotFound as exc:
            raise NotFound(f"Saved comparison {comparison_id} does not exist", reason=exc.reason) from exc
        return _public(row)


def list_comparisons(actor: Actor, *, project_id: int) -> list[SavedComparisonPublic]:
    with operation(actor, "comparison.read", record=Audit.refusals) as op:
        op.authorize(Action.job_read, project_id=project_id)
        rows = op.session.exec(
            select(SavedComparison)
            .where(SavedComparison.project_id == project_id)
            .order_by(col(SavedComparison.id).desc())
        ).all()
        return [_public(r) for r in rows]


def curves_csv(actor: Actor, *, project_id: int, job_ids: Iterable[int]) -> str:
    """Every epoch of every chosen run, every metric: the full data behind the downsampled chart."""
    found = compare(actor, project_id=project_id, job_ids=job_ids)
    names = experiments.metric_names(found.curves)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["job_id", "run", "epoch", *names])
    labels = {r["id"]: r["name"] for r in found.runs}
    for job_id, rows in found.curves.items():
        for row in rows:
            writer.writerow(
                [job_id, labels.get(job_id, ""), int(row["epoch"]), *[row.get(n, "") for n in names]]
            )
    return out.getvalue()
