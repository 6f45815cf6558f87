"""REST API credentials: short-lived JWT access tokens, rotating refresh tokens, personal tokens.

- Access tokens are HS256 JWTs (joserfc, Authlib's JOSE library) that live minutes. They name
  their refresh family (`fam`), so signing out or a detected refresh-token theft ends them at once.
- Refresh tokens are random, stored as SHA-256, and single-use: each refresh returns a new one.
  Presenting a used one means it was copied, so the whole family is revoked (RFC 6819 5.2.2.3).
- Personal API tokens (`vtp_pat_...`) are for scripts and CI: named, hashed at rest, revocable,
  with the time they were last used.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from sqlalchemy import event, inspect
from sqlmodel import Session, col, select

from services.domain.models import ApiToken, Membership, Project, RefreshToken, User, aware, utcnow
from services.errors import InvalidInput, NotFound, Unauthorized
from services.infra import live
from services.infra.settings import get_settings

HANDOFF_TTL_S = 60  # a single-sign-on handoff code is traded for a web session within a minute

PERSONAL_PREFIX = "vtp_pat_"
REFRESH_PREFIX = "vtp_rt_"
ALGORITHM = "HS256"
# last_used_at is written at most this often per token, so reads stay reads.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def _key() -> OctKey:
    return OctKey.import_key(jwt_key())


def issue_access_token(*, user: User, family_id: str) -> tuple[str, int]:
    ttl = get_settings().jwt_access_ttl_s
    now = int(utcnow().timestamp())
    claims = {
        "sub": str(user.id),
        "iat": now,
        "exp": now + ttl,
        "fam": family_id,
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    return jwt.encode({"alg": ALGORITHM, "typ": "JWT"}, claims, _key()), ttl


def decode_access_token(token: str) -> dict[str, Any]:
    """The claims of a valid, unexpired access token; Unauthorized for anything else."""
    try:
        decoded = jwt.decode(token, _key(), algorithms=[ALGORITHM])
        jwt.JWTClaimsRegistry(
            exp={"essential": True}, sub={"essential": True}, typ={"essential": True, "value": "access"}
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise Unauthorized("Sign in again: the access token is invalid or expired") from exc
    return decoded.claims


def _user_id(user: User) -> int:
    """A saved user's id (every user passed here was loaded from or flushed to the database)."""
    assert user.id is not None
    return user.id


def _new_refresh(session: Session, *, user: User, family_id: str) -> str:
    token = REFRESH_PREFIX + secrets.token_urlsafe(32)
    ttl = timedelta(seconds=get_settings().refresh_token_ttl_s)
    session.add(
        RefreshToken(
            user_id=_user_id(user),
            family_id=family_id,
            token_hash=token_hash(token),
            expires_at=utcnow() + ttl,
        )
    )
    session.flush()
    return token


def issue_pair(session: Session, *, user: User) -> TokenPair:
    """A fresh sign-in: a new refresh family and its first access token."""
    family_id = uuid.uuid4().hex
    refresh = _new_refresh(session, user=user, family_id=family_id)
    access, ttl = issue_access_token(user=user, family_id=family_id)
    return TokenPair(access, refresh, ttl)


def revoke_family(session: Session, *, family_id: str) -> None:
    now = utcnow()
    for row in session.exec(select(RefreshToken).where(RefreshToken.family_id == family_id)).all():
        if row.revoked_at is None:
            row.revoked_at = now
            session.add(row)


def revoke_all_for_user(session: Session, *, user: User) -> None:
    """Every refresh family and web session of the user (password change, deactivation)."""
    now = utcnow()
    rows = session.exec(
        select(RefreshToken).where(RefreshToken.user_id == user.id, col(RefreshToken.revoked_at).is_(None))
    ).all()
    for row in rows:
        row.revoked_at = now
        session.add(row)
    for token in session.exec(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.kind == "session")
    ).all():
        session.delete(token)


class RefreshReused(Unauthorized):
    """A spent refresh token came back: it was copied, and its whole family is now signed out."""

    def __init__(self, user_id: int) -> None:
        super().__init__(
            "This refresh token was already used; every session from it is signed out",
            reason="refresh token reused: family revoked",
        )
        self.user_id = user_id


def rotate(session: Session, *, refresh_token: str) -> tuple[User, TokenPair]:
    """Trade a refresh token for a new pair. A reused token revokes its family and is refused.

    The revocation is committed before RefreshReused is raised, so the caller's rollback keeps it.
    """
    row = session.exec(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash(refresh_token))
    ).first()
    if row is None:
        raise Unauthorized("Unknown refresh token: sign in again", reason="unknown refresh token")
    if row.used_at is not None or row.revoked_at is not None:
        revoke_family(session, family_id=row.family_id)
        session.commit()
        raise RefreshReused(row.user_id)
    if aware(row.expires_at) < utcnow():
        raise Unauthorized("The refresh token expired: sign in again", reason="refresh token expired")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("Sign in again: the account is not active", reason="account deactivated")
    row.used_at = utcnow()
    session.add(row)
    refresh = _new_refresh(session, user=user, family_id=row.family_id)
    access, ttl = issue_access_token(user=user, family_id=row.family_id)
    return user, TokenPair(access, refresh, ttl)


def revoke_refresh(session: Session, *, refresh_token: str, user: User) -> None:
    row = session.exec(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash(refresh_token))
    ).first()
    if row is not None and row.user_id == user.id:
        revoke_family(session, family_id=row.family_id)


def family_revoked(session: Session, *, family_id: str) -> bool:
    row = session.exec(
        select(RefreshToken.id).where(
            RefreshToken.family_id == family_id, col(RefreshToken.revoked_at).is_not(None)
        )
    ).first()
    return row is not None


# --- personal API tokens -------------------------------------------------------------------------


def create_personal_token(
    session: Session, *, user: User, name: str, expires_in_days: int
) -> tuple[ApiToken, str]:
    """A new named token; the secret is returned once and only its hash is kept."""
    name = name.strip()
    if not 1 <= len(name) <= 120:
        raise InvalidInput("Token name must be 1 to 120 characters")
    limit = get_settings().personal_token_max_days
    if not 1 <= expires_in_days <= limit:
        raise InvalidInput(f"expires_in_days must be between 1 and {limit}")
    token = PERSONAL_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=_user_id(user),
        token_hash=token_hash(token),
        kind="personal",
        name=name,
        expires_at=utcnow() + timedelta(days=expires_in_days),
    )
    session.add(row)
    session.flush()
    return row, token


def list_personal_tokens(session: Session, *, user: User) -> list[ApiToken]:
    return list(
        session.exec(
            select(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.kind == "personal")
            .order_by(col(ApiToken.id))
        ).all()
    )


def revoke_personal_token(session: Session, *, user: User, token_id: int) -> None:
    """Only the token's owner may revoke it; someone else's id is NotFound (not leaked)."""
    row = session.get(ApiToken, token_id)
    if row is None or row.kind != "personal":
        raise NotFound(f"Token {token_id} does not exist", reason="no such personal token")
    if row.user_id != user.id:
        raise NotFound(f"Token {token_id} does not exist", reason="another user's token")
    session.delete(row)


def _touch(row_id: int) -> None:
    from services.infra.db import session_scope

    with session_scope() as session:
        row = session.get(ApiToken, row_id)
        if row is not None:
            row.last_used_at = utcnow()
            session.add(row)


# "Last used" is bookkeeping, written off the request path by one thread in its own transaction.
# Not in the request's session: on SQLite its write lock would block the audit trail's own
# transaction for a denial in the same request; and not in a second session the request waits
# for: requests holding two pooled connections deadlock the pool under load (200 users with the
# default pool of 15 waited out the 30 s pool timeout).
_touches = ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-touch")


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("Sign in again: the account is not active")
    return user


def user_for_bearer(session: Session, token: str) -> User:
    """Whoever a bearer credential belongs to: a JWT access token, a personal token or a web session."""
    return _bearer(session, token)[0]


def _bearer(session: Session, token: str) -> tuple[User, float]:
    """The credential's user and when the credential expires (Unix seconds)."""
    if token.startswith(PERSONAL_PREFIX):
        row = session.exec(
            select(ApiToken).where(ApiToken.token_hash == token_hash(token), ApiToken.kind == "personal")
        ).first()
        if row is None or aware(row.expires_at) < utcnow():
            raise Unauthorized("The API token is unknown, expired or revoked")
        user = _user(session, row.user_id)
        if row.last_used_at is None or utcnow() - aware(row.last_used_at) > LAST_USED_RESOLUTION:
            _touches.submit(_touch, row.id)  # type: ignore[arg-type]
        return user, aware(row.expires_at).timestamp()
    if token.count(".") == 2:
        claims = decode_access_token(token)
        user = _user(session, int(claims["sub"]))
        if family_revoked(session, family_id=str(claims.get("fam", ""))):
            raise Unauthorized("This session was signed out: sign in again")
        changed = user.password_changed_at
        if changed is not None and int(claims["iat"]) < int(aware(changed).timestamp()):
            raise Unauthorized("The password changed since this token was issued: sign in again")
        return user, float(claims["exp"])
    return _session_user(session, token)


# --- the resolved-credential cache of the REST API -------------------------------------------------
#
# Every REST request names its caller by a bearer credential, and resolving one took a session of
# its own and two or three queries (the token row, the user, the refresh family): about a fifth
# of the CPU a light request cost the web process under 200 users, who each send a request every
# second or two with the same credential. A resolved credential is therefore kept for a few
# seconds, never past its own expiry.
#
# A change that may end credentials or access (a revoked personal token, refresh family or web
# session, a password change, a deactivated or edited user, a membership or project change)
# empties the cache of the process that writes it as it is flushed and again once committed, and
# is then announced over Redis (services.infra.live) to every other web process, which empties
# its own: a revocation takes effect on every replica within moments, not seconds. A process
# keeps resolved credentials only while it is subscribed to those notices; without Redis it
# resolves every request from the database, as before. The actions still load the acting user
# and refuse a deactivated one on every request.

CREDENTIALS_CHANNEL = "credentials"


@dataclass(frozen=True)
class Identity:
    """Who a bearer credential names, as the REST API's `Actor` needs it."""

    user_id: int
    username: str


IDENTITY_TTL_S = 5.0
_IDENTITY_LIMIT = 10_000  # distinct credentials kept at most (then the cache starts over)
_identities: dict[str, tuple[float, Identity]] = {}  # token digest -> (valid until, identity)
_identities_lock = threading.Lock()
_generation = 0  # bumped whenever credentials may have ended; a resolution older than that is not kept


_listener: live.Listener | None = None


def credential_notices() -> live.Listener:
    """This process's subscription to credential changes, started on first use (and again when
    the settings name another Redis, as between test suites)."""
    global _listener
    url = get_settings().redis_dsn
    with _identities_lock:
        if _listener is None or _listener.url != url:
            if _listener is not None:
                _listener.stop()
            _listener = live.Listener(url, CREDENTIALS_CHANNEL, forget_identities)
        return _listener


def bearer_identity(token: str) -> Identity:
    """`user_for_bearer` in a session of its own, remembered for a few seconds (see above)."""
    return _remembered(token_hash(token), token, _bearer)


def web_identity(token: str) -> Identity:
    """`user_for_session` (the web UI's token only) in a session of its own, remembered the same
    way: every open page re-checks its viewer on each live update, 50 viewers of a job 50 times
    per epoch."""
    return _remembered("web:" + token_hash(token), token, _session_user)


def _remembered(key: str, token: str, resolve: Callable[[Session, str], tuple[User, float]]) -> Identity:
    from services.infra.db import session_scope

    hit = _identities.get(key)
    if hit is not None and hit[0] > time.time():
        return hit[1]
    listening = credential_notices().connected.is_set()
    generation = _generation
    with session_scope() as session:
        user, expires = resolve(session, token)
        identity = Identity(user_id=_user_id(user), username=user.username)
    with _identities_lock:
        if generation == _generation and listening:
            if len(_identities) >= _IDENTITY_LIMIT:
                _identities.clear()
            _identities[key] = (min(time.time() + IDENTITY_TTL_S, expires), identity)
    return identity


def kept_credentials() -> int:
    """How many resolved credentials this process keeps now."""
    return len(_identities)


def forget_identities() -> None:
    """Empty the cache: credentials may have ended."""
    global _generation
    with _identities_lock:
        _generation += 1
        _identities.clear()


def credentials_generation() -> int:
    """Moves whenever credentials or access may have ended (see `forget_identities`): a cache of
    anything decided from them (services.actions.jobs' viewer checks) keeps only what it decided
    under the current number."""
    return _generation


def _ends_credentials(obj: object) -> bool:
    """Whether this change of a row may end a credential or someone's access. A personal token's
    "last used" bookkeeping (written once a minute per token) does not; any other change of a
    token, user, membership or project row may."""
    if isinstance(obj, ApiToken):
        changed = {attr.key for attr in inspect(obj).attrs if attr.history.has_changes()}
        return not changed <= {"last_used_at"}
    return isinstance(obj, _ACCESS_ROWS)


_ACCESS_ROWS = (User, RefreshToken, Membership, Project)


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    deleted = any(isinstance(obj, (ApiToken, *_ACCESS_ROWS)) for obj in session.deleted)
    if deleted or any(_ends_credentials(obj) for obj in session.dirty):
        session.info["vtp_credentials_changed"] = True
        forget_identities()


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    # Again after the commit: a request that read the old rows between flush and commit must
    # not keep what it read. Then every other process.
    if session.info.pop("vtp_credentials_changed", False):
        forget_identities()
        live.publish([CREDENTIALS_CHANNEL])


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop("vtp_credentials_changed", None)


@lru_cache
def jwt_key() -> bytes:
    """The access-token signing key: the environment's, else a random one kept in a 0600 file."""
    configured = get_settings().jwt_secret
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value().encode()
    path: Path = get_settings().data_dir / "jwt_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process (web, worker) won the race: use its key
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


# --- web sessions (the Reflex UI keeps an opaque token in local storage) -------------------


def issue_session(session: Session, *, user: User) -> str:
    token = secrets.token_urlsafe(32)
    ttl = timedelta(seconds=get_settings().access_token_ttl_s)
    session.add(ApiToken(user_id=_user_id(user), token_hash=token_hash(token), expires_at=utcnow() + ttl))
    session.flush()
    return token


def issue_handoff(session: Session, *, user: User) -> str:
    """A single-use code, valid for a minute, that the sign-in page trades for a web session.

    Single sign-on ends on a REST route, but the UI's session token lives in the browser's
    local storage, which only the Reflex page can write; the code carries the sign-in across.
    """
    code = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(seconds=HANDOFF_TTL_S)
    session.add(
        ApiToken(user_id=_user_id(user), token_hash=token_hash(code), expires_at=expires, kind="handoff")
    )
    session.flush()
    return code


def redeem_handoff(session: Session, code: str) -> tuple[User, str]:
    """Spend a handoff code: the user and a new web-session token."""
    row = session.exec(
        select(ApiToken).where(ApiToken.token_hash == token_hash(code), ApiToken.kind == "handoff")
    ).first()
    if row is not None:
        session.delete(row)
        session.flush()
    user = session.get(User, row.user_id) if row is not None else None
    if row is None or aware(row.expires_at) < utcnow() or user is None or not user.is_active:
        raise Unauthorized("That sign-in link has expired or was already used. Sign in again.")
    return user, issue_session(session, user=user)


def user_for_session(session: Session, token: str) -> User:
    return _session_user(session, token)[0]


def _session_user(session: Session, token: str) -> tuple[User, float]:
    row = session.exec(
        select(ApiToken).where(ApiToken.token_hash == token_hash(token), ApiToken.kind == "session")
    ).first()
    if row is None or aware(row.expires_at) < utcnow():
        raise Unauthorized("Sign in again: the token is missing, expired or revoked")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("Sign in again: the account no longer exists or is deactivated")
    return user, aware(row.expires_at).timestamp()


def revoke_session(session: Session, token: str) -> None:
    row = session.exec(
        select(ApiToken).where(ApiToken.token_hash == token_hash(token), ApiToken.kind == "session")
    ).first()
    if row is not None:
        session.delete(row)
