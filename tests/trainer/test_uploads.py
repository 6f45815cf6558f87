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

    def upload(snapshot: Path) -> None:
        in_flight.set()
        gate.wait(10)  # a slow store: later checkpoints pile up meanwhile
        events.append(f"upload {snapshot.read_text()}")

    queue = UploadQueue(tmp_path / "uploads", upload)
    source = tmp_path / "last.pt"
    for epoch in range(4):
        source.write_text(f"epoch {epoch}")  # the framework rewrites the file in place
        queue.checkpoint(source)
        queue.submit(lambda epoch=epoch: events.append(f"callback {epoch}"))
        if epoch == 0:
            assert in_flight.wait(10)  # epoch 0's upload has started before epoch 1 exists
    gate.set()
    assert queue.drain()
    # Epoch 0's snapshot was in flight; epochs 1 and 2 were superseded by 3 before their turn.
    assert events == [
        "upload epoch 0",
        "callback 0",
        "upload epoch 3",
        "callback 1",
        "callback 2",
        "callback 3",
    ]
    assert not list((tmp_path / "uploads").iterdir()), "snapshots are removed once done"


def test_a_failing_task_does_not_stop_the_queue(tmp_path: Path) -> None:
    done: list[int] = []
    queue = UploadQueue(tmp_path / "uploads", lambda _: None)

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

    def upload(snapshot: Path) -> None:
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
