"""Live updates by push: "this job changed" notices over Redis pub/sub, for pages that watch.

Writers publish after their transaction commits (see services.domain.live); every web process
keeps ONE subscription for all its open pages and wakes only the pages that watch the channel
that changed. An idle page waits on an asyncio event, so idle viewers cost no CPU and no
database reads; pages re-read the database only when something they show changed.

Redis down: publishing is skipped (logged once), the hub reports `connected = False`, and the
pages fall back to a slow re-read and tell the user that live updates are paused; when Redis
comes back the hub re-subscribes and wakes every page once so it catches up.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import redis
import redis.asyncio as aioredis

from services.infra.settings import get_settings

log = logging.getLogger(__name__)

PREFIX = "vtp:live:"
RECONNECT_S = 1.0


def job_channel(job_id: int) -> str:
    return f"job:{job_id}"


def sweep_channel(sweep_id: int) -> str:
    """The sweep or one of its trial jobs changed (the sweep page watches this)."""
    return f"sweep:{sweep_id}"


def project_channel(project_id: int) -> str:
    """Any job of the project changed (the jobs list and the projects page watch this)."""
    return f"project:{project_id}"


ALL_PROJECTS = "project:*"  # every project's channel, as a subscription pattern


class _Publisher:
    """Sends notices from one background thread, so a request that committed a change (a trainer
    callback, say) never waits on Redis, and a slow moment does not drop a notice."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._queue: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_failure = 0.0

    def put(self, names: list[str]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="vtp-live-publish", daemon=True)
                self._thread.start()
        self._queue.put(names)

    def _run(self) -> None:
        client = redis.Redis.from_url(self._url, socket_timeout=5, socket_connect_timeout=2)
        while True:
            names = set(self._queue.get())
            while not self._queue.empty():  # one round trip for everything that is waiting
                names.update(self._queue.get_nowait())
            try:
                pipe = client.pipeline(transaction=False)
                for name in sorted(names):
                    pipe.publish(PREFIX + name, b"1")
                pipe.execute()
            except (redis.RedisError, OSError) as exc:
                now = time.monotonic()
                if now - self._last_failure > 60:
                    log.warning("live updates not published (%s); pages fall back to re-reading", exc)
                self._last_failure = now


@lru_cache
def _publisher(url: str) -> _Publisher:
    """One sender per Redis URL (a process talks to one; tests start several in turn)."""
    return _Publisher(url)


def publish(channels: Iterable[str]) -> None:
    """Tell watching pages that these channels changed (sent in the background). Never raises."""
    names = sorted(set(channels))
    if names:
        url = get_settings().redis_dsn
        counted = _project_versions.get(url)
        if counted is not None:
            # This process's own readers see its change at once (only what the counter hears).
            counted.bump(n for n in names if fnmatch.fnmatchcase(n, counted.pattern_name))
        _publisher(url).put(names)


class Listener:
    """A background thread subscribed to one channel: it calls `on_notice` for every notice, and
    also whenever its subscription is made, made again or lost (notices sent meanwhile are lost,
    so the caller must assume anything changed). `connected` is set only while notices are sure
    to arrive. After `stop` it calls nothing more."""

    def __init__(
        self, url: str, channel: str, on_notice: Callable[[], None], *, pattern: bool = False
    ) -> None:
        self.url = url
        self.channel = PREFIX + channel
        self.pattern = pattern  # `channel` is a glob (`project:*`): one subscription for many
        self.on_notice = on_notice
        self.connected = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"vtp-listen-{channel}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.connected.clear()

    def _notice(self) -> None:
        if not self._stopped.is_set():
            self.on_notice()

    def _heard(self, _message: dict[str, Any]) -> None:
        """A notice on the channel (a subclass may look at which channel it came from)."""
        self._notice()

    def _run(self) -> None:
        failed_at = 0.0
        while not self._stopped.is_set():
            try:
                client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_keepalive=True)
                pubsub = client.pubsub()  # type: ignore[no-untyped-call]
                if self.pattern:
                    pubsub.psubscribe(self.channel)
                else:
                    pubsub.subscribe(self.channel)
                for message in pubsub.listen():
                    if self._stopped.is_set():
                        break
                    if message["type"] in ("subscribe", "psubscribe"):  # from here nothing is missed
                        self._notice()  # first: what was kept before is stale by the time it says so
                        self.connected.set()
                    else:
                        self._heard(message)
                pubsub.close()
            except (redis.RedisError, OSError) as exc:
                if time.monotonic() - failed_at > 60 and not self._stopped.is_set():
                    log.warning("not subscribed to %s (%s); retrying", self.channel, exc)
                failed_at = time.monotonic()
            self.connected.clear()
            self._notice()
            self._stopped.wait(RECONNECT_S)


class ChannelVersions(Listener):
    """How many notices each channel matching `pattern` has had, heard by one background thread:
    for caches outside pages (services.actions.jobs keeps the jobs list by its project's count).

    `version(channel)` is None while not subscribed (notices could be missed: cache nothing), and
    changes with every notice to the channel, with every change this process publishes itself (at
    once, before Redis echoes it: whoever changed something and reads it back sees the change),
    and with every (re)subscription or loss, since notices sent meanwhile were lost."""

    def __init__(self, url: str, pattern: str) -> None:
        self.pattern_name = pattern
        self._counts: dict[str, int] = defaultdict(int)
        self._generation = 0
        self._lock = threading.Lock()
        super().__init__(url, pattern, self._everything_changed, pattern=True)

    def _everything_changed(self) -> None:
        with self._lock:
            self._generation += 1

    def _heard(self, message: dict[str, Any]) -> None:
        if message.get("type") != "pmessage":
            return
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        self.bump([channel.removeprefix(PREFIX)])

    def bump(self, channels: Iterable[str]) -> None:
        with self._lock:
            for name in channels:
                self._counts[name] += 1

    def version(self, channel: str) -> tuple[int, int] | None:
        if not self.connected.is_set():
            return None
        with self._lock:
            return self._generation, self._counts.get(channel, 0)


_project_versions: dict[str, ChannelVersions] = {}
_project_versions_lock = threading.Lock()


def project_version(project_id: int) -> tuple[int, int] | None:
    """A number that changes whenever a job of the project may have changed (see
    `ChannelVersions`); None while this process cannot be sure to hear of changes. The one
    subscription (`project:*`) starts on first use."""
    url = get_settings().redis_dsn
    counted = _project_versions.get(url)
    if counted is None:
        with _project_versions_lock:
            counted = _project_versions.get(url)
            if counted is None:
                for old in _project_versions.values():  # another Redis (tests start several)
                    old.stop()
                _project_versions.clear()
                counted = _project_versions[url] = ChannelVersions(url, ALL_PROJECTS)
    return counted.version(project_channel(project_id))


class Hub:
    """One Redis subscription per process and event loop, fanned out to waiting pages."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.generation = 0  # bumped on every (re)connect, so pages know to catch up
        # A fresh number for a watched channel on every notice to it, and when it starts being
        # watched: pages that share one read of what a channel shows (state.shared_reads) key it
        # by this, and a read begun after the number was given sees every write announced so far.
        self._sequence = 0
        self._versions: dict[str, int] = {}

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="vtp-live-hub")

    async def _run(self) -> None:
        while True:
            client = aioredis.Redis.from_url(self._url, socket_connect_timeout=2)
            try:
                pubsub = client.pubsub()
                await pubsub.psubscribe(PREFIX + "*")
                self.connected, self.generation = True, self.generation + 1
                self._wake_all()  # catch up on whatever was missed while disconnected
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    channel = message["channel"]
                    if isinstance(channel, bytes):
                        channel = channel.decode()
                    self._wake(channel.removeprefix(PREFIX))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect, pages fall back
                if self.connected:
                    log.warning("live updates lost their Redis subscription (%s); reconnecting", exc)
                self.connected = False
                self._wake_all()
            finally:
                await client.aclose()
            await asyncio.sleep(RECONNECT_S)

    def _wake(self, channel: str) -> None:
        events = self._waiters.get(channel)
        if not events:
            return
        self._sequence += 1
        self._versions[channel] = self._sequence
        for event in events:
            event.set()

    def version(self, channel: str) -> tuple[int, int]:
        """Which notices of a watched channel this process has seen: (connection, notice number)."""
        return self.generation, self._versions.get(channel, 0)

    def watching(self, channel: str) -> bool:
        """Whether a page of this process watches `channel` (only then does its version move)."""
        return bool(self._waiters.get(channel))

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    def watch(self, channels: Iterable[str]) -> Watch:
        """A standing subscription of one page: changes that arrive while it re-reads are kept."""
        self._start()
        return Watch(self, list(channels))

    def _add(self, channels: list[str], event: asyncio.Event) -> None:
        for name in channels:
            if not self._waiters[name]:  # unwatched until now: notices may have been missed
                self._sequence += 1
                self._versions[name] = self._sequence
            self._waiters[name].add(event)

    def _remove(self, channels: list[str], event: asyncio.Event) -> None:
        for name in channels:
            self._waiters[name].discard(event)
            if not self._waiters[name]:
                del self._waiters[name]
                self._versions.pop(name, None)


class Watch:
    """What one open page watches; use as a context manager around its loop."""

    def __init__(self, hub: Hub, channels: list[str]) -> None:
        self._hub, self._channels, self._event = hub, channels, asyncio.Event()
        hub._add(channels, self._event)
        # A page subscribes after its first read (its load event, then the watcher it starts),
        # so a change may have landed in between, its notice sent to no one: the first wait
        # returns at once and the page reads again. (Not yet connected: the hub wakes every
        # page once it is.)
        if hub.connected:
            self._event.set()

    @property
    def connected(self) -> bool:
        return self._hub.connected

    def version(self, channel: str) -> tuple[int, int]:
        """See `Hub.version`; `channel` is one of those this page watches."""
        return self._hub.version(channel)

    async def changed(self, timeout: float) -> bool:
        """True when a watched channel changed since the last call; False after `timeout`."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        self._event.clear()
        return True

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._hub._remove(self._channels, self._event)


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    """This event loop's hub (Reflex runs page tasks on one loop per worker process)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub(get_settings().redis_dsn)
    return found
