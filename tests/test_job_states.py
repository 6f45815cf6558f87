"""The job lifecycle: every allowed and every refused transition."""

from __future__ import annotations

import itertools

import pytest
from sqlmodel import Session, SQLModel, create_engine, func, select

from services.domain import jobs
from services.domain.models import Job, JobEvent, JobState
from tests.utils.rows import job_row

S = JobState
# Written out independently of services.domain.jobs.ALLOWED, from ARCHITECTURE.md's lifecycle.
EXPECTED = {
    (S.queued, S.dispatching),
    (S.queued, S.cancelled),
    (S.dispatching, S.running),
    (S.dispatching, S.queued),
    (S.dispatching, S.retrying),
    (S.dispatching, S.failed),
    (S.dispatching, S.cancelled),
    (S.retrying, S.dispatching),
    (S.retrying, S.failed),
    (S.retrying, S.cancelled),
    (S.running, S.succeeded),
    (S.running, S.failed),
    (S.running, S.cancelled),
    (S.running, S.retrying),
}


@pytest.fixture
def session() -> Session:
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        yield session


def _job(session: Session, state: JobState) -> Job:
    return job_row(session, state)


def _events(session: Session) -> int:
    return session.exec(select(func.count()).select_from(JobEvent).where(JobEvent.type == "state")).one()


@pytest.mark.parametrize(("current", "new"), [p for p in itertools.product(S, S) if p[0] != p[1]])
def test_transition(session: Session, current: JobState, new: JobState) -> None:
    job = _job(session, current)
    if (current, new) in EXPECTED:
        assert jobs.transition(session, job, new) is True
        assert job.state == new
        assert _events(session) == 1
    else:
        with pytest.raises(jobs.InvalidTransition):
            jobs.transition(session, job, new)
        assert job.state == current


@pytest.mark.parametrize("state", list(S))
def test_same_state_is_a_no_op(session: Session, state: JobState) -> None:
    job = _job(session, state)
    assert jobs.transition(session, job, state) is False
    assert _events(session) == 0


def test_finished_states_are_final() -> None:
    for state in (S.succeeded, S.failed, S.cancelled):
        assert not any((state, other) in EXPECTED for other in S)
        assert jobs.ALLOWED[state] == frozenset()


def test_timestamps(session: Session) -> None:
    job = _job(session, S.dispatching)
    jobs.transition(session, job, S.running)
    assert job.started_at is not None and job.finished_at is None
    jobs.transition(session, job, S.succeeded)
    assert job.finished_at is not None


def test_two_processes_that_read_the_same_state_cannot_both_move_the_job(tmp_path) -> None:
    """The dispatcher claiming a queued job while a user cancels it: one wins, the other learns
    that the job changed and writes nothing (before, the last writer won and a job cancelled in
    the database went on training)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as setup:
        job_id = _job(setup, S.queued).id
        setup.commit()
    with Session(engine) as dispatcher, Session(engine) as user:
        claimed, cancelled = dispatcher.get(Job, job_id), user.get(Job, job_id)
        assert claimed.state == cancelled.state == S.queued  # both read `queued`
        jobs.transition(dispatcher, claimed, S.dispatching)
        dispatcher.commit()
        with pytest.raises(jobs.StateChanged):
            jobs.transition(user, cancelled, S.cancelled)
        user.rollback()
        user.refresh(cancelled)
        assert cancelled.state == S.dispatching
        # Both sides making the same move (the dispatcher and a first callback marking it running)
        # is no conflict.
        first, second = dispatcher.get(Job, job_id), user.get(Job, job_id)
        jobs.transition(dispatcher, first, S.running)
        dispatcher.commit()
        assert jobs.transition(user, second, S.running) is True
        user.commit()
    with Session(engine) as check:
        assert check.get(Job, job_id).state == S.running
        states = check.exec(select(JobEvent.payload).where(JobEvent.job_id == job_id)).all()
        assert [(p["from"], p["to"]) for p in states].count(("queued", "cancelled")) == 0


def test_a_heartbeat_read_before_the_job_finished_is_not_stored_after_it(tmp_path) -> None:
    """Two deliveries of one job at once: its `finished` and a heartbeat that read the job while it
    was still running. The heartbeat's transaction learns that the job moved and, applied again,
    is ignored; before, it was stored after the end (the event log ended with a heartbeat)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as setup:
        job_id = _job(setup, S.running).id
        setup.commit()
    finished = {"event_id": "e-fin", "type": "finished", "state": "succeeded", "attempt": 1, "epoch": 4}
    heartbeat = {"event_id": "e-hb", "type": "heartbeat", "state": "running", "attempt": 1}
    with Session(engine) as ending, Session(engine) as beating:
        late = beating.get(Job, job_id)
        assert late.state == S.running
        assert jobs.apply_callbacks(ending, ending.get(Job, job_id), [finished]) == ["applied"]
        ending.commit()
        with pytest.raises(jobs.StateChanged):
            jobs.apply_callbacks(beating, late, [heartbeat])
        beating.rollback()
        assert jobs.apply_callbacks(beating, beating.get(Job, job_id), [heartbeat]) == ["ignored"]
        beating.commit()
    with Session(engine) as check:
        kinds = check.exec(select(JobEvent.type).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
        assert kinds[-2:] == ["state", "finished"] and "heartbeat" not in kinds
        assert check.get(Job, job_id).state == S.succeeded
