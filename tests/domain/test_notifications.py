"""Notification rules and the event outbox on an in-memory schema: what a job's outcome writes,
who it goes to (once), how targets are checked and masked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import Session, SQLModel, create_engine, select

from services.domain import jobs, notifications
from services.domain.models import (
    JobState,
    NotificationDelivery,
    NotificationEvent,
    Project,
    User,
    UserNotification,
)
from services.errors import InvalidInput
from services.infra.settings import get_settings
from tests.utils.rows import job_row

pytestmark = pytest.mark.ops
S = JobState


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Project(id=1, name="Birds"))
        session.add(User(id=1, username="ann", email="ann@example.org", password_hash="x", avatar_name="A"))
        session.flush()
        yield session


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("VTP_SMTP_HOST", "127.0.0.1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _rule(
    session: Session, events: list[str], target: str = "https://hooks.example.org/abc/SECRETxyz"
) -> int:
    user = session.get(User, 1)
    assert user is not None
    made = notifications.create_rule(
        session, project_id=1, user=user, kind="webhook", target=target, events=events
    )
    return made.id


@pytest.mark.parametrize("final", [S.succeeded, S.failed, S.cancelled])
def test_a_job_outcome_writes_one_event_and_one_inbox_entry(session: Session, final: JobState) -> None:
    job = job_row(session, S.running)
    jobs.transition(session, job, final, reason="r")
    events = session.exec(select(NotificationEvent)).all()
    assert [(e.event, e.subject, e.owner_id) for e in events] == [(f"job.{final.value}", f"job:{job.id}", 1)]
    assert notifications.pending(session) == [events[0].id]
    inbox = session.exec(select(UserNotification)).all()
    assert [(n.user_id, n.link) for n in inbox] == [(1, f"/jobs/{job.id}")]


def test_moves_that_do_not_finish_a_job_write_nothing(session: Session) -> None:
    job = job_row(session, S.queued)
    for state in (S.dispatching, S.running, S.retrying):
        jobs.transition(session, job, state)
    assert session.exec(select(NotificationEvent)).all() == []


def test_a_user_who_switched_off_gets_no_inbox_entry_or_email(session: Session, smtp: None) -> None:
    user = session.get(User, 1)
    assert user is not None
    user.notify_own_jobs = False
    rule = _rule(session, ["job.failed"])
    jobs.transition(session, job_row(session, S.running), S.failed)
    assert session.exec(select(UserNotification)).all() == []
    event = session.exec(select(NotificationEvent)).one()
    assert notifications.fan_out(session, event_id=event.id) == [f"rule:{rule}"]


def test_fan_out_hands_each_target_out_once(session: Session, smtp: None) -> None:
    wanted = _rule(session, ["job.failed", "job.succeeded"])
    _rule(session, ["job.cancelled"])
    jobs.transition(session, job_row(session, S.running), S.failed)
    event = session.exec(select(NotificationEvent)).one()
    assert notifications.fan_out(session, event_id=event.id) == [f"rule:{wanted}", "email:1"]
    assert notifications.fan_out(session, event_id=event.id) == []
    assert notifications.unsent_events(session, older_than_s=0) == []


def test_no_email_without_smtp(session: Session) -> None:
    assert not get_settings().smtp_host
    jobs.transition(session, job_row(session, S.running), S.succeeded)
    event = session.exec(select(NotificationEvent)).one()
    assert notifications.fan_out(session, event_id=event.id) == []
    assert notifications.unsent_events(session, older_than_s=0) == []


def test_a_delivery_carries_the_signed_payload_and_a_masked_target(session: Session) -> None:
    rule = _rule(session, ["job.failed"])
    job = job_row(session, S.running)
    job.error_message = "CUDA out of memory"
    jobs.transition(session, job, S.failed)
    event = session.exec(select(NotificationEvent)).one()
    target = notifications.delivery(session, event_id=event.id, target_key=f"rule:{rule}")
    assert target is not None and target.secret and target.url.endswith("SECRETxyz")
    assert target.payload["job"]["error"] == "CUDA out of memory"
    assert target.payload["url"].endswith(f"/jobs/{job.id}")
    assert "CUDA out of memory" in target.body
    assert target.shown == "https://hooks.example.org/…Txyz"
    notifications.log_attempt(session, target, attempt=1, status="sent")
    assert [d.target for d in notifications.list_deliveries(session, project_id=1)] == [target.shown]


def test_rules_show_targets_masked(session: Session) -> None:
    user = session.get(User, 1)
    assert user is not None
    made = notifications.create_rule(
        session,
        project_id=1,
        user=user,
        kind="apprise",
        target="slack://TokenA1234/TokenB5678/TokenC9012/#alerts",
        events=["job.failed"],
    )
    assert made.secret == ""
    assert "TokenA1234" not in made.target and made.target.startswith("slack://")
    password = notifications.create_rule(
        session,
        project_id=1,
        user=user,
        kind="apprise",
        target="mailto://ops:hunter2@smtp.example.org?to=ops@example.org",
        events=["job.failed"],
    )
    assert "hunter2" not in password.target
    assert all("hunter2" not in r.target for r in notifications.list_rules(session, project_id=1))


@pytest.mark.parametrize(
    ("kind", "target", "events", "message"),
    [
        ("apprise", "nosuch://x", ["job.failed"], "Apprise does not support 'nosuch' URLs"),
        ("apprise", "just words", ["job.failed"], "Apprise does not support"),
        ("webhook", "ftp://h/x", ["job.failed"], "needs an http:// or https:// URL"),
        ("webhook", "https:///nohost", ["job.failed"], "needs an http:// or https:// URL"),
        ("webhook", "https://h/x", ["job.exploded"], "unknown event 'job.exploded'"),
        ("webhook", "https://h/x", [" "], "choose at least one"),
        ("email", "https://h/x", ["job.failed"], "unknown kind 'email'"),
    ],
)
def test_bad_rules_are_refused_with_what_to_fix(
    session: Session, kind: str, target: str, events: list[str], message: str
) -> None:
    user = session.get(User, 1)
    assert user is not None
    with pytest.raises(InvalidInput, match=message):
        notifications.create_rule(session, project_id=1, user=user, kind=kind, target=target, events=events)
    assert notifications.list_rules(session, project_id=1) == []


def test_removing_a_rule_keeps_its_log(session: Session) -> None:
    rule = _rule(session, ["job.failed"])
    jobs.transition(session, job_row(session, S.running), S.failed)
    event = session.exec(select(NotificationEvent)).one()
    target = notifications.delivery(session, event_id=event.id, target_key=f"rule:{rule}")
    assert target is not None
    notifications.log_attempt(session, target, attempt=1, status="failed", detail="gave up")
    notifications.delete_rule(session, project_id=1, rule_id=rule)
    session.flush()
    assert [d.rule_id for d in session.exec(select(NotificationDelivery)).all()] == [None]
    assert notifications.delivery(session, event_id=event.id, target_key=f"rule:{rule}") is None


def test_quota_reached_is_sent_once_per_quiet_period(session: Session) -> None:
    first = notifications.quota_reached(session, project_id=1, message="at 2 waiting jobs", user_id=1)
    again = notifications.quota_reached(session, project_id=1, message="at 2 waiting jobs", user_id=1)
    assert first is not None and again is None


def test_sweep_finished_is_an_event_for_its_owner(session: Session) -> None:
    row = notifications.sweep_finished(
        session, project_id=1, sweep_id=7, name="lr", owner_id=1, summary="best mAP50 0.61"
    )
    assert (row.event, row.subject, row.body) == ("sweep.finished", "sweep:7", "best mAP50 0.61")
    assert [n.event for n in session.exec(select(UserNotification)).all()] == ["sweep.finished"]
