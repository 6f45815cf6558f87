"""Local accounts and bearer tokens.

Passwords are argon2 hashes; API tokens are random and stored only as SHA-256, so neither the
database nor a log line ever holds a usable secret.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, select

from services.errors import Conflict, InvalidInput, Unauthorized
from services.models import ApiToken, User, utcnow
from services.settings import get_settings

_hasher = PasswordHasher()

BADGE_COLORS = ("#1d4ed8", "#047857", "#b45309", "#7c3aed", "#be123c", "#0e7490")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, *, username: str, password: str, is_platform_admin: bool = False) -> User:
    username = username.strip()
    if not 3 <= len(username) <= 64 or not username.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput("Username must be 3-64 letters, digits, '-' or '_'")
    if len(password) < 8:
        raise InvalidInput("Password must be at least 8 characters")
    if session.exec(select(User).where(User.username == username)).first():
        raise Conflict(f"Username {username!r} is taken")
    color = BADGE_COLORS[int(hashlib.sha256(username.encode()).hexdigest(), 16) % len(BADGE_COLORS)]
    user = User(
        username=username,
        password_hash=hash_password(password),
        avatar_name=username[:2].upper(),
        badge_color=color,
        is_platform_admin=is_platform_admin,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, *, username: str, password: str) -> User:
    user = session.exec(select(User).where(User.username == username.strip())).first()
    if user is None or not verify_password(user.password_hash, password):
        raise Unauthorized("Wrong username or password")
    return user


def issue_token(session: Session, *, user: User) -> str:
    token = secrets.token_urlsafe(32)
    ttl = timedelta(seconds=get_settings().access_token_ttl_s)
    session.add(ApiToken(user_id=user.id, token_hash=_token_hash(token), expires_at=utcnow() + ttl))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == _token_hash(token))).first()
    if row is None or row.expires_at < utcnow():
        raise Unauthorized("Sign in again: the token is missing, expired or revoked")
    user = session.get(User, row.user_id)
    if user is None:
        raise Unauthorized("Sign in again: the account no longer exists")
    return user


def revoke_token(session: Session, token: str) -> None:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == _token_hash(token))).first()
    if row is not None:
        session.delete(row)
