"""Notifications: per-project rules, the event outbox, the delivery log, and users' in-app lists.

An event (a job finished, a sweep finished, a quota refused a job) is written as a
`NotificationEvent` row in the same transaction as the change it reports, together with the
in-app entry of the user whose job it is. Nothing is sent from here: after the commit the caller
hands the event ids to the worker (services.infra.queue.enqueue_notifications), which fans each
event out to the targets (`fan_out`) and sends each delivery with retries, logging every attempt
(`log_attempt`). The worker also sweeps events nobody handed over (`unsent_events`), so a crash
between a commit and its enqueue delays a notification but never loses it.

Targets are Apprise URLs (Slack, Teams, Discord, mailto://, ...) or generic webhooks (JSON,
HMAC-signed like trainer callbacks). Their URLs can hold secrets: they are stored, and shown
only masked (`RulePublic.target`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select, update

from services.domain.models import (
    Job,
    JobState,
    NotificationDelivery,
    NotificationEvent,
    NotificationRule,
    Project,
    User,
    UserNotification,
    id_of,
    utcnow,
)
from services.errors import InvalidInput, NotFound
from services.infra import notify, signing
from services.infra.settings import get_settings

JOB_EVENTS = {
    JobState.succeeded: "job.succeeded",
    JobState.failed: "job.failed",
    JobState.cancelled: "job.cancelled",
}
SWEEP_FINISHED = "sweep.finished"
QUOTA_REACHED = "quota.reached"
EVENTS: tuple[str, ...] = (*JOB_EVENTS.values(), SWEEP_FINISHED, QUOTA_REACHED)
TEST_EVENT = "test"
EVENT_LABELS = {
    "job.succeeded": "Job succeeded",
    "job.failed": "Job failed",
    "job.cancelled": "Job cancelled",
    SWEEP_FINISHED: "Sweep finished",
    QUOTA_REACHED: "Quota reached",
}
PENDING = "vtp_notification_events"  # session.info key: ids of events written in this transaction
# One "quota reached" per project in this window: a script hammering a full queue is one message.
QUOTA_QUIET = timedelta(minutes=10)
MAX_RULES_PER_PROJECT = 50

Kind = Literal["apprise", "webhook"]


class RuleCreate(BaseModel):
    kind: Kind = Field(description="`apprise`: any Apprise URL; `webhook`: signed JSON POST to http(s).")
    target: str = Field(min_length=1, max_length=2000, description="The URL; stored, shown back masked.")
    events: list[str] = Field(min_length=1, description=f"Any of {', '.join(EVENTS)}.")


class RulePublic(BaseModel):
    id: int
    kind: str
    target: str = Field(description="Masked: secrets in the URL are never shown back.")
    events: list[str]
    created_at: str


class RuleCreated(RulePublic):
    secret: str = Field(
        default="", description="Webhooks only, shown once: the HMAC key that signs each body."
    )


class DeliveryPublic(BaseModel):
    id: int
    event: str
    target: str
    attempt: int
    status: str = Field(description="sent, retrying (this attempt failed; another follows) or failed.")
    detail: str
    created_at: str


class UserNotificationPublic(BaseModel):
    id: int
    event: str
    title: str
    link: str
    created_at: str
    read: bool


def _when(row: Any) -> str:
    return str(row.created_at.strftime("%Y-%m-%d %H:%M:%S"))


def rule_public(rule: NotificationRule) -> RulePublic:
    return RulePublic(
        id=id_of(rule),
        kind=rule.kind,
        target=notify.masked(rule.kind, rule.target),
        events=list(rule.events),
        created_at=_when(rule),
    )


def pending(session: Session) -> list[int]:
    """The events written in this session's transaction so far: hand them to the worker
    (services.infra.queue.enqueue_notifications) after the commit."""
    return list(session.info.get(PENDING, []))


# --- rules ----------------------------------------------------------------------------------------


def check_events(events: list[str]) -> list[str]:
    chosen = {e.strip() for e in events if e.strip()}
    unknown = sorted(chosen - set(EVENTS))
    if unknown:
        raise InvalidInput(f"events: unknown event {unknown[0]!r}; choose from {', '.join(EVENTS)}")
    if not chosen:
        raise InvalidInput(f"events: choose at least one of {', '.join(EVENTS)}")
    return [e for e in EVENTS if e in chosen]


def check_target(kind: str, target: str) -> str:
    """The target URL, stripped, or InvalidInput saying what to fix."""
    url = target.strip()
    if kind == "webhook":
        try:
            parts = urlsplit(url)
            usable = parts.scheme in {"http", "https"} and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a bad port or IPv6 address
            usable = False
        if not usable or any(c.isspace() for c in url):
            raise InvalidInput(
                "target: a webhook needs an http:// or https:// URL with a host, "
                "such as https://example.org/hooks/vtp"
            )
        return url
    if kind != "apprise":
        raise InvalidInput(f"kind: unknown kind {kind!r}; choose {' or '.join(get_args(Kind))}")
    if "://" not in url or notify.apprise_plugin(url) is None:
        scheme = url.split("://", 1)[0] if "://" in url else url[:20]
        raise InvalidInput(
            f"target: Apprise does not support {scheme!r} URLs or cannot read this one; use a service URL "
            "such as slack://…, msteams://…, discord://…, mailto://… (see Apprise's list of services), "
            "or choose the webhook kind for a plain https:// endpoint"
        )
    return url


def create_rule(
    session: Session, *, project_id: int, user: User, kind: str, target: str, events: list[str]
) -> RuleCreated:
    url = check_target(kind, target)
    chosen = check_events(events)
    count = len(
        session.exec(select(NotificationRule.id).where(NotificationRule.project_id == project_id)).all()
    )
    if count >= MAX_RULES_PER_PROJECT:
        raise InvalidInput(f"A project has at most {MAX_RULES_PER_PROJECT} rules; remove one first")
    rule = NotificationRule(
        project_id=project_id,
        events=chosen,
        kind=kind,
        target=url,
        secret=signing.new_secret() if kind == "webhook" else "",
        created_by=id_of(user),
    )
    session.add(rule)
    session.flush()
    return RuleCreated(**rule_public(rule).model_dump(), secret=rule.secret)


def list_rules(session: Session, *, project_id: int) -> list[RulePublic]:
    rows = session.exec(
        select(NotificationRule)
        .where(NotificationRule.project_id == project_id)
        .order_by(col(NotificationRule.id))
    ).all()
    return [rule_public(r) for r in rows]


def get_rule(session: Session, *, project_id: int, rule_id: int) -> NotificationRule:
    rule = session.get(NotificationRule, rule_id)
    if rule is None or rule.project_id != project_id:
        raise NotFound(f"Notification rule {rule_id} does not exist in this project")
    return rule


def delete_rule(session: Session, *, project_id: int, rule_id: int) -> RulePublic:
    """Remove the rule; its log rows stay (with the masked target), detached from it."""
    rule = get_rule(session, project_id=project_id, rule_id=rule_id)
    shown = rule_public(rule)
    for table in (NotificationDelivery, NotificationEvent):
        session.execute(update(table).where(col(table.rule_id) == rule_id).values(rule_id=None))
    session.delete(rule)
    return shown


def list_deliveries(session: Session, *, project_id: int, limit: int = 100) -> list[DeliveryPublic]:
    rows = session.exec(
        select(NotificationDelivery)
        .where(NotificationDelivery.project_id == project_id)
        .order_by(col(NotificationDelivery.id).desc())
        .limit(limit)
    ).all()
    return [
        DeliveryPublic(
            id=id_of(r),
            event=r.event,
            target=r.target,
            attempt=r.attempt,
            status=r.status,
            detail=r.detail,
            created_at=_when(r),
        )
        for r in rows
    ]


# --- events ---------------------------------------------------------------------------------------


def record(
    session: Session,
    *,
    project_id: int,
    event: str,
    title: str,
    body: str = "",
    subject: str = "",
    payload: dict[str, Any] | None = None,
    owner_id: int | None = None,
    link: str = "",
    rule_id: int | None = None,
) -> NotificationEvent:
    """Write one event into the outbox (and the owner's in-app list, when they want it) inside the
    caller's transaction. The caller hands `id_of(row)` to the worker after its commit."""
    row = NotificationEvent(
        project_id=project_id,
        event=event,
        subject=subject,
        owner_id=owner_id,
        rule_id=rule_id,
        title=title[:200],
        body=body[:2000],
        payload={**(payload or {}), "link": link} if link else dict(payload or {}),
    )
    session.add(row)
    session.flush()
    # Callers read these after their work and enqueue them once the transaction has committed.
    session.info.setdefault(PENDING, []).append(id_of(row))
    owner = session.get(User, owner_id) if owner_id is not None else None
    if owner is not None and owner.notify_own_jobs and event != TEST_EVENT:
        session.add(
            UserNotification(
                user_id=id_of(owner), project_id=project_id, event=event, title=title[:200], link=link[:300]
            )
        )
    session.flush()
    return row


def job_finished(session: Session, job: Job, *, reason: str = "") -> NotificationEvent | None:
    """The event of a job reaching succeeded, failed or cancelled (called by jobs.transition)."""
    event = JOB_EVENTS.get(JobState(job.state))
    if event is None:
        return None
    word = event.split(".", 1)[1]
    project = session.get(Project, job.project_id)
    title = f"Job {job.id} ({job.name}) {word}"
    why = job.error_message or reason
    body = f"{title} in project {project.name if project else job.project_id}." + (
        f" {why}" if why and event != "job.succeeded" else ""
    )
    return record(
        session,
        project_id=job.project_id,
        event=event,
        title=title,
        body=body,
        subject=f"job:{job.id}",
        owner_id=job.created_by,
        link=f"/jobs/{job.id}",
        payload={
            "job": {
                "id": job.id,
                "name": job.name,
                "state": JobState(job.state).value,
                "attempt": job.attempt,
                "error": job.error_message,
                "model": job.model,
            }
        },
    )


def quota_reached(
    session: Session, *, project_id: int, message: str, user_id: int | None
) -> NotificationEvent | None:
    """A job was refused because the project is at a quota; None when one was sent lately."""
    since = utcnow() - QUOTA_QUIET
    recent = session.exec(
        select(NotificationEvent.id).where(
            NotificationEvent.project_id == project_id,
            NotificationEvent.event == QUOTA_REACHED,
            col(NotificationEvent.created_at) >= since,
        )
    ).first()
    if recent is not None:
        return None
    project = session.get(Project, project_id)
    name = project.name if project else str(project_id)
    return record(
        session,
        project_id=project_id,
        event=QUOTA_REACHED,
        title=f"Project {name} reached a job quota",
        body=message,
        subject=f"project:{project_id}",
        payload={"refused_user_id": user_id},
    )


def sweep_finished(
    session: Session,
    *,
    project_id: int,
    sweep_id: int,
    name: str,
    owner_id: int | None,
    summary: str = "",
    details: dict[str, Any] | None = None,
) -> NotificationEvent:
    """The event of a hyperparameter sweep finishing; for the sweep code to call in the
    transaction that marks the sweep finished, then hand `id_of(result)` to
    services.actions.notifications.send_after_commit."""
    return record(
        session,
        project_id=project_id,
        event=SWEEP_FINISHED,
        title=f"Sweep {sweep_id} ({name}) finished",
        body=summary or f"Sweep {sweep_id} ({name}) finished.",
        subject=f"sweep:{sweep_id}",
        owner_id=owner_id,
        payload={"sweep": {"id": sweep_id, "name": name, **(details or {})}},
    )


def test_event(session: Session, *, rule: NotificationRule, user: User) -> NotificationEvent:
    project = session.get(Project, rule.project_id)
    name = project.name if project else str(rule.project_id)
    return record(
        session,
        project_id=rule.project_id,
        event=TEST_EVENT,
        title=f"Test notification from project {name}",
        body=f"{user.username} sent a test; this target receives: {', '.join(rule.events)}.",
        subject=f"rule:{rule.id}",
        rule_id=id_of(rule),
    )


def unsent_events(session: Session, *, older_than_s: float, limit: int = 100) -> list[int]:
    """Events nobody handed to the worker (a crash, Redis away) once they are this old."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    found = session.exec(
        select(NotificationEvent.id)
        .where(col(NotificationEvent.fanned_out_at).is_(None), col(NotificationEvent.created_at) <= cutoff)
        .order_by(col(NotificationEvent.id))
        .limit(limit)
    ).all()
    return [event_id for event_id in found if event_id is not None]


# --- sending (the worker's side) --------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """Everything one attempt needs, read in one short transaction before sending."""

    event_id: int
    project_id: int
    event: str
    target_key: str  # "rule:<id>" or "email:<user id>"
    rule_id: int | None
    kind: str  # "apprise", "webhook" or "email"
    url: str  # the Apprise/webhook URL or the e-mail address
    secret: str
    shown: str  # masked, for the log
    title: str
    body: str
    payload: dict[str, Any]


def _mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"mailto:{local[:1]}…@{domain}"


def fan_out(session: Session, *, event_id: int) -> list[str]:
    """The target keys `event_id` goes to, once: a second call for the same event returns []."""
    found = session.exec(
        update(NotificationEvent)
        .where(col(NotificationEvent.id) == event_id, col(NotificationEvent.fanned_out_at).is_(None))
        .values(fanned_out_at=utcnow())
    )
    if not found.rowcount:
        return []
    row = session.get(NotificationEvent, event_id)
    assert row is not None
    if row.rule_id is not None:
        return [f"rule:{row.rule_id}"]
    if row.event == TEST_EVENT:
        return []  # its rule was removed before it was sent
    rules = session.exec(select(NotificationRule).where(NotificationRule.project_id == row.project_id)).all()
    keys = [f"rule:{r.id}" for r in rules if row.event in r.events]
    owner = session.get(User, row.owner_id) if row.owner_id is not None else None
    if owner is not None and owner.notify_own_jobs and owner.email and notify.smtp_configured():
        keys.append(f"email:{owner.id}")
    return keys


def delivery(session: Session, *, event_id: int, target_key: str) -> Delivery | None:
    """What to send for one (event, target); None when the rule or user went away meanwhile."""
    row = session.get(NotificationEvent, event_id)
    if row is None:
        return None
    kind_of, _, ident = target_key.partition(":")
    link = row.payload.get("link")
    url = get_settings().web_url + link if isinstance(link, str) else ""
    if kind_of == "email":
        user = session.get(User, int(ident))
        if user is None or not user.email or not user.notify_own_jobs:
            return None
        footer = "\n\nSwitch these e-mails off on your account page."
        return Delivery(
            event_id=event_id,
            project_id=row.project_id,
            event=row.event,
            target_key=target_key,
            rule_id=None,
            kind="email",
            url=user.email,
            secret="",
            shown=_mask_email(user.email),
            title=row.title,
            body=row.body + (f"\n\n{url}" if url else "") + footer,
            payload={},
        )
    rule = session.get(NotificationRule, int(ident))
    if rule is None:
        return None
    payload = {
        "event": row.event,
        "event_id": event_id,
        "project_id": row.project_id,
        "subject": row.subject,
        "title": row.title,
        "text": row.body,
        "created_at": row.created_at.isoformat(),
        **{k: v for k, v in row.payload.items() if k != "link"},
        **({"url": url} if url else {}),
    }
    return Delivery(
        event_id=event_id,
        project_id=row.project_id,
        event=row.event,
        target_key=target_key,
        rule_id=rule.id,
        kind=rule.kind,
        url=rule.target,
        secret=rule.secret,
        shown=notify.masked(rule.kind, rule.target),
        title=row.title,
        body=row.body + (f" {url}" if url else ""),
        payload=payload,
    )


def log_attempt(session: Session, target: Delivery, *, attempt: int, status: str, detail: str = "") -> None:
    session.add(
        NotificationDelivery(
            project_id=target.project_id,
            event_id=target.event_id,
            rule_id=target.rule_id,
            event=target.event,
            target=target.shown[:300],
            attempt=attempt,
            status=status,
            detail=detail[:500],
        )
    )


# --- a user's own notifications -------------------------------------------------------------------


def user_notifications(session: Session, *, user_id: int, limit: int = 20) -> list[UserNotificationPublic]:
    rows = session.exec(
        select(UserNotification)
        .where(UserNotification.user_id == user_id)
        .order_by(col(UserNotification.id).desc())
        .limit(limit)
    ).all()
    return [
        UserNotificationPublic(
            id=id_of(r),
            event=r.event,
            title=r.title,
            link=r.link,
            created_at=_when(r),
            read=r.read_at is not None,
        )
        for r in rows
    ]


def mark_read(session: Session, *, user_id: int) -> int:
    result = session.exec(
        update(UserNotification)
        .where(col(UserNotification.user_id) == user_id, col(UserNotification.read_at).is_(None))
        .values(read_at=utcnow())
    )
    return int(result.rowcount or 0)


def unread_count(session: Session, *, user_id: int) -> int:
    found = session.exec(
        select(func.count())
        .select_from(UserNotification)
        .where(UserNotification.user_id == user_id, col(UserNotification.read_at).is_(None))
    ).one()
    return int(found)
