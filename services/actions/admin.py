"""Platform administration (accounts, the sign-up switch, reset tokens, the whole audit log) and a
project's own audit trail. Platform actions need the platform-admin flag (`require_platform_admin`);
a project's trail needs Action.audit_read in that project.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from services.actions.core import Actor, Audit, operation
from services.domain import audit, auth, projects
from services.domain.permissions import Action
from services.domain.security_schemas import AuditEventPublic, ProjectAdminPublic, UserAdminPublic


def list_users(actor: Actor, *, offset: int = 0, limit: int = 100) -> list[UserAdminPublic]:
    with operation(actor, "admin.users", record=Audit.refusals) as op:
        op.require_platform_admin()
        return [UserAdminPublic.of(u) for u in auth.list_users(op.session, offset=offset, limit=limit)]


@dataclass(frozen=True)
class Overview:
    """The administration page's first screen: the sign-up switch and the accounts."""

    signup_enabled: bool
    users: list[UserAdminPublic]


def overview(actor: Actor, *, limit: int = 500) -> Overview:
    with operation(actor, "admin.users", record=Audit.refusals) as op:
        op.require_platform_admin()
        return Overview(
            signup_enabled=auth.signup_enabled(op.session),
            users=[UserAdminPublic.of(u) for u in auth.list_users(op.session, limit=limit)],
        )


def update_user(
    actor: Actor, *, user_id: int, is_active: bool | None = None, is_platform_admin: bool | None = None
) -> UserAdminPublic:
    """(De)activate an account (which signs it out everywhere) or grant platform admin; never one's own."""
    with operation(actor, "admin.user_update", target=f"user:{user_id}") as op:
        op.require_platform_admin()
        user = auth.update_user(
            op.session,
            admin=op.me,
            user_id=user_id,
            is_active=is_active,
            is_platform_admin=is_platform_admin,
        )
        op.detail = f"is_active={user.is_active} is_platform_admin={user.is_platform_admin}"
        return UserAdminPublic.of(user)


def issue_reset_token(actor: Actor, *, user_id: int) -> str:
    """A single-use password reset token to hand to the user (there is no mail server)."""
    with operation(actor, "admin.password_reset_token", target=f"user:{user_id}") as op:
        op.require_platform_admin()
        return auth.issue_reset_token(op.session, user_id=user_id)


def list_projects(actor: Actor) -> list[ProjectAdminPublic]:
    """Every live project with its dispatch priority, in dispatch order."""
    with operation(actor, "admin.projects", record=Audit.refusals) as op:
        op.require_platform_admin()
        return [
            ProjectAdminPublic(id=p.id or 0, name=p.name, priority=p.priority)
            for p in projects.all_projects(op.session)
        ]


def set_project_priority(actor: Actor, *, project_id: int, priority: int) -> ProjectAdminPublic:
    """Platform admins only: a project's priority ranks its queued jobs against every other
    project's, so no project admin may raise their own. Audited with the old and new value."""
    with operation(
        actor, "admin.project_priority", target=f"project:{project_id}", project_id=project_id
    ) as op:
        op.require_platform_admin()
        old, new = projects.set_priority(op.session, project_id=project_id, priority=priority)
        op.detail = f"priority {old} -> {new}"
        project = projects.get_project(op.session, project_id=project_id)
        return ProjectAdminPublic(id=project_id, name=project.name, priority=new)


def signup_enabled(actor: Actor) -> bool:
    with operation(actor, "admin.settings", record=Audit.refusals) as op:
        op.require_platform_admin()
        return auth.signup_enabled(op.session)


def set_signup_enabled(actor: Actor, *, enabled: bool) -> bool:
    with operation(actor, "platform.signup", target="setting:signup_enabled") as op:
        op.require_platform_admin()
        auth.set_signup_enabled(op.session, enabled=enabled)
        op.detail = f"enabled={enabled}"
        return enabled


@dataclass(frozen=True)
class AuditFilter:
    """What the audit log is narrowed to; `action` matches as a substring ('members' finds all)."""

    actor: str | None = None
    action: str | None = None
    result: str | None = None
    project_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def _query(
    session: Session, found: AuditFilter, *, project_id: int | None, offset: int, limit: int
) -> list[AuditEventPublic]:
    rows = audit.query(
        session,
        actor=found.actor,
        action=found.action,
        result=found.result,
        project_id=project_id,
        since=found.since,
        until=found.until,
        offset=offset,
        limit=limit,
    )
    return [AuditEventPublic.of(r) for r in rows]


def audit_log(
    actor: Actor, *, filters: AuditFilter, offset: int = 0, limit: int = 100
) -> list[AuditEventPublic]:
    """The whole audit log, newest first."""
    with operation(actor, "admin.audit", record=Audit.refusals) as op:
        op.require_platform_admin()
        return _query(op.session, filters, project_id=filters.project_id, offset=offset, limit=limit)


def project_audit(
    actor: Actor, *, project_id: int, filters: AuditFilter, offset: int = 0, limit: int = 100
) -> list[AuditEventPublic]:
    """One project's audit trail, for its admins and owners."""
    with operation(actor, "audit.read", target=f"project:{project_id}", record=Audit.refusals) as op:
        op.authorize(Action.audit_read, project_id=project_id)
        return _query(op.session, filters, project_id=project_id, offset=offset, limit=limit)
