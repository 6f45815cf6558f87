"""The real Prometheus (Debian's) scrapes a running stack: the alert rules are valid and proven by
`promtool test rules`, and every dashboard and alert query returns data while a job trains."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

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


@needs_prometheus
def test_every_dashboard_and_alert_query_returns_data(
    stack: StackProcess, api: Api, tmp_path: Path, output_dir: Path
) -> None:
    pid = api.project_id()
    job = api.start_job(pid, api.datasets(pid)[0]["id"], epochs=50)
    try:
        deadline = time.monotonic() + 600
        while not api.job(pid, job["id"])["metrics"]:
            assert time.monotonic() < deadline, "the job did not finish an epoch"
            time.sleep(1)
        assert api.http.get("/projects/999999").status_code == 404  # a refused request: its own series
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
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

        with running(argv, ready, output_dir / "prometheus.log", timeout_s=60):
            time.sleep(10)  # several scrapes, so rate() has two points in its window
            targets = httpx.get(f"{url}/api/v1/targets").json()["data"]["activeTargets"]
            assert {t["labels"]["job"]: t["health"] for t in targets} == {
                "vtp-web": "up",
                "vtp-trainer": "up",
            }, targets
            empty = []
            for name, expr in [*dashboard_queries(), *alert_signals()]:
                answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}).json()
                assert answer["status"] == "success", (name, expr, answer)
                if not answer["data"]["result"]:
                    empty.append(f"{name}: {expr}")
            assert not empty, "queries without data:\n" + "\n".join(empty)
            groups = httpx.get(f"{url}/api/v1/rules").json()["data"]["groups"]
            unhealthy = [
                (r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"
            ]
            assert not unhealthy, unhealthy
    finally:
        api.http.post(f"/projects/{pid}/jobs/{job['id']}/cancel")
