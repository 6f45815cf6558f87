"""Request dependencies: the acting caller (`CurrentActor`), the caller's address, path ids.

`current_actor` is the one request dependency that opens a database session (briefly, to resolve
the bearer credential); the routes call services.actions, which open their own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from services.actions.core import Actor
from services.domain import audit, tokens
from services.domain.models import User
from services.errors import Unauthorized
from services.infra import ratelimit
from services.infra.db import session_scope

# auto_error=False: we answer 401 with our own message (and audit it) instead of FastAPI's 403.
_bearer = HTTPBearer(
    auto_error=False,
    description="A JWT access token from /api/v1/auth/login, or a personal API token (vtp_pat_...).",
)


# Database ids are signed 64-bit integers: a larger number in a path used to reach SQLite and fail
# there with OverflowError (a 500, found by schemathesis); now it is a 422 like any malformed input.
DB_INT_MIN, DB_INT_MAX = -(2**63), 2**63 - 1
PathId = Annotated[int, Path(ge=DB_INT_MIN, le=DB_INT_MAX)]


def client_ip(request: Request) -> str:
    """The peer address. Behind a proxy, run uvicorn with --forwarded-allow-ips so this is the client."""
    return request.client.host if request.client else ""


ClientIp = Annotated[str, Depends(client_ip)]


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _signed_in(session: Session, credentials: HTTPAuthorizationCredentials | None) -> User:
    """The bearer's user: 401 without credentials, rate limited per token, noted for the audit trail."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("Send 'Authorization: Bearer <token>' (get one from POST /api/v1/auth/login)")
    token = credentials.credentials.strip()
    user = tokens.user_for_bearer(session, token)
    audit.note_actor(user)
    ratelimit.api_call(token=token)
    return user


def current_actor(credentials: Credentials, ip: ClientIp) -> Actor:
    """Who calls, resolved once per request in a short session of its own: the action opens the
    request's one working session, so no request holds two pooled connections at once."""
    with session_scope() as session:
        return Actor.of(_signed_in(session, credentials), channel="rest", source_ip=ip)


CurrentActor = Annotated[Actor, Depends(current_actor)]


def anonymous_actor(ip: ClientIp) -> Actor:
    """The caller of an action that needs no sign-in (signing in or up, redeeming a reset token)."""
    return Actor.anonymous(channel="rest", source_ip=ip)


AnonymousActor = Annotated[Actor, Depends(anonymous_actor)]
