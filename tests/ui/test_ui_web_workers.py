"""`VTP_WEB_WORKERS=2`: two web processes on the one port, each page's state in Redis.

A stack of its own (the suite's shared stack runs the default, one process). Any process may get
a tab's next event, its upload, or a trainer callback that should move the tab's chart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from playwright.sync_api import Browser
from redis import Redis

from tests.utils.browser import VIEWPORT, sign_in
from tests.utils.live_jobs import epoch_event, insert_running_job, post_callback, stack_database
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory, output_dir: Path) -> Iterator[StackProcess]:
    root = tmp_path_factory.mktemp("scaled")
    process = StackProcess(
        data_dir=root / "data",
        trainer_dir=root / "trainer",
        log_path=output_dir / "scaled-stack.log",
        extra_env={"VTP_WEB_WORKERS": "2"},
    )
    for attempt in range(3):
        process.ports = {}
        try:
            process.start()
            break
        except RuntimeError as exc:  # a port taken since it was picked: pick again
            if "already in use" not in str(exc) or attempt == 2:
                raise
    try:
        yield process
    finally:
        process.stop()


def _web_workers(stack: StackProcess) -> list[psutil.Process]:
    """The worker processes the stack's gunicorn master forked (services/runtime/web.py)."""
    assert stack.process is not None
    below = psutil.Process(stack.process.pid).children(recursive=True)
    gunicorn = {p.pid: p for p in below if "gunicorn" in " ".join(p.cmdline())}
    return [p for p in gunicorn.values() if p.ppid() in gunicorn]


def test_two_processes_serve_the_port_and_a_tabs_state_lives_in_redis(
    browser: Browser, scaled: StackProcess
) -> None:
    """What the user chose on a page is kept in Redis, not in the memory of the process that
    served the choice: the next event may reach the other one."""
    assert len(_web_workers(scaled)) == 2
    api = Api(scaled.api_url, scaled.username, scaled.password)
    page = sign_in(browser.new_page(viewport=VIEWPORT), scaled)
    page.goto(f"{scaled.web_url}/projects/{api.project_id()}/train")
    page.wait_for_selector("#hyperparameters .hp-field")
    default = page.input_value("#model")
    options = page.eval_on_selector_all("#model option", "els => els.map(e => e.value)")
    chosen = next(o for o in options if o and o != default)
    page.select_option("#model", chosen)
    redis = Redis(port=scaled.ports["redis"])
    try:
        deadline, found = time.monotonic() + 10, False
        while not found and time.monotonic() < deadline:
            keys = [k for k in redis.scan_iter(match="*train_state*") if redis.type(k) == b"string"]
            found = any(chosen.encode() in (redis.get(k) or b"") for k in keys)
            time.sleep(0.2)
        assert found, f"no TrainState in Redis holds the chosen model {chosen!r}"
    finally:
        redis.close()
    page.close()


def test_each_new_job_page_gets_its_epochs_pushed_at_once(browser: Browser, scaled: StackProcess) -> None:
    """Pages opened one after the other, each on whichever process its events reach: a trainer
    callback handled by either process moves every page's chart within seconds (the notice goes
    through Redis to the process that runs the page's watcher)."""
    api = Api(scaled.api_url, scaled.username, scaled.password)
    pid = api.project_id()
    for _ in range(3):
        with stack_database(scaled):
            job_id, secret = insert_running_job(pid, api.datasets(pid)[-1]["id"], scaled.username, 10)
        context = browser.new_context(viewport=VIEWPORT)
        page = sign_in(context.new_page(), scaled, f"/jobs/{job_id}")
        page.wait_for_selector("#metrics-chart")
        with httpx.Client(timeout=30) as http:
            for epoch in (1, 2):
                post_callback(http, scaled.api_url, job_id, secret, epoch_event(epoch, 10))
                page.wait_for_function(
                    f"Number(document.querySelector('#metrics-chart')?.dataset.points) === {epoch}",
                    timeout=5_000,
                )
        context.close()
