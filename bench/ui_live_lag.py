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
import json
import random
import threading
import time
import uuid

from _stack import chromium, running_stack, signed_in, summary

from tests.utils.stack import Api


def insert_running_job(api: Api, username: str, epochs: int) -> tuple[int, str]:
    from sqlmodel import select

    from services.domain.models import Job, User, utcnow
    from services.infra.db import session_scope
    from services.infra.signing import new_secret

    pid = api.project_id()
    version = api.datasets(pid)[-1]["id"]
    with session_scope() as session:
        user = session.exec(select(User).where(User.username == username)).one()
        job = Job(
            project_id=pid,
            dataset_version_id=version,
            created_by=user.id,
            name="live-lag bench",
            framework="ultralytics",
            task="detect",
            model="yolo11n.yaml",
            hyperparameters={"epochs": epochs, "imgsz": 64, "batch": 8},
            device="cpu",
            state="running",
            callback_secret=new_secret(),
            total_epochs=epochs,
            started_at=utcnow(),
            last_heartbeat_at=utcnow(),
        )
        session.add(job)
        session.flush()
        return int(job.id), job.callback_secret


def epoch_event(epoch: int, total: int) -> bytes:
    loss = 2.0 / epoch
    return json.dumps(
        {
            "event_id": uuid.uuid4().hex,
            "type": "epoch",
            "attempt": 1,
            "epoch": epoch,
            "total_epochs": total,
            "metrics": {
                "train/box_loss": loss,
                "val/box_loss": loss * 1.1,
                "metrics/mAP50(B)": 1 - loss / 2,
                "metrics/mAP50-95(B)": 0.8 - loss / 3,
            },
        }
    ).encode()


def _post(http, url: str, secret: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    from services.infra import signing

    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        signing.TIMESTAMP_HEADER: str(ts),
        signing.SIGNATURE_HEADER: signing.sign(secret, ts, body),
    }
    http.post(url, content=body, headers=headers).raise_for_status()


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
    # A slow heartbeat check: the synthetic job is never declared silent while it is measured.
    with running_stack(VTP_HEARTBEAT_INTERVAL_S="60") as (stack, api):
        import httpx

        job_id, secret = insert_running_job(api, stack.username, total)
        others = [insert_running_job(api, stack.username, 100_000) for _ in range(args.reporters)]
        url = f"{stack.api_url}/api/v1/trainer/callbacks/{job_id}"
        web = _web_process(int(stack.api_url.rsplit(":", 1)[-1].split("/")[0]))
        lags: list[float] = []
        stop = threading.Event()

        def report() -> None:
            with httpx.Client(timeout=30) as client:
                epoch = 0
                while not stop.wait(1.0):
                    epoch += 1
                    for other_id, other_secret in others:
                        other_url = f"{stack.api_url}/api/v1/trainer/callbacks/{other_id}"
                        _post(client, other_url, other_secret, epoch_event(epoch, 100_000))

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
                _post(http, url, secret, epoch_event(epoch, total))
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
