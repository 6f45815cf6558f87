"""Notifications as users act on them: a project's rules, its delivery log and "send a test"
(admins manage, members read), and each user's own in-app list and on/off switch.

Rules and tests are committed first; the worker sends after the commit (`send_after_commit`), so
no request waits on Slack or an SMTP server. Other features report their events through
services.domain.notifications inside their own transaction and call `send_after_commit` with
`notifications.pending(session)` once it has committed (the sweep code: `sweep_finished`).
"""

from __future__ import annotations

import asyncio
import logging

from sqlmodel import Session

from services.actions.core import Actor, Audit, operation
from services.domain import notifications
from services.domain.models import id_of
from services.domain.notifications import (
    DeliveryPublic,
    RuleCreate,
    RuleCreated,
    RulePublic,
    UserNotificationPublic,
)
from services.domain.permissions import Action
from services.infra.db import session_scope
from services.infra.queue import enqueue_notifications

log = logging.getLogger("vtp.notify")


def pending_events(session: Session) -> list[int]:
    """The events written in `session`'s transaction so far (see the module's docstring)."""
    return notifications.pending(session)


async def send_after_commit(event_ids: list[int]) -> bool:
    """Hand committed events to the worker; False (logged) when Redis is away: the worker's sweep
    of unsent events sends them a little later."""
    return await enqueue_notifications(event_ids)


# --- a project's rules and log ----------------------------------------------------------------------


def list_rules(actor: Actor, *, project_id: int) -> list[RulePublic]:
    with operation(actor, "notifications.list", record=Audit.refusals) as op:
        op.authorize(Action.notifications_read, project_id=project_id)
        return notifications.list_rules(op.session, project_id=project_id)


def create_rule(actor: Actor, *, project_id: int, request: RuleCreate) -> RuleCreated:
    """A new rule; a webhook's signing secret is in the answer, and only there."""
    with operation(actor, "notifications.rule_create", target=f"project:{project_id}") as op:
        op.authorize(Action.notifications_manage, project_id=project_id)
        rule = notifications.create_rule(
            op.session,
            project_id=project_id,
            user=op.me,
            kind=request.kind,
            target=request.target,
            events=request.events,
        )
        op.target, op.detail = f"notification_rule:{rule.id}", f"{rule.kind} {rule.target}"[:500]
        return rule


def delete_rule(actor: Actor, *, project_id: int, rule_id: int) -> None:
    with operation(actor, "notifications.rule_delete", target=f"notification_rule:{rule_id}") as op:
        op.authorize(Action.notifications_manage, project_id=project_id)
        removed = notifications.delete_rule(op.session, project_id=project_id, rule_id=rule_id)
        op.detail = f"{removed.kind} {removed.target}"[:500]


def list_deliveries(actor: Actor, *, project_id: int, limit: int = 100) -> list[DeliveryPublic]:
    with operation(actor, "notifications.deliveries", record=Audit.refusals) as op:
        op.authorize(Action.notifications_read, project_id=project_id)
        return notifications.list_deliveries(op.session, project_id=project_id, limit=limit)


def _test(actor: Actor, project_id: int, rule_id: int) -> list[int]:
    with operation(actor, "notifications.test", target=f"notification_rule:{rule_id}") as op:
        op.authorize(Action.notifications_manage, project_id=project_id)
        rule = notifications.get_rule(op.session, project_id=project_id, rule_id=rule_id)
        notifications.test_event(op.session, rule=rule, user=op.me)
        return notifications.pending(op.session)


async def send_test(actor: Actor, *, project_id: int, rule_id: int) -> bool:
    """Queue a test message to one rule's target; its attempts appear in the delivery log.
    False: saved, but the worker was not reachable right now (it sends it on its next sweep)."""
    events = await asyncio.to_thread(_test, actor, project_id, rule_id)
    return await send_after_commit(events)


# --- events other parts of the platform report ----------------------------------------------------


async def quota_reached(*, project_id: int, message: str, user_id: int | None) -> None:
    """A job was refused at a quota (after that refusal's rollback): tell the project's rules,
    at most once per quiet period. Never raises: the refusal is what the caller reports."""

    def write() -> list[int]:
        with session_scope() as session:
            notifications.quota_reached(session, project_id=project_id, message=message, user_id=user_id)
            return notifications.pending(session)

    try:
        events = await asyncio.to_thread(write)
    except Exception:  # noqa: BLE001 - a notification must not turn a 409 into a 500
        log.exception("could not record quota.reached for project %s", project_id)
        return
    await send_after_commit(events)


# --- the acting user's own notifications ---------------------------------------------------------


def my_notifications(actor: Actor, *, limit: int = 20) -> tuple[list[UserNotificationPublic], bool]:
    """The user's newest in-app notifications and whether their own jobs notify them at all."""
    with operation(actor, "notifications.mine", record=Audit.none) as op:
        return notifications.user_notifications(
            op.session, user_id=op.me_id, limit=limit
        ), op.me.notify_own_jobs


def mark_my_notifications_read(actor: Actor) -> int:
    with operation(actor, "notifications.read_all", record=Audit.none) as op:
        return notifications.mark_read(op.session, user_id=op.me_id)


def set_own_jobs_notifications(actor: Actor, *, enabled: bool) -> bool:
    """Switch notifications about the user's own jobs (in-app list and e-mail) on or off."""
    with operation(actor, "account.notifications", target=f"user:{actor.user_id}") as op:
        user = op.me
        user.notify_own_jobs = enabled
        op.session.add(user)
        op.detail = "on" if enabled else "off"
        op.target = f"user:{id_of(user)}"
        return enabled
