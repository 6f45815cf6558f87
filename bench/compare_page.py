"""Compare page with many runs (not a timed test): 500 runs x 100 epochs inserted straight into
the database (bulk insert through services.domain.models), then time to interactive of
`/projects/{id}/compare` with all runs listed, and the time from "Compare" to the chart, tables
and parallel-coordinates plot drawn for 20 selected runs. Starts its own stack. Usage:

    python bench/compare_page.py [--runs 500] [--epochs 100] [--select 20] [--repeat 5]
        [--set VTP_WEB_WORKERS=2]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from datetime import timedelta

from _stack import chromium, running_stack, signed_in, summary
from playwright.sync_api import Page

from tests.utils.browser import HYDRATED
from tests.utils.stack import Api

METRICS = (
    "train/box_loss",
    "val/box_loss",
    "metrics/precision(B)",
    "metrics/mAP50(B)",
    "metrics/mAP50-95(B)",
)


def insert_runs(api: Api, username: str, runs: int, epochs: int) -> int:
    from sqlalchemy import insert
    from sqlmodel import select

    from services.domain.models import Job, JobMetric, User, utcnow
    from services.infra.db import session_scope
    from services.infra.signing import new_secret

    pid = api.project_id()
    version = api.datasets(pid)[-1]["id"]
    rng = random.Random(7)
    now = utcnow()
    with session_scope() as session:
        user_id = session.exec(select(User.id).where(User.username == username)).one()
        jobs = [
            {
                "project_id": pid,
                "dataset_version_id": version,
                "created_by": user_id,
                "name": f"sweep-{i:03d}",
                "framework": "ultralytics",
                "task": "detect",
                "model": rng.choice(["yolo11n.yaml", "yolo11s.yaml"]),
                "hyperparameters": {
                    "epochs": epochs,
                    "imgsz": rng.choice([320, 480, 640]),
                    "batch": rng.choice([8, 16, 32]),
                    "lr0": round(rng.uniform(0.001, 0.02), 4),
                    "optimizer": rng.choice(["SGD", "AdamW"]),
                },
                "device": "cpu",
                "state": "succeeded",
                "attempt": 1,
                "callback_secret": new_secret(),
                "current_epoch": epochs,
                "total_epochs": epochs,
                "artifacts": {},
                "log_tail": [],
                "created_at": now - timedelta(minutes=runs - i),
                "started_at": now - timedelta(minutes=runs - i),
                "finished_at": now - timedelta(minutes=runs - i - 1),
            }
            for i in range(runs)
        ]
        session.execute(insert(Job), jobs)
        ids = list(session.exec(select(Job.id).where(Job.name.startswith("sweep-"))).all())
        rows = []
        for job_id in ids:
            speed = rng.uniform(0.02, 0.08)
            for epoch in range(1, epochs + 1):
                decay = math.exp(-speed * epoch)
                rows.append(
                    {
                        "job_id": job_id,
                        "epoch": epoch,
                        "metrics": {
                            METRICS[0]: 2 * decay + 0.3,
                            METRICS[1]: 2.2 * decay + 0.35,
                            METRICS[2]: 0.9 - 0.8 * decay,
                            METRICS[3]: 0.85 - 0.8 * decay,
                            METRICS[4]: 0.6 - 0.55 * decay,
                        },
                        "created_at": now,
                    }
                )
        for start in range(0, len(rows), 10_000):
            session.execute(insert(JobMetric), rows[start : start + 10_000])
    return pid


def project_job_count(pid: int) -> int:
    """Every run of the project (the jobs API answers one bounded page, not the whole list)."""
    from sqlmodel import func, select

    from services.domain.models import Job
    from services.infra.db import session_scope

    with session_scope() as session:
        return int(session.exec(select(func.count()).select_from(Job).where(Job.project_id == pid)).one())


def open_listed(page: Page, url: str, runs: int) -> float:
    """Navigation start -> every run listed and the picker hydrated (a click would be handled)."""
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(
        "n => (document.querySelector('#runs-page-label')?.innerText || '').includes(n + ' runs')",
        arg=runs,
        polling=20,
    )
    page.wait_for_function(HYDRATED, arg="#runs-table tbody input[type=checkbox]", polling=20)
    return time.perf_counter() - start


def compare_selected(page: Page, select: int) -> float:
    """Tick `select` runs, then "Compare" -> curves, tables and parallel plot drawn for all of them."""
    boxes = page.locator("#runs-table tbody input[type=checkbox]")
    for i in range(select):
        if i and i % 25 == 0:
            page.click("#next-page")
            page.wait_for_function(
                "p => document.querySelector('#runs-page-label').innerText.startsWith('Page ' + p)",
                arg=i // 25 + 1,
            )
        box = boxes.nth(i % 25)
        box.click()  # a controlled checkbox: checked once the server's state update arrives
        box.wait_for(state="attached")
        page.wait_for_function("el => el.checked", arg=box.element_handle())
    page.wait_for_function(
        "n => document.querySelector('#runs-page-label').innerText.includes(n + ' selected')", arg=select
    )
    start = time.perf_counter()
    page.click("#compare-runs")
    page.wait_for_function(
        "n => Number(document.querySelector('#compare-chart')?.dataset.runs) === n"
        " && document.querySelectorAll('#compare-chart .scatterlayer .trace').length >= n"
        " && !!document.querySelector('#parallel-chart .main-svg')",
        arg=select,
        polling=20,
        timeout=60_000,
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--select", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="VTP_NAME=VALUE",
        help="a setting for the stack (e.g. VTP_WEB_WORKERS=2: pages' state in Redis); repeatable",
    )
    args = parser.parse_args()
    with running_stack(**dict(item.split("=", 1) for item in args.set)) as (stack, api):
        began = time.perf_counter()
        pid = insert_runs(api, stack.username, args.runs, args.epochs)
        print(f"inserted {args.runs} runs x {args.epochs} epochs in {time.perf_counter() - began:.1f} s")
        total_runs = project_job_count(pid)
        url = f"{stack.web_url}/projects/{pid}/compare"
        listed, compared, end_to_end = [], [], []
        with chromium() as browser:
            # One warm-up, then each repetition in a fresh context: fresh Reflex state, no selection.
            for rep in range(args.repeat + 1):
                page = signed_in(browser, stack, "/")
                shown = open_listed(page, url, total_runs)
                drawn = compare_selected(page, args.select)
                page.context.close()
                if rep:
                    listed.append(shown)
                    compared.append(drawn)
                    end_to_end.append(shown + drawn)
        print(f"runs listed on the page: {total_runs}")
        print(summary(f"compare page TTI ({total_runs} runs listed)", listed, target_s=2.0))
        print(summary(f"Compare click -> {args.select} runs drawn", compared, target_s=2.0))
        print(summary(f"TTI + compare of {args.select} (sum)", end_to_end, target_s=2.0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
