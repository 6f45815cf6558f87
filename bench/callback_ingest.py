"""Signed epoch callbacks per second the backend absorbs while users browse (not a timed test).

Starts the whole stack (`vtp up`), seeds running jobs with known callback secrets, lets 50 locust
users browse (bench/locustfile.py), and sends signed epoch callbacks, each a distinct (job, epoch),
from several sender processes on this machine for a fixed time. A 503 is retried after its
Retry-After, as the trainer's outbox does. Then it counts the stored metric rows: every callback
the backend acknowledged must be stored (no loss). Usage:

    python bench/callback_ingest.py [--database sqlite|postgres] [--seconds 30] [--senders 2]
        [--connections 32] [--jobs 200] [--browsers 50]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from _stack import ROOT, running_stack
from load_test import MetricsSampler, database, seed_users

EPOCHS_PER_JOB = 10_000  # more than any run sends: each callback gets a fresh epoch


def seed_jobs(project_id: int, version_id: int, username: str, count: int) -> list[tuple[int, str]]:
    """`count` running jobs; returns (job id, callback secret) for each."""
    from sqlalchemy import insert
    from sqlmodel import select

    from services.domain.models import Job, User, utcnow
    from services.infra.db import session_scope
    from services.infra.signing import new_secret

    now = utcnow()
    secrets = [new_secret() for _ in range(count)]
    with session_scope() as session:
        user_id = session.exec(select(User.id).where(User.username == username)).one()
        ids = session.execute(
            insert(Job).returning(Job.id),  # type: ignore[arg-type]
            [
                {
                    "project_id": project_id,
                    "dataset_version_id": version_id,
                    "created_by": user_id,
                    "name": f"ingest-{i:04d}",
                    "framework": "ultralytics",
                    "task": "detect",
                    "model": "yolo11n.yaml",
                    "hyperparameters": {"epochs": EPOCHS_PER_JOB},
                    "device": "cpu",
                    "state": "running",
                    "attempt": 1,
                    "callback_secret": secret,
                    "total_epochs": EPOCHS_PER_JOB,
                    "artifacts": {},
                    "log_tail": [],
                    "created_at": now,
                    "started_at": now,
                    "last_heartbeat_at": now,
                }
                for i, secret in enumerate(secrets)
            ],
        ).scalars()
        return list(zip(ids, secrets, strict=True))


def stored_metrics(job_ids: list[int]) -> int:
    from sqlmodel import col, func, select

    from services.domain.models import JobMetric
    from services.infra.db import session_scope

    with session_scope() as session:
        return session.exec(select(func.count()).where(col(JobMetric.job_id).in_(job_ids))).one()


async def _send(
    base_url: str, jobs: list[tuple[int, str]], seconds: float, connections: int
) -> dict[str, int]:
    import httpx

    from services.infra import signing

    counts: Counter[str] = Counter()
    epochs = dict.fromkeys((job_id for job_id, _ in jobs), 0)
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def sender(index: int) -> None:
            turn = index
            while time.monotonic() < deadline:
                job_id, secret = jobs[turn % len(jobs)]
                turn += connections
                epochs[job_id] += 1
                body = json.dumps(
                    {
                        "event_id": uuid.uuid4().hex,
                        "type": "epoch",
                        "attempt": 1,
                        "epoch": epochs[job_id],
                        "total_epochs": EPOCHS_PER_JOB,
                        "metrics": {"metrics/mAP50(B)": 0.5, "train/box_loss": 1.2, "lr/pg0": 0.01},
                    }
                ).encode()
                while True:  # the trainer's outbox: retry "later" answers until accepted
                    stamp = int(time.time())
                    headers = {
                        signing.TIMESTAMP_HEADER: str(stamp),
                        signing.SIGNATURE_HEADER: signing.sign(secret, stamp, body),
                        "content-type": "application/json",
                    }
                    try:
                        response = await client.post(
                            f"/api/v1/trainer/callbacks/{job_id}", content=body, headers=headers
                        )
                    except httpx.HTTPError:
                        counts["transport error"] += 1
                        await asyncio.sleep(0.5)
                        continue
                    if response.status_code == 503:
                        counts["503 (retried)"] += 1
                        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                        continue
                    if response.status_code == 200:
                        counts[response.json()["result"]] += 1
                    else:
                        counts[str(response.status_code)] += 1
                    break

        await asyncio.gather(*(sender(i) for i in range(connections)))
    return dict(counts)


def _sender_process(args: tuple[str, list[tuple[int, str]], float, int]) -> dict[str, int]:
    return asyncio.run(_send(*args))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument("--connections", type=int, default=32, help="concurrent requests per sender")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--browsers", type=int, default=50)
    args = parser.parse_args()
    with (
        database(args.database) as db_env,
        running_stack(**db_env) as (stack, api),
        tempfile.TemporaryDirectory(prefix="vtp-ingest-") as tmp,
    ):
        pid = api.project_id()
        version = api.datasets(pid)[-1]["id"]
        jobs = seed_jobs(pid, version, stack.username, args.jobs)
        token_file = Path(tmp) / "tokens.json"
        token_file.write_text(json.dumps(seed_users(pid, args.browsers)))
        prefix = Path(tmp) / "browse"
        locust = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "locust"),
                "-f", str(ROOT / "bench" / "locustfile.py"),
                "--headless", "--only-summary",
                "-u", str(args.browsers), "-r", str(args.browsers), "-t", f"{args.seconds + 15:.0f}s",
                "--host", stack.web_url, "--csv", str(prefix),
            ],
            env={**os.environ, "VTP_LOAD_TOKENS": str(token_file), "VTP_LOAD_PROJECT": str(pid)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(5)  # the browsers are on before the callbacks start
        shares = [jobs[i :: args.senders] for i in range(args.senders)]
        # spawn, not fork: this process has threads (the stack's log pump), and a forked child
        # can inherit a lock one of them held and hang.
        senders = multiprocessing.get_context("spawn").Pool(args.senders)
        with MetricsSampler(stack.web_url) as sampler, senders as pool:
            began = time.monotonic()
            results = pool.map(
                _sender_process, [(stack.web_url, share, args.seconds, args.connections) for share in shares]
            )
            elapsed = time.monotonic() - began
        locust.wait()
        counts: Counter[str] = Counter()
        for result in results:
            counts.update(result)
        stored = stored_metrics([job_id for job_id, _ in jobs])
        browse = {row["Name"]: row for row in csv.DictReader((prefix.parent / "browse_stats.csv").open())}
    applied = counts["applied"]
    print(
        f"callback ingest, {args.database}: {args.senders} senders x {args.connections} connections, "
        f"{args.jobs} running jobs, {args.browsers} users browsing, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  absorbed {applied / elapsed:.0f} callbacks/s ({applied} applied in {elapsed:.1f} s); "
        f"answers: {dict(counts)}"
    )
    fivexx = sum(n for k, n in counts.items() if k.startswith("5") and not k.startswith("503"))
    print(
        f"  stored metric rows {stored} for {applied} applied: "
        f"{'no loss' if stored == applied else f'LOST {applied - stored}'}; 5xx other than 503: {fivexx}"
    )
    total = browse.get("Aggregated")
    if total:
        print(
            f"  browsing meanwhile: {total['Request Count']} requests, {total['Failure Count']} failed, "
            f"p50 {total['50%']} ms, p95 {total['95%']} ms, max {float(total['Max Response Time']):.0f} ms"
        )
    print(" ", sampler.report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
