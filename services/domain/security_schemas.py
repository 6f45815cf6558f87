"""Public shapes of the accounts, tokens, members and audit API (pydantic validates every input)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.domain.models import ApiToken, AuditEvent, Role, User

USERNAME = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
PASSWORD = Field(min_length=8, max_length=256)


class TokenPairPublic(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds the access token stays valid.")


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=200)


class SignupRequest(BaseModel):
    username: str = USERNAME
    password: str = PASSWORD
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = PASSWORD


class PasswordReset(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    new_password: str = PASSWORD


class ResetTokenPublic(BaseModel):
    reset_token: str
    expires_in: int


class ProfileUpdate(BaseModel):
    avatar_name: str | None = Field(default=None, min_length=1, max_length=3)
    badge_color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")


class UserAdminPublic(BaseModel):
    id: int
    username: str
    email: str | None
    avatar_name: str
    badge_color: str
    is_platform_admin: bool
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserAdminPublic:
        return cls.model_validate(user.model_dump(exclude={"password_hash"}))


class UserAdminUpdate(BaseModel):
    is_active: bool | None = None
    is_platform_admin: bool | None = None


class PersonalTokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    expires_in_days: int = Field(default=90, ge=1, le=366)


class PersonalTokenPublic(BaseModel):
    id: int
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> PersonalTokenPublic:
        assert row.id is not None
        return cls(
            id=row.id,
            name=row.name,
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
        )


class PersonalTokenCreated(PersonalTokenPublic):
    token: str = Field(description="Shown once; only its hash is kept.")


class ProjectUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    description: str | None = Field(default=None, max_length=2000)


class MemberPublic(BaseModel):
    user_id: int
    username: str
    avatar_name: str
    badge_color: str
    role: Role

    @classmethod
    def of(cls, user: User, role: Role) -> MemberPublic:
        assert user.id is not None
        return cls(
            user_id=user.id,
            username=user.username,
            avatar_name=user.avatar_name,
            badge_color=user.badge_color,
            role=role,
        )


class MemberAdd(BaseModel):
    username: str = USERNAME
    role: Role = Role.member


class RoleChange(BaseModel):
    role: Role


class OwnershipTransfer(BaseModel):
    user_id: int = Field(ge=1)


class SignupSetting(BaseModel):
    signup_enabled: bool


class ProjectPriorityUpdate(BaseModel):
    # Range checked in services.domain.projects.set_priority, whose message says what to send.
    priority: int


class ProjectAdminPublic(BaseModel):
    """A project as the platform admin ranks it against the others."""

    id: int
    name: str
    priority: int


class AuditEventPublic(BaseModel):
    id: int
    at: datetime
    actor_id: int | None
    actor: str
    action: str
    target: str
    project_id: int | None
    result: str
    status_code: int | None
    detail: str
    source_ip: str

    @classmethod
    def of(cls, row: AuditEvent) -> AuditEventPublic:
        return cls.model_validate(row.model_dump())
