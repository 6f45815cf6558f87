"""Callback batches (protocol v1.6) on the real API under uvicorn: a batch is applied once and a
resend changes nothing, a bad event refuses the whole batch by name, watching pages get one
notice per batch, and the trainer's outbox sends a backlog as one batch once a busy backend
(503 + Retry-After) takes callbacks again.

Real Redis (live notices) and SQLite with the migrations; the outbox is trainer_runner's own,
talking HTTP to the API as a trainer does.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.utils import servers
from tests.utils.environ import environment
from tests.utils.live_jobs import insert_running_job
from tests.utils.rows import dataset_version_row
from trainer_runner.callbacks import CallbackSender
from trainer_runner.outbox import CallbackOutbox
from trainer_runner.schemas import CallbackEvent

pytestmark = pytest.mark.reliability

CALLBACKS = "/api/v1/trainer/callbacks/"


class BusyGate:
    """In front of the API: while `closed`, callbacks are answered 503 + Retry-After, as a saturated
    web process answers them; every callback let through is recorded by path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.closed = threading.Event()
        self.refused = 0
        self.passed: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(CALLBACKS):
            if self.closed.is_set():
                self.refused += 1
                busy = JSONResponse({"detail": "busy"}, status_code=503, headers={"Retry-After": "1"})
                await busy(scope, receive, send)
                return
            self.passed.append(path)
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, BusyGate]]:
    """Redis, a migrated SQLite database, and the REST API under uvicorn in this process."""
    root = tmp_path_factory.mktemp("batch")
    with servers.redis(root / "redis") as redis_url:
        env = {"VTP_DATA_DIR": str(root / "data"), "VTP_REDIS_URL": redis_url}
        with environment(env):
            from app.api.main import api
            from services.runtime.cli import migrate

            migrate()
            gate = BusyGate(api)
            with servers.asgi_in_thread(gate) as url:
                yield url, gate


def _job() -> tuple[int, str]:
    """A running job (attempt 1) as if a trainer had started it: its id and callback secret."""
    from services.domain import auth, projects
    from services.infra.db import session_scope

    with session_scope() as session:
        user = auth.create_user(session, username=f"cb-{uuid.uuid4().hex[:8]}", password="a-long-password-1")
        project = projects.create_project(session, owner=user, name="batches")
        version = dataset_version_row(session, project_id=project.id, created_by=user.id)
        ids = (int(project.id), int(version.id), user.username)  # type: ignore[arg-type]
    return insert_running_job(*ids, epochs=10)


def _epoch(epoch: int, **extra: Any) -> dict[str, Any]:
    metrics = {"map50": epoch / 10, "train_box_loss": 2.0 / (epoch + 1)}
    return {
        "event_id": uuid.uuid4().hex,
        "type": "epoch",
        "attempt": 1,
        "epoch": epoch,
        "metrics": metrics,
        **extra,
    }


def _post(
    url: str, job_id: int, secret: str, payload: dict[str, Any], *, batch: bool = True
) -> httpx.Response:
    """Signed exactly as the trainer signs (its own copy of the recipe)."""
    body = json.dumps(payload).encode()
    sender = CallbackSender(f"{url}{CALLBACKS}{job_id}", secret)
    try:
        return sender.post_once(body, url=sender.batch_url if batch else None)
    except httpx.HTTPStatusError as exc:
        return exc.response
    finally:
        sender.close()


def _stored(job_id: int) -> tuple[dict[int, dict[str, float]], int, int | None]:
    """The job's metric points by epoch, its callback events, and its current epoch."""
    from sqlmodel import col, func, select

    from services.domain.models import Job, JobEvent, JobMetric
    from services.infra.db import session_scope

    with session_scope() as session:
        points = {
            m.epoch: m.metrics for m in session.exec(select(JobMetric).where(JobMetric.job_id == job_id))
        }
        events = session.exec(
            select(func.count()).where(JobEvent.job_id == job_id, col(JobEvent.type) != "state")
        ).one()
        job = session.get(Job, job_id)
        assert job is not None
        return points, events, job.current_epoch


def test_a_batch_is_applied_once_and_a_resend_changes_nothing(server: tuple[str, BusyGate]) -> None:
    url, _gate = server
    job_id, secret = _job()
    events = [_epoch(n) for n in range(5)]
    first = _post(url, job_id, secret, {"events": events})
    assert first.status_code == 200, first.text
    assert first.json() == {
        "results": [{"event_id": e["event_id"], "result": "applied"} for e in events],
        "applied": 5,
    }
    points, stored_events, current = _stored(job_id)
    assert sorted(points) == [0, 1, 2, 3, 4] and stored_events == 5 and current == 4
    assert points[3] == events[3]["metrics"]

    # The answer was lost, so the outbox sends the same batch again: nothing changes.
    again = _post(url, job_id, secret, {"events": events})
    assert again.status_code == 200, again.text
    assert [r["result"] for r in again.json()["results"]] == ["duplicate"] * 5 and again.json()[
        "applied"
    ] == 0
    # Single callbacks share the same idempotency; a batch may mix old and new events.
    assert _post(url, job_id, secret, events[2], batch=False).json() == {"result": "duplicate"}
    redo = _epoch(3, metrics={"map50": 0.9})  # a resumed attempt re-ran epoch 3: its values win
    mixed = _post(url, job_id, secret, {"events": [events[4], redo, _epoch(5)]})
    assert [r["result"] for r in mixed.json()["results"]] == ["duplicate", "applied", "applied"]
    points, stored_events, current = _stored(job_id)
    assert sorted(points) == [0, 1, 2, 3, 4, 5] and points[3] == {"map50": 0.9}
    assert stored_events == 7 and current == 5


def test_a_bad_event_refuses_the_whole_batch_by_name(server: tuple[str, BusyGate]) -> None:
    url, _gate = server
    job_id, secret = _job()
    before = _stored(job_id)
    cases = [
        ([_epoch(0), _epoch(1), {"event_id": "bad-one", "type": "epochs", "attempt": 1}], "Batch event 2"),
        ([_epoch(0), {"event_id": "no-epoch", "type": "epoch", "attempt": 1}], "Batch event 1"),
    ]
    for events, where in cases:
        response = _post(url, job_id, secret, {"events": events})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert where in detail and events[-1]["event_id"] in detail and "nothing applied" in detail, detail
    unknown = _post(url, job_id, secret, {"events": cases[0][0]}).json()["detail"]
    assert "Unknown callback type 'epochs'" in unknown, unknown
    empty = _post(url, job_id, secret, {"events": []})
    assert empty.status_code == 422 and "1 to 500 events" in empty.json()["detail"]
    forged = _post(url, job_id, "not-the-secret", {"events": [_epoch(0)]})
    assert forged.status_code == 401
    assert _stored(job_id) == before, "a refused batch must leave nothing behind"


def test_watching_pages_get_one_notice_per_batch(server: tuple[str, BusyGate]) -> None:
    """Counted on Redis itself. A marker published through the same (in-order) publisher after a
    write bounds what that write could have sent, so no count depends on waiting long enough."""
    from services.infra import live
    from services.infra.settings import get_settings

    url, _gate = server
    job_id, secret = _job()
    channel = live.PREFIX + live.job_channel(job_id)
    client = redis.Redis.from_url(get_settings().redis_dsn)
    pubsub = client.pubsub()

    def notices_until_marker() -> int:
        marker = f"test-marker:{uuid.uuid4().hex}"
        live.publish([marker])
        seen, deadline = 0, time.monotonic() + 20
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1.0)
            if message is None or message["type"] not in {"message", "pmessage"}:
                continue
            name = message["channel"].decode()
            if name == live.PREFIX + marker:
                return seen
            seen += name == channel
        raise AssertionError("the marker notice never arrived")

    try:
        pubsub.subscribe(channel)
        pubsub.psubscribe(live.PREFIX + "test-marker:*")
        confirmed, deadline = 0, time.monotonic() + 20
        while confirmed < 2:  # both subscriptions stand before anything is published
            assert time.monotonic() < deadline, "Redis did not confirm the subscriptions"
            message = pubsub.get_message(timeout=1.0)
            confirmed += message is not None and message["type"] in {"subscribe", "psubscribe"}
        notices_until_marker()  # whatever the job's creation sent is behind us now
        response = _post(url, job_id, secret, {"events": [_epoch(n) for n in range(20)]})
        assert response.status_code == 200 and response.json()["applied"] == 20
        assert notices_until_marker() == 1
    finally:
        pubsub.close()
        client.close()


def test_the_outbox_sends_a_backlog_as_one_batch_when_the_backend_is_busy(
    server: tuple[str, BusyGate], tmp_path: Path
) -> None:
    url, gate = server
    job_id, secret = _job()
    sender = CallbackSender(f"{url}{CALLBACKS}{job_id}", secret, timeout_s=10)
    gate.closed.set()  # saturated: every callback is answered 503 + Retry-After
    outbox = CallbackOutbox(tmp_path / "outbox", sender, max_backoff_s=1.0)
    try:
        outbox.put(CallbackEvent(job_id=str(job_id), attempt=1, type="started", state="running"))
        for epoch in range(6):
            event = _epoch(epoch)
            outbox.put(
                CallbackEvent(job_id=str(job_id), attempt=1, type="epoch", state="running", epoch=epoch,
                              metrics=event["metrics"])
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while gate.refused == 0:
            assert time.monotonic() < deadline, "the outbox never tried"
            time.sleep(0.05)
        gate.closed.clear()
        assert outbox.drain(60), "the backlog was not delivered"
    finally:
        gate.closed.clear()
        sender.close()
    mine = [path for path in gate.passed if path.startswith(f"{CALLBACKS}{job_id}")]
    assert mine == [f"{CALLBACKS}{job_id}/batch"], mine  # all seven in one request
    assert outbox.delivered == 7 and outbox.batches == 1 and outbox.dropped == 0
    points, stored_events, current = _stored(job_id)
    assert sorted(points) == list(range(6)) and stored_events == 7 and current == 5
