from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import CurrentUser, SessionDep
from services import projects, views
from services.schemas import ProjectCreate, ProjectPublic

router = APIRouter(prefix="/projects", tags=["projects"])


@router.get("")
def list_projects(session: SessionDep, user: CurrentUser) -> list[ProjectPublic]:
    return views.user_projects(session, user=user)


@router.post("", status_code=201)
def create_project(body: ProjectCreate, session: SessionDep, user: CurrentUser) -> ProjectPublic:
    project = projects.create_project(session, owner=user, name=body.name, description=body.description)
    return ProjectPublic.of(project, "owner")
