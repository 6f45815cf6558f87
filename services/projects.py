"""Projects and memberships."""

from __future__ import annotations

from sqlmodel import Session, select

from services.errors import InvalidInput
from services.models import Membership, Project, Role, User


def create_project(session: Session, *, owner: User, name: str, description: str = "") -> Project:
    name = name.strip()
    if not name or len(name) > 120:
        raise InvalidInput("Project name must be 1 to 120 characters")
    project = Project(name=name, description=description)
    session.add(project)
    session.flush()
    session.add(Membership(project_id=project.id, user_id=owner.id, role=Role.owner))
    session.flush()
    return project


def projects_for(session: Session, *, user: User) -> list[tuple[Project, Role]]:
    rows = session.exec(
        select(Project, Membership.role)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == user.id)
        .order_by(Project.id)
    ).all()
    return [(p, Role(r)) for p, r in rows]
