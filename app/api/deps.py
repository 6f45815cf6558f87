"""Request dependencies: database session, the signed-in user, the caller's address."""

from __future__ import annotations

from collections.abc import Iterator
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


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


# scope="function": commit before the response is sent. By default FastAPI runs a yield
# dependency's exit code after sending, so a client could get its 201 and, on its very next
# request, not find what it just created (seen as a flaky 404 under load).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

# Database ids are signed 64-bit integers: a larger number in a path used to reach SQLite and fail
# there with OverflowError (a 500, found by schemathesis); now it is a 422 like any malformed input.
DB_INT_MIN, DB_INT_MAX = -(2**63), 2**63 - 1
PathId = Annotated[int, Path(ge=DB_INT_MIN, le=DB_INT_MAX)]


def client_ip(request: Request) -> str:
    """The peer address. Behind a proxy, run uvicorn with --forwarded-allow-ips so this is the client."""
    return request.client.host if request.client else ""


ClientIp = Annotated[str, Depends(client_ip)]


def current_user(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("Send 'Authorization: Bearer <token>' (get one from POST /api/v1/auth/login)")
    token = credentials.credentials.strip()
    user = tokens.user_for_bearer(session, token)
    audit.note_actor(user)
    ratelimit.api_call(token=token)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def current_actor(user: CurrentUser, ip: ClientIp) -> Actor:
    return Actor.of(user, channel="rest", source_ip=ip)


CurrentActor = Annotated[Actor, Depends(current_actor)]
