"""Synthetic running jobs fed by signed epoch callbacks, for what must be measured or tested without a
real trainer competing for the CPU (live lag, dropped connections).

The callbacks go through the real endpoint with the real signature recipe
(services/infra/signing.py), exactly as trainer_runner sends them; only the job row is inserted
directly, with a secret this process knows. The caller points this process at the stack's database
first (`stack_database`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.utils.environ import environment
from tests.utils.stack import StackProcess


@contextmanager
def stack_database(stack: StackProcess) -> Iterator[None]:
    """Make this process's sessions (and its change notices) use the stack's database and Redis."""
    with environment({k: v for k, v in stack.env().items() if k.startswith("VTP_")}):
        yield


def insert_running_job(project_id: int, version_id: int, username: str, epochs: int) -> tuple[int, str]:
    """A job in state `running` as if a trainer had started it: its id and callback secret."""
    from sqlmodel import select

    from services.domain.models import Job, User, utcnow
    from services.infra.db import session_scope
    from services.infra.signing import new_secret

    with session_scope() as session:
        user = session.exec(select(User).where(User.username == username)).one()
        job = Job(
            project_id=project_id,
            dataset_version_id=version_id,
            created_by=user.id,
            name="synthetic live job",
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


def post_callback(http: httpx.Client, api_url: str, job_id: int, secret: str, body: bytes) -> None:
    """POST one signed callback, as the trainer does."""
    from services.infra import signing

    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        signing.TIMESTAMP_HEADER: str(ts),
        signing.SIGNATURE_HEADER: signing.sign(secret, ts, body),
    }
    url = f"{api_url}/api/v1/trainer/callbacks/{job_id}"
    http.post(url, content=body, headers=headers).raise_for_status()
