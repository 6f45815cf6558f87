"""Projects, their members, ownership and quotas. Parse, call services.actions.projects, shape."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import CurrentActor, PathId
from services.actions import projects
from services.domain import quotas
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
def list_projects(actor: CurrentActor) -> list[ProjectPublic]:
    return projects.list_projects(actor)


@router.post("", status_code=201)
def create_project(body: ProjectCreate, actor: CurrentActor) -> ProjectPublic:
    return projects.create_project(actor, name=body.name, description=body.description)


@router.get("/{project_id}")
def get_project(project_id: PathId, actor: CurrentActor) -> ProjectPublic:
    return projects.get_project(actor, project_id=project_id)


@router.patch("/{project_id}")
def update_project(project_id: PathId, body: ProjectUpdate, actor: CurrentActor) -> ProjectPublic:
    return projects.update_project(actor, project_id=project_id, name=body.name, description=body.description)


@router.delete("/{project_id}", status_code=204)
def delete_project(project_id: PathId, actor: CurrentActor) -> None:
    """Owners only."""
    projects.delete_project(actor, project_id=project_id)


@router.post("/{project_id}/transfer", status_code=204)
def transfer_ownership(project_id: PathId, body: OwnershipTransfer, actor: CurrentActor) -> None:
    """Owners only: the member named becomes owner and the caller becomes admin."""
    projects.transfer_ownership(actor, project_id=project_id, user_id=body.user_id)


@router.get("/{project_id}/quotas")
def get_quotas(project_id: PathId, actor: CurrentActor) -> QuotasPublic:
    """The project's job quotas and how many jobs count against them now (any member)."""
    return projects.get_quotas(actor, project_id=project_id)


@router.put("/{project_id}/quotas")
def set_quotas(project_id: PathId, body: QuotasUpdate, actor: CurrentActor) -> QuotasPublic:
    """Admins and owners set the limits at once; null means no limit (`max_gpus` left out: unchanged).

    With `max_queued_jobs` waiting, new jobs are refused (409); with `max_running_jobs` running,
    new jobs are accepted and wait in the queue until one of the project's jobs finishes.
    """
    return projects.set_quotas(
        actor,
        project_id=project_id,
        max_running_jobs=body.max_running_jobs,
        max_queued_jobs=body.max_queued_jobs,
        max_gpus=body.max_gpus if "max_gpus" in body.model_fields_set else quotas.UNCHANGED,
    )


@router.get("/{project_id}/members")
def list_members(project_id: PathId, actor: CurrentActor) -> list[MemberPublic]:
    return projects.list_members(actor, project_id=project_id)


@router.post("/{project_id}/members", status_code=201)
def add_member(project_id: PathId, body: MemberAdd, actor: CurrentActor) -> MemberPublic:
    """Admins add members, viewers and admins; only owners add owners."""
    return projects.add_member(actor, project_id=project_id, username=body.username, role=body.role)


@router.patch("/{project_id}/members/{user_id}")
def change_role(project_id: PathId, user_id: PathId, body: RoleChange, actor: CurrentActor) -> MemberPublic:
    """Admins change non-owners; the last owner cannot be demoted."""
    return projects.change_role(actor, project_id=project_id, user_id=user_id, role=body.role)


@router.delete("/{project_id}/members/{user_id}", status_code=204)
def remove_member(project_id: PathId, user_id: PathId, actor: CurrentActor) -> None:
    """Admins remove non-owners; anyone may leave; the last owner cannot be removed."""
    projects.remove_member(actor, project_id=project_id, user_id=user_id)
