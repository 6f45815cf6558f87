"""The projects home's summaries: counts, faces and last activity of the user's own projects only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, SQLModel, create_engine

from services.domain.models import Dataset, DatasetVersion, Job, JobState, Membership, Project, Role, User
from services.domain.overview import FACES, project_overviews
from state.formatting import project_card

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        yield session


def _user(session: Session, name: str, *, active: bool = True) -> User:
    user = User(username=name, password_hash="x", avatar_name=name[:2].upper(), badge_color="#1d4ed8")
    user.is_active = active
    session.add(user)
    session.flush()
    return user


def _project(session: Session, name: str, members: list[tuple[User, Role]]) -> Project:
    project = Project(name=name, created_at=T0)
    session.add(project)
    session.flush()
    for user, role in members:
        session.add(Membership(project_id=project.id, user_id=user.id, role=role))
    return project


def _dataset(session: Session, project: Project, owner: User, at: datetime) -> None:
    dataset = Dataset(project_id=project.id, name="d", created_by=owner.id)
    session.add(dataset)
    session.flush()
    session.add(
        DatasetVersion(
            dataset_id=dataset.id, version=1, format="yolo", task="detect", uri="s3://b/d", created_at=at
        )
    )


def _job(
    session: Session,
    project: Project,
    owner: User,
    state: JobState,
    at: datetime,
    finished: datetime | None = None,
) -> None:
    session.add(
        Job(
            project_id=project.id, dataset_version_id=1, created_by=owner.id, name="j",
            framework="ultralytics", task="detect", model="m", state=state, callback_secret="s",
            created_at=at, finished_at=finished,
        )
    )  # fmt: skip


def test_counts_roles_faces_and_last_activity(session: Session) -> None:
    me, ann, bob, gone = (_user(session, n) for n in ("me", "ann", "bob", "zed"))
    gone.is_active = False
    mine = _project(
        session, "Mine", [(me, Role.member), (ann, Role.owner), (bob, Role.viewer), (gone, Role.admin)]
    )
    other = _project(session, "Not mine", [(ann, Role.owner)])
    _dataset(session, mine, me, T0 + timedelta(hours=1))
    _dataset(session, mine, me, T0 + timedelta(hours=2))
    _job(session, mine, me, JobState.running, T0 + timedelta(hours=3))
    _job(session, mine, me, JobState.dispatching, T0 + timedelta(hours=1))
    _job(session, mine, me, JobState.succeeded, T0, finished=T0 + timedelta(hours=4))
    _job(session, other, ann, JobState.running, T0 + timedelta(days=3))
    session.flush()

    [card] = project_overviews(session, user=me)
    assert (card.name, card.role, card.datasets) == ("Mine", "member", 2)
    assert (card.jobs_running, card.jobs_total) == (2, 3), "dispatching counts as running"
    assert [f.username for f in card.faces] == ["ann", "me", "bob"], "owners first; deactivated left out"
    assert card.members == 3
    assert card.last_activity == T0 + timedelta(hours=4), "a job finishing is activity too"

    shown = project_card(card)
    assert (shown.datasets, shown.running, shown.jobs, shown.members) == (
        "2 datasets", "2 jobs running", "3 jobs in all", "3 members",
    )  # fmt: skip
    assert shown.last_activity == "2026-11-01 13:00 UTC"


def test_an_empty_project_and_many_members(session: Session) -> None:
    me = _user(session, "me")
    others = [(_user(session, f"u{i}"), Role.viewer) for i in range(FACES + 2)]
    _project(session, "Busy", [(me, Role.owner), *others])
    session.flush()
    [card] = project_overviews(session, user=me)
    shown = project_card(card)
    assert (shown.datasets, shown.running, shown.jobs) == ("0 datasets", "No jobs running", "0 jobs in all")
    assert len(shown.faces) == FACES and shown.more_members == "+3"
    assert shown.last_activity == "2026-11-01 09:00 UTC", "a new project's activity is its creation"
    assert project_overviews(session, user=_user(session, "lonely")) == []
