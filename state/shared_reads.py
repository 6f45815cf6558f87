"""One database read per changed thing per web process, shared by every page that shows it.

When a job reports an epoch, every open page of that job wakes (services.infra.live). Had each
re-read the job on its own, 50 viewers meant 50 sessions reading the same rows and 50 thread
hops through a small thread pool, for identical data. Here the first page that asks for a given
version of a key starts the read in a thread and the others await that same read; a newer
version starts a new read. What is shared is the data, never an access decision: each caller
still checks its own viewer (see state.job_state.watch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")

# Keys kept at most (one finished read each); past this the finished ones are dropped.
KEEP = 256


class SharedReads(Generic[T]):
    """The newest read of each key, by version: concurrent callers of one version share it."""

    def __init__(self) -> None:
        self._reads: dict[Hashable, tuple[Hashable, asyncio.Future[T]]] = {}
        self.started = 0  # reads begun (how many times the data was really read)

    async def get(self, key: Hashable, version: Hashable, read: Callable[[], T]) -> T:
        """`read()` (blocking; run in a thread) for this version of `key`, or its result when
        another caller already read or is reading the same version. A read that raised is not
        kept: the next caller reads again."""
        found = self._reads.get(key)
        if found is not None and found[0] == version and not _failed(found[1]):
            future = found[1]
        else:
            if len(self._reads) >= KEEP:
                self._reads = {k: v for k, v in self._reads.items() if not v[1].done()}
            future = asyncio.ensure_future(asyncio.to_thread(read))
            self._reads[key] = (version, future)
            self.started += 1
        # shield: one caller leaving (its page closed) must not cancel the read of the others.
        return await asyncio.shield(future)


def _failed(future: asyncio.Future[T]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)


_by_loop: dict[tuple[asyncio.AbstractEventLoop, str], SharedReads[Any]] = {}


def shared(name: str, _kind: type[T]) -> SharedReads[T]:
    """This event loop's shared reads called `name`, of `_kind` results (Reflex runs page tasks
    on one loop per process; a future belongs to the loop that made it)."""
    key = (asyncio.get_running_loop(), name)
    found = _by_loop.get(key)
    if found is None:
        found = _by_loop[key] = SharedReads()
    return cast(SharedReads[T], found)
