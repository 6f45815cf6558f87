"""Live lag of the job page (not a timed test): time from a trainer's epoch callback to the new
point being visible in the browser (`#metrics-chart[data-points]`), median and p95 of N samples.

Starts its own stack (`vtp up`), inserts a running job straight into the database (so no real
trainer competes with the synthetic callbacks), opens `/jobs/{id}` signed in, then for each epoch
posts a signed callback to `/api/v1/trainer/callbacks/{id}` exactly as trainer_runner does
(services/infra/signing.py recipe, the job's secret from the DB) and waits for the point to show.
A random pause between samples keeps them out of phase with any periodic work. With
`--viewers N` the same job page is open N times (one browser context each) while
`--reporters M` other running jobs each receive an epoch callback every second; the web process's
CPU is measured with one idle viewer and again with N (it should not grow with idle viewers).
Usage:

    python bench/ui_live_lag.py [--samples 50] [--viewers 1] [--reporters 0]
"""

from __future__ import annotations

import argparse
import random
import threading
import time

from _stack import chromium, running_stack, signed_in, summary

from tests.utils.live_jobs import epoch_event, insert_running_job, post_callback
from tests.utils.stack import Api


def _insert(api: Api, username: str, epochs: int) -> tuple[int, str]:
    pid = api.project_id()
    return insert_running_job(pid, api.datasets(pid)[-1]["id"], username, epochs)


def _web_process(port: int):  # type: ignore[no-untyped-def]
    """The process serving the app's port (its CPU is what grows with viewers, if anything does)."""
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return psutil.Process(conn.pid)
    return None


def _cpu_percent(process, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """CPU of the web process and its children over `seconds` (percent of one core)."""
    import psutil

    def total() -> float:
        used = 0.0
        for proc in [process, *process.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                used += times.user + times.system
            except psutil.Error:
                pass
        return used

    before = total()
    time.sleep(seconds)
    return 100 * (total() - before) / seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("--reporters", type=int, default=0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    total = args.samples + 10
    # The synthetic jobs have no trainer behind them: the reconciler must never find them silent,
    # or it hands them to the real trainer as new attempts, which then trains beside the bench.
    with running_stack(VTP_HEARTBEAT_INTERVAL_S="60", VTP_HEARTBEAT_TIMEOUT_S="86400") as (stack, api):
        import httpx

        job_id, secret = _insert(api, stack.username, total)
        others = [_insert(api, stack.username, 100_000) for _ in range(args.reporters)]
        web = _web_process(int(stack.api_url.rsplit(":", 1)[-1].split("/")[0]))
        lags: list[float] = []
        stop = threading.Event()

        def report() -> None:
            with httpx.Client(timeout=30) as client:
                epoch = 0
                while not stop.wait(1.0):
                    epoch += 1
                    for other_id, other_secret in others:
                        body = epoch_event(epoch, 100_000)
                        post_callback(client, stack.api_url, other_id, other_secret, body)

        with chromium() as browser, httpx.Client(timeout=30) as http:
            page = signed_in(browser, stack, f"/jobs/{job_id}")
            page.wait_for_selector("#metrics-chart")
            page.wait_for_function("document.querySelector('#job-state .status-indicator')")
            cpu_one = _cpu_percent(web, args.idle_seconds) if web else float("nan")
            viewers = [signed_in(browser, stack, f"/jobs/{job_id}") for _ in range(args.viewers - 1)]
            for viewer in viewers:
                viewer.wait_for_selector("#metrics-chart")
            cpu_many = _cpu_percent(web, args.idle_seconds) if web else float("nan")
            reporter = threading.Thread(target=report, daemon=True)
            reporter.start()
            for epoch in range(1, args.samples + 1):
                time.sleep(random.uniform(0.3, 1.3))
                start = time.perf_counter()
                post_callback(http, stack.api_url, job_id, secret, epoch_event(epoch, total))
                page.wait_for_function(
                    f"Number(document.querySelector('#metrics-chart')?.dataset.points) >= {epoch}",
                    polling=20,
                    timeout=30_000,
                )
                lags.append(time.perf_counter() - start)
            late = [
                v
                for v in viewers
                if v.evaluate("Number(document.querySelector('#metrics-chart')?.dataset.points)")
                < args.samples
            ]
            stop.set()
            reporter.join()
        label = f"live lag, {args.viewers} viewer(s), {args.reporters} other job(s) reporting"
        print(summary(f"{label} (callback -> point visible)", lags, target_s=0.3))
        print("samples (ms):", " ".join(f"{s * 1000:.0f}" for s in lags))
        print(
            f"web CPU while idle: {cpu_one:.1f}% of a core with 1 viewer, {cpu_many:.1f}% with "
            f"{args.viewers} (over {args.idle_seconds:g} s each); viewers behind at the end: {len(late)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
