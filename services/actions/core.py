"""The application layer's one pattern: resolve the actor, authorize, audit, commit, then enqueue.

Both channels (the REST API and the web UI's event handlers) call `services.actions.<resource>`
functions with an `Actor`. Each function runs its database work inside `operation(...)`, which

1. opens the one session of the action and loads the acting user (refusing deactivated ones);
2. lets the body authorize through `Operation.authorize` (the only caller of
   `services.domain.permissions.authorize` outside that module);
3. writes ONE semantic audit row (`job.create`, `dataset.upload`, `auth.login`, ...) with actor,
   target, result and, for a refusal or failure, the reason, whichever channel asked;
4. commits, and only after the commit returns, so that callers enqueue work (arq) or call the
   trainer outside any transaction.

Reads are not audited when they succeed (the job page refreshes every second; an audit row per
refresh would drown the log), but a refused read is, like every refused or failed mutation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from sqlmodel import Session

from services.domain import audit, notifications, tokens
from services.domain.models import Role, User
from services.domain.permissions import Action, authorize, require_platform_admin
from services.errors import DomainError, NotFound, Overloaded, PermissionDenied, Unauthorized
from services.infra import logs
from services.infra.db import session_scope

log = logging.getLogger(__name__)

Channel = Literal["web", "rest", "cli"]
SESSION_ENDED = "Your session has ended: sign in again"


class SessionEnded(Unauthorized):
    """The web UI's token no longer names an active user; the page sends the user to sign in."""

    def __init__(self, message: str = SESSION_ENDED) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class Actor:
    """Who acts, through which channel and from where. Resolved once per request or UI event.

    `user_id` is None for an anonymous caller (signing in, signing up, redeeming a reset link).
    """

    user_id: int | None
    username: str = ""
    channel: Channel = "web"
    source_ip: str = ""

    @classmethod
    def of(cls, user: User, *, channel: Channel, source_ip: str = "") -> Actor:
        return cls(user_id=user.id, username=user.username, channel=channel, source_ip=source_ip)

    @classmethod
    def anonymous(cls, *, channel: Channel, source_ip: str = "") -> Actor:
        return cls(user_id=None, channel=channel, source_ip=source_ip)


def web_actor(token: str, *, source_ip: str = "") -> Actor:
    """The actor behind a web UI session token; SessionEnded when it is missing, expired or revoked."""
    if not token:
        raise SessionEnded()
    try:
        # Remembered for a few seconds, forgotten at once when credentials may have ended
        # (services.domain.tokens); each operation still loads the user and refuses a deactivated one.
        identity = tokens.web_identity(token)
    except Unauthorized as exc:
        raise SessionEnded() from exc
    return Actor(user_id=identity.user_id, username=identity.username, channel="web", source_ip=source_ip)


@dataclass(frozen=True)
class WebUser:
    """The signed-in user as every page's header shows them."""

    actor: Actor
    avatar_name: str
    badge_color: str
    unread: int = 0  # unread in-app notifications (the bell)


def web_user(token: str) -> WebUser | None:
    """Who the web UI's token belongs to, for the page header; None when signed out."""
    if not token:
        return None
    with session_scope() as session:
        try:
            user = tokens.user_for_session(session, token)
        except Unauthorized:
            return None
        unread = notifications.unread_count(session, user_id=user.id) if user.id is not None else 0
        return WebUser(Actor.of(user, channel="web"), user.avatar_name, user.badge_color, unread)


def optional_web_actor(token: str) -> Actor | None:
    """Like `web_actor`, but None instead of SessionEnded (pages that show a sign-in prompt)."""
    try:
        return web_actor(token)
    except SessionEnded:
        return None


class Audit(StrEnum):
    """Which outcomes of an operation are written to the audit log."""

    all = "all"  # mutations: success, refusal and failure
    refusals = "refusals"  # reads: only refusals (not found, forbidden) and failures
    none = "none"  # the operation records its own rows (or none at all)


@dataclass
class Operation:
    """One action in progress: its session, its acting user, and what its audit row will say."""

    session: Session
    actor: Actor
    name: str
    user: User | None = None
    target: str = ""
    project_id: int | None = None
    detail: str = ""
    role: Role | None = None
    _authorized: bool = field(default=False, repr=False)

    @property
    def me(self) -> User:
        """The acting user; only anonymous operations (sign-in, sign-up) may lack one."""
        if self.user is None:
            raise SessionEnded()
        return self.user

    @property
    def me_id(self) -> int:
        found = self.me.id
        assert found is not None, "a loaded user has an id"
        return found

    def authorize(
        self,
        action: Action,
        *,
        project_id: int,
        owner_id: int | None = None,
        target: str | None = None,
    ) -> Role:
        """Check `action` in the project (NotFound for outsiders, PermissionDenied for low roles)."""
        self.project_id = project_id
        logs.bind(project_id=project_id)
        if target is not None:
            self.target = target
        self.role = authorize(
            self.session, user=self.me, project_id=project_id, action=action, owner_id=owner_id
        )
        self._authorized = True
        return self.role

    def require_platform_admin(self) -> None:
        require_platform_admin(self.me)
        self._authorized = True


def _result_for(exc: DomainError) -> str:
    # A rate limit (429: too many sign-in attempts, a locked-out account) refuses who is asking.
    refused = isinstance(exc, NotFound | PermissionDenied | Unauthorized) or exc.status_code == 429
    return audit.DENIED if refused else audit.FAILED


@contextmanager
def operation(
    actor: Actor,
    name: str,
    *,
    target: str = "",
    project_id: int | None = None,
    record: Audit = Audit.all,
) -> Iterator[Operation]:
    """Run one action: the body authorizes and works; this audits, then commits (or rolls back).

    A refusal or failure (`DomainError`) is audited in its own transaction, so the row survives the
    rollback of the work it describes, and is then raised to the caller unchanged.
    """
    op: Operation | None = None
    # The request's log lines (and its error reports) name who acted and in which project.
    logs.bind(user_id=actor.user_id, project_id=project_id)
    try:
        with session_scope() as session:
            op = Operation(session=session, actor=actor, name=name, target=target, project_id=project_id)
            if actor.user_id is not None:
                user = session.get(User, actor.user_id)
                if user is None or not user.is_active:
                    raise SessionEnded("Your account is no longer active: sign in again")
                op.user = user
            yield op
            if record is Audit.all:
                audit.record(
                    session,
                    actor=op.user,
                    actor_name=actor.username,
                    action=name,
                    target=op.target,
                    project_id=op.project_id,
                    detail=op.detail,
                    channel=actor.channel,
                    source_ip=actor.source_ip,
                )
    except Overloaded:
        raise  # not a refusal; and recording it would need the connection that was not to be had
    except DomainError as exc:
        if record is not Audit.none:
            # Not `op.user`: the rollback expired it. The actor carries the id and name.
            record_outcome(
                actor,
                name,
                target=op.target if op else target,
                project_id=op.project_id if op else project_id,
                result=_result_for(exc),
                detail=getattr(exc, "reason", "") or exc.message,
                status_code=exc.status_code,
            )
        raise


def record_outcome(
    actor: Actor,
    name: str,
    *,
    target: str,
    project_id: int | None,
    result: str,
    detail: str = "",
    status_code: int | None = None,
) -> None:
    """The audit row of an action whose outcome is known only after its transaction: a refusal
    (after the rollback) or a trainer call made once the work was committed. Own transaction."""
    audit.record_now(
        actor=None,
        actor_id=actor.user_id,
        actor_name=actor.username,
        action=name,
        target=target,
        result=result,
        project_id=project_id,
        detail=detail,
        status_code=status_code,
        channel=actor.channel,
        source_ip=actor.source_ip,
    )
