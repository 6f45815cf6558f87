"""The REST API in-process against real S3 (nanio), real Redis and SQLite: uploads, jobs,
signed callbacks and the bad input each must refuse without writing anything."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlmodel import func, select

from services.actions.jobs import JOB_LIST_TTL_S
from services.domain import projects
from services.domain.models import Dataset, DatasetVersion, Job, JobEvent, JobMetric, User
from services.infra import live, signing, storage
from services.infra.db import get_engine, session_scope
from services.infra.settings import get_settings
from services.runtime import sample_data
from tests.utils.rows import dataset_version_row

pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture(scope="module")
def client(backend: dict[str, str]) -> Iterator[TestClient]:
    from app.api.main import api
    from services.domain import auth, projects

    with session_scope() as session:
        user = auth.create_user(session, username=f"u{uuid.uuid4().hex[:8]}", password="correct-horse-1")
        projects.create_project(session, owner=user, name="P")
        username = user.username
    with TestClient(api) as test_client:
        token = test_client.post(
            "/api/v1/auth/login", json={"username": username, "password": "correct-horse-1"}
        )
        test_client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield test_client


def _project(client: TestClient) -> int:
    return client.get("/api/v1/projects").json()[0]["id"]


def _counts() -> tuple[int, int, int]:
    with session_scope() as session:
        datasets = session.exec(select(func.count()).select_from(Dataset)).one()
        versions = session.exec(select(func.count()).select_from(DatasetVersion)).one()
    return datasets, versions, len(list(storage.list_keys("")))


def _upload(client: TestClient, data: bytes, name: str = "shapes") -> Any:
    pid = _project(client)
    return client.post(
        f"/api/v1/projects/{pid}/datasets",
        data={"name": name},
        files={"file": (f"{name}.zip", data, "application/zip")},
    )


def test_upload_yolo_zip_stores_archive_and_manifest(client: TestClient) -> None:
    response = _upload(client, sample_data.yolo_zip(train=6, val=2))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["classes"] == ["circle", "square"]
    assert body["split_counts"] == {"train": 6, "val": 2}
    assert body["uri"].startswith("s3://") and "/datasets/" in body["uri"]
    manifest = json.loads(storage.get_bytes(body["uri"] + "manifest.json"))
    assert len(manifest["images"]) == 8 and manifest["archive"] == "raw/shapes.zip"
    assert storage.exists(body["uri"] + "raw/shapes.zip")
    first = manifest["images"][0]
    assert first["width"] == 64 and len(first["sha256"]) == 64 and first["labels"]


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


BAD_UPLOADS = {
    "not a zip": (b"this is plain text, not an archive", "not a zip archive"),
    "empty zip": (_zip({}), "empty"),
    "path traversal": (_zip({"../evil.txt": b"x", "data.yaml": b"names: [a]"}), "path traversal"),
    "no data.yaml": (_zip({"images/train/a.png": b"x"}), "data.yaml"),
    "class id out of range": (
        _zip(
            {
                "data.yaml": b"names: [a]",
                "images/train/a.png": b"not really a png",
                "labels/train/a.txt": b"3 0.5 0.5 0.1 0.1\n",
            }
        ),
        "problem",
    ),
}


@pytest.mark.datasets
@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_is_refused_and_leaves_nothing(client: TestClient, case: str) -> None:
    data, expected = BAD_UPLOADS[case]
    before = _counts()
    response = _upload(client, data)
    assert 400 <= response.status_code < 500, response.text
    assert expected in response.json()["detail"]
    assert _counts() == before


@pytest.mark.datasets
def test_bad_labels_are_all_reported(client: TestClient) -> None:
    source = zipfile.ZipFile(io.BytesIO(sample_data.yolo_zip(train=2, val=0)))
    entries = {n: source.read(n) for n in source.namelist()}
    entries["labels/train/0000.txt"] = b"7 0.5 0.5 0.2 0.2\n0 0.5 0.5 -1 0.2\n"
    entries["images/train/0001.png"] = b"\x89PNG broken"
    before = _counts()
    response = _upload(client, _zip(entries))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "labels/train/0000.txt:1: class id 7 is out of range 0..1" in detail
    assert "labels/train/0000.txt:2: box width and height must be positive" in detail
    assert "images/train/0001.png: corrupt or unreadable image" in detail
    assert _counts() == before


def test_job_for_missing_dataset_is_refused(client: TestClient) -> None:
    pid = _project(client)
    with session_scope() as session:
        before = session.exec(select(func.count()).select_from(Job)).one()
    response = client.post(f"/api/v1/projects/{pid}/jobs", json={"dataset_version_id": 99999})
    assert response.status_code == 404
    assert "Dataset version 99999 does not exist" in response.json()["detail"]
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(Job)).one() == before


def test_requests_without_a_token_are_refused(client: TestClient) -> None:
    response = client.get("/api/v1/projects", headers={"Authorization": ""})
    assert response.status_code == 401


def test_other_projects_are_not_found(client: TestClient) -> None:
    assert client.get("/api/v1/projects/424242/jobs").status_code == 404


def test_bad_hyperparameters_name_the_field(client: TestClient) -> None:
    version = _upload(client, sample_data.yolo_zip(train=2, val=1)).json()
    pid = _project(client)
    response = client.post(
        f"/api/v1/projects/{pid}/jobs",
        json={"dataset_version_id": version["id"], "hyperparameters": {"epochs": 0}},
    )
    assert response.status_code == 422 and "epochs must be between 1 and 1000" in response.json()["detail"]
    response = client.post(
        f"/api/v1/projects/{pid}/jobs",
        json={"dataset_version_id": version["id"], "hyperparameters": {"momentum_x": 1}},
    )
    assert response.status_code == 422 and "momentum_x" in response.json()["detail"]


# --- callbacks ---------------------------------------------------------------------------------


@pytest.fixture
def job(client: TestClient) -> dict[str, Any]:
    version = _upload(client, sample_data.yolo_zip(train=2, val=1)).json()
    pid = _project(client)
    response = client.post(
        f"/api/v1/projects/{pid}/jobs",
        json={"dataset_version_id": version["id"], "hyperparameters": {"epochs": 2}},
    )
    assert response.status_code == 201, response.text
    with session_scope() as session:
        secret = session.get(Job, response.json()["id"]).callback_secret
    return {**response.json(), "secret": secret}


def _post(client: TestClient, job_id: int, event: dict[str, Any], secret: str, ts: int | None = None) -> Any:
    body = json.dumps(event).encode()
    ts = int(time.time()) if ts is None else ts
    headers = {
        signing.TIMESTAMP_HEADER: str(ts),
        signing.SIGNATURE_HEADER: signing.sign(secret, ts, body),
        "Content-Type": "application/json",
    }
    return client.post(f"/api/v1/trainer/callbacks/{job_id}", content=body, headers=headers)


def _event(kind: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "type": kind, "attempt": 1, "state": "running", **extra}


def _state(job_id: int) -> tuple[str, int, int]:
    with session_scope() as session:
        job = session.get(Job, job_id)
        metrics = session.exec(
            select(func.count()).select_from(JobMetric).where(JobMetric.job_id == job_id)
        ).one()
        events = session.exec(
            select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id)
        ).one()
    return job.state, metrics, events


@pytest.mark.security
def test_callback_with_wrong_secret_is_refused(client: TestClient, job: dict[str, Any]) -> None:
    before = _state(job["id"])
    response = _post(client, job["id"], _event("epoch", epoch=0, metrics={"map50": 0.1}), "wrong-secret")
    assert response.status_code == 401
    stale = _post(client, job["id"], _event("epoch", epoch=0), job["secret"], ts=int(time.time()) - 3600)
    assert stale.status_code == 401
    assert _state(job["id"]) == before


@pytest.mark.security
def test_callback_for_unknown_job_is_refused(client: TestClient, job: dict[str, Any]) -> None:
    response = _post(client, 987654, _event("heartbeat"), job["secret"])
    assert response.status_code == 404 and "987654" in response.json()["detail"]


def test_callbacks_are_idempotent_and_finished_jobs_stay_finished(client: TestClient, job: dict) -> None:
    jid, secret = job["id"], job["secret"]
    with session_scope() as session:
        row = session.get(Job, jid)
        row.state = "dispatching"
        session.add(row)
    epoch0 = _event("epoch", epoch=0, metrics={"train_box_loss": 2.5, "map50": 0.1}, checkpoint_epoch=0)
    assert _post(client, jid, epoch0, secret).json() == {"result": "applied"}
    assert _post(client, jid, epoch0, secret).json() == {"result": "duplicate"}
    # The same epoch in a new event: a resumed attempt re-ran it from an older checkpoint.
    again = {**epoch0, "event_id": uuid.uuid4().hex, "metrics": {"train_box_loss": 2.4, "map50": 0.2}}
    assert _post(client, jid, again, secret).json() == {"result": "applied"}
    state, metrics, _ = _state(jid)
    assert state == "running" and metrics == 1
    detail = client.get(f"/api/v1/projects/{job['project_id']}/jobs/{jid}").json()
    assert detail["metrics"] == [{"epoch": 0, "metrics": {"train_box_loss": 2.4, "map50": 0.2}}]
    assert detail["checkpoint_epoch"] == 0  # what a resumed attempt would continue after

    done = _event("finished", state="succeeded", artifacts={"best_checkpoint": "s3://b/k"})
    assert _post(client, jid, done, secret).json() == {"result": "applied"}
    before = _state(jid)
    late = [
        _event("epoch", epoch=1, metrics={"map50": 0.5}),
        _event("finished", state="failed"),
        _event("heartbeat"),
    ]
    for event in late:
        assert _post(client, jid, event, secret).json() == {"result": "ignored"}
    assert _state(jid) == before
    assert client.get(f"/api/v1/projects/{job['project_id']}/jobs/{jid}").json()["state"] == "succeeded"


def test_malformed_callback_is_refused(client: TestClient, job: dict[str, Any]) -> None:
    before = _state(job["id"])
    response = _post(client, job["id"], {"event_id": "x", "type": "explode"}, job["secret"])
    assert response.status_code == 422 and "Unknown callback type" in response.json()["detail"]
    assert _state(job["id"]) == before


# -- The REST jobs list is kept while nothing of its project changed, and never shown stale: a
# change made in this process shows at once, one announced by another process as soon as it is
# heard, and one nobody announced within `JOB_LIST_TTL_S` (services.actions.jobs).


@pytest.fixture
def kept_project(client: TestClient) -> int:
    """A fresh project of the signed-in user with three finished jobs."""
    me = client.get("/api/v1/auth/me").raise_for_status().json()
    with session_scope() as session:
        owner = session.get(User, me["id"])
        assert owner is not None
        created = projects.create_project(session, owner=owner, name=f"p{uuid.uuid4().hex[:6]}")
        version = dataset_version_row(session, project_id=created.id, created_by=owner.id)
        for i in range(3):
            session.add(
                Job(
                    project_id=created.id,
                    dataset_version_id=version.id,
                    created_by=owner.id,
                    name=f"run {i}",
                    framework="ultralytics",
                    task="detect",
                    model="yolo11n.yaml",
                    state="succeeded",
                    callback_secret="s",
                )
            )
        assert created.id is not None
        pid = created.id
    deadline = time.monotonic() + 10
    while live.project_version(pid) is None:  # this process hears notices (first use subscribes)
        assert time.monotonic() < deadline, "never subscribed to project notices"
        time.sleep(0.02)
    return pid


def _names(client: TestClient, pid: int) -> list[str]:
    return [j["name"] for j in client.get(f"/api/v1/projects/{pid}/jobs").raise_for_status().json()]


def _job_reads(call: Callable[[], Any]) -> tuple[Any, int]:
    """`call()` and how many statements it sent that read the job table."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM job" in statement:
            seen.append(statement)

    engine = get_engine()
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        return call(), len(seen)
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)


def _rename_unannounced(pid: int, old: str, new: str) -> None:
    """A write that reaches the database without this process's session hooks."""
    with get_engine().begin() as connection:
        connection.execute(
            text("UPDATE job SET name = :new WHERE project_id = :pid AND name = :old"),
            {"new": new, "pid": pid, "old": old},
        )


def _wait_listed(client: TestClient, pid: int, name: str, within_s: float) -> float:
    began = time.monotonic()
    while name not in _names(client, pid):
        assert time.monotonic() - began < within_s, f"{name!r} not listed after {within_s} s"
        time.sleep(0.01)
    return time.monotonic() - began


def test_a_repeated_list_reads_no_job_rows(client: TestClient, kept_project: int) -> None:
    first, _ = _job_reads(lambda: _names(client, kept_project))
    again, reads = _job_reads(lambda: _names(client, kept_project))
    assert again == first == ["run 2", "run 1", "run 0"]
    assert reads == 0
    # Other filters are other lists.
    _, reads = _job_reads(
        lambda: client.get(f"/api/v1/projects/{kept_project}/jobs", params={"light": "true"})
    )
    assert reads > 0


def test_a_change_made_in_this_process_shows_at_once(client: TestClient, kept_project: int) -> None:
    assert "run 0" in _names(client, kept_project)
    with session_scope() as session:
        row = session.exec(select(Job).where(Job.name == "run 0", Job.project_id == kept_project)).one()
        row.name = "renamed here"
        session.add(row)
    assert "renamed here" in _names(client, kept_project)  # no wait


def test_a_change_announced_by_another_process_shows_once_heard(
    client: TestClient, kept_project: int
) -> None:
    assert "run 1" in _names(client, kept_project)
    _rename_unannounced(kept_project, "run 1", "renamed elsewhere")
    assert "renamed elsewhere" not in _names(client, kept_project)  # kept: nothing was announced yet
    other = redis.Redis.from_url(get_settings().redis_dsn)
    try:
        other.publish(live.PREFIX + live.project_channel(kept_project), b"1")  # what its commit sends
    finally:
        other.close()
    assert _wait_listed(client, kept_project, "renamed elsewhere", within_s=1.0) < JOB_LIST_TTL_S


def test_a_change_nobody_announced_shows_within_the_ttl(client: TestClient, kept_project: int) -> None:
    assert "run 2" in _names(client, kept_project)
    _rename_unannounced(kept_project, "run 2", "never announced")
    _wait_listed(client, kept_project, "never announced", within_s=JOB_LIST_TTL_S + 1.0)


def test_a_list_with_waiting_jobs_is_read_every_time(client: TestClient, kept_project: int) -> None:
    """Queue places move with other projects' jobs, which the project's notices do not cover."""
    with session_scope() as session:
        row = session.exec(select(Job).where(Job.project_id == kept_project)).first()
        assert row is not None
        row.state = "queued"
        session.add(row)
    _names(client, kept_project)
    _, reads = _job_reads(lambda: _names(client, kept_project))
    assert reads > 0
