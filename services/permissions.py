"""The one authorization rule: a user's role in a project decides what they may do there.

Non-members get NotFound (not PermissionDenied) so a project's existence is not leaked.
"""

from __future__ import annotations

from sqlmodel import Session, select

from services.errors import NotFound, PermissionDenied
from services.models import Membership, Role, User

RANK = {Role.viewer: 0, Role.member: 1, Role.admin: 2, Role.owner: 3}


def role_in(session: Session, *, user: User, project_id: int) -> Role | None:
    row = session.exec(
        select(Membership).where(Membership.project_id == project_id, Membership.user_id == user.id)
    ).first()
    return Role(row.role) if row else None


def require_role(session: Session, *, user: User, project_id: int, minimum: Role) -> Role:
    role = role_in(session, user=user, project_id=project_id)
    if role is None:
        raise NotFound(f"Project {project_id} does not exist")
    if RANK[role] < RANK[minimum]:
        raise PermissionDenied(f"This needs the {minimum.value} role; you are {role.value}")
    return role
