"""An on-disk outbox for the callbacks of one job attempt.

Training only ever appends: `put` writes the event as one JSON file in `{work_dir}/outbox/`
(named by a sequence number, so the folder sorts in order) and returns at once. One sender
thread delivers the oldest file first and removes it on a 2xx, or on a 4xx that means the
backend will never take it (401, 404, 422: logged and dropped); a 5xx, 408/429 or a network
error keeps it and tries again after an exponential backoff with jitter, so nothing overtakes
an undelivered event and the backend sees events in the order they happened. Heartbeats are
coalesced: only the latest one waits (in memory), and it goes out only when no ordered event
is pending.

Every try looks at the folder afresh: when several events wait (the backend was slow or down,
or training outpaces it), they go out together, oldest first, in one signed request to
`{callback_url}/batch` (protocol v1.6, up to `max_batch` events): the backend applies them all
or none, so they are removed together. A backend without that route (older than v1.6:
404/405) gets them one at a time from then on; a batch refused for good (a bad event, 422) is
sent again one event at a time, so only the bad event is dropped.

`drain(budget_s)` is called when the job is over: it waits until every event is delivered or
the budget is spent; what is left stays on disk and is logged.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from pathlib import Path

import httpx

from trainer_runner.callbacks import CallbackSender, retryable
from trainer_runner.schemas import CallbackEvent
from trainer_runner.threads import lower_this_thread

log = logging.getLogger(__name__)

OUTBOX_DIR = "outbox"
SUFFIX = ".json"
# A batch stays well under the backend's 1 MiB request limit, whatever the events carry.
MAX_BATCH_BYTES = 512 * 1024
# What an older backend answers for a route it does not have.
NO_BATCH_ROUTE = frozenset({404, 405})


class CallbackOutbox:
    """Ordered, durable delivery of one attempt's events; thread-safe."""

    def __init__(
        self, directory: Path, sender: CallbackSender, *, max_backoff_s: float = 30.0, max_batch: int = 100
    ) -> None:
        self.directory = directory
        self.sender = sender
        self.max_backoff_s = max_backoff_s
        self.max_batch = max_batch
        directory.mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        self._seq = max((self._seq_of(p) for p in self.pending()), default=0)
        self._heartbeat: bytes | None = None
        self._closed = False  # `finished` was queued: no heartbeat after it
        self._stop = threading.Event()
        self.delivered = 0
        self.batches = 0  # batch requests the backend took
        self.dropped = 0
        self.failures = 0
        self._down_since: float | None = None
        self._streak = 0  # tries in a row the backend did not take (the backoff grows with it)
        self._singles = 0  # events to send one at a time (after a refused batch)
        self._thread = threading.Thread(target=self._run, name="callback-outbox", daemon=True)
        self._thread.start()

    def _pause(self, seconds: float) -> None:
        """The wait between tries, cut short when the run is asked to stop."""
        self._stop.wait(seconds)

    # -- producers (training, heartbeat thread) ---------------------------------------------

    def put(self, event: CallbackEvent) -> Path:
        """Append an event; never blocks on the network."""
        body = event.model_dump_json().encode()
        with self._cond:
            self._seq += 1
            path = self.directory / f"{self._seq:08d}-{event.type}{SUFFIX}"
            tmp = self.directory / f".{path.name}.tmp"
            tmp.write_bytes(body)
            os.replace(tmp, path)  # a reader never sees half an event
            if event.type == "finished":
                self._closed = True
                self._heartbeat = None
            self._cond.notify_all()
        return path

    def put_heartbeat(self, event: CallbackEvent) -> None:
        """Replace the pending heartbeat, if any: only the latest one matters."""
        with self._cond:
            if not self._closed:
                self._heartbeat = event.model_dump_json().encode()
                self._cond.notify_all()

    # -- state -----------------------------------------------------------------------------
    def pending(self) -> list[Path]:
        """Undelivered events, oldest first."""
        return sorted(p for p in self.directory.glob(f"*{SUFFIX}") if not p.name.startswith("."))

    @staticmethod
    def _seq_of(path: Path) -> int:
        head = path.name.split("-", 1)[0]
        return int(head) if head.isdigit() else 0

    @property
    def active(self) -> bool:
        """Whether the sender thread still runs (it stops only when told to)."""
        return self._thread.is_alive()

    def wait_empty(self, deadline: float) -> bool:
        """Wait (until the monotonic `deadline`) for every queued event to be delivered."""
        while self.pending() and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.1)
        return not self.pending()

    def drain(self, budget_s: float, deadline: float | None = None) -> bool:
        """Stop taking heartbeats and wait for every queued event, at most `budget_s` seconds
        (or until the monotonic `deadline`, if sooner). True when nothing is left."""
        with self._cond:
            self._closed = True
            self._heartbeat = None
        end = time.monotonic() + budget_s
        self.wait_empty(min(end, deadline) if deadline is not None else end)
        left = self.pending()
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=self.sender.timeout_s + 5)
        if left:
            log.error(
                "callbacks not delivered before the budget ran out; kept on disk",
                extra={"pending": [p.name for p in left], "outbox": str(self.directory)},
            )
        return not left

    # -- the sender thread -----------------------------------------------------------------
    def _next(self) -> tuple[list[Path], list[bytes]] | None:
        """The oldest waiting events (as many as one batch takes), or else the heartbeat (no path)."""
        with self._cond:
            while not self._stop.is_set():
                files = self.pending()[: self.max_batch]
                if files:
                    try:
                        return self._batch_of(files)
                    except OSError:  # removed under us; look again
                        continue
                if self._heartbeat is not None:
                    body, self._heartbeat = self._heartbeat, None
                    return [], [body]
                self._cond.wait(0.5)
        return None

    @staticmethod
    def _batch_of(files: list[Path]) -> tuple[list[Path], list[bytes]]:
        paths, bodies = [files[0]], [files[0].read_bytes()]
        size = len(bodies[0])
        for path in files[1:]:
            body = path.read_bytes()
            size += len(body) + 1
            if size > MAX_BATCH_BYTES:
                break
            paths.append(path)
            bodies.append(body)
        return paths, bodies

    def _run(self) -> None:
        lower_this_thread()  # helper work yields to training (trainer_runner/threads.py)
        while (item := self._next()) is not None:
            paths, bodies = item
            try:
                if not paths:
                    self._send_heartbeat(bodies[0])
                    continue
                if self._singles:
                    paths, bodies = paths[:1], bodies[:1]
                wait = self._try(paths, bodies)
                if wait is not None:
                    self._pause(wait)
            except Exception:  # the sender must outlive any surprise
                log.exception("callback sender error")
                self._stop.wait(1.0)

    def _send_heartbeat(self, body: bytes) -> None:
        """One try: a newer heartbeat replaces a lost one anyway."""
        try:
            self.sender.post_once(body)
            self._up()
        except httpx.HTTPError as exc:
            self._down(exc)
            self._stop.wait(1.0)

    def _backoff(self) -> float:
        self._streak += 1
        grown: float = 0.5 * 2.0 ** min(self._streak - 1, 16)
        return min(self.max_backoff_s, grown + random.uniform(0, 1))

    def _try(self, paths: list[Path], bodies: list[bytes]) -> float | None:
        """One try at the oldest waiting events (several in one batch request, v1.6). Returns how
        long to wait before the next try when the backend did not take them, else None."""
        batch = len(paths) > 1
        name = f"{paths[0].name}..{paths[-1].name}" if batch else paths[0].name
        try:
            if batch:
                body = b'{"events":[' + b",".join(bodies) + b"]}"
                self.sender.post_once(body, url=self.sender.batch_url)
            else:
                self.sender.post_once(bodies[0])
        except httpx.HTTPStatusError as exc:
            if retryable(exc):
                return self._later(exc, name)
            self._refused(paths, exc)
            return None
        except httpx.HTTPError as exc:  # unreachable, or cut off mid-answer
            return self._later(exc, name)
        self.delivered += len(paths)
        self.batches += batch
        self._singles = max(0, self._singles - len(paths))
        self._streak = 0
        self._up()
        for path in paths:
            path.unlink(missing_ok=True)
        return None

    def _later(self, exc: BaseException, name: str) -> float:
        wait = self._backoff()
        self._down(exc, name, wait)
        return wait

    def _refused(self, paths: list[Path], exc: httpx.HTTPStatusError) -> None:
        """A refusal for good: a lone event is dropped; a batch's events go again one at a time,
        so that only a bad one is dropped (and a backend without the batch route gets no more)."""
        code = exc.response.status_code
        self._streak = 0
        if len(paths) > 1:
            if code in NO_BATCH_ROUTE:
                self.max_batch = 1
                log.info("backend takes no callback batches (older than v1.6); sending one at a time")
            else:
                self._singles = len(paths)
                log.warning(
                    "callback batch refused; sending its events one at a time",
                    extra={"status": code, "detail": exc.response.text[:500]},
                )
            return
        self.dropped += 1
        self._singles = max(0, self._singles - 1)
        log.error("callback refused by the backend; dropped", extra={"event": paths[0].name, "status": code})
        paths[0].unlink(missing_ok=True)

    def _down(self, exc: BaseException | None, event: str = "heartbeat", wait: float = 0) -> None:
        self.failures += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
        log.warning(
            "backend did not take a callback; will retry",
            extra={
                "event": event,
                "retry_in_s": round(wait, 1),
                "pending": len(self.pending()),
                "error": f"{type(exc).__name__}: {exc}",
            },
        )

    def _up(self) -> None:
        if self._down_since is not None:
            log.info(
                "backend reachable again",
                extra={"down_s": round(time.monotonic() - self._down_since, 1)},
            )
            self._down_since = None
