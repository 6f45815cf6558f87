"""200 people browsing the running app (used by bench/load_test.py, which seeds users and tokens).

Each simulated user signs in with their own personal API token and, with a think time of 1-3 s,
opens what a browsing user opens: the pages' HTML, the project list, the jobs list, a job's
detail, a comparison of a few runs, datasets and analytics. The UI's live updates travel over
Reflex's websocket, which locust does not speak; these REST reads hit the same services and
database queries the pages' state classes call.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from pathlib import Path
from typing import Any

from locust import HttpUser, between, task

TOKENS: list[str] = json.loads(Path(os.environ["VTP_LOAD_TOKENS"]).read_text())
PROJECT = int(os.environ["VTP_LOAD_PROJECT"])
_next_token = itertools.count()


class BrowsingUser(HttpUser):
    wait_time = between(1, 3)

    def on_start(self) -> None:
        token = TOKENS[next(_next_token) % len(TOKENS)]
        self.client.headers["Authorization"] = f"Bearer {token}"
        self.job_ids: list[int] = []
        self.list_jobs()

    def list_jobs(self) -> bool:
        """The jobs list, as the jobs page loads it; it also tells the user which jobs to open.
        A shed list (503) leaves the ids unknown: the next job task asks for the list again
        rather than for a job that does not exist (a 404 counted as a failure)."""
        jobs = self.get(f"/api/v1/projects/{PROJECT}/jobs", "jobs list")
        if isinstance(jobs, list) and jobs:
            self.job_ids = [job["id"] for job in jobs]
        return bool(self.job_ids)

    def get(self, path: str, name: str) -> Any:
        """GET; a 503 with Retry-After (the server shedding load) is counted apart, as type SHED."""
        with self.client.get(path, name=name, catch_response=True) as response:
            if response.status_code == 503 and response.headers.get("Retry-After"):
                response.request_meta["request_type"] = "SHED"
                response.success()
                return None
            if not 200 <= response.status_code < 400:
                response.failure(f"{response.status_code}: {response.error or response.text[:120]!r}")
                return None
            response.success()
            return response.json() if path.startswith("/api/") else None

    @task(2)
    def dashboard_page(self) -> None:
        self.get("/", "page HTML /")
        self.get("/api/v1/projects", "projects")

    @task(3)
    def jobs_list(self) -> None:
        self.list_jobs()

    @task(3)
    def job_detail(self) -> None:
        if not self.job_ids and not self.list_jobs():
            return
        job = random.choice(self.job_ids)
        self.get(f"/jobs/{job}", "page HTML job")
        self.get(f"/api/v1/projects/{PROJECT}/jobs/{job}", "job detail")

    @task(1)
    def compare(self) -> None:
        if not self.job_ids and not self.list_jobs():
            return
        ids = ",".join(str(i) for i in random.sample(self.job_ids, min(5, len(self.job_ids))))
        self.get(f"/api/v1/projects/{PROJECT}/compare?ids={ids}", "compare 5 runs")

    @task(1)
    def datasets(self) -> None:
        self.get(f"/api/v1/projects/{PROJECT}/datasets", "datasets")

    @task(1)
    def analytics(self) -> None:
        self.get("/api/v1/analytics", "analytics")
