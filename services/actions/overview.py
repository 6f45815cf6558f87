"""Read actions of the projects home (both channels call these with an `Actor`)."""

from __future__ import annotations

from services.actions.core import Actor, Audit, operation
from services.domain import overview
from services.domain.overview import ProjectOverview


def project_overviews(actor: Actor) -> list[ProjectOverview]:
    """The cards of the projects home: only the actor's own projects, so membership is the check.

    A read: audited only if it fails (a deactivated account, for one).
    """
    with operation(actor, "project.list", record=Audit.refusals) as op:
        return overview.project_overviews(op.session, user=op.me)
