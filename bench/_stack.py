"""Shared by the UI benchmarks: the whole stack (`vtp up`) on free ports, a signed-in headless
Debian Chromium page, and direct database access to the stack's SQLite file."""

from __future__ import annotations

import os
import signal
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

from tests.utils.browser import ARGS, CHROMIUM, VIEWPORT, sign_in  # noqa: E402
from tests.utils.stack import Api, StackProcess  # noqa: E402


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def running_stack(**extra_env: str) -> Iterator[tuple[StackProcess, Api]]:
    # `timeout` and CI stop a benchmark with SIGTERM, which by default ends Python without running
    # `finally`: the stack (web, worker, trainer, MLflow, S3) would live on and load the machine.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with tempfile.TemporaryDirectory(prefix="vtp-bench-") as tmp:
        root = Path(tmp)
        stack = StackProcess(
            data_dir=root / "data",
            trainer_dir=root / "trainer",
            log_path=root / "stack.log",
            extra_env=extra_env,
        )
        stack.start()
        try:
            # This process talks to the same database file as the stack.
            os.environ["VTP_DATA_DIR"] = str(stack.data_dir)
            yield stack, Api(stack.api_url, stack.username, stack.password)
        finally:
            stack.stop()


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def signed_in(browser: Browser, stack: StackProcess, path: str = "/") -> Page:
    """A page in a fresh context (fresh Reflex state), signed in and on `path`."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(60_000)
    return sign_in(page, stack, path)


@contextmanager
def signed_in_page(stack: StackProcess, path: str = "/") -> Iterator[Page]:
    with chromium() as browser:
        yield signed_in(browser, stack, path)


def summary(name: str, seconds: list[float], target_s: float) -> str:
    ordered = sorted(seconds)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    median = statistics.median(ordered)
    verdict = "meets" if median < target_s else "MISSES"
    return (
        f"{name}: n={len(ordered)} median={median * 1000:.0f} ms p95={p95 * 1000:.0f} ms "
        f"min={ordered[0] * 1000:.0f} ms max={ordered[-1] * 1000:.0f} ms ({verdict} target < {target_s:g} s)"
    )
