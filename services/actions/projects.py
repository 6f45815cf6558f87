"""Projects, their members, ownership and job quotas, as users act on them. One function per action.

Every function authorizes through `Operation.authorize` with the action of
services.domain.permissions; the member rules that depend on the caller's own role (admins never
manage owners) are services.domain.projects', given the role `authorize` returned.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.actions.core import Actor, Audit, operation
from services.domain import projects, quotas
from services.domain.models import Role
from services.domain.permissions import Action
from services.domain.schemas import ProjectPublic, QuotasPublic
from services.domain.security_schemas import MemberPublic


def _project_target(project_id: int) -> str:
    return f"project:{project_id}"


# --- projects ----------------------------------------------------------------------------------


def list_projects(actor: Actor) -> list[ProjectPublic]:
    """The caller's projects with their role in each (membership decides what they see)."""
    with operation(actor, "project.list", record=Audit.refusals) as op:
        return [ProjectPublic.of(p, r.value) for p, r in projects.projects_for(op.session, user=op.me)]


def create_project(actor: Actor, *, name: str, description: str = "") -> ProjectPublic:
    """Any signed-in user may create a project; they become its owner."""
    with operation(actor, "project.create") as op:
        project = projects.create_project(op.session, owner=op.me, name=name, description=description)
        assert project.id is not None
        op.target, op.project_id = _project_target(project.id), project.id
        return ProjectPublic.of(project, Role.owner.value)


def get_project(actor: Actor, *, project_id: int) -> ProjectPublic:
    target = _project_target(project_id)
    with operation(actor, "project.read", target=target, record=Audit.refusals) as op:
        role = op.authorize(Action.project_read, project_id=project_id)
        return ProjectPublic.of(projects.get_project(op.session, project_id=project_id), role.value)


def update_project(
    actor: Actor, *, project_id: int, name: str | None = None, description: str | None = None
) -> ProjectPublic:
    with operation(actor, "project.update", target=_project_target(project_id)) as op:
        role = op.authorize(Action.project_update, project_id=project_id)
        project = projects.update_project(
            op.session, project_id=project_id, name=name, description=description
        )
        return ProjectPublic.of(project, role.value)


def delete_project(actor: Actor, *, project_id: int) -> None:
    """Owners only. The project disappears for everyone; its rows stay for the audit trail."""
    with operation(actor, "project.delete", target=_project_target(project_id)) as op:
        op.authorize(Action.project_delete, project_id=project_id)
        projects.delete_project(op.session, project_id=project_id)


def transfer_ownership(actor: Actor, *, project_id: int, user_id: int) -> None:
    """Owners only: the member named becomes owner and the caller stays on as admin."""
    with operation(actor, "project.transfer", target=f"user:{user_id}") as op:
        op.authorize(Action.project_transfer, project_id=project_id)
        projects.transfer_ownership(op.session, user=op.me, project_id=project_id, user_id=user_id)


# --- quotas ------------------------------------------------------------------------------------


def get_quotas(actor: Actor, *, project_id: int) -> QuotasPublic:
    """Any member may see the limits and the counts: they explain why a job waits or is refused."""
    with operation(actor, "quotas.read", target=_project_target(project_id), record=Audit.refusals) as op:
        op.authorize(Action.project_read, project_id=project_id)
        return quotas.get_quotas(op.session, project_id=project_id)


def set_quotas(
    actor: Actor,
    *,
    project_id: int,
    max_running_jobs: int | None,
    max_queued_jobs: int | None,
    max_gpus: int | None = quotas.UNCHANGED,
) -> QuotasPublic:
    """Admins and owners replace the limits (`max_gpus` left UNCHANGED keeps it); audited with the
    old and new values.

    Raises NotFound, PermissionDenied, InvalidInput (the message names the field).
    """
    with operation(actor, "project.quotas", target=_project_target(project_id)) as op:
        op.authorize(Action.quotas_manage, project_id=project_id)
        found, op.detail = quotas.set_quotas(
            op.session,
            project_id=project_id,
            max_running_jobs=max_running_jobs,
            max_queued_jobs=max_queued_jobs,
            max_gpus=max_gpus,
        )
        return found


# --- members -----------------------------------------------------------------------------------


def list_members(actor: Actor, *, project_id: int) -> list[MemberPublic]:
    with operation(actor, "members.read", target=_project_target(project_id), record=Audit.refusals) as op:
        op.authorize(Action.members_read, project_id=project_id)
        return [MemberPublic.of(u, r) for u, r in projects.list_members(op.session, project_id=project_id)]


@dataclass(frozen=True)
class MembersPage:
    """What the members page shows: the project, the caller's role, its members and its quotas."""

    project: ProjectPublic
    members: list[MemberPublic]
    quotas: QuotasPublic


def members_page(actor: Actor, *, project_id: int) -> MembersPage:
    with operation(actor, "members.read", target=_project_target(project_id), record=Audit.refusals) as op:
        role = op.authorize(Action.members_read, project_id=project_id)
        return MembersPage(
            project=ProjectPublic.of(projects.get_project(op.session, project_id=project_id), role.value),
            members=[
                MemberPublic.of(u, r) for u, r in projects.list_members(op.session, project_id=project_id)
            ],
            quotas=quotas.get_quotas(op.session, project_id=project_id),
        )


def add_member(actor: Actor, *, project_id: int, username: str, role: Role) -> MemberPublic:
    """Admins add members, viewers and admins; only owners add owners."""
    with operation(actor, "members.add", target=f"username:{username.strip()[:64]}") as op:
        acting = op.authorize(Action.members_manage, project_id=project_id)
        other, given = projects.add_member(
            op.session, acting=acting, project_id=project_id, username=username, role=role
        )
        op.target, op.detail = f"user:{other.id}", f"role={given.value}"
        return MemberPublic.of(other, given)


def change_role(actor: Actor, *, project_id: int, user_id: int, role: Role) -> MemberPublic:
    """Admins change non-owners; the last owner cannot be demoted."""
    with operation(actor, "members.role", target=f"user:{user_id}") as op:
        acting = op.authorize(Action.members_manage, project_id=project_id)
        other, before = projects.change_role(
            op.session, acting=acting, project_id=project_id, user_id=user_id, role=role
        )
        op.detail = f"{before.value} -> {role.value}"
        return MemberPublic.of(other, role)


def remove_member(actor: Actor, *, project_id: int, user_id: int) -> None:
    """Admins remove non-owners; anyone may leave; the last owner cannot be removed."""
    with operation(actor, "members.remove", target=f"user:{user_id}") as op:
        leaving = user_id == actor.user_id
        acting = op.authorize(
            Action.members_read if leaving else Action.members_manage, project_id=project_id
        )
        projects.remove_member(op.session, acting=acting, project_id=project_id, user_id=user_id)
