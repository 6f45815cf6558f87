"""The time by which a request must have started its work, or be shed (503 + Retry-After).

Under more load than the web process can serve, a request can queue in several places after it
arrived: for a lane slot (app.api.overload), for a worker thread, for the GIL, for a database
connection. Bounding each wait on its own still lets them add up: a request admitted at the end
of its slot wait, then queued again behind the others, was served ten seconds late. So the API
sets one deadline when the request arrives (`start`), and each place that would make it wait
longer checks what is left (`check`, called by `services.infra.db.session_scope` before it takes
a connection): a request that can no longer begin in time is answered "busy" at once, which a
client retries, instead of being served after it stopped being useful.

Only while the request's lane is saturated (every slot taken, so others wait behind it): a late
request on an otherwise idle server is served late, since shedding it would free nothing for
anyone. A read (GET, HEAD) is checked before each of its sessions: it writes nothing, so shedding it
between two sessions loses nothing but the work already spent. A write is checked only before its
first session: once it has begun, shedding it between two sessions could leave half of it done.

The deadline lives in a context variable: it follows the request into anyio's worker threads
(which copy the context; the holder is shared, so a session opened in one thread is seen by the
next) and is absent everywhere else (the arq worker, the Reflex event handlers, scripts), where
`check` does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass

from services.errors import Overloaded

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Deadline:
    at: float  # time.monotonic() by which the work must start
    read_only: bool  # a GET/HEAD: may be shed before any of its sessions
    saturated: Callable[[], bool]  # whether others wait for the capacity this request holds
    started: bool = False  # a session of this request has begun


_DEADLINE: ContextVar[Deadline | None] = ContextVar("vtp_request_deadline", default=None)


def start(at: float, *, method: str, saturated: Callable[[], bool]) -> Token[Deadline | None]:
    """Set this request's deadline (a `time.monotonic()` value); `reset` with the token after."""
    return _DEADLINE.set(Deadline(at=at, read_only=method.upper() in SAFE_METHODS, saturated=saturated))


def reset(token: Token[Deadline | None]) -> None:
    _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left before the deadline (negative once past); None outside a request with one."""
    found = _DEADLINE.get()
    return None if found is None else found.at - time.monotonic()


def check() -> None:
    """Before a session: raise `Overloaded` when this request can no longer start in time and
    others wait for its capacity (a write that has already begun is let through), else note that
    its work has begun."""
    found = _DEADLINE.get()
    if found is None:
        return
    late = time.monotonic() >= found.at
    if late and (found.read_only or not found.started) and found.saturated():
        raise Overloaded(cause="deadline")
    found.started = True
