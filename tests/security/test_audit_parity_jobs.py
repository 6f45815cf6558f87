"""Audit parity for jobs and models: the same action through the web UI and through REST writes the
same single audit row (action, actor, target, result), and a refused one says why.

The UI path is what the Reflex handlers run (services.actions with a web actor resolved from the
browser's session token); the REST path is a real HTTP request with a personal API token.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from services.actions import jobs, models
from services.actions.core import web_actor
from services.domain.models import AuditEvent, Job, User
from services.domain.schemas import JobCreate
from services.errors import DomainError
from services.infra.db import session_scope
from services.runtime import sample_data
from tests.security.conftest import Cast
from tests.utils import aio

pytestmark = [pytest.mark.security, pytest.mark.usefixtures("backend")]


@dataclass
class Setup:
    cast: Cast
    client: TestClient
    version_id: int

    def token(self, part: str) -> str:
        from services.domain import tokens

        with session_scope() as session:
            return tokens.issue_session(session, user=session.get(User, self.cast.users[part]))

    def job(self, creator: str, state: str = "queued") -> int:
        with session_scope() as session:
            job = Job(
                project_id=self.cast.project_id,
                dataset_version_id=self.version_id,
                created_by=self.cast.users[creator],
                name="parity",
                framework="ultralytics",
                task="detect",
                model="yolo11n.yaml",
                state=state,
                callback_secret=uuid.uuid4().hex,
            )
            session.add(job)
            session.flush()
            assert job.id is not None
            return job.id


@pytest.fixture(scope="module")
def setup(client: TestClient, cast: Cast) -> Setup:
    response = client.post(
        f"/api/v1/projects/{cast.project_id}/datasets",
        files={"file": ("shapes.zip", sample_data.yolo_zip(train=4, val=2), "application/zip")},
        headers=cast.bearer("owner"),
    )
    assert response.status_code == 201, response.text
    return Setup(cast=cast, client=client, version_id=response.json()["id"])


def _last_id() -> int:
    with session_scope() as session:
        return session.exec(select(AuditEvent.id).order_by(col(AuditEvent.id).desc())).first() or 0


def _rows_after(last: int) -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.exec(select(AuditEvent).where(col(AuditEvent.id) > last).order_by(col(AuditEvent.id)))
        return [
            {
                "action": r.action,
                "actor": r.actor,
                # New jobs get new ids: compare the kind of target, not the number.
                "target": re.sub(r"\d+", "#", r.target),
                "result": r.result,
                "detail": re.sub(r"\d+", "#", r.detail),
                "channel": r.channel,
            }
            for r in rows
        ]


# A case: who acts, how to do it through the UI (an actions call), and the same through REST.
UiCall = Callable[[Setup, str], Any]
RestCall = Callable[[Setup, str], Any]


def _ui_create(s: Setup, part: str) -> Any:
    request = JobCreate(dataset_version_id=s.version_id, hyperparameters={"epochs": 1})
    return aio.run(jobs.create(web_actor(s.token(part)), project_id=s.cast.project_id, request=request))


def _rest_create(s: Setup, part: str) -> Any:
    body = {"dataset_version_id": s.version_id, "hyperparameters": {"epochs": 1}}
    return s.client.post(f"/api/v1/projects/{s.cast.project_id}/jobs", json=body, headers=s.cast.bearer(part))


def _ui_cancel(creator: str) -> UiCall:
    def call(s: Setup, part: str) -> Any:
        return aio.run(jobs.cancel(web_actor(s.token(part)), job_id=s.job(creator)))

    return call


def _rest_cancel(creator: str) -> RestCall:
    def call(s: Setup, part: str) -> Any:
        url = f"/api/v1/projects/{s.cast.project_id}/jobs/{s.job(creator)}/cancel"
        return s.client.post(url, headers=s.cast.bearer(part))

    return call


def _ui_retry(creator: str) -> UiCall:
    def call(s: Setup, part: str) -> Any:
        job_id = s.job(creator, state="failed")
        return aio.run(jobs.retry(web_actor(s.token(part)), job_id=job_id, resume=False))

    return call


def _rest_retry(creator: str) -> RestCall:
    def call(s: Setup, part: str) -> Any:
        url = f"/api/v1/projects/{s.cast.project_id}/jobs/{s.job(creator, state='failed')}/retry"
        return s.client.post(url, json={"resume": False}, headers=s.cast.bearer(part))

    return call


def _ui_export(s: Setup, part: str) -> Any:
    job_id = s.job("owner", state="succeeded")
    return models.export(web_actor(s.token(part)), job_id=job_id, formats=["onnx"])


def _rest_export(s: Setup, part: str) -> Any:
    url = f"/api/v1/projects/{s.cast.project_id}/jobs/{s.job('owner', state='succeeded')}/export"
    return s.client.post(url, json={"formats": ["onnx"]}, headers=s.cast.bearer(part))


def _ui_read(s: Setup, part: str) -> Any:
    return jobs.job_view(web_actor(s.token(part)), job_id=s.job("owner"))


def _rest_read(s: Setup, part: str) -> Any:
    return s.client.get(
        f"/api/v1/projects/{s.cast.project_id}/jobs/{s.job('owner')}", headers=s.cast.bearer(part)
    )


CASES = {
    "create as member": ("member", _ui_create, _rest_create, "job.create", "ok", ""),
    "create as viewer": (
        "viewer",
        _ui_create,
        _rest_create,
        "job.create",
        "denied",
        "needs member, has viewer",
    ),
    "create as outsider": ("outsider", _ui_create, _rest_create, "job.create", "denied", "not a member"),
    "cancel own queued job": ("member", _ui_cancel("member"), _rest_cancel("member"), "job.cancel", "ok", ""),
    "cancel someone else's job as member": (
        "member",
        _ui_cancel("owner"),
        _rest_cancel("owner"),
        "job.cancel",
        "denied",
        "needs admin, has member",
    ),
    "retry own failed job": ("member", _ui_retry("member"), _rest_retry("member"), "job.retry", "ok", None),
    "retry as viewer": ("viewer", _ui_retry("owner"), _rest_retry("owner"), "job.retry", "denied", None),
    "export as viewer": (
        "viewer",
        _ui_export,
        _rest_export,
        "model.export",
        "denied",
        "needs member, has viewer",
    ),
    "export without a checkpoint": (
        "member",
        _ui_export,
        _rest_export,
        "model.export",
        "failed",
        None,
    ),
    "read as outsider": ("outsider", _ui_read, _rest_read, "job.read", "denied", "not a member"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_ui_and_rest_write_the_same_audit_row(setup: Setup, name: str) -> None:
    part, ui_call, rest_call, action, result, reason = CASES[name]

    before = _last_id()
    with contextlib.suppress(DomainError):  # refusals are part of what is compared
        ui_call(setup, part)
    ui_rows = [r for r in _rows_after(before) if r["action"] == action]

    before = _last_id()
    response = rest_call(setup, part)
    assert response.status_code < 500, response.text
    rest_rows = _rows_after(before)

    assert len(ui_rows) == 1, ui_rows
    assert len(rest_rows) == 1, f"one request, one row: {rest_rows}"
    ui_row, rest_row = ui_rows[0], rest_rows[0]
    assert (ui_row["channel"], rest_row["channel"]) == ("web", "rest")
    same = ("action", "actor", "target", "result")
    assert {k: ui_row[k] for k in same} == {k: rest_row[k] for k in same}
    assert ui_row["action"] == action and ui_row["result"] == result
    assert ui_row["actor"] == setup.cast.names[part]
    if result != "ok":
        assert ui_row["detail"] and ui_row["detail"] == rest_row["detail"], "a refusal says why"
    if reason:
        assert reason in ui_row["detail"]
