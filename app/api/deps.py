"""Request dependencies: the acting caller (`CurrentActor`), the caller's address, path ids.

`current_actor` is the one request dependency that opens a database session (briefly, to resolve
the bearer credential); the routes call services.actions, which open their own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.actions.core import Actor
from services.domain import audit, tokens
from services.errors import Unauthorized
from services.infra import ratelimit

# auto_error=False: we answer 401 with our own message (and audit it) instead of FastAPI's 403.
_bearer = HTTPBearer(
    auto_error=False,
    description="A JWT access token from /api/v1/auth/login, or a personal API token (vtp_pat_...).",
)


# Database ids are signed 64-bit integers: a larger number in a path used to reach SQLite and fail
# there with OverflowError (a 500, found by schemathesis); now it is a 422 like any malformed input.
DB_INT_MIN, DB_INT_MAX = -(2**63), 2**63 - 1
PathId = Annotated[int, Path(ge=DB_INT_MIN, le=DB_INT_MAX)]


async def client_ip(request: Request) -> str:
    """The peer address. Behind a proxy, run uvicorn with --forwarded-allow-ips so this is the client.

    `async` although it awaits nothing: FastAPI runs a plain `def` dependency in a worker thread,
    and this one is on every request (a thread hop each, and a wait for the GIL under load)."""
    return request.client.host if request.client else ""


ClientIp = Annotated[str, Depends(client_ip)]


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("Send 'Authorization: Bearer <token>' (get one from POST /api/v1/auth/login)")
    return credentials.credentials.strip()


def current_actor(credentials: Credentials, ip: ClientIp) -> Actor:
    """The caller as an `Actor`, resolved in a short session of its own that is closed (its
    connection back in the pool) before the route runs, or taken from the few seconds' cache of
    resolved credentials (`tokens.bearer_identity`).

    Routes that take an actor call an action, and the action opens its own session. When this
    dependency held its session for the whole request, every such request needed two connections
    at once; with more requests in flight than the pool had connections, each held its first and
    waited for a second that never came free, and every request waited out the pool timeout
    (30 s, then a 500): the collapse under 200 users. Now a request holds one connection at a time.
    """
    token = _bearer_token(credentials)
    who = tokens.bearer_identity(token)
    audit.note_actor(who.user_id, who.username)
    ratelimit.api_call(token=token)  # a Redis round trip: outside the session
    return Actor(user_id=who.user_id, username=who.username, channel="rest", source_ip=ip)


CurrentActor = Annotated[Actor, Depends(current_actor)]


def anonymous_actor(ip: ClientIp) -> Actor:
    """The caller of an action that needs no sign-in (signing in or up, redeeming a reset token)."""
    return Actor.anonymous(channel="rest", source_ip=ip)


AnonymousActor = Annotated[Actor, Depends(anonymous_actor)]
