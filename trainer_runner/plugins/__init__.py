"""Registry of framework plugins, keyed by the request's `framework` field."""

from __future__ import annotations

from trainer_runner.errors import UserError
from trainer_runner.plugins.base import JobContext, TrainerPlugin, resolve_device
from trainer_runner.plugins.yolo import UltralyticsPlugin

PLUGINS: dict[str, TrainerPlugin] = {"ultralytics": UltralyticsPlugin()}


def get_plugin(framework: str) -> TrainerPlugin:
    """The plugin for `framework`, or a `UserError` naming the ones this trainer has."""
    try:
        return PLUGINS[framework]
    except KeyError:
        raise UserError(
            f"unknown framework {framework!r}; this trainer supports {sorted(PLUGINS)}"
        ) from None


__all__ = ["PLUGINS", "JobContext", "TrainerPlugin", "get_plugin", "resolve_device"]
