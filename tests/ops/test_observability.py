"""Operating a running stack while a job trains: the real Prometheus (Debian's) scrapes it, the
alert rules are valid and proven by `promtool test rules`, every dashboard and alert query
returns data; and one job's whole life is one grep over every process's log."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.utils.servers import free_port, running
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.ops
GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
THRESHOLD = re.compile(r"\s*(>|<|==|!=|>=|<=)\s*[-+\d.e]+\s*$")
needs_prometheus = pytest.mark.skipif(
    not (shutil.which("promtool") and shutil.which("prometheus")),
    reason="Debian package prometheus not installed (`make install` adds it)",
)


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((GRAFANA / "dashboards" / "vtp-overview.json").read_text())
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_signals() -> list[tuple[str, str]]:
    """Each alert's expression without its threshold: what must have data on a healthy stack."""
    rules = yaml.safe_load((GRAFANA / "alerts.yml").read_text())["groups"][0]["rules"]
    signals = []
    for rule in rules:
        assert THRESHOLD.search(rule["expr"]), f"{rule['alert']}: write it as `<signal> <op> <threshold>`"
        signals.append((rule["alert"], THRESHOLD.sub("", rule["expr"])))
    return signals


@needs_prometheus
def test_alert_rules_are_valid_and_fire_when_they_should() -> None:
    for argv in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run(["promtool", *argv], cwd=GRAFANA, capture_output=True, text=True)
        assert done.returncode == 0, f"promtool {' '.join(argv)}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def training(stack: StackProcess, api: Api) -> Iterator[dict[str, Any]]:
    """A job submitted with a known request id, once it has finished an epoch; cancelled after."""
    pid = api.project_id()
    request_id = f"ops-{uuid.uuid4().hex[:12]}"
    body = {
        "dataset_version_id": api.datasets(pid)[0]["id"],
        "hyperparameters": {"imgsz": 64, "batch": 16, "epochs": 50},
    }
    response = api.http.post(f"/projects/{pid}/jobs", json=body, headers={"X-Request-ID": request_id})
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == request_id
    job = response.json()
    try:
        deadline = time.monotonic() + 600
        while not api.job(pid, job["id"])["metrics"]:
            assert time.monotonic() < deadline, "the job did not finish an epoch"
            time.sleep(1)
        yield {**job, "project_id": pid, "request_id": request_id}
    finally:
        api.http.post(f"/projects/{pid}/jobs/{job['id']}/cancel")


@needs_prometheus
def test_every_dashboard_and_alert_query_returns_data(
    stack: StackProcess, api: Api, training: dict[str, Any], tmp_path: Path, output_dir: Path
) -> None:
    assert api.http.get("/projects/999999").status_code == 404  # a refused request: its own series
    config = {
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"},
        "rule_files": [str(GRAFANA / "alerts.yml")],
        "scrape_configs": [
            {"job_name": "vtp-web", "static_configs": [{"targets": [f"127.0.0.1:{stack.ports['web']}"]}]},
            {
                "job_name": "vtp-trainer",
                "static_configs": [{"targets": [f"127.0.0.1:{stack.ports['trainer']}"]}],
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        "prometheus",
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def queries_without_data() -> list[str]:
        empty = []
        for name, expr in [*dashboard_queries(), *alert_signals()]:
            answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}).json()
            assert answer["status"] == "success", (name, expr, answer)
            if not answer["data"]["result"]:
                empty.append(f"{name}: {expr}")
        return empty

    with running(argv, ready, output_dir / "prometheus.log", timeout_s=60):
        # rate() needs two successful scrapes in its window; on a busy machine (the rest of the
        # suite training beside it) a 1 s scrape can time out, so wait for them with a bound.
        deadline = time.monotonic() + 90
        time.sleep(4)
        while (empty := queries_without_data()) and time.monotonic() < deadline:
            time.sleep(2)
        targets = httpx.get(f"{url}/api/v1/targets").json()["data"]["activeTargets"]
        assert {t["labels"]["job"]: t["health"] for t in targets} == {
            "vtp-web": "up",
            "vtp-trainer": "up",
        }, targets
        assert not empty, "queries without data:\n" + "\n".join(empty)
        groups = httpx.get(f"{url}/api/v1/rules").json()["data"]["groups"]
        unhealthy = [
            (r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"
        ]
        assert not unhealthy, unhealthy


def _lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of one process's log (other output, a banner, is skipped)."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def test_one_job_is_one_grep_across_processes(stack: StackProcess, training: dict[str, Any]) -> None:
    """`grep '"job_id": N' data/logs/*` shows the job in the web app (its submission and its
    callbacks), the worker (the hand-over) and the trainer (the attempt), with the request id of
    the submission on each: the id travelled web -> worker -> trainer -> callbacks."""
    job_id, request_id = training["id"], training["request_id"]
    logs = stack.data_dir / "logs"
    needle = f'"job_id": {job_id}'
    mentions = {
        path.stem: [line for line in _lines(path) if line.get("job_id") == job_id]
        for path in sorted(logs.glob("*.log"))
        if needle in path.read_text(errors="replace")
    }
    assert {"web", "worker", "trainer"} <= set(mentions), sorted(mentions)
    web, worker, trainer = mentions["web"], mentions["worker"], mentions["trainer"]
    submitted = [line for line in web if line.get("status") == 201]
    assert submitted and submitted[0]["request_id"] == request_id, web[:3]
    assert submitted[0]["user_id"] and submitted[0]["project_id"] == training["project_id"]
    callbacks = [line for line in web if "/trainer/callbacks/" in line["message"]]
    assert callbacks and all(line["request_id"] == request_id for line in callbacks), callbacks[:3]
    assert any(line["message"] == "job handed to the trainer" for line in worker), worker
    assert all(line["request_id"] == request_id and line["attempt"] == 1 for line in worker), worker
    assert any(line["message"] == "epoch finished" for line in trainer), trainer[-3:]
    assert all(line["request_id"] == request_id for line in trainer), trainer[:3]
