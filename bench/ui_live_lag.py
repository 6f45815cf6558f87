"""Live lag of the job page (not a timed test): time from a trainer's epoch callback to the new
point being visible in the browser (`#metrics-chart[data-points]`), median and p95 of N samples.

Starts its own stack (`vtp up`), inserts a running job straight into the database (so no real
trainer competes with the synthetic callbacks), opens `/jobs/{id}` signed in, then for each epoch
posts a signed callback to `/api/v1/trainer/callbacks/{id}` exactly as trainer_runner does
(services/infra/signing.py recipe, the job's secret from the DB) and waits for the point to show.
A random pause between samples keeps them out of phase with the page's ~1 s poll. Usage:

    python bench/ui_live_lag.py [--samples 50]
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid

from _stack import running_stack, signed_in_page, summary

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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    total = args.samples + 10
    # A slow heartbeat check: the synthetic job is never declared silent while it is measured.
    with running_stack(VTP_HEARTBEAT_INTERVAL_S="60") as (stack, api):
        import httpx

        from services.infra import signing

        job_id, secret = insert_running_job(api, stack.username, total)
        url = f"{stack.api_url}/api/v1/trainer/callbacks/{job_id}"
        lags: list[float] = []
        with signed_in_page(stack, f"/jobs/{job_id}") as page, httpx.Client(timeout=30) as http:
            page.wait_for_selector("#metrics-chart")
            page.wait_for_function("document.querySelector('#job-state .status-indicator')")
            for epoch in range(1, args.samples + 1):
                time.sleep(random.uniform(0.3, 1.3))
                body = epoch_event(epoch, total)
                ts = int(time.time())
                headers = {
                    "Content-Type": "application/json",
                    signing.TIMESTAMP_HEADER: str(ts),
                    signing.SIGNATURE_HEADER: signing.sign(secret, ts, body),
                }
                start = time.perf_counter()
                http.post(url, content=body, headers=headers).raise_for_status()
                page.wait_for_function(
                    f"Number(document.querySelector('#metrics-chart')?.dataset.points) >= {epoch}",
                    polling=20,
                    timeout=30_000,
                )
                lags.append(time.perf_counter() - start)
        print(summary("live lag (callback -> point visible)", lags, target_s=1.0))
        print("samples (ms):", " ".join(f"{s * 1000:.0f}" for s in lags))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
