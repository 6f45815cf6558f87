"""MLflow logging of a job: one run per attempt, params once, metrics per epoch.

The job speaks MLflow's REST API (2.0) to the tracking server with httpx rather than through
the `mlflow` package: importing MLflow's client costs about a second of CPU per job (measured
0.9 s after torch and ultralytics were loaded), taken from the cores training runs on, and the
six calls a job makes need none of it (a `log-batch` costs 0.6 ms of client CPU this way).

Tracking never slows or fails training. Every call only appends to an in-memory buffer; one
background thread creates the run and replays the buffer in order, retrying with exponential
backoff and jitter (tenacity) while MLflow is unreachable. So when MLflow is down, training goes
on; when it comes back - during the job, or while the finished job waits for its buffers to
drain - the run receives every param and every epoch's metrics, with their original
timestamps. `flush(timeout)` says whether everything got through.

Replays are idempotent: the run is found again by a tag before a new one is created, MLflow
keeps a metric logged twice with the same key, step, timestamp and value once, and a param
logged twice with the same value is accepted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from trainer_runner.threads import lower_this_thread

log = logging.getLogger(__name__)

MAX_PARAMS_PER_BATCH = 100
# MLflow takes at most 1,000 metric values per log-batch; an epoch reports a few dozen.
MAX_EPOCHS_PER_BATCH = 20
RUN_KEY_TAG = "vtp_run_key"

# Each MLflow request is tried once and bounded: the replay thread does the retrying.
REQUEST_TIMEOUT_S = 10.0


class MlflowError(Exception):
    """MLflow answered with an error status (its body says why)."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"{status} {error_code}: {message}"[:500])
        self.status = status
        self.error_code = error_code

    def get_http_status_code(self) -> int:
        return self.status


class MlflowRest:
    """The MLflow REST calls a job makes. Credentials, when the server wants them, come from
    MLflow's own variables (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME/_PASSWORD)."""

    def __init__(self, tracking_uri: str) -> None:
        import httpx

        headers, auth = {}, None
        if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
            headers["Authorization"] = f"Bearer {token}"
        elif user := os.environ.get("MLFLOW_TRACKING_USERNAME"):
            auth = httpx.BasicAuth(user, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
        timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or REQUEST_TIMEOUT_S)
        self.http = httpx.Client(
            base_url=tracking_uri.rstrip("/") + "/api/2.0/mlflow/",
            headers=headers,
            auth=auth,
            timeout=timeout,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"message": response.text}
            raise MlflowError(response.status_code, str(body.get("error_code", "")), str(body.get("message")))
        return response.json() if response.content else {}

    def experiment_id(self, name: str) -> str:
        """The experiment's id, created when missing (and found again if created meanwhile)."""
        for _ in range(2):
            try:
                found = self.call("GET", "experiments/get-by-name", params={"experiment_name": name})
                return str(found["experiment"]["experiment_id"])
            except MlflowError as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
            try:
                return str(self.call("POST", "experiments/create", json={"name": name})["experiment_id"])
            except MlflowError as exc:  # another job (or our own lost answer) created it
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
        raise MlflowError(409, "RESOURCE_ALREADY_EXISTS", f"experiment {name!r} keeps changing")

    def close(self) -> None:
        self.http.close()


class _Stopped(Exception):  # noqa: N818 - control flow, not an error
    pass


def transient(exc: BaseException) -> bool:
    """Anything but MLflow refusing the request itself (a 4xx other than 429) may pass later:
    connection refused, timeouts and 5xx are all MlflowExceptions with a 5xx code."""
    code = getattr(exc, "get_http_status_code", None)
    if callable(code):
        try:
            status = int(code())
        except Exception:
            return True
        return not (400 <= status < 500 and status != 429)
    return True


class Tracker:
    """MLflow run of one job attempt; every method returns at once and never raises."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str | None,
        run_name: str,
        *,
        tags: Mapping[str, str] | None = None,
        start_wait_s: float = 0.0,
        max_backoff_s: float = 20.0,
        metrics_interval_s: float = 0.0,
    ) -> None:
        self.run_id: str | None = None
        # Epoch metrics wait up to this long after the last metrics request and then go together
        # (MLflow's server spends a few tens of ms of CPU per request; `flush` sends at once).
        self.metrics_interval_s = metrics_interval_s
        self._last_metrics = float("-inf")
        self._urgent = False
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = {**(tags or {}), RUN_KEY_TAG: uuid.uuid4().hex}
        self.max_backoff_s = max_backoff_s
        self.failures = 0
        self.replayed = 0  # operations that went through only after a failure
        self._ops: deque[tuple[Any, ...]] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._failing = False
        self._thread: threading.Thread | None = None
        if not tracking_uri:
            return
        if not tracking_uri.startswith(("http://", "https://")):
            raise ValueError(f"MLflow tracking URI {tracking_uri!r} must be an http(s) server URL")
        self._thread = threading.Thread(target=self._run, name="mlflow-replay", daemon=True)
        self._thread.start()
        if start_wait_s:
            self._wait(lambda: self.run_id is not None, start_wait_s)

    def _pause(self, seconds: float) -> None:
        """Tenacity's sleep between tries, cut short when the run is asked to stop."""
        self._stop.wait(seconds)

    @property
    def enabled(self) -> bool:
        return self._thread is not None

    # -- producers -------------------------------------------------------------------------
    def _put(self, op: tuple[Any, ...]) -> None:
        if not self.enabled:
            return
        with self._cond:
            self._ops.append(op)
            self._cond.notify_all()

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Hyperparameters and job settings (sent in batches of MLflow's 100-param limit)."""
        items = [(str(k), str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self._put(("params", items[start : start + MAX_PARAMS_PER_BATCH]))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """One `log_batch` per epoch (single log_metric calls are ~80x slower)."""
        ts = int(time.time() * 1000)
        self._put(("metrics", {k: float(v) for k, v in metrics.items()}, step, ts))

    def end(self, state: str) -> None:
        """Close the run with the status matching the job's final state."""
        status = {"succeeded": "FINISHED", "cancelled": "KILLED"}.get(state, "FAILED")
        self._put(("end", status))

    # -- state -----------------------------------------------------------------------------
    def pending(self) -> int:
        """Operations not yet stored in MLflow (creating the run counts as one)."""
        if not self.enabled:
            return 0
        with self._cond:
            return len(self._ops) + (self.run_id is None)

    @property
    def active(self) -> bool:
        """Whether the replay thread still runs (it ends when closed or refused for good)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def complete(self) -> bool:
        return self.pending() == 0

    def summary(self) -> dict[str, Any]:
        """What the final callback says about tracking."""
        return {
            "enabled": self.enabled,
            "complete": self.complete,
            "pending": self.pending(),
            "failures": self.failures,
            "mlflow_run_id": self.run_id,
        }

    def _wait(self, predicate: Any, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return bool(predicate())
                self._cond.wait(min(left, 0.5))
        return True

    def flush(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the buffer to reach MLflow; True when it did."""
        if not self.enabled:
            return True
        with self._cond:
            self._urgent = True  # metrics held back for the interval go now
            self._cond.notify_all()
        return self._wait(lambda: not self._ops and self.run_id is not None, timeout_s)

    def close(self, timeout_s: float) -> bool:
        """Flush, then stop the replay thread; True when nothing was lost."""
        done = self.flush(timeout_s)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=15)
        if not done:
            log.error(
                "MLflow data not delivered before the budget ran out",
                extra={"pending": self.pending(), "run_id": self.run_id},
            )
        return done

    # -- the replay thread -----------------------------------------------------------------
    def _retrying(self, what: str) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.failures += 1
            if not self._failing:  # one warning per outage, not one per try
                log.warning(
                    "MLflow unavailable; buffering and retrying (training continues)",
                    extra={"operation": what, "error": f"{type(exc).__name__}: {exc}"[:500]},
                )
            self._failing = True

        def stopped(_: RetryCallState) -> bool:
            return self._stop.is_set()

        return Retrying(
            retry=retry_if_exception(transient),
            wait=wait_exponential_jitter(multiplier=1, max=self.max_backoff_s, jitter=1),
            stop=stopped,
            sleep=self._pause,
            before_sleep=before_sleep,
            reraise=True,
        )

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        if self._stop.is_set():
            raise _Stopped
        result = self._retrying(what)(fn, *args)
        if self._failing:
            self._failing = False
            self.replayed += 1
            log.info("MLflow reachable again; buffered tracking data replayed", extra={"op": what})
        return result

    def _run(self) -> None:
        lower_this_thread()  # helper work yields to training (trainer_runner/threads.py)
        client: MlflowRest | None = None
        try:
            client = MlflowRest(self.tracking_uri)
            run_id = self._call("create_run", self._find_or_create_run, client)
            with self._cond:
                self.run_id = run_id
                self._cond.notify_all()
            while True:
                with self._cond:
                    while not self._ops and not self._stop.is_set():
                        self._cond.wait(0.5)
                    if not self._ops:
                        return
                    op, taken = self._next_op()
                try:
                    self._call(op[0], self._apply, client, op)
                except _Stopped:
                    raise
                except Exception as exc:
                    if self._stop.is_set() or transient(exc):
                        raise
                    log.warning(  # refused for good: drop it, keep the rest flowing
                        "MLflow refused a tracking call; dropped",
                        extra={"operation": op[0], "error": str(exc)[:500]},
                    )
                with self._cond:
                    for _ in range(taken):  # only once stored: pending() counts those in flight
                        self._ops.popleft()
                    if op[0] == "metrics":
                        self._last_metrics = time.monotonic()
                    self._cond.notify_all()
        except _Stopped:
            return
        except Exception as exc:  # stopped while failing, or a bug: never take the job down
            if not self._stop.is_set():
                log.warning("MLflow tracking stopped", extra={"error": str(exc)[:500]})
        finally:
            if client is not None:
                client.close()
            with self._cond:
                self._cond.notify_all()

    def _next_op(self) -> tuple[tuple[Any, ...], int]:
        """The next request and how many buffered operations it carries (called holding the
        lock, with the buffer not empty). Metrics wait out the interval since the last metrics
        request, unless the job is flushing or stopping, then go as one batch."""
        if self._ops[0][0] != "metrics":
            return self._ops[0], 1
        due = self._last_metrics + self.metrics_interval_s
        while (left := due - time.monotonic()) > 0 and not self._urgent and not self._stop.is_set():
            self._cond.wait(left)
        rows: list[tuple[dict[str, float], int, int]] = []
        for op in self._ops:
            if op[0] != "metrics" or len(rows) + 1 > MAX_EPOCHS_PER_BATCH:
                break
            rows.append((op[1], op[2], op[3]))
        return ("metrics", rows), len(rows)

    def _find_or_create_run(self, client: MlflowRest) -> str:
        experiment_id = client.experiment_id(self.experiment) if self.experiment else "0"
        key = self.tags[RUN_KEY_TAG]
        # A create whose answer was lost (server frozen, then resumed) must not make a twin.
        found = client.call(
            "POST",
            "runs/search",
            json={
                "experiment_ids": [experiment_id],
                "filter": f"tags.{RUN_KEY_TAG} = '{key}'",
                "max_results": 1,
            },
        )
        if found.get("runs"):
            return str(found["runs"][0]["info"]["run_id"])
        created = client.call(
            "POST",
            "runs/create",
            json={
                "experiment_id": experiment_id,
                "run_name": self.run_name,
                "start_time": int(time.time() * 1000),
                "tags": [{"key": k, "value": v} for k, v in self.tags.items()],
            },
        )
        return str(created["run"]["info"]["run_id"])

    def _apply(self, client: MlflowRest, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "params":
            params = [{"key": k, "value": v} for k, v in op[1]]
            client.call("POST", "runs/log-batch", json={"run_id": self.run_id, "params": params})
        elif kind == "metrics":
            rows = [
                {"key": k, "value": v, "timestamp": ts, "step": step}
                for metrics, step, ts in op[1]
                for k, v in metrics.items()
            ]
            client.call("POST", "runs/log-batch", json={"run_id": self.run_id, "metrics": rows})
        elif kind == "end":
            client.call(
                "POST",
                "runs/update",
                json={"run_id": self.run_id, "status": op[1], "end_time": int(time.time() * 1000)},
            )
