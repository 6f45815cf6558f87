"""The worker's circuit breaker around trainer calls, against a real closed port and a real server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from services.infra import trainer_client
from services.infra.settings import get_settings
from services.infra.trainer_client import CircuitBreakerError, TrainerClient
from tests.utils.servers import free_port

pytestmark = pytest.mark.reliability


@pytest.fixture
def small_breaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("VTP_TRAINER_BREAKER_FAILURES", "2")
    monkeypatch.setenv("VTP_TRAINER_BREAKER_RESET_S", "1")
    get_settings.cache_clear()
    trainer_client.breaker.cache_clear()
    yield
    get_settings.cache_clear()
    trainer_client.breaker.cache_clear()


def _status(client: TrainerClient) -> object:
    """Run one async call on a private loop: a session-wide Playwright browser may own this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, client.job_status(1)).result()


def test_breaker_opens_after_failures_and_recovers(small_breaker: None) -> None:
    dead = TrainerClient(base_url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    for _ in range(2):
        with pytest.raises(httpx.ConnectError):
            _status(dead)
    started = time.monotonic()
    with pytest.raises(CircuitBreakerError):
        _status(dead)
    assert time.monotonic() - started < 0.05, "an open circuit must refuse without connecting"
    time.sleep(1.1)
    # Half-open: one trial call goes out again (and fails again here, reopening the circuit).
    with pytest.raises(httpx.ConnectError):
        _status(dead)
    with pytest.raises(CircuitBreakerError):
        _status(dead)


class _Busy503(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_answers_do_not_open_the_circuit(small_breaker: None) -> None:
    """A 5xx is an answer from a live trainer: only transport failures count."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy503)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = TrainerClient(base_url=f"http://127.0.0.1:{server.server_port}", timeout_s=2)
        for _ in range(4):
            with pytest.raises(httpx.HTTPStatusError):
                _status(client)
        assert trainer_client.breaker().failure_count == 0
    finally:
        server.shutdown()
