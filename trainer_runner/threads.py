"""Helper threads of a job (callbacks, uploads, MLflow, heartbeats) run at a lower CPU priority
than its training threads.

Training takes every core torch is given; whatever else wants a core meanwhile takes it from a
training thread, and torch's threads then wait for the one that lost its core at the end of
each parallel operation: a few milliseconds of helper work can stall both. At a lower priority
(a higher nice value, per thread on Linux) the helpers still get the little CPU they need, but
mostly in the gaps training leaves, and none of their work is in a hurry (no one waits for an
upload or a callback to finish while training runs). A machine with idle cores sees no change.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

HELPER_NICE = 10  # added to the process's own nice value; 19 is the lowest priority


def lower_this_thread() -> None:
    """Lower the calling thread's CPU priority by `HELPER_NICE` (Linux: per thread). Lowering
    never needs a privilege; where it is not supported, the thread keeps its priority."""
    if not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(current + HELPER_NICE, 19))
    except OSError as exc:
        log.debug("thread priority unchanged", extra={"error": str(exc)})
