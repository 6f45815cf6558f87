"""What waiting costs (not a timed test): the worker and the trainer while N jobs wait behind a
busy trainer, side by side with the same window with nothing waiting.

Starts its own stack (`vtp up`, one CPU slot) behind a counting proxy, starts one long job, then
measures two windows of `--seconds` each: (a) only that job running, (b) `--jobs` more jobs
queued behind it. For each window it prints GET /capacity and POST /jobs per second as the
trainer saw them, the worker's CPU (share of one core, from /proc), worker log lines, and the
most entries Redis held for the queue (arq's cron runs left out: they are housekeeping).

Then every job runs: the long one is cancelled and the waiting jobs run to the end one after the
other (`--run N`: only the first N in queue order; the rest are cancelled while they wait). For
each job it checks that it ran exactly once (one hand-over in its state history, one `started`
callback, one scratch directory on the trainer, succeeded at attempt 1), that a cancelled one
was never handed over, and that they started in queue order. With the defaults this is the
issue's test at full size (100 jobs, two minutes); the suite's test
(tests/fleet/test_dispatch.py) waits 30 s and runs three. Usage:

    python bench/dispatch_wait.py [--jobs 100] [--seconds 120] [--run N]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import redis
from _stack import ROOT  # noqa: F401 - puts the repository on sys.path

from tests.fleet.proxy import counting_proxy
from tests.utils.servers import free_port
from tests.utils.stack import Api, StackProcess


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pid(stack: StackProcess) -> int:
    needle = f"VTP_DATA_DIR={stack.data_dir}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if b"services.runtime.worker.WorkerSettings" in cmdline and needle in environ:
            return int(pid)
    raise RuntimeError("worker process not found")


def queue_entries(queue: redis.Redis) -> int:
    held = [m for m in queue.zrange("vtp:queue", 0, -1) if not m.startswith((b"cron:", b"vtp:notify:"))]
    return len(held) + int(queue.llen("vtp:dispatch:wake"))


def window(stack: StackProcess, seen, seconds: float) -> dict[str, float]:  # noqa: ANN001
    pid, queue = worker_pid(stack), redis.Redis(port=stack.ports["redis"])
    lines, cpu, start = len(stack.lines), cpu_seconds(pid), time.monotonic()
    entries = 0
    while time.monotonic() - start < seconds:
        entries = max(entries, queue_entries(queue))
        time.sleep(1)
    end = time.monotonic()
    span = end - start
    return {
        "capacity_per_s": seen.count("GET", "/capacity", start, end) / span,
        "posts_per_s": seen.count("POST", "/jobs", start, end) / span,
        "worker_cpu_pct": 100 * (cpu_seconds(pid) - cpu) / span,
        "worker_lines": sum(1 for line in stack.lines[lines:] if line.startswith("[worker]")),
        "redis_entries_max": entries,
    }


def moves(stack: StackProcess, job_id: int) -> list[tuple[str, str]]:
    return [(e["from"], e["to"]) for e in stack.callbacks(job_id, {"state"}) if e.get("from")]


def check_once(stack: StackProcess, api: Api, project: int, runs: list[int], dropped: list[int]) -> list[str]:
    """What is wrong with "every job ran exactly once" (nothing, when the list is empty)."""
    wrong: list[str] = []
    scratch: dict[str, list[str]] = {}
    for d in (stack.trainer_dir / "scratch" / "jobs").iterdir():
        if d.is_dir():
            scratch.setdefault(d.name.split("-")[0], []).append(d.name)
    finals = [api.job(project, job_id) for job_id in runs]
    for final in finals:
        job_id = final["id"]
        if (final["state"], final["attempt"]) != ("succeeded", 1):
            wrong.append(f"job {job_id}: {final['state']} at attempt {final['attempt']}")
        if (handed := moves(stack, job_id).count(("queued", "dispatching"))) != 1:
            wrong.append(f"job {job_id}: handed over {handed} times")
        if (started := len(stack.callbacks(job_id, {"started"}))) != 1:
            wrong.append(f"job {job_id}: {started} started callbacks")
        if scratch.get(str(job_id)) != [f"{job_id}-1"]:
            wrong.append(f"job {job_id}: scratch dirs {scratch.get(str(job_id))}")
    started_at = [f["started_at"] for f in finals]
    if started_at != sorted(started_at):
        wrong.append("jobs did not start in queue order")
    for job_id in dropped:
        if moves(stack, job_id) != [("queued", "cancelled")] or str(job_id) in scratch:
            wrong.append(
                f"job {job_id} (cancelled while waiting) reached the trainer: {moves(stack, job_id)}"
            )
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--run", type=int, default=None, help="run only the first N (default: all)")
    args = parser.parse_args()
    # `timeout` and CI stop a benchmark with SIGTERM: run the `finally`s that stop what it started.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    run = args.jobs if args.run is None else min(args.run, args.jobs)
    with tempfile.TemporaryDirectory(prefix="vtp-bench-") as tmp:
        root = Path(tmp)
        stack = StackProcess(
            data_dir=root / "data",
            trainer_dir=root / "trainer",
            log_path=root / "stack.log",
            # The module's REST client outlives the default 15-minute access token.
            extra_env={"TRAINER_CPU_SLOTS": "1", "VTP_JWT_ACCESS_TTL_S": "14400"},
        )
        stack.env()
        proxy = free_port()
        with counting_proxy(proxy, f"http://127.0.0.1:{stack.ports['trainer']}") as seen:
            stack.extra_env["VTP_TRAINER_URL"] = f"http://127.0.0.1:{proxy}"
            try:
                stack.start()
                api = Api(stack.api_url, stack.username, stack.password)
                pid = api.project_id()
                version = api.datasets(pid)[0]["id"]
                blocker = api.start_job(pid, version, epochs=1000)
                while api.job(pid, blocker["id"])["state"] != "running":
                    time.sleep(0.5)
                idle = window(stack, seen, args.seconds)
                waiting = [api.start_job(pid, version, epochs=1)["id"] for _ in range(args.jobs)]
                busy = window(stack, seen, args.seconds)
                listed = api.http.get(f"/projects/{pid}/jobs", params={"state": "queued"}).json()
                in_order = [j["id"] for j in sorted(listed, key=lambda j: j["queue_position"])]
                assert sorted(in_order) == sorted(waiting), "a waiting job left the queue"
                runs, dropped = in_order[:run], in_order[run:]
                for job_id in dropped:
                    api.http.post(f"/projects/{pid}/jobs/{job_id}/cancel").raise_for_status()
                posts_before, began = seen.count("POST", "/jobs"), time.monotonic()
                api.http.post(f"/projects/{pid}/jobs/{blocker['id']}/cancel").raise_for_status()
                for job_id in runs:
                    api.wait_finished(pid, job_id, timeout_s=600)
                took = time.monotonic() - began
                wrong = check_once(stack, api, pid, runs, dropped)
                posts = seen.count("POST", "/jobs") - posts_before
            finally:
                stack.stop()
    print(f"{'':24}{'0 waiting':>12}{f'{args.jobs} waiting':>14}   ({args.seconds:.0f} s each, one run)")
    for key in idle:
        print(f"{key:24}{idle[key]:>12.2f}{busy[key]:>14.2f}")
    print(
        f"then {len(runs)} ran to the end in {took:.0f} s ({took / max(1, len(runs)):.1f} s each, "
        f"{posts} POST /jobs), {len(dropped)} cancelled while waiting"
    )
    print("each ran exactly once, in queue order" if not wrong else "NOT each once:\n  " + "\n  ".join(wrong))


if __name__ == "__main__":
    main()
