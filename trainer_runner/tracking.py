"""MLflow logging of a job: one run per attempt, params once, metrics per epoch.

Tracking is a convenience: when MLflow is unreachable or misbehaves, training goes on and only
a warning is logged.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

MAX_PARAMS_PER_BATCH = 100


# MLflow's client retries a dead server for minutes by default; training must not wait that long.
# setdefault: an operator's own values win.
CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


class Tracker:
    """MLflow run of one job attempt; every method is a no-op when tracking is off or broken.

    After the first failure tracking stays off for the attempt, so a dead MLflow costs one
    timeout, not one per epoch.
    """

    def __init__(self, tracking_uri: str, experiment: str | None, run_name: str) -> None:
        self.run_id: str | None = None
        self._client: Any = None
        if not tracking_uri:
            return
        for key, value in CLIENT_ENV.items():
            os.environ.setdefault(key, value)
        try:
            import mlflow
            from mlflow.tracking import MlflowClient

            mlflow.set_tracking_uri(tracking_uri)
            if experiment:
                mlflow.set_experiment(experiment)
            run = mlflow.start_run(run_name=run_name)
            self.run_id = run.info.run_id
            self._client = MlflowClient(tracking_uri=tracking_uri)
        except Exception as exc:  # tracking must never fail a job
            log.warning(
                "MLflow unavailable; continuing without tracking", extra={"error": str(exc)}
            )
            self.run_id = None
            self._client = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log hyperparameters and job settings (in batches of MLflow's 100-param limit)."""
        if self._client is None:
            return
        try:
            from mlflow.entities import Param

            items = [Param(k, str(v)[:6000]) for k, v in params.items()]
            for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
                self._client.log_batch(
                    self.run_id, params=items[start : start + MAX_PARAMS_PER_BATCH]
                )
        except Exception as exc:
            self._disable("log_params", exc)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """One `log_batch` per epoch: single log_metric calls are ~80x slower."""
        if self._client is None:
            return
        try:
            from mlflow.entities import Metric

            ts = int(time.time() * 1000)
            batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
            self._client.log_batch(self.run_id, metrics=batch)
        except Exception as exc:
            self._disable("log_metrics", exc)

    def end(self, state: str) -> None:
        """Close the run with the status matching the job's final state."""
        if self._client is None:
            return
        status = {"succeeded": "FINISHED", "cancelled": "KILLED"}.get(state, "FAILED")
        try:
            import mlflow

            mlflow.end_run(status=status)
        except Exception as exc:
            self._disable("end_run", exc)

    def _disable(self, operation: str, exc: Exception) -> None:
        log.warning(
            "MLflow failed; continuing without tracking",
            extra={"operation": operation, "error": str(exc)},
        )
        self._client = None
