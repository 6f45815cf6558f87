"""Metrics of several processes add up on one /metrics (prometheus_client's multiprocess mode),
and the label sets stay bounded (route templates, never raw paths)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.ops

RECORD = """
from services.infra import metrics
metrics.observe_http("/api/v1/trainer/callbacks/{job_id}", "POST", 401, 0.02)
metrics.observe_http("/api/v1/projects/{project_id}", "GET", 200, 0.01)
metrics.INGEST_BYTES.inc(1000)
"""
EXPOSE = """
import sys
from services.infra import db, metrics
sys.stdout.write(metrics.exposition(with_state=False).decode())
"""


def _python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_processes_add_up_on_one_scrape(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    _python(RECORD, env)  # "the web app"
    _python(RECORD, env)  # "the worker", or a second web worker
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(_python(EXPOSE, env))
        for s in family.samples
    }
    rejected = ("vtp_trainer_callbacks_total", (("outcome", "rejected"),))
    assert samples[rejected] == 2
    route = (("method", "GET"), ("route", "/api/v1/projects/{project_id}"), ("status", "200"))
    assert samples[("vtp_http_request_duration_seconds_count", route)] == 2
    assert samples[("vtp_dataset_ingest_bytes_total", ())] == 2000
    # The answering process's own pool (a gauge read by a function) is served beside the sums.
    assert samples[("vtp_db_pool_capacity", ())] > 0
    assert not any(name.startswith("vtp_") and "projects/1" in str(labels) for name, labels in samples)


def test_http_latency_is_labelled_by_route_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from app.api.main import api
    from services.infra import metrics
    from services.runtime.cli import migrate
    from tests.conftest import reset_caches

    monkeypatch.setenv("VTP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    reset_caches()
    try:
        migrate()
        client = TestClient(api)
        assert client.post("/api/v1/trainer/callbacks/987654", json={}).status_code == 404
        assert client.get("/api/v1/projects/987654").status_code == 401
        assert client.get("/no/such/page/987654").status_code == 404
        text = metrics.exposition(with_state=False).decode()
    finally:
        reset_caches()
    assert 'route="/api/v1/trainer/callbacks/{job_id}",status="404"' in text
    assert 'route="/api/v1/projects/{project_id}",status="401"' in text
    assert 'route="unmatched",status="404"' in text
    assert "987654" not in text
    assert 'vtp_trainer_callbacks_total{outcome="rejected"}' in text
