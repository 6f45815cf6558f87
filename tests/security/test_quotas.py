"""Per-project job quotas (services.domain.quotas): who may set them, what is accepted, and the refusal a
user sees when the queue is full; plus what the dispatcher reads to hold a job at the running limit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, SQLModel, create_engine, func, select

from services.domain.models import Job, JobState, Project
from services.infra.db import session_scope
from services.runtime import sample_data
from tests.security.conftest import Cast, make_project
from tests.utils.rows import job_row

pytestmark = pytest.mark.security
S = JobState


def _quotas_url(project_id: int) -> str:
    return f"/api/v1/projects/{project_id}/quotas"


def _put(client: TestClient, cast: Cast, part: str, project_id: int, body: dict[str, Any]) -> Any:
    return client.put(_quotas_url(project_id), json=body, headers=cast.bearer(part))


def _set(client: TestClient, cast: Cast, part: str, project_id: int, running: Any, queued: Any) -> int:
    return _put(
        client, cast, part, project_id, {"max_running_jobs": running, "max_queued_jobs": queued}
    ).status_code


def _upload(client: TestClient, cast: Cast, project_id: int) -> int:
    response = client.post(
        f"/api/v1/projects/{project_id}/datasets",
        files={"file": ("q.zip", sample_data.yolo_zip(train=2, val=1), "application/zip")},
        headers=cast.bearer("owner"),
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _add_jobs(project_id: int, version_id: int, creator: int, state: JobState, count: int = 1) -> list[int]:
    """Job rows in a given state, written directly (the trainer plays no part in counting)."""
    with session_scope() as session:
        rows = [
            Job(
                project_id=project_id,
                dataset_version_id=version_id,
                created_by=creator,
                name=f"{state.value}-{i}",
                framework="ultralytics",
                task="detect",
                model="yolo11n.yaml",
                callback_secret=uuid.uuid4().hex,
                state=state,
            )
            for i in range(count)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def _job_count(project_id: int) -> int:
    with session_scope() as session:
        return session.exec(select(func.count()).select_from(Job).where(Job.project_id == project_id)).one()


def _create_job(
    client: TestClient, cast: Cast, project_id: int, version_id: int, part: str = "member"
) -> Any:
    body = {"dataset_version_id": version_id, "hyperparameters": {"epochs": 1}}
    return client.post(f"/api/v1/projects/{project_id}/jobs", json=body, headers=cast.bearer(part))


@pytest.fixture
def project(backend: dict[str, str], client: TestClient, cast: Cast) -> tuple[int, int]:
    """A fresh project (cast members in their roles) with one dataset version: (project id, version id)."""
    project_id = make_project(cast, name="quotas", extra={"spare": "member"})
    return project_id, _upload(client, cast, project_id)


# --- who may set quotas, and what is accepted ----------------------------------------------------


@pytest.mark.parametrize(
    ("part", "status"),
    [("owner", 200), ("admin", 200), ("member", 403), ("viewer", 403), ("outsider", 404), ("anonymous", 401)],
)
def test_setting_quotas_by_role(
    backend: dict[str, str], client: TestClient, cast: Cast, part: str, status: int
) -> None:
    project_id = make_project(cast, name="roles")
    response = _put(client, cast, part, project_id, {"max_running_jobs": 2, "max_queued_jobs": 5})
    assert response.status_code == status, response.text
    with session_scope() as session:
        project = session.get(Project, project_id)
        saved = (project.max_running_jobs, project.max_queued_jobs)
    assert saved == ((2, 5) if status == 200 else (None, None))
    if status == 200:
        body = response.json()
        assert body == {
            "project_id": project_id,
            "max_running_jobs": 2,
            "max_queued_jobs": 5,
            "max_gpus": None,
            "running": 0,
            "queued": 0,
            "gpus": 0,
        }
        read = client.get(_quotas_url(project_id), headers=cast.bearer("viewer"))
        assert read.status_code == 200 and read.json() == body
        shown = client.get(f"/api/v1/projects/{project_id}", headers=cast.bearer("viewer")).json()
        assert (shown["max_running_jobs"], shown["max_queued_jobs"]) == (2, 5)


def test_service_refuses_low_roles_and_audits_changes(backend: dict[str, str], cast: Cast) -> None:
    from services.actions import projects
    from services.actions.core import Actor
    from services.domain import audit
    from services.errors import NotFound, PermissionDenied

    def actor(part: str) -> Actor:
        return Actor(user_id=cast.users[part], username=cast.names[part], channel="rest")

    project_id = make_project(cast, name="service roles")
    for part, error in (("member", PermissionDenied), ("viewer", PermissionDenied), ("outsider", NotFound)):
        with pytest.raises(error):
            projects.set_quotas(actor(part), project_id=project_id, max_running_jobs=1, max_queued_jobs=1)
    found = projects.set_quotas(
        actor("admin"), project_id=project_id, max_running_jobs=3, max_queued_jobs=None
    )
    assert (found.max_running_jobs, found.max_queued_jobs) == (3, None)
    with session_scope() as session:
        rows = audit.query(session, project_id=project_id, action="project.quotas")
        assert [(r.result, r.actor, r.detail) for r in rows if r.result == audit.ALLOWED] == [
            ("ok", cast.names["admin"], "running/queued unlimited/unlimited -> 3/unlimited")
        ]
        denied = [(r.actor, r.detail) for r in rows if r.result == audit.DENIED]
        assert sorted(denied) == sorted(
            [
                (cast.names["member"], "needs admin, has member"),
                (cast.names["viewer"], "needs admin, has viewer"),
                (cast.names["outsider"], "not a member"),
            ]
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_running_jobs": 0, "max_queued_jobs": None}, "max_running_jobs"),
        ({"max_running_jobs": None, "max_queued_jobs": -3}, "max_queued_jobs"),
        ({"max_running_jobs": 1, "max_queued_jobs": 10_001}, "max_queued_jobs"),
        ({"max_running_jobs": "2", "max_queued_jobs": None}, "max_running_jobs"),
        ({"max_running_jobs": True, "max_queued_jobs": None}, "max_running_jobs"),
        ({"max_running_jobs": 1.5, "max_queued_jobs": None}, "max_running_jobs"),
        ({"max_running_jobs": None}, "max_queued_jobs"),
    ],
)
def test_bad_quota_values_are_refused_naming_the_field(
    backend: dict[str, str], client: TestClient, cast: Cast, body: dict[str, Any], field: str
) -> None:
    project_id = make_project(cast, name="bad values")
    response = _put(client, cast, "owner", project_id, body)
    assert response.status_code == 422, response.text
    assert field in response.text
    with session_scope() as session:
        project = session.get(Project, project_id)
        assert (project.max_running_jobs, project.max_queued_jobs) == (None, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "from 1 to 10000"),
        (-1, "from 1 to 10000"),
        (10_001, "from 1 to 10000"),
        (True, "whole number"),
        (2.0, "whole number"),
        ("3", "whole number"),
    ],
)
def test_service_validation_names_the_field(
    backend: dict[str, str], cast: Cast, value: Any, message: str
) -> None:
    from services.domain import quotas
    from services.errors import InvalidInput

    project_id = make_project(cast, name="service values")
    with session_scope() as session, pytest.raises(InvalidInput) as refused:
        quotas.set_quotas(session, project_id=project_id, max_running_jobs=None, max_queued_jobs=value)
    assert refused.value.status_code == 422
    assert refused.value.message.startswith("max_queued_jobs: ") and message in refused.value.message


# --- the queue quota: refused when full, nothing written ------------------------------------------


def test_a_full_queue_refuses_new_jobs_with_a_clear_409(
    client: TestClient, cast: Cast, project: tuple[int, int]
) -> None:
    project_id, version_id = project
    assert _set(client, cast, "admin", project_id, None, 2) == 200
    _add_jobs(project_id, version_id, cast.users["owner"], S.running)
    _add_jobs(project_id, version_id, cast.users["owner"], S.succeeded, 3)  # finished jobs never count
    assert _create_job(client, cast, project_id, version_id).status_code == 201
    _add_jobs(project_id, version_id, cast.users["owner"], S.retrying)  # waiting to retry counts as waiting
    before = _job_count(project_id)

    refused = _create_job(client, cast, project_id, version_id)

    assert refused.status_code == 409, refused.text
    message = refused.json()["detail"]
    assert "at most 2 jobs waiting" in message and "2 waiting now" in message and "1 running" in message
    assert "Wait for a job to finish, cancel one, or ask a project admin to raise the quota." in message
    assert _job_count(project_id) == before
    assert _notified(project_id) == ["quota.reached"]  # the project's rules hear of it, once
    assert _create_job(client, cast, project_id, version_id).status_code == 409
    assert _notified(project_id) == ["quota.reached"]
    # Cancelling a waiting job makes room again.
    queued = [
        j
        for j in client.get(f"/api/v1/projects/{project_id}/jobs", headers=cast.bearer("owner")).json()
        if j["state"] == "queued"
    ]
    cancel = client.post(
        f"/api/v1/projects/{project_id}/jobs/{queued[0]['id']}/cancel", headers=cast.bearer("owner")
    )
    assert cancel.status_code == 200, cancel.text
    assert _notified(project_id) == ["quota.reached", "job.cancelled"]
    assert _create_job(client, cast, project_id, version_id).status_code == 201


def _notified(project_id: int) -> list[str]:
    from services.domain.models import NotificationEvent

    with session_scope() as session:
        rows = session.exec(
            select(NotificationEvent.event)
            .where(NotificationEvent.project_id == project_id)
            .order_by(NotificationEvent.id)
        )
        return list(rows.all())


def test_retry_is_refused_when_the_queue_is_full(
    client: TestClient, cast: Cast, project: tuple[int, int]
) -> None:
    project_id, version_id = project
    [failed] = _add_jobs(project_id, version_id, cast.users["member"], S.failed)
    _add_jobs(project_id, version_id, cast.users["owner"], S.queued)
    assert _set(client, cast, "owner", project_id, 1, 1) == 200
    before = _job_count(project_id)

    refused = client.post(
        f"/api/v1/projects/{project_id}/jobs/{failed}/retry",
        json={"resume": False},
        headers=cast.bearer("member"),
    )

    assert refused.status_code == 409, refused.text
    assert "ask a project admin to raise the quota" in refused.json()["detail"]
    assert _job_count(project_id) == before


def test_no_limit_when_null_and_the_running_quota_only_holds_jobs_back(
    client: TestClient, cast: Cast, project: tuple[int, int]
) -> None:
    project_id, version_id = project
    _add_jobs(project_id, version_id, cast.users["owner"], S.queued, 3)
    assert _set(client, cast, "owner", project_id, 1, 3) == 200
    assert _create_job(client, cast, project_id, version_id).status_code == 409
    # Back to no limit: the same request is accepted, and so are more.
    assert _set(client, cast, "owner", project_id, 1, None) == 200
    _add_jobs(project_id, version_id, cast.users["owner"], S.running)
    for _ in range(2):
        created = _create_job(client, cast, project_id, version_id)
        assert created.status_code == 201, created.text  # the running limit never refuses, it queues
        assert created.json()["state"] == "queued"
    found = client.get(_quotas_url(project_id), headers=cast.bearer("member")).json()
    assert (found["running"], found["queued"]) == (1, 5)


def test_the_members_page_saves_quotas_with_the_labels_it_shows(backend: dict[str, str], cast: Cast) -> None:
    from services.actions.core import web_actor
    from services.domain import tokens
    from services.domain.models import User
    from services.errors import InvalidInput, PermissionDenied
    from state import members_state as ms

    project_id = make_project(cast, name="ui quotas")
    with session_scope() as session:
        admin_token = tokens.issue_session(session, user=session.get(User, cast.users["admin"]))
        member_token = tokens.issue_session(session, user=session.get(User, cast.users["member"]))
    admin, member = web_actor(admin_token), web_actor(member_token)
    with pytest.raises(PermissionDenied):
        ms.save_project_quotas(member, project_id, "2", "")
    with pytest.raises(InvalidInput, match="^Jobs waiting in the queue: enter a whole number"):
        ms.save_project_quotas(admin, project_id, "2", "many")
    with pytest.raises(InvalidInput, match="^Jobs running at once: must be from 1 to 10000"):
        ms.save_project_quotas(admin, project_id, "0", "")
    view = ms.save_project_quotas(admin, project_id, " 2 ", "")
    assert view["max_running_jobs"] == "2" and view["max_queued_jobs"] == ""
    assert view["summary"] == (
        "Running: 0 now (limit: 2). Waiting: 0 now (limit: no limit). GPUs: 0 in use (limit: no limit)."
    )
    assert ms.save_project_quotas(admin, project_id, "2", "", "4")["max_gpus"] == "4"
    assert ms.save_project_quotas(admin, project_id, "2", "")["max_gpus"] == "4"  # left as it was
    view = ms.save_project_quotas(admin, project_id, " 2 ", "", "")
    assert ms.members_view(member, project_id)["quotas"] == view


# --- the worker's running quota: the decision, without a trainer ---------------------------------


def test_project_rooms_count_dispatching_and_running_jobs_and_their_gpus() -> None:
    from services.domain.fleet import Resources
    from services.domain.quotas import project_rooms

    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        mine, other = Project(name="mine", max_running_jobs=2, max_gpus=2), Project(name="other")
        session.add_all([mine, other])
        session.flush()
        assert mine.id is not None and other.id is not None

        def job(project: Project, state: JobState, gpus: int = 0) -> Job:
            assert project.id is not None
            row = job_row(session, state, project_id=project.id)
            row.resources = {"gpus": gpus} if gpus else {}
            session.add(row)
            session.flush()
            return row

        for state in (S.queued, S.retrying, S.succeeded, S.failed, S.cancelled):
            job(mine, state, gpus=1)
        job(mine, S.running, gpus=1)
        for _ in range(3):
            job(other, S.running)  # another project's jobs never count
        room = project_rooms(session, [mine.id])[mine.id]
        assert (room.running, room.gpus) == (1, 1)
        assert room.blocks(Resources()) == ""
        assert room.blocks(Resources(gpus=2)) == "the project's GPU quota (1 of 2 GPUs in use)"
        job(mine, S.dispatching)
        room = project_rooms(session, [mine.id])[mine.id]
        assert room.blocks(Resources()) == "the project's quota (2 of 2 jobs running)"
        assert project_rooms(session, [other.id])[other.id].blocks(Resources(gpus=8)) == ""


@pytest.mark.postgres
def test_two_requests_at_once_cannot_both_take_the_last_place_on_postgresql() -> None:
    """The project row lock: the second request waits for the first to commit, then counts its job."""
    import threading

    from services.domain import quotas
    from services.domain.models import Dataset, DatasetVersion, User
    from services.infra.db import _normalise
    from tests.utils import servers

    with servers.postgres() as url:
        engine = create_engine(_normalise(url))
        SQLModel.metadata.create_all(engine)
        with Session(engine) as session:
            user = User(username="pg", password_hash="x", avatar_name="PG")
            project = Project(name="p", max_queued_jobs=1)
            session.add_all([user, project])
            session.flush()
            dataset = Dataset(project_id=project.id, name="d", created_by=user.id)
            session.add(dataset)
            session.flush()
            version = DatasetVersion(
                dataset_id=dataset.id, version=1, format="yolo", task="detect", uri="s3://x"
            )
            session.add(version)
            session.commit()
            ids = (project.id, version.id, user.id)

        def add_job(session: Session) -> None:
            quotas.check_room_to_queue(session, project_id=ids[0])
            session.add(
                Job(
                    project_id=ids[0],
                    dataset_version_id=ids[1],
                    created_by=ids[2],
                    name="j",
                    framework="ultralytics",
                    task="detect",
                    model="yolo11n.yaml",
                    callback_secret=uuid.uuid4().hex,
                )
            )
            session.flush()

        outcome: list[str] = []

        def second() -> None:
            with Session(engine) as session:
                try:
                    add_job(session)
                    session.commit()
                    outcome.append("added")
                except quotas.QuotaExceeded:
                    outcome.append("refused")

        with Session(engine) as first:
            add_job(first)
            racer = threading.Thread(target=second)
            racer.start()
            racer.join(timeout=1.0)
            assert racer.is_alive() and outcome == []  # waiting on the project row
            first.commit()
        racer.join(timeout=10)
        assert outcome == ["refused"]
        with Session(engine) as session:
            assert session.exec(select(func.count()).select_from(Job)).one() == 1
        engine.dispose()
