"""Platform administration (users, sign-up switch, the audit log) and a project's own audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import CurrentUser, PathId, SessionDep
from services.domain import audit, auth
from services.domain.permissions import Action, authorize, require_platform_admin
from services.domain.security_schemas import (
    AuditEventPublic,
    ResetTokenPublic,
    SignupSetting,
    UserAdminPublic,
    UserAdminUpdate,
)
from services.infra.settings import get_settings

router = APIRouter(tags=["admin"])

Offset = Annotated[int, Query(ge=0, le=10**9)]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/admin/users")
def list_users(
    session: SessionDep, user: CurrentUser, offset: Offset = 0, limit: Limit = 100
) -> list[UserAdminPublic]:
    return [UserAdminPublic.of(u) for u in auth.list_users(session, admin=user, offset=offset, limit=limit)]


@router.patch("/admin/users/{user_id}")
def update_user(
    user_id: PathId, body: UserAdminUpdate, session: SessionDep, user: CurrentUser
) -> UserAdminPublic:
    """(De)activate an account (which signs it out everywhere) or grant platform admin."""
    changed = auth.update_user(
        session,
        admin=user,
        user_id=user_id,
        is_active=body.is_active,
        is_platform_admin=body.is_platform_admin,
    )
    return UserAdminPublic.of(changed)


@router.post("/admin/users/{user_id}/reset-token", status_code=201)
def reset_token(user_id: PathId, session: SessionDep, user: CurrentUser) -> ResetTokenPublic:
    """A single-use password reset token to hand to the user (POST /auth/password-reset)."""
    token = auth.issue_reset_token(session, admin=user, user_id=user_id)
    return ResetTokenPublic(reset_token=token, expires_in=get_settings().password_reset_ttl_s)


@router.get("/admin/settings")
def get_platform_settings(session: SessionDep, user: CurrentUser) -> SignupSetting:
    require_platform_admin(user)
    return SignupSetting(signup_enabled=auth.signup_enabled(session))


@router.put("/admin/settings")
def put_platform_settings(body: SignupSetting, session: SessionDep, user: CurrentUser) -> SignupSetting:
    auth.set_signup_enabled(session, admin=user, enabled=body.signup_enabled)
    return SignupSetting(signup_enabled=body.signup_enabled)


@router.get("/admin/audit")
def platform_audit(
    session: SessionDep,
    user: CurrentUser,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=160)] = None,
    result: Annotated[str | None, Query(pattern="^(ok|denied|failed)$")] = None,
    project_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[AuditEventPublic]:
    """The whole audit log, newest first; `action` matches as a substring."""
    require_platform_admin(user)
    rows = audit.query(
        session,
        actor=actor,
        action=action,
        result=result,
        project_id=project_id,
        since=since,
        until=until,
        offset=offset,
        limit=limit,
    )
    return [AuditEventPublic.of(r) for r in rows]


@router.get("/projects/{project_id}/audit")
def project_audit(
    project_id: PathId,
    session: SessionDep,
    user: CurrentUser,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=160)] = None,
    result: Annotated[str | None, Query(pattern="^(ok|denied|failed)$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[AuditEventPublic]:
    """One project's audit trail, for its admins and owners."""
    authorize(session, user=user, project_id=project_id, action=Action.audit_read)
    rows = audit.query(
        session,
        actor=actor,
        action=action,
        result=result,
        project_id=project_id,
        since=since,
        until=until,
        offset=offset,
        limit=limit,
    )
    return [AuditEventPublic.of(r) for r in rows]
