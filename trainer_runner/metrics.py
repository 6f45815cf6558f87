"""The trainer's Prometheus metrics (`vtp_trainer_` prefix), read from its executor at scrape time.

Kept inside `trainer_runner` (it imports nothing of the backend). Everything comes through the
executor interface (`capacity`, `progress`), so the local and the Ray executor report the same
series: no job process needs a metrics server of its own, and no gauge has to be kept in step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from trainer_runner.executors import Executor, ExecutorUnavailable
from trainer_runner.schemas import Capacity


class ExecutorCollector(Collector):
    def __init__(self, executor: Executor, max_jobs: int) -> None:
        self.executor = executor
        self.max_jobs = max_jobs

    def describe(self) -> Iterator[Any]:
        return iter(())  # computed at scrape time

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily("vtp_trainer_executor_up", "1 when the executor (a Ray cluster) answered")
        try:
            capacity = self.executor.capacity()
            progress = self.executor.progress()
        except ExecutorUnavailable:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _capacity_gauges(capacity, self.max_jobs)
        epochs = GaugeMetricFamily(
            "vtp_trainer_epochs_per_second",
            "Training speed of running attempts",
            labels=["job_id", "attempt"],
        )
        images = GaugeMetricFamily(
            "vtp_trainer_images_per_second", "Images trained per second", labels=["job_id", "attempt"]
        )
        mlflow = CounterMetricFamily(
            "vtp_trainer_mlflow_failures",
            "Failed MLflow calls of running attempts (buffered and retried; training goes on)",
            labels=["job_id", "attempt"],
        )
        for item in progress:
            labels = [item.job_id, str(item.attempt)]
            mlflow.add_metric(labels, item.mlflow_failures)
            if item.epochs_per_s is not None:
                epochs.add_metric(labels, item.epochs_per_s)
            if item.images_per_s is not None:
                images.add_metric(labels, item.images_per_s)
        yield from (epochs, images, mlflow)


def _capacity_gauges(capacity: Capacity, max_jobs: int) -> Iterator[GaugeMetricFamily]:
    """Job slots (busy: attempts running; free: further one-CPU jobs that fit now, within
    TRAINER_MAX_CONCURRENT_JOBS) and GPUs per node."""
    alive = [node for node in capacity.nodes if node.alive]
    busy = capacity.jobs_running
    free = sum(int(node.cpus_free) for node in alive)
    if max_jobs:
        free = min(free, max(0, max_jobs - busy))
    slots = GaugeMetricFamily("vtp_trainer_job_slots", "Job slots of the trainer's fleet", labels=["state"])
    slots.add_metric(["busy"], busy)
    slots.add_metric(["free"], free)
    gpus = GaugeMetricFamily(
        "vtp_trainer_gpus", "GPUs of each node, busy or free", labels=["state", "node_id", "accelerator"]
    )
    for node in alive:
        accelerator = node.accelerator or ""
        gpus.add_metric(["busy", node.node_id, accelerator], node.gpus_total - node.gpus_free)
        gpus.add_metric(["free", node.node_id, accelerator], node.gpus_free)
    yield from (slots, gpus)


def exposition(executor: Executor, max_jobs: int) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExecutorCollector(executor, max_jobs))
    return generate_latest(registry)
