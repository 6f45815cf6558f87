"""The trainer survives its integrations failing: real servers, real processes, real signals.

- callbacks the backend refuses are kept on disk and delivered later, in order, exactly once;
- a 4xx that means "never" drops the event, the ones after it still go;
- a frozen S3 server delays an upload, which then succeeds (and a dead one ends it in budget);
- MLflow down at the start gets the whole run replayed once it is up;
- SIGTERM to the trainer server: the job stops at the next batch, uploads last.pt, reports a
  transient failure and nothing is left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.trainer.conftest import (
    ACCESS_KEY,
    BUCKET,
    ROOT,
    SECRET_KEY,
    S3Server,
    TrainerService,
    _port_open,
    _stop,
    free_port,
    start_mlflow_server,
    wait_until,
)
from trainer_runner.callbacks import CallbackSender, signature_ok
from trainer_runner.outbox import CallbackOutbox
from trainer_runner.schemas import CallbackEvent
from trainer_runner.settings import TrainerSettings
from trainer_runner.storage import make_s3_client, parse_s3_uri, upload_bytes
from trainer_runner.tracking import Tracker

pytestmark = [pytest.mark.trainer, pytest.mark.reliability, pytest.mark.timeout(600)]

SECRET = "resilience-secret"


# -- a backend stand-in that can refuse -----------------------------------------------------------


@dataclass
class FlakyReceiver:
    """Checks signatures like the backend; answers `status_now` (200 when healthy)."""

    url: str = ""
    status_now: int = 200
    refuse_ids: set[str] = field(default_factory=set)  # answered 422 (a permanent refusal)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    batches: int = 0  # batch requests taken (protocol v1.6)
    batch_route: bool = True  # False: a backend older than v1.6, without `{url}/batch`
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, job_id: str, type_: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                e for e in self.accepted if e["job_id"] == job_id and (type_ is None or e["type"] == type_)
            ]


@pytest.fixture
def flaky() -> Iterator[FlakyReceiver]:
    receiver = FlakyReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            signed = signature_ok(
                SECRET, self.headers.get("X-VTP-Timestamp"), self.headers.get("X-VTP-Signature"), body
            )
            # v1.6: `{url}/batch` carries several events, taken all or none, like the backend.
            sent = json.loads(body)
            events = sent["events"] if self.path.endswith("/batch") else [sent]
            with receiver.lock:
                if self.path.endswith("/batch") and not receiver.batch_route:
                    code = 404
                elif not signed:
                    code = 401
                elif any(event["event_id"] in receiver.refuse_ids for event in events):
                    code = 422
                else:
                    code = receiver.status_now
                if code == 200:
                    receiver.accepted.extend(events)
                    receiver.batches += self.path.endswith("/batch")
                else:
                    receiver.refused += 1
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    receiver.url = f"http://127.0.0.1:{port}/callbacks"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield receiver
    server.shutdown()
    server.server_close()


def _request(trainer: TrainerService, job_id: str, dataset_uri: str, url: str, **hyper: Any):
    request = trainer.job_request(job_id, dataset_uri, _Plain(url))  # type: ignore[arg-type]
    request["callback_secret"] = SECRET
    request["hyperparameters"] = {**request["hyperparameters"], **hyper}
    return request


@dataclass
class _Plain:
    url: str
    secret: str = SECRET


# -- callbacks ------------------------------------------------------------------------------------


def test_callbacks_refused_while_backend_down_are_buffered_then_delivered_in_order(
    trainer_service: TrainerService, flaky: FlakyReceiver, dataset_uri: str
) -> None:
    flaky.status_now = 503  # the backend is "down" from the start
    request = _request(trainer_service, "outage", dataset_uri, flaky.url, epochs=3)
    assert trainer_service.client.post("/jobs", json=request).status_code == 202
    outbox = trainer_service.scratch / "jobs" / "outage-1" / "outbox"

    # Training goes on regardless: the epochs pile up on disk, in order.
    def buffered() -> list[str]:
        return sorted(p.name for p in outbox.glob("*.json")) if outbox.is_dir() else []

    names = wait_until(
        lambda: (n := buffered()) and sum("-epoch" in x for x in n) >= 2 and n, 300, "2 epochs"
    )
    assert names[0].endswith("-started.json"), names
    assert not flaky.accepted and flaky.refused >= 1
    down_for = time.monotonic()

    flaky.status_now = 200  # the backend is back
    (finished,) = wait_until(lambda: flaky.of("outage", "finished"), 300, "finished")
    print(
        f"\nfault=backend 503 outcome={finished['state']} time_to_recover={time.monotonic() - down_for:.1f}s"
    )
    assert finished["state"] == "succeeded", finished
    events = [e for e in flaky.of("outage") if e["type"] != "heartbeat"]
    assert [(e["type"], e["epoch"]) for e in events] == [
        ("started", None),
        ("epoch", 0),
        ("epoch", 1),
        ("epoch", 2),
        ("finished", 2),
    ]
    ids = [e["event_id"] for e in flaky.of("outage")]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert flaky.of("outage")[-1]["type"] == "finished", "a heartbeat came after finished"
    # Delivered, so the outbox (and the spec with the secret) is gone once the child exits.
    wait_until(lambda: not outbox.exists(), 30, "outbox removed")


def test_outbox_drops_refused_events_and_keeps_order(flaky: FlakyReceiver, tmp_path: Path) -> None:
    sender = CallbackSender(flaky.url, SECRET, timeout_s=5)
    flaky.status_now = 500
    outbox = CallbackOutbox(tmp_path / "outbox", sender, max_backoff_s=0.5)
    events = [CallbackEvent(job_id="j", attempt=1, type="epoch", state="running", epoch=n) for n in range(4)]
    flaky.refuse_ids.add(events[1].event_id)
    for event in events:
        outbox.put(event)
    for beat in range(5):  # coalesced: at most the latest one is sent
        outbox.put_heartbeat(
            CallbackEvent(job_id="j", attempt=1, type="heartbeat", state="running", epoch=beat)
        )
    time.sleep(1.5)
    assert len(outbox.pending()) == 4 and not flaky.accepted
    flaky.status_now = 200
    assert outbox.drain(30)
    sender.close()
    delivered = [(e["type"], e["epoch"]) for e in flaky.accepted]
    assert delivered[:3] == [("epoch", 0), ("epoch", 2), ("epoch", 3)], delivered
    assert delivered[3:] in ([], [("heartbeat", 4)]), delivered
    assert outbox.dropped == 1 and outbox.delivered == 3
    # The four waited together and went as one batch, which the bad event got refused (and the
    # bad event once more on its own); what followed may go one at a time or, once the bad one is
    # dropped, batched again: either way only the bad one was dropped and the order kept (above).
    assert flaky.refused >= 2


def test_outbox_sends_one_at_a_time_to_a_backend_without_batches(
    flaky: FlakyReceiver, tmp_path: Path
) -> None:
    """A backend older than v1.6 answers 404 for `{url}/batch`: the waiting events still arrive,
    in order, one request each, and the outbox stops trying batches."""
    flaky.batch_route, flaky.status_now = False, 503
    sender = CallbackSender(flaky.url, SECRET, timeout_s=5)
    outbox = CallbackOutbox(tmp_path / "outbox", sender, max_backoff_s=0.5)
    for n in range(3):
        outbox.put(CallbackEvent(job_id="j", attempt=1, type="epoch", state="running", epoch=n))
    wait_until(lambda: flaky.refused >= 1, 30, "a refused try")
    flaky.status_now = 200  # three events wait now: the next try is a batch, refused with 404
    assert outbox.drain(30)
    sender.close()
    assert [e["epoch"] for e in flaky.accepted] == [0, 1, 2]
    assert outbox.delivered == 3 and outbox.dropped == 0 and flaky.batches == 0
    assert outbox.max_batch == 1


def test_outbox_budget_spent_keeps_events_on_disk(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: connection refused
    sender = CallbackSender(f"http://127.0.0.1:{port}/cb", SECRET, timeout_s=2)
    outbox = CallbackOutbox(tmp_path / "outbox", sender, max_backoff_s=0.5)
    outbox.put(CallbackEvent(job_id="j", attempt=1, type="finished", state="succeeded"))
    started = time.monotonic()
    assert not outbox.drain(2)
    assert time.monotonic() - started < 10
    assert [p.name for p in outbox.pending()] == ["00000001-finished.json"]
    sender.close()


# -- object storage -------------------------------------------------------------------------------


@pytest.fixture
def own_nanio(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A nanio server of this test alone, so it can be frozen without hurting others."""
    port = free_port()
    env = {**os.environ, "NANIO_ACCESS_KEY": ACCESS_KEY, "NANIO_SECRET_KEY": SECRET_KEY}
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "nanio"),
            "serve",
            "--data-dir",
            str(tmp_path / "s3"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
    )
    try:
        wait_until(lambda: _port_open(port), 30, "nanio")
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGCONT)
        _stop(process)


def test_upload_waits_out_a_frozen_s3_server(
    own_nanio: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, endpoint = own_nanio
    settings = TrainerSettings(
        s3_endpoint_url=endpoint,
        s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY,
        s3_read_timeout_s=2,
        s3_connect_timeout_s=2,
    )
    client = make_s3_client(settings)
    client.create_bucket(Bucket=BUCKET)
    uri = parse_s3_uri(f"s3://{BUCKET}/jobs/1/checkpoints/last.pt")
    payload = os.urandom(256 * 1024)

    process.send_signal(signal.SIGSTOP)
    threading.Timer(8, process.send_signal, args=(signal.SIGCONT,)).start()
    started = time.monotonic()
    assert upload_bytes(client, payload, uri, "application/octet-stream", budget_s=60) == str(uri)
    took = time.monotonic() - started
    print(f"\nfault=s3 SIGSTOP 8s outcome=uploaded time_to_recover={took:.1f}s")
    assert took >= 7, "the upload cannot have succeeded while the server was frozen"
    assert client.get_object(Bucket=BUCKET, Key=uri.key)["Body"].read() == payload


def test_upload_gives_up_when_the_budget_is_spent(
    own_nanio: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, endpoint = own_nanio
    settings = TrainerSettings(
        s3_endpoint_url=endpoint,
        s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY,
        s3_read_timeout_s=1,
        s3_connect_timeout_s=1,
    )
    client = make_s3_client(settings)
    client.create_bucket(Bucket=BUCKET)
    _stop(process)  # storage gone for good
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        upload_bytes(client, b"x", parse_s3_uri(f"s3://{BUCKET}/k"), "text/plain", budget_s=4)
    assert 3 <= time.monotonic() - started < 30
    assert "connect" in str(raised.value).lower()


# -- MLflow ---------------------------------------------------------------------------------------


def test_mlflow_down_at_start_is_replayed_when_it_comes_up(tmp_path: Path) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    tracker = Tracker(uri, "project-9", "job-9", max_backoff_s=2)
    tracker.log_params({"epochs": 3, "imgsz": 64})
    for epoch in range(3):  # training goes on: these return at once
        tracker.log_metrics({"map50": 0.1 * epoch, "train_box_loss": 3.0 - epoch}, step=epoch)
    tracker.end("succeeded")
    assert not tracker.flush(2) and tracker.run_id is None

    server = start_mlflow_server(port, tmp_path / "mlflow")
    try:
        started = time.monotonic()
        assert tracker.close(240), tracker.summary()
        print(
            f"\nfault=mlflow down at start outcome=replayed time_to_recover={time.monotonic() - started:.1f}s"
        )
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        run = client.get_run(tracker.run_id)
        assert run.info.status == "FINISHED" and run.data.params["imgsz"] == "64"
        history = client.get_metric_history(tracker.run_id, "map50")
        assert [m.step for m in history] == [0, 1, 2]
        experiment = client.get_experiment_by_name("project-9")
        assert len(client.search_runs([experiment.experiment_id])) == 1
    finally:
        _stop(server)


# -- graceful shutdown ----------------------------------------------------------------------------


def test_sigterm_to_trainer_hands_the_job_back(
    tmp_path: Path, s3_server: S3Server, flaky: FlakyReceiver, dataset_uri: str
) -> None:
    port = free_port()
    scratch = tmp_path / "scratch"
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "TRAINER_PORT": str(port),
        "TRAINER_SCRATCH_DIR": str(scratch),
        "TRAINER_S3_ENDPOINT_URL": s3_server.endpoint,
        "TRAINER_S3_ACCESS_KEY": ACCESS_KEY,
        "TRAINER_S3_SECRET_KEY": SECRET_KEY,
        "TRAINER_MLFLOW_TRACKING_URI": "",
    }
    log_path = tmp_path / "trainer.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "trainer_runner"],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _port_open(port), 30, "trainer")
        service = TrainerService(url, httpx.Client(base_url=url), scratch, log_path)
        request = _request(service, "sigterm", dataset_uri, flaky.url, epochs=50)
        assert service.client.post("/jobs", json=request).status_code == 202
        wait_until(lambda: len(flaky.of("sigterm", "epoch")) >= 1, 300, "epoch 0")
        child_pid = json.loads((scratch / "jobs" / "sigterm-1" / "status.json").read_text())["pid"]

        stopped_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
        took = time.monotonic() - stopped_at
        print(f"\nfault=trainer SIGTERM outcome=handed back time_to_recover={took:.1f}s")
        service.client.close()

        (finished,) = flaky.of("sigterm", "finished")
        assert finished["state"] == "failed"
        assert finished["error"]["kind"] == "transient"
        epochs = [e["epoch"] for e in flaky.of("sigterm", "epoch")]
        assert epochs == list(range(len(epochs)))
        assert len(epochs) < 50, "it ran to the end instead of stopping at the next batch"
        last = parse_s3_uri(finished["artifacts"]["last_checkpoint"])
        assert s3_server.client.head_object(Bucket=last.bucket, Key=last.key)["ContentLength"] > 0
        assert not Path(f"/proc/{child_pid}").exists(), "the job process is still running"
        status = json.loads((scratch / "jobs" / "sigterm-1" / "status.json").read_text())
        assert status["state"] == "failed"
    finally:
        _stop(server)
