"""Signed epoch callbacks per second the backend absorbs while users browse (not a timed test).

Starts the whole stack (`vtp up`), seeds running jobs with known callback secrets, lets 50 locust
users browse (bench/locustfile.py), and sends signed epoch callbacks, each a distinct (job, epoch),
from several sender processes on this machine for a fixed time. A 503 is retried after its
Retry-After, as the trainer's outbox does. Then it counts the stored metric rows: every callback
the backend acknowledged must be stored (no loss).

Two rounds in one run, side by side, on the same stack and browsing load: single callbacks (one
event per request, as an outbox that keeps up sends them), then batches of `--batch` events
per request (protocol v1.6, as a backlogged outbox sends them), each round on its own jobs.
`--batch 1` runs the single round only. Usage:

    python bench/callback_ingest.py [--database sqlite|postgres] [--seconds 30] [--senders 2]
        [--connections 32] [--jobs 200] [--browsers 50] [--batch 50]
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
from typing import Any

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


def _epoch_event(epoch: int) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "epoch",
        "attempt": 1,
        "epoch": epoch,
        "total_epochs": EPOCHS_PER_JOB,
        "metrics": {"metrics/mAP50(B)": 0.5, "train/box_loss": 1.2, "lr/pg0": 0.01},
    }


async def _send(
    base_url: str, jobs: list[tuple[int, str]], seconds: float, connections: int, batch: int
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
                if batch > 1:  # a backlogged outbox: the job's waiting epochs in one request
                    first = epochs[job_id] + 1
                    epochs[job_id] += batch
                    events = [_epoch_event(n) for n in range(first, first + batch)]
                    body = json.dumps({"events": events}).encode()
                    path = f"/api/v1/trainer/callbacks/{job_id}/batch"
                else:
                    epochs[job_id] += 1
                    body = json.dumps(_epoch_event(epochs[job_id])).encode()
                    path = f"/api/v1/trainer/callbacks/{job_id}"
                while True:  # the trainer's outbox: retry "later" answers until accepted
                    stamp = int(time.time())
                    headers = {
                        signing.TIMESTAMP_HEADER: str(stamp),
                        signing.SIGNATURE_HEADER: signing.sign(secret, stamp, body),
                        "content-type": "application/json",
                    }
                    try:
                        response = await client.post(path, content=body, headers=headers)
                    except httpx.HTTPError:
                        counts["transport error"] += 1
                        await asyncio.sleep(0.5)
                        continue
                    if response.status_code == 503:
                        counts["503 (retried)"] += 1
                        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                        continue
                    if response.status_code == 200:
                        counts["requests"] += 1
                        answer = response.json()
                        for item in answer["results"] if batch > 1 else [answer]:
                            counts[item["result"]] += 1
                    else:
                        counts[str(response.status_code)] += 1
                    break

        await asyncio.gather(*(sender(i) for i in range(connections)))
    return dict(counts)


def _sender_process(args: tuple[str, list[tuple[int, str]], float, int, int]) -> dict[str, int]:
    return asyncio.run(_send(*args))


def _round(
    pool: Any, base_url: str, jobs: list[tuple[int, str]], args: argparse.Namespace, batch: int
) -> dict[str, Any]:
    """One round of sends from every sender process; what was answered, and what got stored."""
    shares = [jobs[i :: args.senders] for i in range(args.senders)]
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    results = pool.map(
        _sender_process, [(base_url, share, args.seconds, args.connections, batch) for share in shares]
    )
    elapsed = time.monotonic() - began
    counts: Counter[str] = Counter()
    for result in results:
        counts.update(result)
    return {
        "batch": batch,
        "counts": counts,
        "elapsed": elapsed,
        "stored": stored_metrics([job_id for job_id, _ in jobs]),
        "load": (load_before + os.getloadavg()[0]) / 2,
    }


def _report(outcome: dict[str, Any]) -> tuple[str, float]:
    counts, elapsed = outcome["counts"], outcome["elapsed"]
    applied, stored = counts["applied"], outcome["stored"]
    rate = applied / elapsed
    fivexx = sum(n for k, n in counts.items() if k.startswith("5") and not k.startswith("503"))
    label = "single" if outcome["batch"] == 1 else f"batch of {outcome['batch']}"
    loss = "no loss" if stored == applied else f"LOST {applied - stored}"
    answers = {k: v for k, v in counts.items() if k != "requests"}
    line = (
        f"  {label:>12}: absorbed {rate:,.0f} callbacks/s ({applied} applied in {elapsed:.1f} s, "
        f"{counts['requests'] / elapsed:,.0f} requests/s), load average {outcome['load']:.1f}; "
        f"stored {stored} for {applied} applied: {loss}; "
        f"5xx other than 503: {fivexx}; answers {answers}"
    )
    return line, rate


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=30, help="per round")
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument("--connections", type=int, default=32, help="concurrent requests per sender")
    parser.add_argument("--jobs", type=int, default=200, help="running jobs per round")
    parser.add_argument("--browsers", type=int, default=50)
    parser.add_argument(
        "--batch", type=int, default=50, help="events per request in the batched round (1: single round only)"
    )
    args = parser.parse_args()
    batches = [1] if args.batch <= 1 else [1, args.batch]
    with (
        database(args.database) as db_env,
        # The seeded jobs have no trainer behind them: never silent for the reconciler, or it
        # hands them to the real trainer as new attempts (which then trains beside the bench).
        running_stack(**db_env, VTP_HEARTBEAT_TIMEOUT_S="86400") as (stack, api),
        tempfile.TemporaryDirectory(prefix="vtp-ingest-") as tmp,
    ):
        pid = api.project_id()
        version = api.datasets(pid)[-1]["id"]
        jobs = seed_jobs(pid, version, stack.username, args.jobs * len(batches))
        token_file = Path(tmp) / "tokens.json"
        token_file.write_text(json.dumps(seed_users(pid, args.browsers)))
        prefix = Path(tmp) / "browse"
        browse_s = args.seconds * len(batches) + 15
        locust = None if args.browsers == 0 else subprocess.Popen(
            [
                str(Path(sys.executable).parent / "locust"),
                "-f", str(ROOT / "bench" / "locustfile.py"),
                "--headless", "--only-summary",
                "-u", str(args.browsers), "-r", str(args.browsers), "-t", f"{browse_s:.0f}s",
                "--host", stack.web_url, "--csv", str(prefix),
            ],
            env={**os.environ, "VTP_LOAD_TOKENS": str(token_file), "VTP_LOAD_PROJECT": str(pid)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if locust is not None:
            time.sleep(5)  # the browsers are on before the callbacks start
        # spawn, not fork: this process has threads (the stack's log pump), and a forked child
        # can inherit a lock one of them held and hang.
        senders = multiprocessing.get_context("spawn").Pool(args.senders)
        with MetricsSampler(stack.web_url) as sampler, senders as pool:
            outcomes = [
                _round(pool, stack.web_url, jobs[n * args.jobs : (n + 1) * args.jobs], args, batch)
                for n, batch in enumerate(batches)
            ]
        browse: dict[str, dict[str, str]] = {}
        if locust is not None:
            locust.wait()
            browse = {row["Name"]: row for row in csv.DictReader((prefix.parent / "browse_stats.csv").open())}
    print(
        f"callback ingest, {args.database}: {args.senders} senders x {args.connections} connections, "
        f"{args.jobs} running jobs per round, {args.seconds:.0f} s per round, {args.browsers} users browsing"
    )
    rates = []
    for outcome in outcomes:
        line, rate = _report(outcome)
        rates.append(rate)
        print(line)
    if len(rates) == 2 and rates[0]:
        print(f"  batched / single: {rates[1] / rates[0]:.1f}x callbacks/s")
    total = browse.get("Aggregated")
    if total:
        print(
            f"  browsing meanwhile (both rounds): {total['Request Count']} requests, "
            f"{total['Failure Count']} failed, p50 {total['50%']} ms, p95 {total['95%']} ms, "
            f"max {float(total['Max Response Time']):.0f} ms"
        )
    print(" ", sampler.report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
