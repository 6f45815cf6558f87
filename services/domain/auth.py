"""Local accounts: sign-up, sign-in, web sessions, password change and reset, avatars.

Passwords are argon2 hashes (argon2-cffi). Web-session tokens, reset tokens and API tokens are
random and stored only as SHA-256, so neither the database nor a log line holds a usable secret.
Sign-in attempts are rate limited per account and per IP (services.infra.ratelimit) before the password
is even checked, and every refusal is audited.
"""

from __future__ import annotations

import colorsys
import hashlib
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from services.domain import audit, tokens
from services.domain.models import PasswordResetToken, PlatformSetting, User, utcnow
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthorized
from services.infra import ratelimit
from services.infra.settings import get_settings

_hasher = PasswordHasher()
# A hash to verify against when the account does not exist, so timing does not reveal usernames.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

BADGE_TEXT_COLOR = "#ffffff"
MIN_CONTRAST = 4.5  # WCAG AA for normal text: the avatar's initials on its badge colour
SIGNUP_SETTING = "signup_enabled"
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_USERNAME = re.compile(r"^[A-Za-z0-9_-]{3,64}$")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- avatar defaults ---------------------------------------------------------------------------


def _luminance(color: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2 contrast ratio between two #rrggbb colours (1 to 21)."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def default_badge_color(username: str) -> str:
    """A stable hue from the name, darkened until white initials on it pass WCAG AA."""
    hue = int(hashlib.sha256(username.encode()).hexdigest(), 16) % 360 / 360
    lightness = 0.5
    while True:
        r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.65)
        color = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
        if contrast_ratio(color, BADGE_TEXT_COLOR) >= MIN_CONTRAST or lightness <= 0.1:
            return color
        lightness -= 0.02


def default_avatar_name(username: str) -> str:
    """Initials: 'jane_doe' -> 'JD', 'alice' -> 'AL'."""
    parts = [p for p in re.split(r"[-_]+", username) if p]
    initials = "".join(p[0] for p in parts[:2]) if len(parts) > 1 else username[:2]
    return initials.upper()


def _check_badge(color: str) -> str:
    if not _HEX.match(color):
        raise InvalidInput("badge_color must look like #1d4ed8")
    ratio = contrast_ratio(color, BADGE_TEXT_COLOR)
    if ratio < MIN_CONTRAST:
        raise InvalidInput(
            f"badge_color {color} gives white initials a contrast of {ratio:.2f}:1; "
            f"choose a darker colour (at least {MIN_CONTRAST}:1)"
        )
    return color.lower()


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


def set_signup_enabled(session: Session, *, admin: User, enabled: bool) -> None:
    from services.domain.permissions import require_platform_admin

    require_platform_admin(admin)
    row = session.get(PlatformSetting, SIGNUP_SETTING) or PlatformSetting(key=SIGNUP_SETTING, value="")
    row.value, row.updated_at = ("true" if enabled else "false"), utcnow()
    session.add(row)
    audit.record(
        session,
        actor=admin,
        action="platform.signup",
        target="setting:signup_enabled",
        detail=f"enabled={enabled}",
    )


def sign_up(session: Session, *, username: str, password: str, email: str | None, source_ip: str) -> User:
    """Self-service account creation, when a platform admin has not switched it off."""
    if not signup_enabled(session):
        audit.denied(actor=None, action="auth.signup", target=f"username:{username[:64]}", detail="disabled")
        raise PermissionDenied("Sign-up is switched off on this platform; ask an administrator")
    ratelimit.hit(
        get_settings().signup_limit_per_ip,
        "signup-ip",
        source_ip,
        message="Too many sign-ups from this address",
    )
    user = create_user(session, username=username, password=password, email=email)
    audit.record(session, actor=user, action="auth.signup", target=f"user:{user.id}")
    return user


def authenticate(session: Session, *, username: str, password: str, source_ip: str = "") -> User:
    """Check a password, with a per-account and per-IP lockout after repeated failures."""
    username = username.strip()
    try:
        ratelimit.check_login(username=username, source_ip=source_ip)
    except ratelimit.RateLimited:
        audit.denied(actor=None, action="auth.login", target=f"username:{username[:64]}", detail="locked out")
        raise
    user = session.exec(select(User).where(User.username == username)).first()
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    if not ok or user is None or not user.is_active:
        ratelimit.login_failed(username=username, source_ip=source_ip)
        audit.denied(
            actor=user,
            action="auth.login",
            target=f"username:{username[:64]}",
            detail="wrong password" if user is None or not ok else "account deactivated",
        )
        raise Unauthorized("Wrong username or password")
    ratelimit.login_succeeded(username=username)
    audit.note_actor(user)
    return user


def change_password(session: Session, *, user: User, current_password: str, new_password: str) -> None:
    """Change a password and sign out every other session and refresh family of the user."""
    if not verify_password(user.password_hash, current_password):
        audit.denied(
            actor=user,
            action="auth.password_change",
            target=f"user:{user.id}",
            detail="wrong current password",
        )
        raise Unauthorized("The current password is wrong")
    _set_password(session, user=user, password=new_password)
    audit.record(session, actor=user, action="auth.password_change", target=f"user:{user.id}")


def _set_password(session: Session, *, user: User, password: str) -> None:
    _check_password(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    session.add(user)
    tokens.revoke_all_for_user(session, user=user)


def issue_reset_token(session: Session, *, admin: User, user_id: int) -> str:
    """A single-use reset token a platform admin hands to a user (there is no mail server)."""
    from services.domain.permissions import require_platform_admin

    require_platform_admin(admin)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist")
    token = "vtp_reset_" + secrets.token_urlsafe(32)
    ttl = timedelta(seconds=get_settings().password_reset_ttl_s)
    session.add(
        PasswordResetToken(user_id=user.id, token_hash=tokens.token_hash(token), expires_at=utcnow() + ttl)
    )
    audit.record(session, actor=admin, action="admin.password_reset_token", target=f"user:{user.id}")
    session.flush()
    return token


def reset_password(session: Session, *, token: str, new_password: str) -> None:
    row = session.exec(
        select(PasswordResetToken).where(PasswordResetToken.token_hash == tokens.token_hash(token))
    ).first()
    if row is None or row.used_at is not None or tokens.aware(row.expires_at) < utcnow():
        audit.denied(actor=None, action="auth.password_reset", detail="unknown, used or expired token")
        raise Unauthorized("The reset token is unknown, used or expired")
    user = session.get(User, row.user_id)
    if user is None:
        raise Unauthorized("The reset token is unknown, used or expired")
    _set_password(session, user=user, password=new_password)
    row.used_at = utcnow()
    session.add(row)
    audit.record(session, actor=user, action="auth.password_reset", target=f"user:{user.id}")


def update_profile(
    session: Session, *, user: User, avatar_name: str | None = None, badge_color: str | None = None
) -> User:
    if avatar_name is not None:
        avatar_name = avatar_name.strip()
        if not 1 <= len(avatar_name) <= 3:
            raise InvalidInput("avatar_name must be 1 to 3 characters (initials)")
        user.avatar_name = avatar_name
    if badge_color is not None:
        user.badge_color = _check_badge(badge_color)
    session.add(user)
    audit.record(session, actor=user, action="user.profile", target=f"user:{user.id}")
    return user


# --- platform administration -------------------------------------------------------------------


def list_users(session: Session, *, admin: User, offset: int = 0, limit: int = 100) -> list[User]:
    from services.domain.permissions import require_platform_admin

    require_platform_admin(admin)
    return list(session.exec(select(User).order_by(col(User.id)).offset(offset).limit(limit)).all())


def update_user(
    session: Session,
    *,
    admin: User,
    user_id: int,
    is_active: bool | None = None,
    is_platform_admin: bool | None = None,
) -> User:
    """Platform admins (de)activate accounts and grant the platform-admin flag, never to lock out all."""
    from services.domain.permissions import require_platform_admin

    require_platform_admin(admin)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist")
    if user.id == admin.id and (is_active is False or is_platform_admin is False):
        raise Conflict("You cannot deactivate yourself or drop your own platform-admin flag")
    if is_active is not None:
        user.is_active = is_active
        if not is_active:
            tokens.revoke_all_for_user(session, user=user)
    if is_platform_admin is not None:
        user.is_platform_admin = is_platform_admin
    session.add(user)
    audit.record(
        session,
        actor=admin,
        action="admin.user_update",
        target=f"user:{user.id}",
        detail=f"is_active={user.is_active} is_platform_admin={user.is_platform_admin}",
    )
    return user


def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and not target.startswith("/login"):
        return target
    return "/"
