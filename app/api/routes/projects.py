"""Projects, their members and ownership. Every decision is `services.domain.permissions.authorize`."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import CurrentUser, PathId, SessionDep
from services.actions import views
from services.domain import projects, quotas
from services.domain.schemas import ProjectCreate, ProjectPublic, QuotasPublic, QuotasUpdate
from services.domain.security_schemas import (
    MemberAdd,
    MemberPublic,
    OwnershipTransfer,
    ProjectUpdate,
    RoleChange,
)

router = APIRouter(prefix="/projects", tags=["projects"])


@router.get("")
def list_projects(session: SessionDep, user: CurrentUser) -> list[ProjectPublic]:
    return views.user_projects(session, user=user)


@router.post("", status_code=201)
def create_project(body: ProjectCreate, session: SessionDep, user: CurrentUser) -> ProjectPublic:
    project = projects.create_project(session, owner=user, name=body.name, description=body.description)
    return ProjectPublic.of(project, "owner")


@router.get("/{project_id}")
def get_project(project_id: PathId, session: SessionDep, user: CurrentUser) -> ProjectPublic:
    project, role = projects.get_project(session, user=user, project_id=project_id)
    return ProjectPublic.of(project, role.value)


@router.patch("/{project_id}")
def update_project(
    project_id: PathId, body: ProjectUpdate, session: SessionDep, user: CurrentUser
) -> ProjectPublic:
    project, role = projects.update_project(
        session, user=user, project_id=project_id, name=body.name, description=body.description
    )
    return ProjectPublic.of(project, role.value)


@router.delete("/{project_id}", status_code=204)
def delete_project(project_id: PathId, session: SessionDep, user: CurrentUser) -> None:
    """Owners only."""
    projects.delete_project(session, user=user, project_id=project_id)


@router.post("/{project_id}/transfer", status_code=204)
def transfer_ownership(
    project_id: PathId, body: OwnershipTransfer, session: SessionDep, user: CurrentUser
) -> None:
    """Owners only: the member named becomes owner and the caller becomes admin."""
    projects.transfer_ownership(session, user=user, project_id=project_id, user_id=body.user_id)


@router.get("/{project_id}/quotas")
def get_quotas(project_id: PathId, session: SessionDep, user: CurrentUser) -> QuotasPublic:
    """The project's job quotas and how many jobs count against them now (any member)."""
    return quotas.get_quotas(session, user=user, project_id=project_id)


@router.put("/{project_id}/quotas")
def set_quotas(
    project_id: PathId, body: QuotasUpdate, session: SessionDep, user: CurrentUser
) -> QuotasPublic:
    """Admins and owners set the limits at once; null means no limit (`max_gpus` left out: unchanged).

    With `max_queued_jobs` waiting, new jobs are refused (409); with `max_running_jobs` running,
    new jobs are accepted and wait in the queue until one of the project's jobs finishes.
    """
    return quotas.set_quotas(
        session,
        user=user,
        project_id=project_id,
        max_running_jobs=body.max_running_jobs,
        max_queued_jobs=body.max_queued_jobs,
        max_gpus=body.max_gpus if "max_gpus" in body.model_fields_set else quotas.UNCHANGED,
    )


@router.get("/{project_id}/members")
def list_members(project_id: PathId, session: SessionDep, user: CurrentUser) -> list[MemberPublic]:
    return [
        MemberPublic.of(u, r) for u, r in projects.list_members(session, user=user, project_id=project_id)
    ]


@router.post("/{project_id}/members", status_code=201)
def add_member(project_id: PathId, body: MemberAdd, session: SessionDep, user: CurrentUser) -> MemberPublic:
    """Admins add members, viewers and admins; only owners add owners."""
    other, role = projects.add_member(
        session, user=user, project_id=project_id, username=body.username, role=body.role
    )
    return MemberPublic.of(other, role)


@router.patch("/{project_id}/members/{user_id}")
def change_role(
    project_id: PathId, user_id: PathId, body: RoleChange, session: SessionDep, user: CurrentUser
) -> MemberPublic:
    """Admins change non-owners; the last owner cannot be demoted."""
    other, role = projects.change_role(
        session, user=user, project_id=project_id, user_id=user_id, role=body.role
    )
    return MemberPublic.of(other, role)


@router.delete("/{project_id}/members/{user_id}", status_code=204)
def remove_member(project_id: PathId, user_id: PathId, session: SessionDep, user: CurrentUser) -> None:
    """Admins remove non-owners; anyone may leave; the last owner cannot be removed."""
    projects.remove_member(session, user=user, project_id=project_id, user_id=user_id)
