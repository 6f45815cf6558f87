"""Many concurrent users browsing the running app, with locust (not a timed test).

Starts the whole stack (`vtp up`), seeds a project with finished runs and per-epoch metrics, makes
one account with a personal API token per simulated user (all project members), then runs locust
headless against it on this machine (locust shares the cores with the app) and prints each
request's p50/p95 and the error rate. Usage:

    python bench/load_test.py [--users 200] [--spawn-rate 20] [--duration 90] [--runs 100] [--epochs 50]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _stack import ROOT, running_stack
from compare_page import insert_runs


def seed_users(project_id: int, count: int) -> list[str]:
    """`count` viewers of the project, each with a personal API token (created in the database).
    One argon2 hash shared by all, written as rows: hashing 200 passwords took minutes here."""
    from services.domain import auth, tokens
    from services.domain.models import Membership, Role, User
    from services.infra.db import session_scope

    secrets: list[str] = []
    password_hash = auth.hash_password("load-test-password-1")
    with session_scope() as session:
        for i in range(count):
            name = f"load-{i:04d}"
            user = User(
                username=name,
                password_hash=password_hash,
                avatar_name=auth.default_avatar_name(name),
                badge_color=auth.default_badge_color(name),
            )
            session.add(user)
            session.flush()
            session.add(Membership(project_id=project_id, user_id=user.id, role=Role.viewer))
            _row, secret = tokens.create_personal_token(session, user=user, name="load", expires_in_days=1)
            secrets.append(secret)
    return secrets


class MetricsSampler:
    """Reads the web process's /metrics once a second: connections checked out, requests in flight
    and waiting for a slot, requests shed, slow queries. Shows how the pool is used over time."""

    NAMES = {
        "pool": "vtp_db_pool_checked_out",
        # Gauges of a multiprocess registry carry a pid label too: matched up to the lane.
        "in_flight": 'vtp_http_in_flight{lane="api"',
        "waiting": 'vtp_http_waiting{lane="api"',
        "slow_queries": "vtp_db_slow_queries_total",
    }

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/") + "/metrics"
        self.samples: list[dict[str, float]] = []
        self.buckets: dict[float, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MetricsSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(1.0):
                try:
                    text = client.get(self.url).text
                except httpx.HTTPError:
                    continue
                sample: dict[str, float] = {"shed": 0.0}
                buckets: dict[float, float] = {}
                for line in text.splitlines():
                    if line.startswith("vtp_http_shed_total{"):
                        sample["shed"] += float(line.rsplit(" ", 1)[1])
                    if line.startswith("vtp_http_request_duration_seconds_bucket{"):
                        bound = float(line.split('le="', 1)[1].split('"', 1)[0])
                        buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
                    for key, name in self.NAMES.items():
                        if line.startswith((name + " ", name + ",", name + "}")):
                            sample[key] = sample.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
                self.samples.append(sample)
                if buckets:
                    self.buckets = buckets

    def server_latency(self) -> str:
        """The web process's own view (from its arrival at the API's outer middleware to its
        answer, across every route): how much of what locust measured the server spent. The rest
        is outside it: the event loop reaching the request, the kernel, and locust itself."""
        if not self.buckets:
            return "server-side latency: no histogram"
        total = self.buckets.get(float("inf"), 0.0)
        bounds = sorted(b for b in self.buckets if b != float("inf"))
        p95 = next((b for b in bounds if self.buckets[b] >= 0.95 * total), float("inf"))
        p99 = next((b for b in bounds if self.buckets[b] >= 0.99 * total), float("inf"))
        over_2s = total - self.buckets.get(2.0, total)
        return (
            f"server-side (all routes, pages too; histogram buckets): {total:.0f} requests, "
            f"p95 <= {p95 * 1000:.0f} ms, "
            f"p99 <= {p99 * 1000:.0f} ms, {over_2s:.0f} over 2 s"
        )

    def report(self) -> str:
        if not self.samples:
            return "server metrics: no samples"
        peak = {k: max(s.get(k, 0.0) for s in self.samples) for k in ("pool", "in_flight", "waiting")}
        last = self.samples[-1]
        every = max(1, len(self.samples) // 12)
        picked = self.samples[::every]
        timeline = " ".join(f"{s.get('pool', 0):.0f}" for s in picked)
        waiting = " ".join(f"{s.get('waiting', 0):.0f}" for s in picked)
        # Shed per interval: whether shedding is the ramp-up's burst or the steady state's.
        pairs = zip(picked, picked[1:], strict=False)
        shed = " ".join(f"{b.get('shed', 0) - a.get('shed', 0):.0f}" for a, b in pairs)
        return (
            f"server: pool checked out peak {peak['pool']:.0f} (every {every} s: {timeline}); "
            f"in flight peak {peak['in_flight']:.0f}; waiting for a slot peak {peak['waiting']:.0f} "
            f"(every {every} s: {waiting}); shed {last.get('shed', 0):.0f} (per {every} s: {shed}); "
            f"slow queries (>100 ms) {last.get('slow_queries', 0):.0f}"
        )


@contextmanager
def database(kind: str) -> Iterator[dict[str, str]]:
    """The stack's database: its own SQLite file, or a throwaway PostgreSQL server."""
    if kind == "sqlite":
        yield {}
        return
    from tests.utils import servers

    with servers.postgres() as url:
        os.environ["VTP_DATABASE_URL"] = url  # this process seeds the same database
        try:
            yield {"VTP_DATABASE_URL": url}
        finally:
            os.environ.pop("VTP_DATABASE_URL", None)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--spawn-rate", type=int, default=20)
    parser.add_argument("--duration", type=int, default=90, help="seconds of load after the ramp-up starts")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="VTP_NAME=VALUE",
        help="a setting for the stack, to compare sizes (e.g. VTP_API_MAX_CONCURRENCY=16); repeatable",
    )
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    with (
        database(args.database) as db_env,
        running_stack(**db_env, **settings) as (stack, api),
        tempfile.TemporaryDirectory(prefix="vtp-load-") as tmp,
    ):
        pid = insert_runs(api, stack.username, args.runs, args.epochs)
        began = time.perf_counter()
        secrets = seed_users(pid, args.users)
        print(
            f"seeded {args.runs} runs x {args.epochs} epochs and {args.users} users "
            f"in {time.perf_counter() - began:.1f} s"
        )
        token_file = Path(tmp) / "tokens.json"
        token_file.write_text(json.dumps(secrets))
        prefix = Path(tmp) / "load"
        command = [
            str(Path(sys.executable).parent / "locust"),
            "-f", str(ROOT / "bench" / "locustfile.py"),
            "--headless", "--only-summary",
            "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.duration}s",
            "--host", stack.web_url, "--csv", str(prefix),
        ]  # fmt: skip
        env = {"VTP_LOAD_TOKENS": str(token_file), "VTP_LOAD_PROJECT": str(pid)}
        with MetricsSampler(stack.web_url) as sampler:
            ran = subprocess.run(
                command, env={**os.environ, **env}, check=False, capture_output=True, text=True
            )
        # Locust warns when its own process is CPU-bound: its timings then include its own wait.
        locust_cpu = [line for line in ran.stderr.splitlines() if "CPU usage" in line]
        rows = list(csv.DictReader((prefix.parent / "load_stats.csv").open()))
        failures = list(csv.DictReader((prefix.parent / "load_failures.csv").open()))
        errors_logged = Counter(
            line.split("Error:", 1)[0][-80:] + "Error: " + line.split("Error:", 1)[1][:120]
            for line in stack.log_path.read_text(errors="replace").splitlines()
            if line.startswith("[web]") and "Error:" in line
        )
        slow_queries = Counter(
            line.split("slow query", 1)[1].split("|", 1)[0][:160]
            for line in stack.log_path.read_text(errors="replace").splitlines()
            if "slow query" in line
        )
    print(
        f"{args.users} users, spawn {args.spawn_rate}/s, {args.duration} s, {args.database}, "
        f"app and locust on this machine; load average {os.getloadavg()[0]:.1f} at the end"
        + (f"; {' '.join(args.set)}" if args.set else "")
    )
    print(
        f"{'request':<18} {'count':>7} {'fail':>6} {'shed':>6} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'req/s':>7}"
    )
    shed = {row["Name"]: int(row["Request Count"]) for row in rows if row["Type"] == "SHED"}
    for row in rows:
        if row["Type"] == "SHED":
            continue
        print(
            f"{row['Name']:<18} {row['Request Count']:>7} {row['Failure Count']:>6} "
            f"{shed.get(row['Name'], sum(shed.values()) if row['Name'] == 'Aggregated' else 0):>6} "
            f"{row['50%']:>7} {row['95%']:>7} {row['99%']:>7} {float(row['Max Response Time']):>7.0f} "
            f"{float(row['Requests/s']):>7.1f}"
        )
    total = next(row for row in rows if row["Name"] == "Aggregated")
    errors = int(total["Failure Count"]) / max(1, int(total["Request Count"]))
    print(
        f"overall: p95 {total['95%']} ms, max {float(total['Max Response Time']):.0f} ms, "
        f"error rate {errors:.2%}, shed (503 + Retry-After) {sum(shed.values())} of "
        f"{total['Request Count']} ({sum(shed.values()) / max(1, int(total['Request Count'])):.1%})"
    )
    print(sampler.report())
    print(sampler.server_latency())
    if locust_cpu:
        print(f"locust warned {len(locust_cpu)}x that its own CPU was saturated: {locust_cpu[0][-120:]}")
    for line, count in slow_queries.most_common(3):
        print(f"  slow query, {count}x:{line}")
    for row in failures[:8]:
        print(f"  failed {row['Occurrences']}x {row['Method']} {row['Name']}: {row['Error'][:160]}")
    for line, count in errors_logged.most_common(5):
        print(f"  web log, {count}x: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
