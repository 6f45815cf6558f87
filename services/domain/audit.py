"""Append-only audit log: who did what to which target, when, with what result, from where.

The application layer (`services.actions.core.operation`) writes one semantic row per action
(`job.create`, `dataset.upload`, `auth.login`, ...) for both channels, the web UI and the REST API,
with the reason when it was refused or failed. The REST middleware adds rows only for what it
alone sees: requests refused before any action ran (401 without credentials, 413, 429).
Rows are never updated or deleted: the ORM refuses it (see `_refuse_change`), and no service offers it.

The request context (source IP, whether a row was already written) travels in a context variable
so the middleware knows whether the action it served has recorded itself.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event
from sqlmodel import Session, col, select

from services.domain.models import AuditEvent, User
from services.infra.db import session_scope

log = logging.getLogger(__name__)

ALLOWED = "ok"
DENIED = "denied"
FAILED = "failed"


@dataclass
class AuditContext:
    """Per-request facts; `recorded` stops the middleware from writing a second row for one request."""

    source_ip: str = ""
    recorded: bool = False
    actor_id: int | None = None
    actor: str = ""


_context: ContextVar[AuditContext | None] = ContextVar("vtp_audit_context", default=None)


def set_context(context: AuditContext | None) -> object:
    return _context.set(context)


def reset_context(token: object) -> None:
    _context.reset(token)  # type: ignore[arg-type]


def current_context() -> AuditContext | None:
    return _context.get()


def note_actor(user_id: int, username: str) -> None:
    """Remember who the request is acting as, for a row the middleware may still write."""
    context = _context.get()
    if context is not None:
        context.actor_id, context.actor = user_id, username


def _row(
    *,
    actor: User | None,
    actor_id: int | None,
    actor_name: str,
    action: str,
    target: str,
    result: str,
    project_id: int | None,
    detail: str,
    status_code: int | None,
    channel: str,
    source_ip: str | None,
) -> AuditEvent:
    context = _context.get()
    if context is not None:
        context.recorded = True
    if actor is not None:
        actor_id, actor_name = actor.id, actor.username
    elif actor_id is None and context is not None:
        actor_id, actor_name = context.actor_id, context.actor
    return AuditEvent(
        actor_id=actor_id,
        actor=(actor_name or "")[:64],
        action=action[:160],
        target=target[:300],
        project_id=project_id,
        result=result,
        status_code=status_code,
        detail=detail[:500],
        channel=channel[:8],
        source_ip=(source_ip if source_ip is not None else (context.source_ip if context else ""))[:64],
    )


def record(
    session: Session,
    *,
    actor: User | None,
    action: str,
    target: str = "",
    result: str = ALLOWED,
    project_id: int | None = None,
    detail: str = "",
    status_code: int | None = None,
    channel: str = "",
    source_ip: str | None = None,
    actor_id: int | None = None,
    actor_name: str = "",
) -> None:
    """Add a row to the caller's session: it commits (or rolls back) with the action it describes."""
    session.add(
        _row(
            actor=actor,
            actor_id=actor_id,
            actor_name=actor_name,
            action=action,
            target=target,
            result=result,
            project_id=project_id,
            detail=detail,
            status_code=status_code,
            channel=channel,
            source_ip=source_ip,
        )
    )


def record_now(
    *,
    actor: User | None,
    action: str,
    target: str = "",
    result: str = DENIED,
    project_id: int | None = None,
    detail: str = "",
    status_code: int | None = None,
    channel: str = "",
    source_ip: str | None = None,
    actor_id: int | None = None,
    actor_name: str = "",
) -> None:
    """Write a row in its own transaction: refusals must survive the caller's rollback.

    Never raises: failing to audit must not turn a refusal into a 500 (the failure is logged).
    """
    row = _row(
        actor=actor,
        actor_id=actor_id,
        actor_name=actor_name,
        action=action,
        target=target,
        result=result,
        project_id=project_id,
        detail=detail,
        status_code=status_code,
        channel=channel,
        source_ip=source_ip,
    )
    try:
        with session_scope() as session:
            session.add(row)
    except Exception:  # noqa: BLE001 - see docstring
        log.exception("could not write audit event %s", action)


def query(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    result: str | None = None,
    project_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[AuditEvent]:
    """Newest first; `action` matches as a substring so 'members' finds every member change."""
    statement = select(AuditEvent)
    if actor:
        statement = statement.where(AuditEvent.actor == actor)
    if action:
        statement = statement.where(col(AuditEvent.action).contains(action))
    if result:
        statement = statement.where(AuditEvent.result == result)
    if project_id is not None:
        statement = statement.where(AuditEvent.project_id == project_id)
    if since is not None:
        statement = statement.where(AuditEvent.at >= since)
    if until is not None:
        statement = statement.where(AuditEvent.at <= until)
    statement = statement.order_by(col(AuditEvent.id).desc()).offset(offset).limit(limit)
    return list(session.exec(statement).all())


class AuditLogIsAppendOnly(RuntimeError):
    """Raised when code tries to change or delete an audit row."""


@event.listens_for(Session, "before_flush")
def _refuse_change(session: Session, _flush_context: object, _instances: object) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent):
            raise AuditLogIsAppendOnly("Audit events are append-only")
