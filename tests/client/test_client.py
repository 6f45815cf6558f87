"""The Python client as a notebook or CI script uses it: password sign-in with refresh, upload
progress, typed errors, and waiting out a 429 for as long as the server's Retry-After says."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from vtp_client import Client, InvalidInput, NotFound, RateLimited, Unauthorized, config
from vtp_client.client import new_lines
from vtp_client.models import TokenPair

from services.runtime.sample_data import yolo_zip
from tests.utils.stack import StackProcess

pytestmark = pytest.mark.client


def test_password_login_refreshes_and_reports_each_pair(stack: StackProcess) -> None:
    pairs: list[TokenPair] = []
    with Client.login(stack.web_url, stack.username, stack.password, on_tokens=pairs.append) as vtp:
        assert vtp.me().username == stack.username and len(pairs) == 1
        vtp.access_token = "a.b.c"  # as if it had been revoked: the 401 is answered with a refresh
        assert vtp.me().username == stack.username
        assert len(pairs) == 2 and pairs[1].refresh_token != pairs[0].refresh_token
        vtp.expires_at = time.time()  # about to run out: refreshed before the call, not after
        vtp.projects.list()
        assert len(pairs) == 3
        vtp.refresh_token = "vtp_rt_unknown"
        vtp.access_token = "a.b.c"
        with pytest.raises(Unauthorized):
            vtp.me()


def test_upload_reports_progress_and_refusals_carry_every_problem(
    stack: StackProcess, tmp_path: Path
) -> None:
    data = tmp_path / "tiny.zip"
    data.write_bytes(yolo_zip(train=6, val=2, size=32, seed=3))
    seen: list[tuple[int, int | None]] = []
    with Client.login(stack.web_url, stack.username, stack.password) as vtp:
        project = vtp.projects.get("demo PROJECT")  # by name, ignoring case
        result = vtp.datasets.upload(
            project.id, data, name="client-progress", progress=lambda d, t: seen.append((d, t))
        )
        assert result.num_images == 8 and result.report.counts
        assert seen[-1] == (data.stat().st_size, data.stat().st_size)
        assert vtp.datasets.resolve(project.id, "client-progress").id == result.id
        split = vtp.datasets.split(project.id, result.dataset_id, train=0.5, val=0.5, test=0.0, seed=1)
        assert split.version == 2 and sum(split.split_counts.values()) == 8
        assert vtp.datasets.resolve(project.id, "client-progress:1").version == 1
        assert vtp.datasets.report(project.id, result.dataset_id, 2) == {}
        renamed = vtp.datasets.rename_classes(project.id, result.dataset_id, {"circle": "disc"})
        assert renamed.version == 3 and "disc" in renamed.classes and "circle" not in renamed.classes

        junk = tmp_path / "junk.zip"
        junk.write_bytes(b"this is not a zip")
        with pytest.raises(InvalidInput) as refused:
            vtp.datasets.upload(project.id, junk)
        assert refused.value.status_code == 422 and refused.value.message
        with pytest.raises(NotFound, match="Job 987654 does not exist"):
            vtp.jobs.get(project.id, 987654)


class _Busy(BaseHTTPRequestHandler):
    """A real HTTP server that answers 429 `busy` times (Retry-After: `wait`), then a project list."""

    busy, wait, calls = 1, "1", 0

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        type(self).calls += 1
        if type(self).calls <= type(self).busy:
            body, status, headers = b'{"detail":"Too many requests"}', 429, {"Retry-After": type(self).wait}
        else:
            body, status, headers = json.dumps([]).encode(), 200, {}
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def busy_server() -> Iterator[tuple[str, type[_Busy]]]:
    handler = type("Busy", (_Busy,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_429_waits_for_retry_after_then_gives_up_past_the_limit(busy_server: tuple[str, type[_Busy]]) -> None:
    url, handler = busy_server
    started = time.monotonic()
    with Client(url, "vtp_pat_x") as vtp:
        assert vtp.projects.list() == []
    assert handler.calls == 2 and time.monotonic() - started >= 1.0

    handler.calls, handler.busy, handler.wait = 0, 5, "30"
    with Client(url, "vtp_pat_x", max_rate_limit_wait_s=5) as vtp, pytest.raises(RateLimited) as limited:
        vtp.projects.list()
    assert limited.value.retry_after_s == 30 and limited.value.message == "Too many requests"
    assert handler.calls == 1


def test_environment_token_wins_over_the_saved_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VTP_CONFIG", str(tmp_path / "vtp.json"))
    monkeypatch.delenv("VTP_TOKEN", raising=False)
    monkeypatch.delenv("VTP_URL", raising=False)
    config.save_file(config.Credentials(url="http://saved:1", access_token="a", refresh_token="r"))
    assert config.resolve() == config.Credentials(url="http://saved:1", access_token="a", refresh_token="r")
    monkeypatch.setenv("VTP_TOKEN", "vtp_pat_ci")
    assert config.resolve() == config.Credentials(url="http://saved:1", token="vtp_pat_ci")
    assert config.resolve(url="http://arg:2").url == "http://arg:2"


def test_log_follow_prints_each_line_once() -> None:
    assert new_lines([], ["a", "b"]) == ["a", "b"]
    assert new_lines(["a", "b", "c"], ["b", "c", "d", "e"]) == ["d", "e"]
    assert new_lines(["a", "b"], ["a", "b"]) == []
    assert new_lines(["x"], ["y"]) == ["y"]
