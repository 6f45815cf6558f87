"""The job's background upload queue: order, coalesced checkpoints, drain and its deadline."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from trainer_runner.uploads import UploadQueue

pytestmark = pytest.mark.trainer


def test_checkpoint_is_stored_before_the_next_task_and_snapshots_are_coalesced(
    tmp_path: Path,
) -> None:
    gate, in_flight = threading.Event(), threading.Event()
    events: list[str] = []

    def upload(snapshot: Path, epoch: int | None) -> None:
        in_flight.set()
        gate.wait(10)  # a slow store: later checkpoints pile up meanwhile
        events.append(f"upload {snapshot.read_text()} (holds {epoch})")

    queue = UploadQueue(tmp_path / "uploads", upload)
    source = tmp_path / "last.pt"
    for epoch in range(4):
        source.write_text(f"epoch {epoch}")  # the framework rewrites the file in place
        queue.checkpoint(source, epoch)
        queue.submit(lambda epoch=epoch: events.append(f"callback {epoch}"))
        if epoch == 0:
            assert in_flight.wait(10)  # epoch 0's upload has started before epoch 1 exists
    gate.set()
    assert queue.drain()
    # Epoch 0's snapshot was in flight; epochs 1 and 2 were superseded by 3 before their turn.
    assert events == [
        "upload epoch 0 (holds 0)",
        "callback 0",
        "upload epoch 3 (holds 3)",
        "callback 1",
        "callback 2",
        "callback 3",
    ]
    assert not list((tmp_path / "uploads").iterdir()), "snapshots are removed once done"


def test_a_failing_task_does_not_stop_the_queue(tmp_path: Path) -> None:
    done: list[int] = []
    queue = UploadQueue(tmp_path / "uploads", lambda _snapshot, _epoch: None)

    def boom() -> None:
        raise RuntimeError("boom")

    queue.submit(boom)
    queue.submit(lambda: done.append(1))
    assert queue.drain()
    assert done == [1]


def test_drain_past_its_deadline_skips_transfers_but_runs_every_task(tmp_path: Path) -> None:
    release, in_flight = threading.Event(), threading.Event()
    uploads: list[str] = []
    ran: list[tuple[int, bool]] = []

    def upload(snapshot: Path, epoch: int | None) -> None:
        in_flight.set()
        release.wait(10)
        uploads.append(snapshot.read_text())

    queue = UploadQueue(tmp_path / "uploads", upload)
    source = tmp_path / "last.pt"
    source.write_text("a")
    queue.checkpoint(source)
    # "a" must be in flight before anything else is queued (else it is coalesced with "b").
    assert in_flight.wait(10)
    for n in range(3):
        queue.submit(lambda n=n: ran.append((n, queue.skipping)))
    source.write_text("b")
    queue.checkpoint(source)
    threading.Timer(0.5, release.set).start()
    assert not queue.drain(lambda: time.monotonic() - 1)  # the deadline is already past
    assert uploads == ["a"]  # the one in flight finishes; the later one is skipped
    assert ran == [(0, True), (1, True), (2, True)]


def test_checkpoints_are_queued_at_most_once_per_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """last.pt goes to storage when the interval has passed since the previous upload (or since
    training started), not after every epoch; interval 0 means every epoch."""
    from trainer_runner import job as job_module
    from trainer_runner.job import JobRunner
    from trainer_runner.schemas import StartJobRequest
    from trainer_runner.settings import TrainerSettings

    spec = tmp_path / "job" / "spec.json"
    spec.parent.mkdir()
    request = StartJobRequest(
        job_id="interval",
        framework="ultralytics",
        task="detect",
        model="yolo11n.yaml",
        dataset_uri="s3://b/d/",
        output_uri="s3://b/o/",
        callback_url="http://127.0.0.1:9/cb",
        callback_secret="s" * 32,
    )
    spec.write_text(request.model_dump_json())
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"weights")
    now = [1000.0]
    monkeypatch.setattr(job_module.time, "monotonic", lambda: now[0])

    def epochs(interval: float, seconds_apart: list[float]) -> list[float]:
        runner = JobRunner(spec, TrainerSettings(checkpoint_interval_s=interval))
        queued: list[float] = []
        runner.uploads.checkpoint = lambda path, epoch: queued.append(now[0])  # type: ignore[method-assign]
        runner._checkpoint_due = now[0] + interval  # training starts now
        start = now[0]
        for step in seconds_apart:
            now[0] += step
            runner.on_checkpoint(checkpoint)
        runner.uploads.drain()
        return [round(t - start) for t in queued]

    # Epochs of 20 s with a 60 s interval: the epochs ending at 60 s, 120 s, 180 s.
    assert epochs(60, [20] * 9) == [60, 120, 180]
    # Epochs longer than the interval: every one.
    assert epochs(60, [90, 90, 90]) == [90, 180, 270]
    assert epochs(0, [1, 1, 1]) == [1, 2, 3]
