"""Local accounts: sign-up, sign-in, web sessions, password change and reset, avatars.

Passwords are argon2 hashes (argon2-cffi). Web-session tokens, reset tokens and API tokens are
random and stored only as SHA-256, so neither the database nor a log line holds a usable secret.
Sign-in attempts are rate limited per account and per IP (services.infra.ratelimit) before the password
is even checked. Nothing here authorizes or audits: services.actions.accounts and .admin do, and
every refusal raised here carries its `reason` for the audit row the action writes.
"""

from __future__ import annotations

import functools
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from services.domain import tokens
from services.domain.avatars import (
    check_avatar_name,
    check_badge,
    default_avatar_name,
    default_badge_color,
)
from services.domain.models import PasswordResetToken, PlatformSetting, User, aware, utcnow
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthorized
from services.infra import ratelimit
from services.infra.settings import get_settings


@functools.cache
def _hasher(profile: str) -> PasswordHasher:
    return PasswordHasher.from_parameters(getattr(profiles, profile))


@functools.cache
def _dummy_hash(profile: str) -> str:
    """A hash to verify against when the account does not exist, so timing does not reveal
    usernames. It has the profile's cost, like every fresh hash."""
    return _hasher(profile).hash(secrets.token_urlsafe(16))


def _profile() -> str:
    return get_settings().password_hash_profile


SIGNUP_SETTING = "signup_enabled"
_USERNAME = re.compile(r"^[A-Za-z0-9_-]{3,64}$")


def hash_password(password: str) -> str:
    return _hasher(_profile()).hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Any argon2 hash verifies (its parameters are in the hash), whatever the profile now."""
    try:
        return _hasher(_profile()).verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidInput("Password must be at least 8 characters")
    if len(password) > 256:
        raise InvalidInput("Password must be at most 256 characters")


# --- accounts ----------------------------------------------------------------------------------


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    is_platform_admin: bool = False,
    email: str | None = None,
) -> User:
    username = username.strip()
    if not _USERNAME.match(username):
        raise InvalidInput("Username must be 3-64 letters, digits, '-' or '_'")
    _check_password(password)
    if session.exec(select(User).where(User.username == username)).first():
        raise Conflict(f"Username {username!r} is taken")
    user = User(
        username=username,
        email=email,
        password_hash=hash_password(password),
        avatar_name=default_avatar_name(username),
        badge_color=default_badge_color(username),
        is_platform_admin=is_platform_admin,
    )
    session.add(user)
    session.flush()
    return user


def signup_enabled(session: Session) -> bool:
    row = session.get(PlatformSetting, SIGNUP_SETTING)
    return get_settings().signup_enabled if row is None else row.value == "true"


def set_signup_enabled(session: Session, *, enabled: bool) -> None:
    row = session.get(PlatformSetting, SIGNUP_SETTING) or PlatformSetting(key=SIGNUP_SETTING, value="")
    row.value, row.updated_at = ("true" if enabled else "false"), utcnow()
    session.add(row)


def sign_up(session: Session, *, username: str, password: str, email: str | None, source_ip: str) -> User:
    """Self-service account creation, when a platform admin has not switched it off."""
    if not signup_enabled(session):
        raise PermissionDenied(
            "Sign-up is switched off on this platform; ask an administrator", reason="sign-up switched off"
        )
    ratelimit.hit(
        get_settings().signup_limit_per_ip,
        "signup-ip",
        source_ip,
        message="Too many sign-ups from this address",
    )
    return create_user(session, username=username, password=password, email=email)


def authenticate(session: Session, *, username: str, password: str, source_ip: str = "") -> User:
    """Check a password, with a per-account and per-IP lockout after repeated failures.

    Raises RateLimited (reason "locked out") or Unauthorized (reason "wrong password" or
    "account deactivated"; the caller is told only "Wrong username or password").
    """
    username = username.strip()
    try:
        ratelimit.check_login(username=username, source_ip=source_ip)
    except ratelimit.RateLimited as exc:
        exc.reason = "locked out"
        raise
    user = session.exec(select(User).where(User.username == username)).first()
    stored = user.password_hash if user else _dummy_hash(_profile())
    ok = verify_password(stored, password) and user is not None
    if not ok or user is None or not user.is_active:
        ratelimit.login_failed(username=username, source_ip=source_ip)
        reason = "wrong password" if user is None or not ok else "account deactivated"
        raise Unauthorized("Wrong username or password", reason=reason)
    ratelimit.login_succeeded(username=username)
    # A changed profile reaches each stored hash at its owner's next sign-in (the password is
    # known only then).
    if _hasher(_profile()).check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.add(user)
    return user


def change_password(session: Session, *, user: User, current_password: str, new_password: str) -> None:
    """Change a password and sign out every other session and refresh family of the user."""
    if not verify_password(user.password_hash, current_password):
        raise Unauthorized("The current password is wrong", reason="wrong current password")
    _set_password(session, user=user, password=new_password)


def _set_password(session: Session, *, user: User, password: str) -> None:
    _check_password(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    session.add(user)
    tokens.revoke_all_for_user(session, user=user)


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist")
    return user


def issue_reset_token(session: Session, *, user_id: int) -> str:
    """A single-use reset token a platform admin hands to a user (there is no mail server)."""
    get_user(session, user_id)  # NotFound for an unknown id
    token = "vtp_reset_" + secrets.token_urlsafe(32)
    ttl = timedelta(seconds=get_settings().password_reset_ttl_s)
    session.add(
        PasswordResetToken(user_id=user_id, token_hash=tokens.token_hash(token), expires_at=utcnow() + ttl)
    )
    session.flush()
    return token


def reset_password(session: Session, *, token: str, new_password: str) -> User:
    """Spend a reset token and set the password; the user whose password it was."""
    row = session.exec(
        select(PasswordResetToken).where(PasswordResetToken.token_hash == tokens.token_hash(token))
    ).first()
    user = session.get(User, row.user_id) if row is not None else None
    if row is None or user is None or row.used_at is not None or aware(row.expires_at) < utcnow():
        raise Unauthorized(
            "The reset token is unknown, used or expired", reason="unknown, used or expired token"
        )
    _set_password(session, user=user, password=new_password)
    row.used_at = utcnow()
    session.add(row)
    return user


def update_profile(
    session: Session, *, user: User, avatar_name: str | None = None, badge_color: str | None = None
) -> User:
    if avatar_name is not None:
        user.avatar_name = check_avatar_name(avatar_name)
    if badge_color is not None:
        user.badge_color = check_badge(badge_color)
    session.add(user)
    return user


# --- platform administration (the caller has checked the platform-admin flag) ------------------


def list_users(session: Session, *, offset: int = 0, limit: int = 100) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.id)).offset(offset).limit(limit)).all())


def update_user(
    session: Session,
    *,
    admin: User,
    user_id: int,
    is_active: bool | None = None,
    is_platform_admin: bool | None = None,
) -> User:
    """(De)activate an account or grant the platform-admin flag, never so as to lock `admin` out."""
    user = get_user(session, user_id)
    if user.id == admin.id and (is_active is False or is_platform_admin is False):
        raise Conflict("You cannot deactivate yourself or drop your own platform-admin flag")
    if is_active is not None:
        user.is_active = is_active
        if not is_active:
            tokens.revoke_all_for_user(session, user=user)
    if is_platform_admin is not None:
        user.is_platform_admin = is_platform_admin
    session.add(user)
    return user


def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and not target.startswith("/login"):
        return target
    return "/"
