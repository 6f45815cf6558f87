"""Read actions of the projects home (both channels call these with an `Actor`)."""

from __future__ import annotations

from services.actions.core import Actor, Audit, operation
from services.domain import overview
from services.domain.overview import DatasetPreview, ProjectOverview, RunContext
from services.domain.permissions import Action


def project_overviews(actor: Actor) -> list[ProjectOverview]:
    """The cards of the projects home: only the actor's own projects, so membership is the check.

    A read: audited only if it fails (a deactivated account, for one).
    """
    with operation(actor, "project.list", record=Audit.refusals) as op:
        return overview.project_overviews(op.session, user=op.me)


def run_contexts(actor: Actor, *, project_id: int, job_ids: list[int]) -> dict[int, RunContext]:
    """Dataset and owner of runs shown as experiment cards; a viewer or higher of the project."""
    with operation(actor, "job.read", record=Audit.refusals) as op:
        op.authorize(Action.job_read, project_id=project_id, target=f"project:{project_id}")
        return overview.run_contexts(op.session, project_id=project_id, job_ids=job_ids)


def dataset_previews(actor: Actor, *, project_id: int) -> list[DatasetPreview]:
    """Thumbnail strips of the project's datasets; a viewer or higher."""
    with operation(actor, "dataset.read", record=Audit.refusals) as op:
        op.authorize(Action.dataset_read, project_id=project_id, target=f"project:{project_id}")
        return overview.dataset_previews(op.session, project_id=project_id)
