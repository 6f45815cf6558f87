"""Executors: where attempts run. `make_executor` picks one by `TRAINER_EXECUTOR`."""

from __future__ import annotations

from importlib import import_module

from trainer_runner.executors.base import Executor, ExecutorUnavailable, NoCapacity, Progress, StaleAttempt
from trainer_runner.settings import TrainerSettings

# name -> "module:Class"; imported on use, so the local trainer never imports Ray's client.
EXECUTORS = {
    "local": "trainer_runner.executors.local:LocalExecutor",
    "ray": "trainer_runner.executors.ray:RayExecutor",
}


def make_executor(settings: TrainerSettings) -> Executor:
    """The one place that reads `settings.executor`."""
    module, cls = EXECUTORS[settings.executor].split(":")
    executor: Executor = getattr(import_module(module), cls)(settings)
    return executor


__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorUnavailable",
    "NoCapacity",
    "Progress",
    "StaleAttempt",
    "make_executor",
]
