"""Per-epoch storage work of a job, done in order by one background thread.

Training only enqueues: `checkpoint(path, epoch)` copies the freshly written checkpoint to a
snapshot (the framework overwrites its file next epoch) and `submit(task)` queues a callable
(upload the epoch's validation JSON, then put the epoch callback in the outbox). One thread runs
the queue oldest first, so everything happens in the order training produced it:

- a checkpoint queued before an epoch's task is stored (or given up on) before that task runs,
  so when epoch N queued a checkpoint, its callback goes out only once that is in storage (the
  job queues one at most every checkpoint interval);
- checkpoints are coalesced: when the thread reaches a checkpoint, it uploads the newest
  snapshot taken so far and drops older ones, so a slow store makes uploads skip epochs
  instead of piling up (what was not uploaded is never reported);
- `drain()` waits for everything queued, so the final callback can only follow it. Once the
  `deadline` it is given has passed (the trainer is stopping), transfers are skipped and only
  the callbacks are still sent (without the URIs of what was skipped).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from trainer_runner.threads import lower_this_thread

log = logging.getLogger(__name__)

UPLOADS_DIR = "uploads"
_CHECKPOINT = object()  # queue marker: upload the newest pending checkpoint snapshot


class UploadQueue:
    """Ordered background uploads of one attempt; producers never wait on the network."""

    def __init__(self, snapshot_dir: Path, upload_checkpoint: Callable[[Path, int | None], None]) -> None:
        self.snapshot_dir = snapshot_dir
        self.upload_checkpoint = upload_checkpoint  # (snapshot, the epoch it holds)
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._pending_checkpoint: tuple[Path, int | None] | None = None
        self._snapshots = 0
        self._busy = False
        self._stop = False
        self._skip = False
        self._thread = threading.Thread(target=self._run, name="uploads", daemon=True)
        self._thread.start()

    # -- producers (the training thread) -----------------------------------------------------
    def checkpoint(self, path: Path, epoch: int | None = None) -> None:
        """Snapshot `path` (holding `epoch`) now and queue its upload; an older snapshot still
        waiting is dropped."""
        if not path.exists():
            return
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        self._snapshots += 1
        snapshot = self.snapshot_dir / f"{self._snapshots:06d}-{path.name}"
        try:
            shutil.copyfile(path, snapshot)
        except OSError as exc:  # a full disk must not end training; the next epoch may work
            log.warning("checkpoint snapshot failed", extra={"error": str(exc)})
            snapshot.unlink(missing_ok=True)
            return
        with self._cond:
            superseded, self._pending_checkpoint = self._pending_checkpoint, (snapshot, epoch)
            self._queue.append(_CHECKPOINT)
            self._cond.notify_all()
        if superseded is not None:
            superseded[0].unlink(missing_ok=True)

    def submit(self, task: Callable[[], None]) -> None:
        """Run `task` on the upload thread after everything queued before it."""
        with self._cond:
            self._queue.append(task)
            self._cond.notify_all()

    # -- state -------------------------------------------------------------------------------
    @property
    def skipping(self) -> bool:
        """Whether transfers are skipped now (the drain deadline has passed)."""
        return self._skip

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._busy

    def drain(self, deadline: Callable[[], float | None] = lambda: None) -> bool:
        """Wait until everything queued is done; stop the thread. `deadline()` is a monotonic
        time (or None: no limit) past which transfers are skipped. True when nothing was
        skipped for lack of time."""
        with self._cond:
            while (self._queue or self._busy) and self._thread.is_alive():
                end = deadline()
                if end is not None and time.monotonic() >= end and not self._skip:
                    self._skip = True
                    log.warning(
                        "uploads still queued at the deadline; skipping their transfers",
                        extra={"pending": len(self._queue) + self._busy},
                    )
                self._cond.wait(0.2)
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        # The thread never dies on a task's error; should it have died anyway, finish here.
        while not self._thread.is_alive() and self._queue:
            self._process(self._queue.popleft())
        return not self._skip

    # -- the upload thread -------------------------------------------------------------------
    def _run(self) -> None:
        lower_this_thread()  # helper work yields to training (trainer_runner/threads.py)
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait(0.5)
                if not self._queue:
                    return
                item = self._queue.popleft()
                self._busy = True
            try:
                self._process(item)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _process(self, item: object) -> None:
        try:
            if item is _CHECKPOINT:
                with self._cond:
                    pending, self._pending_checkpoint = self._pending_checkpoint, None
                if pending is None:  # already uploaded with a newer one
                    return
                snapshot, epoch = pending
                try:
                    if not self._skip:
                        self.upload_checkpoint(snapshot, epoch)
                finally:
                    snapshot.unlink(missing_ok=True)
            else:
                item()  # type: ignore[operator]
        except Exception:  # the thread must outlive any surprise; the epoch goes on
            log.exception("background upload task failed")
