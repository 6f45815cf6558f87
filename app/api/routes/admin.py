"""Platform administration (users, sign-up switch, the audit log) and a project's own audit trail.

Parse, call services.actions.admin, shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import CurrentActor, PathId
from services.actions import admin
from services.actions.admin import AuditFilter
from services.domain.security_schemas import (
    AuditEventPublic,
    ProjectAdminPublic,
    ProjectPriorityUpdate,
    ResetTokenPublic,
    SignupSetting,
    UserAdminPublic,
    UserAdminUpdate,
)
from services.infra.settings import get_settings

router = APIRouter(tags=["admin"])

Offset = Annotated[int, Query(ge=0, le=10**9)]
Limit = Annotated[int, Query(ge=1, le=500)]
ActionName = Annotated[str | None, Query(max_length=160)]
Result = Annotated[str | None, Query(pattern="^(ok|denied|failed)$")]


@router.get("/admin/users")
def list_users(actor: CurrentActor, offset: Offset = 0, limit: Limit = 100) -> list[UserAdminPublic]:
    return admin.list_users(actor, offset=offset, limit=limit)


@router.patch("/admin/users/{user_id}")
def update_user(user_id: PathId, body: UserAdminUpdate, actor: CurrentActor) -> UserAdminPublic:
    """(De)activate an account (which signs it out everywhere) or grant platform admin."""
    return admin.update_user(
        actor, user_id=user_id, is_active=body.is_active, is_platform_admin=body.is_platform_admin
    )


@router.post("/admin/users/{user_id}/reset-token", status_code=201)
def reset_token(user_id: PathId, actor: CurrentActor) -> ResetTokenPublic:
    """A single-use password reset token to hand to the user (POST /auth/password-reset)."""
    token = admin.issue_reset_token(actor, user_id=user_id)
    return ResetTokenPublic(reset_token=token, expires_in=get_settings().password_reset_ttl_s)


@router.get("/admin/projects")
def list_projects(actor: CurrentActor) -> list[ProjectAdminPublic]:
    """Every project with its dispatch priority, in the order their queued jobs are dispatched."""
    return admin.list_projects(actor)


@router.put("/admin/projects/{project_id}/priority")
def set_project_priority(
    project_id: PathId, body: ProjectPriorityUpdate, actor: CurrentActor
) -> ProjectAdminPublic:
    """Queued jobs of higher-priority projects are dispatched first, then by submission time."""
    return admin.set_project_priority(actor, project_id=project_id, priority=body.priority)


@router.get("/admin/settings")
def get_platform_settings(actor: CurrentActor) -> SignupSetting:
    return SignupSetting(signup_enabled=admin.signup_enabled(actor))


@router.put("/admin/settings")
def put_platform_settings(body: SignupSetting, actor: CurrentActor) -> SignupSetting:
    return SignupSetting(signup_enabled=admin.set_signup_enabled(actor, enabled=body.signup_enabled))


@router.get("/admin/audit")
def platform_audit(
    actor: CurrentActor,
    by: Annotated[str | None, Query(alias="actor", max_length=64)] = None,
    action: ActionName = None,
    result: Result = None,
    project_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[AuditEventPublic]:
    """The whole audit log, newest first; `action` matches as a substring."""
    filters = AuditFilter(by, action, result, project_id, since, until)
    return admin.audit_log(actor, filters=filters, offset=offset, limit=limit)


@router.get("/projects/{project_id}/audit")
def project_audit(
    project_id: PathId,
    actor: CurrentActor,
    by: Annotated[str | None, Query(alias="actor", max_length=64)] = None,
    action: ActionName = None,
    result: Result = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[AuditEventPublic]:
    """One project's audit trail, for its admins and owners."""
    filters = AuditFilter(by, action, result, project_id, since, until)
    return admin.project_audit(actor, project_id=project_id, filters=filters, offset=offset, limit=limit)
