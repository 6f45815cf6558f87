"""Runs as users compare them, and usage analytics. Reads only: audited when refused."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.actions.core import Actor, Audit, operation
from services.domain import experiments
from services.domain.permissions import Action


def runs(
    actor: Actor, *, project_id: int, search: str = "", states: list[str] | None = None
) -> list[dict[str, Any]]:
    """Runs of a project for the picker, newest first."""
    with operation(actor, "job.list", record=Audit.refusals) as op:
        op.authorize(Action.job_read, project_id=project_id)
        return experiments.list_runs(op.session, project_id=project_id, search=search, states=states)


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
