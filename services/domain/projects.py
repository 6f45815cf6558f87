"""Projects and their memberships: create, rename, delete, members and their roles, ownership.

Rules beyond the action table of `services.domain.permissions`:
- admins manage members but never owners: they cannot add, promote to, demote or remove an owner;
- the last owner can be neither removed nor demoted (transfer ownership first);
- anyone may leave a project themselves, except its last owner.
The caller (services.actions.projects) has authorized the action and passes the acting user's role
where these rules need it; it audits. Refusals here carry their `reason` for that audit row.
"""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from services.domain.models import Membership, Project, Role, User, utcnow
from services.domain.permissions import RANK
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied


def create_project(session: Session, *, owner: User, name: str, description: str = "") -> Project:
    name = name.strip()
    if not name or len(name) > 120:
        raise InvalidInput("Project name must be 1 to 120 characters")
    project = Project(name=name, description=description)
    session.add(project)
    session.flush()
    assert project.id is not None and owner.id is not None
    session.add(Membership(project_id=project.id, user_id=owner.id, role=Role.owner))
    session.flush()
    return project


def projects_for(session: Session, *, user: User) -> list[tuple[Project, Role]]:
    rows = session.exec(
        select(Project, Membership.role)
        .join(Membership, col(Membership.project_id) == col(Project.id))
        .where(Membership.user_id == user.id, col(Project.deleted_at).is_(None))
        .order_by(col(Project.id))
    ).all()
    return [(p, Role(r)) for p, r in rows]


def get_project(session: Session, *, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None or project.deleted_at is not None:
        raise NotFound(f"Project {project_id} does not exist")
    return project


def _check_name(name: str) -> str:
    if not name.strip() or len(name.strip()) > 120:
        raise InvalidInput("Project name must be 1 to 120 characters")
    return name.strip()


def update_project(
    session: Session, *, project_id: int, name: str | None, description: str | None
) -> Project:
    project = get_project(session, project_id=project_id)
    if name is not None:
        project.name = _check_name(name)
    if description is not None:
        project.description = description
    session.add(project)
    return project


# Queue order across projects (services.domain.jobs): higher first. A small, bounded scale, so a
# priority says "before" or "after" and is not an arms race of ever larger numbers.
PRIORITY_RANGE = (-10, 10)


def set_priority(session: Session, *, project_id: int, priority: int) -> tuple[int, int]:
    """Set the project's dispatch priority; returns (old, new) for the audit trail.

    The caller has checked platform admin: a priority ranks a project against every other one.
    """
    low, high = PRIORITY_RANGE
    if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
        raise InvalidInput(
            f"priority must be a whole number from {low} to {high} (higher is dispatched first);"
            f" got {priority!r}"
        )
    project = get_project(session, project_id=project_id)
    old, project.priority = project.priority, priority
    session.add(project)
    return old, priority


def all_projects(session: Session) -> list[Project]:
    """Every live project, highest priority first (the order their queued jobs are dispatched in)."""
    return list(
        session.exec(
            select(Project)
            .where(Project.deleted_at.is_(None))  # type: ignore[union-attr]
            .order_by(col(Project.priority).desc(), col(Project.id))
        ).all()
    )


def delete_project(session: Session, *, project_id: int) -> None:
    """The project disappears for everyone; its rows stay for the audit trail."""
    project = get_project(session, project_id=project_id)
    project.deleted_at = utcnow()
    session.add(project)


# --- members -----------------------------------------------------------------------------------


def _membership(session: Session, *, project_id: int, user_id: int) -> Membership:
    row = session.exec(
        select(Membership).where(Membership.project_id == project_id, Membership.user_id == user_id)
    ).first()
    if row is None:
        raise NotFound(f"User {user_id} is not a member of project {project_id}")
    return row


def _owner_count(session: Session, *, project_id: int) -> int:
    return session.exec(
        select(func.count())
        .select_from(Membership)
        .where(Membership.project_id == project_id, Membership.role == Role.owner)
    ).one()


def list_members(session: Session, *, project_id: int) -> list[tuple[User, Role]]:
    """Members, owners first, then by name."""
    rows = session.exec(
        select(User, Membership.role)
        .join(Membership, col(Membership.user_id) == col(User.id))
        .where(Membership.project_id == project_id)
        .order_by(col(User.username))
    ).all()
    ranked = sorted(rows, key=lambda r: (-RANK[Role(r[1])], r[0].username))
    return [(u, Role(r)) for u, r in ranked]


def _owners_only(message: str) -> PermissionDenied:
    return PermissionDenied(message, reason="admins cannot manage owners")


def add_member(
    session: Session, *, acting: Role, project_id: int, username: str, role: Role
) -> tuple[User, Role]:
    """Add an active user with `role`; `acting` is the caller's own role (only owners add owners)."""
    if role == Role.owner and acting != Role.owner:
        raise _owners_only("Only owners can add owners")
    other = session.exec(select(User).where(User.username == username.strip())).first()
    if other is None or not other.is_active:
        raise NotFound(f"No active user named {username!r}")
    existing = session.exec(
        select(Membership).where(Membership.project_id == project_id, Membership.user_id == other.id)
    ).first()
    if existing is not None:
        raise Conflict(f"{other.username} is already a member ({existing.role}); change their role instead")
    assert other.id is not None
    session.add(Membership(project_id=project_id, user_id=other.id, role=role))
    session.flush()
    return other, role


def change_role(
    session: Session, *, acting: Role, project_id: int, user_id: int, role: Role
) -> tuple[User, Role]:
    """Give a member `role`; the member and the role they had before."""
    row = _membership(session, project_id=project_id, user_id=user_id)
    current = Role(row.role)
    if acting != Role.owner and (current == Role.owner or role == Role.owner):
        raise _owners_only("Only owners can change an owner or make one")
    if current == Role.owner and role != Role.owner and _owner_count(session, project_id=project_id) <= 1:
        raise Conflict("The last owner cannot be demoted; transfer ownership first")
    row.role = role
    session.add(row)
    other = session.get(User, user_id)
    assert other is not None
    return other, current


def remove_member(session: Session, *, acting: Role, project_id: int, user_id: int) -> None:
    """Admins remove non-owners; owners remove anyone but the last owner; anyone may leave."""
    row = _membership(session, project_id=project_id, user_id=user_id)
    if Role(row.role) == Role.owner:
        if acting != Role.owner:
            raise _owners_only("Only owners can remove an owner")
        if _owner_count(session, project_id=project_id) <= 1:
            raise Conflict("The last owner cannot be removed; transfer ownership first")
    session.delete(row)


def transfer_ownership(session: Session, *, user: User, project_id: int, user_id: int) -> None:
    """The new owner must already be a member; the old owner (`user`) stays on as admin."""
    if user_id == user.id:
        raise Conflict("You already own this project")
    row = _membership(session, project_id=project_id, user_id=user_id)
    assert user.id is not None
    mine = _membership(session, project_id=project_id, user_id=user.id)
    row.role, mine.role = Role.owner, Role.admin
    session.add(row)
    session.add(mine)
