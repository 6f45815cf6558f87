"""Chaos tests of the trainer's integrations against the whole stack (`vtp up`).

Real processes, real signals: a stack child (S3 server, MLflow, the Reflex web/API process) is
frozen with SIGSTOP on its whole process group and resumed with SIGCONT. Each test prints one
line `fault=... outcome=... time_to_recover=...s`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.utils.stack import WEB, Api, StackProcess, runs

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1500)]

# The backend must not give up on a job while one of its own parts is frozen.
PATIENT = {"VTP_HEARTBEAT_TIMEOUT_S": "120", "VTP_RECONCILE_INTERVAL_S": "5"}
CALLBACK_TYPES = {"started", "heartbeat", "epoch", "finished"}


def _processes(stack: StackProcess, program: str | tuple[str, ...]) -> list[int]:
    """Pids of this stack's children running `program` (tests.utils.stack.runs)."""
    entry = f"VTP_DATA_DIR={stack.data_dir}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [arg.decode(errors="replace") for arg in argv[:3]]
        if runs(args, program) and entry in environ and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def _process_groups_or_none(stack: StackProcess, program: str | tuple[str, ...]) -> set[int]:
    groups = set()
    for pid in _processes(stack, program):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue
    groups.discard(os.getpgid(0))  # never ourselves
    return groups


def _process_groups(stack: StackProcess, program: str | tuple[str, ...]) -> set[int]:
    groups = _process_groups_or_none(stack, program)
    assert groups, f"no {program} process of this stack"
    return groups


@contextmanager
def frozen(groups: set[int]) -> Iterator[None]:
    """SIGSTOP every process of the groups; SIGCONT on the way out, whatever happens."""
    for group in groups:
        os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        for group in groups:
            with suppress(ProcessLookupError):
                os.killpg(group, signal.SIGCONT)


@contextmanager
def running_stack(
    tmp_path: Path, output_dir: Path, name: str, env: dict[str, str] | None = None
) -> Iterator[StackProcess]:
    stack = StackProcess(
        data_dir=tmp_path / "data",
        trainer_dir=tmp_path / "trainer",
        log_path=output_dir / f"stack-chaos-{name}.log",
        extra_env={**PATIENT, **(env or {})},
    )
    stack.start()
    try:
        yield stack
    finally:
        # Whatever a failed assertion left frozen is resumed, so the stack can stop.
        for program in ("nanio", "mlflow", WEB):
            for group in _process_groups_or_none(stack, program):
                with suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGCONT)
        stack.stop()


def _s3_client(stack: StackProcess) -> Any:
    (pid,) = _processes(stack, "nanio")[:1]
    env = dict(
        item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in item
    )
    return boto3.client(
        "s3",
        endpoint_url=stack.s3_url,
        aws_access_key_id=env[b"NANIO_ACCESS_KEY"].decode(),
        aws_secret_access_key=env[b"NANIO_SECRET_KEY"].decode(),
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def _wait_metrics(api: Api, project: int, job_id: int, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(api.job(project, job_id)["metrics"]) < count:
        assert time.monotonic() < deadline, f"job {job_id} did not report {count} epoch(s)"
        time.sleep(0.3)


def _assert_epochs_once_in_order(
    stack: StackProcess, job: dict[str, Any], epochs: int
) -> list[dict[str, Any]]:
    assert [m["epoch"] for m in job["metrics"]] == list(range(epochs)), job["metrics"]
    events = stack.callbacks(job["id"], CALLBACK_TYPES)
    ordered = [(e["type"], e.get("epoch")) for e in events if e["type"] != "heartbeat"]
    assert ordered == [
        ("started", None),
        *[("epoch", n) for n in range(epochs)],
        ("finished", epochs - 1),
    ], ordered
    assert events[-1]["type"] == "finished", "a heartbeat was stored after finished"
    return events


def test_s3_frozen_30s_during_checkpoint_upload(tmp_path: Path, output_dir: Path) -> None:
    # A checkpoint upload after every epoch (the default interval, 60 s, is longer than the job).
    every_epoch = {"TRAINER_CHECKPOINT_INTERVAL_S": "0"}
    with running_stack(tmp_path, output_dir, "s3", every_epoch) as stack:
        api = Api(stack.api_url, stack.username, stack.password)
        project = api.project_id()
        epochs = 4
        job = api.start_job(project, api.datasets(project)[0]["id"], epochs=epochs, imgsz=64)
        _wait_metrics(api, project, job["id"], 1, 300)  # last.pt of epoch 1 is uploaded next
        mark = len(stack.lines)
        with frozen(_process_groups(stack, "nanio")):
            time.sleep(30)
            reported = len(api.job(project, job["id"])["metrics"])
        thawed_at = time.monotonic()
        _wait_metrics(api, project, job["id"], min(reported + 1, epochs), 300)  # moving again
        recovered_s = time.monotonic() - thawed_at
        final = api.wait_finished(project, job["id"], timeout_s=400)
        print(
            f"\nfault=s3 SIGSTOP 30s during checkpoint upload outcome={final['state']} "
            f"attempt={final['attempt']} time_to_recover={recovered_s:.1f}s"
        )
        assert final["state"] == "succeeded", final
        assert final["attempt"] == 1
        retried = [
            line
            for line in stack.lines[mark:]
            if "object storage unavailable; retrying" in line and "checkpoints/" in line
        ]
        assert retried, "the freeze never hit a checkpoint upload"
        _assert_epochs_once_in_order(stack, final, epochs)
        s3 = _s3_client(stack)
        checkpoints = {k: v for k, v in final["artifacts"].items() if k.endswith("_checkpoint")}
        assert set(checkpoints) == {"last_checkpoint", "best_checkpoint"}, final["artifacts"]
        for name, uri in final["artifacts"].items():
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            head = s3.head_object(Bucket=bucket, Key=key)  # raises if reported but missing
            assert head["ContentLength"] > 0, name


def test_mlflow_frozen_for_a_whole_job(tmp_path: Path, output_dir: Path) -> None:
    from mlflow.tracking import MlflowClient

    with running_stack(tmp_path, output_dir, "mlflow") as stack:
        api = Api(stack.api_url, stack.username, stack.password)
        project = api.project_id()
        epochs = 3
        with frozen(_process_groups(stack, "mlflow")):
            frozen_at = time.monotonic()
            job = api.start_job(project, api.datasets(project)[0]["id"], epochs=epochs, imgsz=64)
            final = api.wait_finished(project, job["id"], timeout_s=400)
            assert final["state"] == "succeeded", final
            events = _assert_epochs_once_in_order(stack, final, epochs)
            tracking = events[-1].get("tracking") or {}
            assert tracking.get("complete") is False, events[-1]
        thawed_at = time.monotonic()

        client = MlflowClient(tracking_uri=stack.mlflow_url)
        experiment = f"project-{project}"
        deadline = time.monotonic() + 240
        history: list[Any] = []
        runs: list[Any] = []
        while time.monotonic() < deadline:
            found = client.get_experiment_by_name(experiment)
            if found is not None:
                runs = client.search_runs(
                    [found.experiment_id], filter_string=f"tags.vtp_job_id = '{job['id']}'"
                )
                if runs and runs[0].info.status == "FINISHED":
                    history = client.get_metric_history(runs[0].info.run_id, "map50")
                    if len(history) >= epochs:
                        break
            time.sleep(2)
        print(
            f"\nfault=mlflow SIGSTOP whole job outcome={final['state']} "
            f"replayed_epochs={len(history)} time_to_recover={time.monotonic() - thawed_at:.1f}s "
            f"(frozen {thawed_at - frozen_at:.0f}s)"
        )
        assert len(runs) == 1, f"expected one MLflow run for the job, found {len(runs)}"
        run = runs[0]
        assert run.info.status == "FINISHED"
        assert sorted(m.step for m in history) == list(range(epochs))
        for row in final["metrics"]:  # MLflow holds what the API shows, epoch by epoch
            stored = {m.step: m.value for m in history}
            assert stored[row["epoch"]] == pytest.approx(row["metrics"]["map50"])
        assert run.data.params.get("epochs") == str(epochs)


def test_backend_frozen_20s_refusing_callbacks(tmp_path: Path, output_dir: Path) -> None:
    with running_stack(tmp_path, output_dir, "callbacks") as stack:
        api = Api(stack.api_url, stack.username, stack.password)
        project = api.project_id()
        epochs = 5
        job = api.start_job(project, api.datasets(project)[0]["id"], epochs=epochs, imgsz=64)
        _wait_metrics(api, project, job["id"], 1, 300)
        outbox = stack.trainer_dir / "scratch" / "jobs" / f"{job['id']}-1" / "outbox"
        buffered: set[str] = set()
        with frozen(_process_groups(stack, WEB)):
            frozen_at = time.monotonic()
            while time.monotonic() - frozen_at < 20:
                if outbox.is_dir():
                    buffered |= {p.name for p in outbox.glob("*.json")}
                time.sleep(0.2)
        thawed_at = time.monotonic()
        while outbox.is_dir() and any(outbox.glob("*.json")):  # the backlog drains by itself
            assert time.monotonic() - thawed_at < 180, "buffered callbacks were not delivered"
            time.sleep(0.2)
        recovered_s = time.monotonic() - thawed_at
        api = Api(stack.api_url, stack.username, stack.password)  # fresh connections
        final = api.wait_finished(project, job["id"], timeout_s=400)
        print(
            f"\nfault=backend SIGSTOP 20s (callbacks refused) outcome={final['state']} "
            f"attempt={final['attempt']} buffered_on_disk={len(buffered)} "
            f"time_to_recover={recovered_s:.1f}s"
        )
        assert final["state"] == "succeeded", final
        assert final["attempt"] == 1
        assert any("-epoch" in name for name in buffered), (
            f"no epoch event waited on disk during the outage: {sorted(buffered)}"
        )
        _assert_epochs_once_in_order(stack, final, epochs)
