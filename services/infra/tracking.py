"""The backend's own MLflow calls: the parent run of a sweep, whose trials' runs are its children.

The trainer logs every job's run (trainer_runner/tracking.py); the backend only opens and closes
one run per sweep, through MLflow's REST API (2.0) with httpx, and the trainer tags each trial's
run with `mlflow.parentRunId`, which MLflow's UI shows as nesting. Tracking never stops a sweep:
callers treat `MlflowUnavailable` as "try again at the next step".
"""

from __future__ import annotations

import time

import httpx

from services.infra.settings import get_settings

TIMEOUT_S = 5.0
STATUSES = {"finished": "FINISHED", "cancelled": "KILLED", "failed": "FAILED"}


class MlflowUnavailable(Exception):
    """MLflow did not answer, or refused the call."""


def _call(client: httpx.Client, method: str, path: str, **kwargs: object) -> dict[str, object]:
    try:
        response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        raise MlflowUnavailable(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise MlflowUnavailable(f"{response.status_code}: {response.text[:300]}")
    body: dict[str, object] = response.json() if response.content else {}
    return body


def _client() -> httpx.Client:
    base = get_settings().mlflow_uri.rstrip("/") + "/api/2.0/mlflow/"
    return httpx.Client(base_url=base, timeout=TIMEOUT_S)


def _experiment_id(client: httpx.Client, name: str) -> str:
    try:
        found = _call(client, "GET", "experiments/get-by-name", params={"experiment_name": name})
        return str(found["experiment"]["experiment_id"])  # type: ignore[index]
    except MlflowUnavailable as exc:
        if "RESOURCE_DOES_NOT_EXIST" not in str(exc):
            raise
    try:
        return str(_call(client, "POST", "experiments/create", json={"name": name})["experiment_id"])
    except MlflowUnavailable as exc:  # a trainer created it meanwhile
        if "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
        found = _call(client, "GET", "experiments/get-by-name", params={"experiment_name": name})
        return str(found["experiment"]["experiment_id"])  # type: ignore[index]


def start_parent_run(*, experiment: str, run_name: str, params: dict[str, str], tags: dict[str, str]) -> str:
    """Create the sweep's run in `experiment` (the project's, where its trials log) and return its id."""
    with _client() as client:
        experiment_id = _experiment_id(client, experiment)
        run = _call(
            client,
            "POST",
            "runs/create",
            json={
                "experiment_id": experiment_id,
                "run_name": run_name,
                "start_time": int(time.time() * 1000),
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        )
        run_id = str(run["run"]["info"]["run_id"])  # type: ignore[index]
        items = [{"key": k, "value": v[:6000]} for k, v in params.items()][:100]
        _call(client, "POST", "runs/log-batch", json={"run_id": run_id, "params": items})
        return run_id


def log_best(run_id: str, *, name: str, value: float, step: int) -> None:
    with _client() as client:
        metric = {"key": name, "value": value, "timestamp": int(time.time() * 1000), "step": step}
        _call(client, "POST", "runs/log-batch", json={"run_id": run_id, "metrics": [metric]})


def end_run(run_id: str, state: str) -> None:
    with _client() as client:
        _call(
            client,
            "POST",
            "runs/update",
            json={
                "run_id": run_id,
                "status": STATUSES.get(state, "FINISHED"),
                "end_time": int(time.time() * 1000),
            },
        )
