"""Sweeps on the whole platform (`vtp up`): real trials, each an ordinary job, on a tiny dataset.

All tests share the session's stack and one small dataset. The objective of the pruning sweep is
the learning rate the trainer reports each epoch (`lr`): during warm-up it is proportional to
`lr0`, so which trial the median pruner stops follows from the parameters, not from chance.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.runtime import sample_data
from tests.utils.stack import Api, StackProcess

# Real trials on a shared 2-core machine: the suite's 600 s per test (stack start included) is
# too little when the machine is busy.
pytestmark = [pytest.mark.sweeps, pytest.mark.timeout(1800)]
TINY = {"imgsz": {"type": "fixed", "value": 32}, "batch": {"type": "fixed", "value": 8}}
# `optimizer=auto` lets Ultralytics choose lr0 itself; SGD without warm-up keeps the reported
# `lr` at lr0 times the schedule, the same for every trial, so trials differ by lr0 alone.
BY_LR0 = {
    **TINY,
    "optimizer": {"type": "fixed", "value": "SGD"},
    "warmup_epochs": {"type": "fixed", "value": 0.0},
}


@pytest.fixture(scope="module", autouse=True)
def no_sweep_left_running(api: Api) -> Iterator[None]:
    """A failed test must not leave trials occupying the shared stack's trainer."""
    yield
    pid = api.project_id()
    for sweep in api.http.get(f"/projects/{pid}/sweeps").json():
        if sweep["state"] == "running":
            api.http.post(f"/projects/{pid}/sweeps/{sweep['id']}/cancel")


@pytest.fixture(scope="module")
def version(api: Api) -> dict[str, Any]:
    pid = api.project_id()
    data = sample_data.yolo_zip(train=8, val=4, seed=11)
    response = api.http.post(
        f"/projects/{pid}/datasets",
        data={"name": "sweep-shapes"},
        files={"file": ("shapes.zip", data, "application/zip")},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _create(api: Api, version: dict[str, Any], **body: Any) -> dict[str, Any]:
    pid = api.project_id()
    request = {"dataset_version_id": version["id"], "objective": "lr", "seed": 3, **body}
    response = api.http.post(f"/projects/{pid}/sweeps", json=request)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _sweep(api: Api, sweep_id: int) -> dict[str, Any]:
    """The sweep; a busy server's 503 (load shedding) or a slow answer is asked again."""
    for attempt in range(5):
        try:
            response = api.http.get(f"/projects/{api.project_id()}/sweeps/{sweep_id}")
        except httpx.TimeoutException:
            if attempt == 4:
                raise
            continue
        if response.status_code != 503 or attempt == 4:
            return dict(response.raise_for_status().json())
        time.sleep(1)
    raise AssertionError("unreachable")


def _wait(api: Api, sweep_id: int, done: Any, timeout_s: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while not done(sweep := _sweep(api, sweep_id)):
        assert time.monotonic() < deadline, f"sweep {sweep_id} still {sweep['state']}: {sweep}"
        time.sleep(0.5)
    return sweep


def _trial_jobs(api: Api, sweep_id: int) -> list[dict[str, Any]]:
    jobs = api.http.get(f"/projects/{api.project_id()}/jobs").raise_for_status().json()
    return sorted((j for j in jobs if j["sweep_id"] == sweep_id), key=lambda j: j["id"])


def test_sweep_completes_prunes_a_worse_trial_and_trains_the_best(
    api: Api, stack: StackProcess, version: dict[str, Any]
) -> None:
    sweep = _create(
        api,
        version,
        name="lr sweep",
        search_space={
            **BY_LR0,
            # Enough epochs that the pruned trial is still training when its cancel arrives: with
            # 4, a loaded machine once let it finish (succeeded) before the cancel landed.
            "epochs": {"type": "fixed", "value": 10},
            "lr0": {"type": "choice", "choices": [0.02, 0.002]},
        },
        direction="maximize",
        n_trials=5,  # more than the grid has: the sweep caps it at 2
        parallelism=1,
        sampler="grid",
        pruner="median",
        seed=5,
    )
    assert sweep["state"] == "running" and sweep["n_trials"] == 2
    done = _wait(api, sweep["id"], lambda s: s["state"] != "running")
    assert done["state"] == "finished", done
    trials = done["trials"]
    # Seed 5 walks this grid from the larger lr0 down. The first trial completes (nothing to
    # compare with yet); the second reports a smaller `lr` than the median of the finished trials
    # at its first epoch, so the median pruner stops it.
    assert [t["params"]["lr0"] for t in trials] == [0.02, 0.002], trials
    assert [t["state"] for t in trials] == ["COMPLETE", "PRUNED"], trials
    jobs = {j["id"]: j for j in _trial_jobs(api, sweep["id"])}
    assert {t["job_id"] for t in trials} == set(jobs)  # every trial is an ordinary job
    assert jobs[trials[0]["job_id"]]["state"] == "succeeded"
    for trial in trials[1:]:
        job = jobs[trial["job_id"]]
        # Stopped through the normal cancel path, before its last epoch, with the deciding epoch.
        assert job["state"] == "cancelled", job
        assert job["pruned_epoch"] is not None and job["pruned_epoch"] < 3, job
        assert trial["pruned_epoch"] == job["pruned_epoch"]
    best = max((t for t in trials if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    assert done["best_value"] == best["value"] and done["best_job_id"] == best["job_id"]
    assert done["best_params"]["lr0"] == best["params"]["lr0"] and done["best_params"]["imgsz"] == 32
    assert done["importance_note"]  # one searched parameter: no importances, and the page says why

    # MLflow: the sweep is a run, and each trial's run is its child.
    assert done["mlflow_run_id"]
    mlflow = httpx.get(
        f"{stack.mlflow_url}/api/2.0/mlflow/runs/get",
        params={"run_id": jobs[trials[0]["job_id"]]["mlflow_run_id"]},
    ).json()
    tags = {t["key"]: t["value"] for t in mlflow["run"]["data"]["tags"]}
    assert tags["mlflow.parentRunId"] == done["mlflow_run_id"]

    # "Train best as a new job": an ordinary job outside the sweep, with the best parameters.
    pid = api.project_id()
    job = api.http.post(f"/projects/{pid}/sweeps/{sweep['id']}/train-best").raise_for_status().json()
    assert job["sweep_id"] is None and job["hyperparameters"]["lr0"] == best["params"]["lr0"]
    api.http.post(f"/projects/{pid}/jobs/{job['id']}/cancel").raise_for_status()


def test_sweep_cancelled_mid_way_leaves_nothing_running_or_queued(api: Api, version: dict[str, Any]) -> None:
    sweep = _create(
        api,
        version,
        search_space={
            **TINY,
            "epochs": {"type": "fixed", "value": 30},
            "lr0": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
        },
        n_trials=6,
        parallelism=2,
        sampler="random",
        pruner="none",
    )
    # Two trials at once: the trainer has one slot, so one runs and one waits in the queue.
    _wait(api, sweep["id"], lambda s: s["trials_running"] == 2, timeout_s=300)
    pid = api.project_id()
    deadline = time.monotonic() + 600
    while not any(j["state"] == "running" for j in _trial_jobs(api, sweep["id"])):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    cancelled = api.http.post(f"/projects/{pid}/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    deadline = time.monotonic() + 300
    finished = {"cancelled", "succeeded", "failed"}
    jobs = _trial_jobs(api, sweep["id"])
    while any(j["state"] not in finished for j in jobs):
        assert time.monotonic() < deadline, jobs
        time.sleep(0.5)
        jobs = _trial_jobs(api, sweep["id"])
    assert len(jobs) == 2 and {j["state"] for j in jobs} == {"cancelled"}, jobs
    time.sleep(2)  # a late step must not start anything for a cancelled sweep
    assert len(_trial_jobs(api, sweep["id"])) == 2
    final = _sweep(api, sweep["id"])
    assert final["state"] == "cancelled" and final["trials_running"] == 0
    again = api.http.post(f"/projects/{pid}/sweeps/{sweep['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def _worker_pid(stack: StackProcess) -> int:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"services.runtime.worker.WorkerSettings" in cmdline
            and f"VTP_DATA_DIR={stack.data_dir}".encode() in environ
        ):
            return int(pid)
    raise AssertionError("worker process not found")


def test_sweep_survives_a_worker_restart(api: Api, stack: StackProcess, version: dict[str, Any]) -> None:
    sweep = _create(
        api,
        version,
        search_space={
            **TINY,
            "epochs": {"type": "fixed", "value": 2},
            "lr0": {"type": "float", "low": 0.001, "high": 0.1},
        },
        n_trials=2,
        parallelism=1,
        sampler="tpe",
        pruner="none",
    )
    _wait(api, sweep["id"], lambda s: s["trials_running"] == 1, timeout_s=300)
    deadline = time.monotonic() + 600
    while not any(j["state"] == "running" for j in _trial_jobs(api, sweep["id"])):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    # The worker dies while the first trial trains (its epoch callbacks queue steps meanwhile);
    # `vtp up` starts a new one, whose periodic pass and the queued steps carry the sweep on.
    os.kill(_worker_pid(stack), signal.SIGKILL)
    done = _wait(api, sweep["id"], lambda s: s["state"] != "running")
    assert done["state"] == "finished", done
    assert [t["state"] for t in done["trials"]] == ["COMPLETE", "COMPLETE"]
    assert done["trials"][0]["params"] != done["trials"][1]["params"]
    assert len(_trial_jobs(api, sweep["id"])) == 2
