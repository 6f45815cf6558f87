"""The one authorization rule: a user's role in a project decides what they may do there.

`authorize` is the single decision point. Every REST route and every web UI action names the
`Action` it performs; `MINIMUM_ROLE` says which project role that needs. Actions on something a
user made themselves (cancelling their own job) may need less, per `OWN_MINIMUM_ROLE`.

Non-members get NotFound (not PermissionDenied), and so do deleted projects, so a project's
existence is not leaked. Each refusal carries its `reason` ("not a member", "needs admin, has
viewer"); the application layer (services.actions) writes it to the audit log with the action.
"""

from __future__ import annotations

from enum import StrEnum

from sqlmodel import Session, col, select

from services.domain.models import Membership, Project, Role, User
from services.errors import NotFound, PermissionDenied

RANK = {Role.viewer: 0, Role.member: 1, Role.admin: 2, Role.owner: 3}


class Action(StrEnum):
    project_read = "project.read"
    project_update = "project.update"
    project_delete = "project.delete"
    project_transfer = "project.transfer"
    members_read = "members.read"
    members_manage = "members.manage"
    quotas_manage = "quotas.manage"
    audit_read = "audit.read"
    dataset_read = "dataset.read"
    dataset_write = "dataset.write"
    job_read = "job.read"
    job_create = "job.create"
    job_cancel = "job.cancel"
    job_retry = "job.retry"
    job_tag = "job.tag"
    model_export = "model.export"
    model_predict = "model.predict"
    notifications_read = "notifications.read"
    notifications_manage = "notifications.manage"


MINIMUM_ROLE: dict[Action, Role] = {
    Action.project_read: Role.viewer,
    Action.project_update: Role.admin,
    Action.project_delete: Role.owner,
    Action.project_transfer: Role.owner,
    Action.members_read: Role.viewer,
    Action.members_manage: Role.admin,
    Action.quotas_manage: Role.admin,
    Action.audit_read: Role.admin,
    Action.dataset_read: Role.viewer,
    Action.dataset_write: Role.member,
    Action.job_read: Role.viewer,
    Action.job_create: Role.member,
    Action.job_cancel: Role.admin,
    Action.job_retry: Role.admin,
    # Tags are shared labels for finding runs again (like a board's labels), not ownership.
    Action.job_tag: Role.member,
    Action.model_export: Role.member,
    Action.model_predict: Role.member,
    Action.notifications_read: Role.member,
    Action.notifications_manage: Role.admin,
}
# When the acting user created the target themselves, this lower role is enough.
OWN_MINIMUM_ROLE: dict[Action, Role] = {Action.job_cancel: Role.member, Action.job_retry: Role.member}


def role_in(session: Session, *, user: User, project_id: int) -> Role | None:
    """The user's role in a live project, or None (not a member, or the project is deleted)."""
    row = session.exec(
        select(Membership.role)
        .join(Project, col(Project.id) == col(Membership.project_id))
        .where(
            Membership.project_id == project_id,
            Membership.user_id == user.id,
            Project.deleted_at.is_(None),  # type: ignore[union-attr]
        )
    ).first()
    return Role(row) if row else None


def needed_role(action: Action, *, own: bool = False) -> Role:
    if own and action in OWN_MINIMUM_ROLE:
        return OWN_MINIMUM_ROLE[action]
    return MINIMUM_ROLE[action]


def authorize(
    session: Session,
    *,
    user: User,
    project_id: int,
    action: Action,
    owner_id: int | None = None,
) -> Role:
    """Allow `action` in the project or raise (NotFound for outsiders, PermissionDenied for low roles).

    `owner_id` is the user who created the target (e.g. a job), for actions in OWN_MINIMUM_ROLE.
    Returns the user's role so callers can shape what they show.
    """
    role = role_in(session, user=user, project_id=project_id)
    if role is None:
        raise NotFound(f"Project {project_id} does not exist", reason="not a member")
    minimum = needed_role(action, own=owner_id is not None and owner_id == user.id)
    if RANK[role] < RANK[minimum]:
        raise PermissionDenied(
            f"This needs the {minimum.value} role; you are {role.value}",
            reason=f"needs {minimum.value}, has {role.value}",
        )
    return role


def require_platform_admin(user: User) -> None:
    """Platform administration (users, sign-up switch, the whole audit log)."""
    if not user.is_platform_admin:
        raise PermissionDenied("This needs a platform administrator", reason="not a platform admin")
