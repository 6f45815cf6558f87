"""Run a coroutine to completion from synchronous test code.

`asyncio.run` fails in a thread whose event loop is already running, which is the case for the
rest of the session once a test has started Playwright's sync API (it keeps a loop in the main
thread). A fresh thread has no loop, so the coroutine runs there.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio_run, coroutine).result()


def in_thread(call: Callable[[], T]) -> T:
    """A synchronous call that runs an event loop of its own (`asyncio.run` inside, as state
    helpers that Reflex runs in a worker thread do), off the test's thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()


def asyncio_run(coroutine: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coroutine)
