"""Notifications against local receivers, through the whole stack (`vtp up`: web app, worker,
trainer): a signed webhook checked with the documented recipe, a retry after a 500, e-mail to a
real SMTP server (aiosmtpd) both through an Apprise mailto:// rule and to the owner of a job, a
real job's outcome producing deliveries, and bad targets refused with a message saying what to do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from services.runtime import sample_data
from tests.utils import sinks
from tests.utils.sinks import HttpSink, Received
from tests.utils.stack import Api, StackProcess

pytestmark = [pytest.mark.ops, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def http_sink() -> Iterator[HttpSink]:
    with sinks.http_sink() as sink:
        yield sink


@dataclass
class Mail:
    sender: str
    to: list[str]
    text: str


@pytest.fixture(scope="module")
def smtp_sink(stack: StackProcess) -> Iterator[list[Mail]]:
    """An SMTP server on the port the stack was told to send e-mail to (tests/utils/stack.py)."""
    received: list[Mail] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=stack.ports["smtp"])
    controller.start()
    yield received
    controller.stop()


@pytest.fixture(scope="module")
def project(api: Api) -> int:
    """A project of its own: rules here see only this module's jobs."""
    return int(api.http.post("/projects", json={"name": "Notified"}).raise_for_status().json()["id"])


def wait_for(what: str, found: Callable[[], Any], timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"no {what} after {timeout_s}s")


def add_rule(api: Api, project: int, kind: str, target: str, events: list[str]) -> dict[str, Any]:
    response = api.http.post(
        f"/projects/{project}/notifications/rules", json={"kind": kind, "target": target, "events": events}
    )
    assert response.status_code == 201, response.text
    return response.json()


def deliveries(api: Api, project: int) -> list[dict[str, Any]]:
    return api.http.get(f"/projects/{project}/notifications/deliveries").raise_for_status().json()


def verify(secret: str, request: Received) -> dict[str, Any]:
    """The receiver's check, as docs/notifications.md tells integrators to write it."""
    timestamp = request.headers["x-vtp-timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, request.headers["x-vtp-signature"])
    assert abs(time.time() - int(timestamp)) < 300
    return json.loads(request.body)


def test_bad_targets_are_refused_with_what_to_fix(api: Api, project: int) -> None:
    path = f"/projects/{project}/notifications/rules"
    answer = api.http.post(
        path, json={"kind": "apprise", "target": "nosuchservice://x/y", "events": ["job.failed"]}
    )
    assert answer.status_code == 422
    assert "Apprise does not support 'nosuchservice' URLs" in answer.json()["detail"], answer.text
    answer = api.http.post(path, json={"kind": "webhook", "target": "ftp://host/x", "events": ["job.failed"]})
    assert answer.status_code == 422
    assert "needs an http:// or https:// URL" in answer.json()["detail"], answer.text
    answer = api.http.post(
        path, json={"kind": "webhook", "target": "https://h/x", "events": ["job.exploded"]}
    )
    assert answer.status_code == 422
    assert "unknown event 'job.exploded'" in answer.json()["detail"], answer.text
    assert api.http.get(path).raise_for_status().json() == []  # nothing half-written


def test_signed_webhook_test_retried_after_a_500(api: Api, project: int, http_sink: HttpSink) -> None:
    secret_path = "/hooks/T0KEN-very-secret-path"
    http_sink.fail_first[secret_path] = 1
    rule = add_rule(api, project, "webhook", http_sink.url + secret_path, ["job.failed"])
    assert len(rule["secret"]) == 64
    assert "very-secret" not in rule["target"]
    listed = api.http.get(f"/projects/{project}/notifications/rules").raise_for_status().json()
    assert [r["target"] for r in listed] == [rule["target"]] and "secret" not in listed[0]

    sent = api.http.post(f"/projects/{project}/notifications/rules/{rule['id']}/test")
    assert sent.status_code == 202 and sent.json() == {"queued": True}
    wait_for("second webhook call", lambda: len(http_sink.at(secret_path)) >= 2)
    first, second = http_sink.at(secret_path)[:2]
    assert first.body == second.body  # the same delivery, tried again
    body = verify(rule["secret"], second)
    assert body["event"] == "test" and body["project_id"] == project
    assert second.headers["x-vtp-event"] == "test"
    log = wait_for(
        "two logged attempts", lambda: [d for d in deliveries(api, project) if d["event"] == "test"][:2]
    )
    assert [(d["attempt"], d["status"]) for d in reversed(log)] == [(1, "retrying"), (2, "sent")]
    assert "webhook answered 500" in log[1]["detail"]
    assert all("very-secret" not in d["target"] for d in log)
    api.http.delete(f"/projects/{project}/notifications/rules/{rule['id']}").raise_for_status()


def test_a_finished_job_notifies_webhook_mailto_rule_and_its_owner(
    api: Api, stack: StackProcess, project: int, http_sink: HttpSink, smtp_sink: list[Mail]
) -> None:
    # The stack's admin gets an address (no route sets one: accounts come with it from sign-up/SSO).
    set_email(stack, "owner@example.org")
    try:
        _finished_job_notifies(api, stack, project, http_sink, smtp_sink)
    finally:
        set_email(stack, None)


def set_email(stack: StackProcess, address: str | None) -> None:
    db = sqlite3.connect(stack.data_dir / "vtp.db", timeout=30)
    with db:
        db.execute("UPDATE user SET email = ? WHERE username = ?", (address, stack.username))
    db.close()


def _finished_job_notifies(
    api: Api, stack: StackProcess, project: int, http_sink: HttpSink, smtp_sink: list[Mail]
) -> None:
    webhook = add_rule(api, project, "webhook", http_sink.url + "/jobs", ["job.succeeded", "job.failed"])
    mailto = f"mailto://127.0.0.1:{stack.ports['smtp']}?from=vtp@example.org&to=ops@example.org&mode=insecure"
    add_rule(api, project, "apprise", mailto, ["job.succeeded", "job.failed"])
    upload = api.http.post(
        f"/projects/{project}/datasets",
        files={"file": ("shapes.zip", sample_data.yolo_zip(train=4, val=2), "application/zip")},
    )
    assert upload.status_code == 201, upload.text
    job = api.start_job(project, upload.json()["id"], epochs=1)
    final = api.wait_finished(project, job["id"], timeout_s=240)
    outcome = f"job.{final['state']}"
    assert outcome in {"job.succeeded", "job.failed"}, final

    call = wait_for("job webhook", lambda: http_sink.at("/jobs"))[0]
    body = verify(webhook["secret"], call)
    assert body["event"] == outcome and body["job"]["id"] == job["id"]
    assert body["url"].endswith(f"/jobs/{job['id']}")
    # Other tests' jobs on the shared stack may mail the same owner: look for this job's mails.
    about = f"Job {job['id']} ("
    mails = wait_for("two e-mails", lambda: len(m := [m for m in smtp_sink if about in m.text]) >= 2 and m)
    assert sorted(m.to[0] for m in mails) == ["ops@example.org", "owner@example.org"]  # rule, owner

    log = wait_for(
        "three sent deliveries",
        lambda: (
            len(
                sent := [
                    d for d in deliveries(api, project) if d["event"] == outcome and d["status"] == "sent"
                ]
            )
            >= 3
            and sent
        ),
    )
    targets = sorted(d["target"] for d in log)
    assert targets[0].startswith("http://127.0.0.1:") and any(
        t.startswith("mailto:o…@example.org") for t in targets
    )
    mine = api.http.get("/me/notifications").raise_for_status().json()
    assert mine["own_jobs"] is True and mine["unread"] >= 1
    entry = next(i for i in mine["items"] if i["link"] == f"/jobs/{job['id']}")
    assert entry["event"] == outcome and not entry["read"]
    api.http.post("/me/notifications/read").raise_for_status()
    assert api.http.get("/me/notifications").raise_for_status().json()["unread"] == 0
