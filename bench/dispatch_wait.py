"""What waiting costs (not a timed test): the worker and the trainer while N jobs wait behind a
busy trainer, side by side with the same window with nothing waiting.

Starts its own stack (`vtp up`, one CPU slot) behind a counting proxy, starts one long job, then
measures two windows of `--seconds` each: (a) only that job running, (b) `--jobs` more jobs
queued behind it. For each window it prints GET /capacity and POST /jobs per second as the
trainer saw them, the worker's CPU (share of one core, from /proc), worker log lines, and the
most entries Redis held for the queue. Then it cancels everything and stops. Usage:

    python bench/dispatch_wait.py [--jobs 100] [--seconds 120]
"""

from __future__ import annotations

import argparse
import os
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


def window(stack: StackProcess, seen, seconds: float) -> dict[str, float]:  # noqa: ANN001
    pid, queue = worker_pid(stack), redis.Redis(port=stack.ports["redis"])
    lines, cpu, start = len(stack.lines), cpu_seconds(pid), time.monotonic()
    entries = 0
    while time.monotonic() - start < seconds:
        entries = max(entries, queue.zcard("vtp:queue") + queue.llen("vtp:dispatch:wake"))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vtp-bench-") as tmp:
        root = Path(tmp)
        stack = StackProcess(
            data_dir=root / "data",
            trainer_dir=root / "trainer",
            log_path=root / "stack.log",
            extra_env={"TRAINER_CPU_SLOTS": "1"},
        )
        stack.env()
        proxy = free_port()
        with counting_proxy(proxy, f"http://127.0.0.1:{stack.ports['trainer']}") as seen:
            stack.extra_env["VTP_TRAINER_URL"] = f"http://127.0.0.1:{proxy}"
            stack.start()
            try:
                api = Api(stack.api_url, stack.username, stack.password)
                pid = api.project_id()
                version = api.datasets(pid)[0]["id"]
                blocker = api.start_job(pid, version, epochs=1000)
                while api.job(pid, blocker["id"])["state"] != "running":
                    time.sleep(0.5)
                idle = window(stack, seen, args.seconds)
                waiting = [api.start_job(pid, version, epochs=1) for _ in range(args.jobs)]
                busy = window(stack, seen, args.seconds)
                for job in [*waiting, blocker]:
                    api.http.post(f"/projects/{pid}/jobs/{job['id']}/cancel")
            finally:
                stack.stop()
    print(f"{'':24}{'0 waiting':>12}{f'{args.jobs} waiting':>14}   ({args.seconds:.0f} s each, one run)")
    for key in idle:
        print(f"{key:24}{idle[key]:>12.2f}{busy[key]:>14.2f}")


if __name__ == "__main__":
    main()
