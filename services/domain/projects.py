"""Projects and their memberships: create, rename, delete, members and their roles, ownership.

Rules beyond the action table of `services.domain.permissions`:
- admins manage members but never owners: they cannot add, promote to, demote or remove an owner;
- the last owner can be neither removed nor demoted (transfer ownership first);
- anyone may leave a project themselves, except its last owner.
Every change is audited in the same transaction as the change.
"""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from services.domain import audit
from services.domain.models import Membership, Project, Role, User, utcnow
from services.domain.permissions import RANK, Action, authorize
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied


def create_project(session: Session, *, owner: User, name: str, description: str = "") -> Project:
    name = name.strip()
    if not name or len(name) > 120:
        raise InvalidInput("Project name must be 1 to 120 characters")
    project = Project(name=name, description=description)
    session.add(project)
    session.flush()
    session.add(Membership(project_id=project.id, user_id=owner.id, role=Role.owner))
    audit.record(
        session, actor=owner, action="project.create", target=f"project:{project.id}", project_id=project.id
    )
    session.flush()
    return project


def projects_for(session: Session, *, user: User) -> list[tuple[Project, Role]]:
    rows = session.exec(
        select(Project, Membership.role)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == user.id, col(Project.deleted_at).is_(None))
        .order_by(Project.id)
    ).all()
    return [(p, Role(r)) for p, r in rows]


def get_project(session: Session, *, user: User, project_id: int) -> tuple[Project, Role]:
    role = authorize(session, user=user, project_id=project_id, action=Action.project_read)
    project = session.get(Project, project_id)
    assert project is not None
    return project, role


def update_project(
    session: Session, *, user: User, project_id: int, name: str | None, description: str | None
) -> tuple[Project, Role]:
    role = authorize(session, user=user, project_id=project_id, action=Action.project_update)
    project = session.get(Project, project_id)
    assert project is not None
    if name is not None:
        if not name.strip() or len(name.strip()) > 120:
            raise InvalidInput("Project name must be 1 to 120 characters")
        project.name = name.strip()
    if description is not None:
        project.description = description
    session.add(project)
    audit.record(
        session, actor=user, action="project.update", target=f"project:{project_id}", project_id=project_id
    )
    return project, role


def delete_project(session: Session, *, user: User, project_id: int) -> None:
    """Owners only. The project disappears for everyone; its rows stay for the audit trail."""
    authorize(session, user=user, project_id=project_id, action=Action.project_delete)
    project = session.get(Project, project_id)
    assert project is not None
    project.deleted_at = utcnow()
    session.add(project)
    audit.record(
        session, actor=user, action="project.delete", target=f"project:{project_id}", project_id=project_id
    )


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


def list_members(session: Session, *, user: User, project_id: int) -> list[tuple[User, Role]]:
    authorize(session, user=user, project_id=project_id, action=Action.members_read)
    rows = session.exec(
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.project_id == project_id)
        .order_by(col(User.username))
    ).all()
    ranked = sorted(rows, key=lambda r: (-RANK[Role(r[1])], r[0].username))
    return [(u, Role(r)) for u, r in ranked]


def _deny(user: User, project_id: int, action: str, target: str, message: str) -> PermissionDenied:
    audit.denied(actor=user, action=action, target=target, project_id=project_id, detail=message)
    return PermissionDenied(message)


def add_member(
    session: Session, *, user: User, project_id: int, username: str, role: Role
) -> tuple[User, Role]:
    acting = authorize(session, user=user, project_id=project_id, action=Action.members_manage)
    if role == Role.owner and acting != Role.owner:
        raise _deny(user, project_id, "members.add", f"username:{username}", "Only owners can add owners")
    other = session.exec(select(User).where(User.username == username.strip())).first()
    if other is None or not other.is_active:
        raise NotFound(f"No active user named {username!r}")
    existing = session.exec(
        select(Membership).where(Membership.project_id == project_id, Membership.user_id == other.id)
    ).first()
    if existing is not None:
        raise Conflict(f"{other.username} is already a member ({existing.role}); change their role instead")
    session.add(Membership(project_id=project_id, user_id=other.id, role=role))
    audit.record(
        session,
        actor=user,
        action="members.add",
        target=f"user:{other.id}",
        project_id=project_id,
        detail=f"role={role.value}",
    )
    session.flush()
    return other, role


def change_role(
    session: Session, *, user: User, project_id: int, user_id: int, role: Role
) -> tuple[User, Role]:
    acting = authorize(session, user=user, project_id=project_id, action=Action.members_manage)
    row = _membership(session, project_id=project_id, user_id=user_id)
    current = Role(row.role)
    target = f"user:{user_id}"
    if acting != Role.owner and (current == Role.owner or role == Role.owner):
        raise _deny(user, project_id, "members.role", target, "Only owners can change an owner or make one")
    if current == Role.owner and role != Role.owner and _owner_count(session, project_id=project_id) <= 1:
        raise Conflict("The last owner cannot be demoted; transfer ownership first")
    row.role = role
    session.add(row)
    audit.record(
        session,
        actor=user,
        action="members.role",
        target=target,
        project_id=project_id,
        detail=f"{current.value} -> {role.value}",
    )
    other = session.get(User, user_id)
    assert other is not None
    return other, role


def remove_member(session: Session, *, user: User, project_id: int, user_id: int) -> None:
    """Admins remove non-owners; owners remove anyone but the last owner; anyone may leave."""
    target = f"user:{user_id}"
    if user_id == user.id:
        acting = authorize(session, user=user, project_id=project_id, action=Action.members_read)
    else:
        acting = authorize(session, user=user, project_id=project_id, action=Action.members_manage)
    row = _membership(session, project_id=project_id, user_id=user_id)
    if Role(row.role) == Role.owner:
        if acting != Role.owner:
            raise _deny(user, project_id, "members.remove", target, "Only owners can remove an owner")
        if _owner_count(session, project_id=project_id) <= 1:
            raise Conflict("The last owner cannot be removed; transfer ownership first")
    session.delete(row)
    audit.record(session, actor=user, action="members.remove", target=target, project_id=project_id)


def transfer_ownership(session: Session, *, user: User, project_id: int, user_id: int) -> None:
    """The new owner must already be a member; the old owner stays on as admin."""
    authorize(session, user=user, project_id=project_id, action=Action.project_transfer)
    if user_id == user.id:
        raise Conflict("You already own this project")
    row = _membership(session, project_id=project_id, user_id=user_id)
    mine = _membership(session, project_id=project_id, user_id=user.id)
    row.role, mine.role = Role.owner, Role.admin
    session.add(row)
    session.add(mine)
    audit.record(
        session, actor=user, action="project.transfer", target=f"user:{user_id}", project_id=project_id
    )
