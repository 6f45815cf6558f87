"""The REST side of the fleet, in-process against real S3, Redis and the real trainer (for its
catalogue): resources on a job, the GPU quota, queue order by project priority, and every lost
attempt taking the one retry-with-resume path."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from services.domain.models import Job, JobState
from services.infra import signing
from services.infra.db import session_scope
from services.runtime import sample_data

pytestmark = [pytest.mark.fleet, pytest.mark.usefixtures("backend")]


@pytest.fixture(scope="module")
def client(backend: dict[str, str]) -> Iterator[TestClient]:
    from app.api.main import api
    from services.domain import auth, projects

    with session_scope() as session:
        user = auth.create_user(session, username=f"f{uuid.uuid4().hex[:8]}", password="correct-horse-1")
        for name in ("first", "second"):
            projects.create_project(session, owner=user, name=name)
        username = user.username
    with TestClient(api) as test_client:
        token = test_client.post(
            "/api/v1/auth/login", json={"username": username, "password": "correct-horse-1"}
        )
        test_client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield test_client


@pytest.fixture(scope="module")
def projects(client: TestClient) -> list[dict[str, int]]:
    """Both projects, each with a dataset version to train on."""
    found = []
    for project in sorted(client.get("/api/v1/projects").json(), key=lambda p: p["id"]):
        version = client.post(
            f"/api/v1/projects/{project['id']}/datasets",
            data={"name": "shapes"},
            files={"file": ("s.zip", sample_data.yolo_zip(train=2, val=1), "application/zip")},
        ).json()
        found.append({"id": project["id"], "version": version["id"]})
    return found


def _submit(client: TestClient, project: dict[str, int], **resources: Any) -> Any:
    return client.post(
        f"/api/v1/projects/{project['id']}/jobs",
        json={
            "dataset_version_id": project["version"],
            "hyperparameters": {"epochs": 2},
            "resources": resources,
        },
    )


def _callback(client: TestClient, job_id: int, event: dict[str, Any]) -> Any:
    with session_scope() as session:
        secret = session.get(Job, job_id).callback_secret
    body = json.dumps({"event_id": uuid.uuid4().hex, **event}).encode()
    ts = int(time.time())
    headers = {
        signing.TIMESTAMP_HEADER: str(ts),
        signing.SIGNATURE_HEADER: signing.sign(secret, ts, body),
        "Content-Type": "application/json",
    }
    return client.post(f"/api/v1/trainer/callbacks/{job_id}", content=body, headers=headers)


def _handed_over(job_id: int) -> None:
    """What the dispatcher does when the trainer accepts the job's attempt."""
    from services.domain import jobs

    with session_scope() as session:
        job = session.get(Job, job_id)
        jobs.transition(session, job, JobState.dispatching)
        jobs.transition(session, job, JobState.running)


def _clear_queue() -> None:
    with session_scope() as session:
        for job in session.exec(select(Job).where(col(Job.state).in_(["queued", "retrying"]))):
            job.state = JobState.cancelled
            session.add(job)


def test_resources_are_stored_shown_and_checked(client: TestClient, projects: list[dict[str, int]]) -> None:
    created = _submit(client, projects[0], gpus=2, accelerator="A100", cpus=8)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["resources"] == {"gpus": 2, "accelerator": "A100", "cpus": 8.0}
    with session_scope() as session:
        from services.domain import jobs

        spec_resources = jobs.dispatch_spec(
            session.get(Job, job["id"]), dataset_uri="s3://b/d/", callback_url="http://h/c", heartbeat_s=5
        )["resources"]
    assert spec_resources == {"gpus": 2, "cpus": 8.0, "memory_gb": None, "accelerator": "A100"}
    refused = _submit(client, projects[0], gpus=-1)
    assert refused.status_code == 422 and "gpus" in json.dumps(refused.json()["detail"])
    refused = _submit(client, projects[0], accelerator="A100 && reboot")
    assert refused.status_code == 422 and "accelerator" in json.dumps(refused.json()["detail"])
    refused = _submit(client, projects[0], tpus=1)
    assert refused.status_code == 422 and "tpus" in json.dumps(refused.json()["detail"])
    _clear_queue()


def test_gpu_quota_refuses_what_could_never_run_and_is_set_with_the_others(
    client: TestClient, projects: list[dict[str, int]]
) -> None:
    project = projects[1]
    url = f"/api/v1/projects/{project['id']}/quotas"
    body = client.put(url, json={"max_running_jobs": None, "max_queued_jobs": None, "max_gpus": 2}).json()
    assert (body["max_gpus"], body["gpus"]) == (2, 0)
    refused = _submit(client, project, gpus=3)
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith("GPU quota: this project may hold at most 2 GPUs at once")
    assert _submit(client, project, gpus=2).status_code == 201
    # A PUT that leaves max_gpus out keeps it; null lifts it.
    assert client.put(url, json={"max_running_jobs": 4, "max_queued_jobs": None}).json()["max_gpus"] == 2
    assert (
        client.put(url, json={"max_running_jobs": None, "max_queued_jobs": None, "max_gpus": None}).json()[
            "max_gpus"
        ]
        is None
    )
    assert _submit(client, project, gpus=3).status_code == 201
    _clear_queue()


def test_queue_order_is_project_priority_then_submission_time(
    client: TestClient, projects: list[dict[str, int]]
) -> None:
    low, high = projects
    first = _submit(client, low).json()
    second = _submit(client, high).json()
    third = _submit(client, high).json()

    def positions() -> list[int]:
        listed = {
            j["id"]: j["queue_position"]
            for p in (low, high)
            for j in client.get(f"/api/v1/projects/{p['id']}/jobs").json()
            if j["id"] in {first["id"], second["id"], third["id"]}
        }
        return [listed[first["id"]], listed[second["id"]], listed[third["id"]]]

    assert positions() == [1, 2, 3]
    url = f"/api/v1/admin/projects/{high['id']}/priority"
    # The project's own owner may not rank it above the others; a platform admin may.
    refused = client.put(url, json={"priority": 5})
    assert refused.status_code == 403, refused.text
    admin = _platform_admin_headers(client)
    bad = client.put(url, json={"priority": 1000}, headers=admin)
    assert bad.status_code == 422 and "from -10 to 10" in bad.json()["detail"], bad.text
    assert client.get(f"/api/v1/projects/{high['id']}").json()["priority"] == 0  # nothing half-set
    assert client.put(url, json={"priority": 5}, headers=admin).json()["priority"] == 5
    assert positions() == [3, 1, 2]
    assert client.get(f"/api/v1/projects/{high['id']}").json()["priority"] == 5  # members see why
    ranked = [p["id"] for p in client.get("/api/v1/admin/projects", headers=admin).json()]
    assert ranked.index(high["id"]) < ranked.index(low["id"])
    trail = client.get(
        "/api/v1/admin/audit", params={"action": "admin.project_priority"}, headers=admin
    ).json()
    assert any(e["detail"] == "priority 0 -> 5" for e in trail), trail
    detail = client.get(f"/api/v1/projects/{high['id']}/jobs/{third['id']}").json()
    assert detail["queue_position"] == 2 and detail["state"] == "queued"
    client.put(url, json={"priority": 0}, headers=admin).raise_for_status()
    _clear_queue()


def _platform_admin_headers(client: TestClient) -> dict[str, str]:
    from services.domain import auth

    with session_scope() as session:
        user = auth.create_user(session, username=f"pa{uuid.uuid4().hex[:8]}", password="correct-horse-1")
        user.is_platform_admin = True
        username = user.username
    token = client.post("/api/v1/auth/login", json={"username": username, "password": "correct-horse-1"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def test_every_lost_attempt_resumes_until_the_budget_is_spent(
    client: TestClient, projects: list[dict[str, int]]
) -> None:
    job = _submit(client, projects[0]).json()
    failures = [
        {
            "kind": "lost",
            "message": "job process killed by SIGKILL (-9): out of memory: lower batch or imgsz",
        },
        {"kind": "transient", "message": "trainer job process exited with code -9"},  # a trainer before v1.4
        {"kind": "lost", "message": "Ray job stopped: node died"},
    ]
    for attempt, error in enumerate(failures, start=1):
        _handed_over(job["id"])
        finished = {"type": "finished", "attempt": attempt, "state": "failed", "error": error}
        assert _callback(client, job["id"], finished).json() == {"result": "applied"}
        now = client.get(f"/api/v1/projects/{projects[0]['id']}/jobs/{job['id']}").json()
        if attempt < 3:  # VTP_MAX_ATTEMPTS, default 3
            assert (now["state"], now["attempt"]) == ("retrying", attempt + 1), now
            assert now["queue_position"] == 1 and now["error_kind"] is None
        else:
            assert (now["state"], now["attempt"]) == ("failed", 3)
            assert now["error_kind"] == "transient"
            assert (
                now["error_message"]
                == "Gave up after 3 attempt(s): attempt 3 lost: Ray job stopped: node died"
            )


def test_a_failure_that_is_the_jobs_own_fails_it_at_once(
    client: TestClient, projects: list[dict[str, int]]
) -> None:
    job = _submit(client, projects[0]).json()
    _handed_over(job["id"])
    finished = {
        "type": "finished",
        "attempt": 1,
        "state": "failed",
        "error": {"kind": "user", "message": "class id 7 is not in the dataset"},
    }
    _callback(client, job["id"], finished)
    now = client.get(f"/api/v1/projects/{projects[0]['id']}/jobs/{job['id']}").json()
    assert (now["state"], now["attempt"], now["error_kind"]) == ("failed", 1, "user")
