"""Every Prometheus metric of the backend, in one place (`vtp_` prefix).

Two kinds:

- **Events** (counters, histograms) are counted where they happen, in the web app's processes
  and the worker. With `PROMETHEUS_MULTIPROC_DIR` set (the local stack sets it to
  `DATA_DIR/metrics`; set it in any tier that runs several server workers) each process writes
  its values to files there and `/metrics` sums them, so a scrape sees every process, whichever
  one answers it (prometheus_client's multiprocess mode).
- **State** (jobs by state, queue depth, heartbeat age) is read from the record
  at scrape time by `StateCollector`: the database and Redis are the truth, so no process has to
  keep a gauge in step with them.

The trainer exposes its own metrics (`trainer_runner/metrics.py`): it imports nothing of ours.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from services.infra.db import get_engine, pool_checked_out
from services.infra.settings import get_settings

__all__ = ["CONTENT_TYPE_LATEST", "exposition", "observe_http"]

# Gauges only the answering process knows, read by a function at scrape time (its own database
# pool): multiprocess mode cannot sum those through files, so they are served beside the rest.
PROCESS = CollectorRegistry()
POOL_CHECKED_OUT = Gauge(
    "vtp_db_pool_checked_out", "Connections of the default engine in use now.", registry=PROCESS
)
POOL_CHECKED_OUT.set_function(pool_checked_out)
POOL_SIZE = Gauge(
    "vtp_db_pool_capacity", "Connections the default engine may open (size + overflow).", registry=PROCESS
)
POOL_SIZE.set_function(lambda: float(get_settings().db_pool_size + get_settings().db_max_overflow))

# Seconds-scale buckets for waits that run from instant to hours (a job queued behind others).
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, float("inf"))

HTTP_LATENCY = Histogram(
    "vtp_http_request_duration_seconds",
    "REST API request duration by route template, method and status (a lane wait included)",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)
CALLBACKS = Counter(
    "vtp_trainer_callbacks_total",
    "Trainer callbacks received, by outcome (accepted or rejected: bad signature, body, or job)",
    ["outcome"],
)
QUEUE_WAIT = Histogram(
    "vtp_queue_wait_seconds",
    "Time from a job's submission to the dispatcher handing it to the trainer",
    buckets=WAIT_BUCKETS,
)
DISPATCH_LATENCY = Histogram(
    "vtp_dispatch_duration_seconds",
    "Duration of the dispatcher's POST /jobs to the trainer, by outcome",
    ["outcome"],
)
CALL_ERRORS = Counter(
    "vtp_external_call_errors_total",
    "Failed backend calls to a dependency (s3, trainer), by service and kind (MLflow: the trainer's)",
    ["service", "kind"],
)
RECONCILER_ACTIONS = Counter(
    "vtp_reconciler_actions_total",
    "What the reconciler did with silent or waiting jobs (retried, failed, finished, requeued, ...)",
    ["action"],
)
BREAKER_OPEN = Gauge(
    "vtp_circuit_breaker_open",
    "1 while the worker's circuit breaker to the trainer refuses calls",
    ["name"],
    multiprocess_mode="livemax",
)
INGEST_BYTES = Counter("vtp_dataset_ingest_bytes_total", "Bytes of dataset uploads stored")


def observe_http(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_LATENCY.labels(route, method, str(status)).observe(seconds)
    if route.startswith("/api/v1/trainer/callbacks"):
        CALLBACKS.labels("accepted" if status < 300 else "rejected").inc()


def call_error(service: str, kind: str) -> None:
    CALL_ERRORS.labels(service, kind).inc()


def trainer_error(exc: BaseException) -> None:
    """A trainer call that got no usable answer (`breaker_open` while the breaker refuses)."""
    kind = "breaker_open" if type(exc).__name__ == "CircuitBreakerError" else type(exc).__name__
    call_error("trainer", kind)


class StateCollector(Collector):
    """Gauges read from the database and Redis at scrape time (one query each)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from _job_gauges()
        yield from _queue_gauges()

    def describe(self) -> Iterator[Any]:
        return iter(())  # computed at scrape time: nothing to check at registration


def _job_gauges() -> Iterator[GaugeMetricFamily]:
    # Plain SQL on the `job` table: infra sits below the domain models and must not import them.
    jobs = GaugeMetricFamily("vtp_jobs", "Jobs by state and project", labels=["state", "project_id"])
    age = GaugeMetricFamily(
        "vtp_job_heartbeat_age_seconds",
        "Seconds since the last sign of life of each dispatching or running job",
        labels=["job_id", "project_id"],
    )
    oldest = GaugeMetricFamily(
        "vtp_queue_oldest_wait_seconds", "Age of the oldest job waiting (queued or retrying) for dispatch"
    )
    # The queue is the `queued`/`retrying` rows (services.infra.queue): its depth is their count.
    depth = GaugeMetricFamily("vtp_queue_depth", "Jobs waiting for dispatch (queued or retrying)")
    now = time.time()
    with get_engine().connect() as conn:
        for state, project_id, n in conn.execute(
            text("SELECT state, project_id, count(*) FROM job GROUP BY state, project_id")
        ):
            jobs.add_metric([str(state), str(project_id)], n)
        active = conn.execute(
            text(
                "SELECT id, project_id, coalesce(last_heartbeat_at, started_at, created_at) FROM job "
                "WHERE state IN ('dispatching', 'running')"
            )
        )
        for job_id, project_id, heard in active:
            age.add_metric([str(job_id), str(project_id)], max(0.0, now - _epoch(heard)))
        waiting, count = conn.execute(
            text("SELECT min(created_at), count(*) FROM job WHERE state IN ('queued', 'retrying')")
        ).one()
    oldest.add_metric([], max(0.0, now - _epoch(waiting)) if waiting else 0.0)
    depth.add_metric([], count)
    yield from (jobs, age, oldest, depth)


def _epoch(moment: datetime | str) -> float:
    if isinstance(moment, str):  # SQLite hands back its text form
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:  # stored as naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _queue_gauges() -> Iterator[GaugeMetricFamily]:
    up = GaugeMetricFamily("vtp_redis_up", "1 when Redis answered this scrape (the dispatcher's wake-ups)")
    try:
        client = redis.Redis.from_url(get_settings().redis_dsn, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        up.add_metric([], 1)
    except (redis.RedisError, OSError):
        up.add_metric([], 0)
    yield up


def registry() -> CollectorRegistry:
    """What `/metrics` serves: every process's events (multiprocess mode) or this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
    else:
        reg = REGISTRY
    return reg


_STATE = StateCollector()


def exposition(*, with_state: bool = True) -> bytes:
    """The text a scrape gets: events, this process's own gauges, plus the record's state when
    `with_state`."""
    body = generate_latest(registry()) + generate_latest(PROCESS)
    if with_state:
        state = CollectorRegistry(auto_describe=False)
        state.register(_STATE)
        body += generate_latest(state)
    return body
