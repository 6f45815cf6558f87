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

from locust import HttpUser, between, task

TOKENS: list[str] = json.loads(Path(os.environ["VTP_LOAD_TOKENS"]).read_text())
PROJECT = int(os.environ["VTP_LOAD_PROJECT"])
_next_token = itertools.count()


class BrowsingUser(HttpUser):
    wait_time = between(1, 3)

    def on_start(self) -> None:
        token = TOKENS[next(_next_token) % len(TOKENS)]
        self.client.headers["Authorization"] = f"Bearer {token}"
        jobs = self.client.get(f"/api/v1/projects/{PROJECT}/jobs", name="jobs list").json()
        self.job_ids = [job["id"] for job in jobs] or [0]

    @task(2)
    def dashboard_page(self) -> None:
        self.client.get("/", name="page HTML /")
        self.client.get("/api/v1/projects", name="projects")

    @task(3)
    def jobs_list(self) -> None:
        self.client.get(f"/api/v1/projects/{PROJECT}/jobs", name="jobs list")

    @task(3)
    def job_detail(self) -> None:
        job = random.choice(self.job_ids)
        self.client.get(f"/jobs/{job}", name="page HTML job")
        self.client.get(f"/api/v1/projects/{PROJECT}/jobs/{job}", name="job detail")

    @task(1)
    def compare(self) -> None:
        ids = ",".join(str(i) for i in random.sample(self.job_ids, min(5, len(self.job_ids))))
        self.client.get(f"/api/v1/projects/{PROJECT}/compare?ids={ids}", name="compare 5 runs")

    @task(1)
    def datasets(self) -> None:
        self.client.get(f"/api/v1/projects/{PROJECT}/datasets", name="datasets")

    @task(1)
    def analytics(self) -> None:
        self.client.get("/api/v1/analytics", name="analytics")
