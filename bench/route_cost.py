"""CPU milliseconds the web process spends per request, route by route (not a timed test).

Wall-clock latency under load depends on whatever else runs on the machine; the CPU time the web
process spends serving one request depends on it much less. This starts the whole stack
(`vtp up`), seeds the same data as bench/load_test.py (finished runs with per-epoch metrics,
viewers with personal API tokens), then sends the routes of bench/locustfile.py one at a time from
one client, the tokens taken in turn, and reads the CPU time (user + system) of the web process
and its children with psutil before and after each batch (and of `vtp up`, which relays the web's
log lines). It prints CPU ms per request per route, each route measured in several rounds (median,
min and max), and the mean over the locust mix.

The budget it prints: each locust user waits 1-3 s (2 s on average) between tasks, and a task
makes 16/11 requests on average, so 200 users send about 145 requests/s. One web worker process
runs Python on one core at a time (the GIL), so it is a single server: with exponential service
and arrivals (M/M/1) the time in the system is exponential with rate mu - lambda, and its 95th
percentile, ln(20) / (mu - lambda), stays under 300 ms only while mu > lambda + 10/s, that is a
mean CPU cost per request under 1 / (145 + 10) s = 6.5 ms, on a core of its own. Locust, Redis
and the stack's other processes share the 2 cores, so aim lower.

    python bench/route_cost.py [--requests 200] [--rounds 3] [--tokens 50] [--runs 100] [--epochs 50]
                               [--database postgres]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import time

import httpx
import psutil
from _stack import running_stack
from compare_page import insert_runs
from load_test import database, seed_users

from tests.utils.stack import WEB, runs

# Task weights of bench/locustfile.py: each task's requests, and how often a user picks it.
MIX = {
    "page HTML /": 2,
    "projects": 2,
    "jobs list": 3,
    "page HTML job": 3,
    "job detail": 3,
    "compare 5 runs": 1,
    "datasets": 1,
    "analytics": 1,
}
USERS, MEAN_WAIT_S, P95_TARGET_S = 200, 2.0, 0.3


def web_processes(root_pid: int) -> list[psutil.Process]:
    """The web app started by `vtp up` and everything it spawned: `reflex run`, or
    services.runtime.web serving a kept build (services.runtime.web_build)."""
    for child in psutil.Process(root_pid).children(recursive=True):
        if runs(child.cmdline(), WEB):
            return [child, *child.children(recursive=True)]
    raise RuntimeError("no web app process under the stack")


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200, help="requests per route per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--tokens", type=int, default=50, help="viewers whose tokens the requests take in turn"
    )
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    with database(args.database) as db_env, running_stack(**db_env) as (stack, api):
        pid = insert_runs(api, stack.username, args.runs, args.epochs)
        # Viewers taken in turn: under the load test each token comes back every second or two,
        # which is what the rate limit and the cache of resolved credentials see.
        secrets = itertools.cycle(seed_users(pid, args.tokens))
        assert stack.process is not None
        web = web_processes(stack.process.pid)
        supervisor = [psutil.Process(stack.process.pid)]  # `vtp up`: it relays the web's log lines
        client = httpx.Client(base_url=stack.web_url, timeout=30)

        def get(path: str) -> httpx.Response:
            answer = client.get(path, headers={"Authorization": f"Bearer {next(secrets)}"})
            return answer.raise_for_status()

        jobs = get(f"/api/v1/projects/{pid}/jobs").json()
        ids = [job["id"] for job in jobs]
        paths = {
            "page HTML /": "/",
            "projects": "/api/v1/projects",
            "jobs list": f"/api/v1/projects/{pid}/jobs",
            "page HTML job": f"/jobs/{ids[0]}",
            "job detail": f"/api/v1/projects/{pid}/jobs/{{job}}",
            "compare 5 runs": f"/api/v1/projects/{pid}/compare?ids={','.join(map(str, ids[:5]))}",
            "datasets": f"/api/v1/projects/{pid}/datasets",
            "analytics": "/api/v1/analytics",
        }
        cpu: dict[str, list[float]] = {name: [] for name in paths}
        relay: dict[str, list[float]] = {name: [] for name in paths}
        wall: dict[str, list[float]] = {name: [] for name in paths}
        for _round in range(args.rounds):
            for name, path in paths.items():
                for i in range(10):  # warm connections first
                    get(path.format(job=ids[i % len(ids)]))
                before, relayed, began = cpu_seconds(web), cpu_seconds(supervisor), time.perf_counter()
                for i in range(args.requests):
                    get(path.format(job=ids[i % len(ids)]))
                cpu[name].append((cpu_seconds(web) - before) * 1000 / args.requests)
                relay[name].append((cpu_seconds(supervisor) - relayed) * 1000 / args.requests)
                wall[name].append((time.perf_counter() - began) * 1000 / args.requests)
        client.close()
    print(
        f"CPU ms of the web process per request ({args.requests} requests x {args.rounds} rounds "
        f"per route, one client, {args.tokens} tokens in turn; {args.runs} runs x {args.epochs} "
        f"epochs seeded; {args.database}; load average {os.getloadavg()[0]:.1f})"
    )
    print(f"{'route':<16} {'cpu ms':>7} {'min':>6} {'max':>6} {'wall ms':>8} {'vtp up ms':>9}")
    for name in paths:
        print(
            f"{name:<16} {statistics.median(cpu[name]):>7.2f} {min(cpu[name]):>6.2f} "
            f"{max(cpu[name]):>6.2f} {statistics.median(wall[name]):>8.2f} "
            f"{statistics.median(relay[name]):>9.2f}"
        )
    weight = sum(MIX.values())
    mean = sum(statistics.median(cpu[name]) * w for name, w in MIX.items()) / weight
    # Tasks are picked with weights 2,3,3,1,1,1 (sum 11) and make 2,1,2,1,1,1 requests: 16/11 each.
    rate = USERS / MEAN_WAIT_S * weight / 11
    budget = 1000 / (rate + math.log(20) / P95_TARGET_S)
    print(
        f"locust mix: {mean:.2f} CPU ms per request on average; {USERS} users send about {rate:.0f} "
        f"requests/s, and p95 < {P95_TARGET_S * 1000:.0f} ms in one worker process (M/M/1) needs "
        f"under {budget:.1f} CPU ms per request"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
