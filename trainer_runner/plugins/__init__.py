"""Registry of framework plugins, keyed by the request's `framework` field.

Built-in plugins are always there; more come from `TRAINER_PLUGINS` (comma-separated
`module:Class` or `module:factory` entries), loaded in the server and in every job child alike.
"""

from __future__ import annotations

import importlib
import os

from trainer_runner.errors import UserError
from trainer_runner.plugins.base import JobContext, TrainerPlugin, primary_device, resolve_device
from trainer_runner.plugins.spec import FieldError
from trainer_runner.plugins.timm_plugin import TimmPlugin
from trainer_runner.plugins.yolo import UltralyticsPlugin

PLUGINS_ENV = "TRAINER_PLUGINS"
PLUGINS: dict[str, TrainerPlugin] = {"ultralytics": UltralyticsPlugin(), "timm": TimmPlugin()}


def load_plugin(ref: str) -> TrainerPlugin:
    """Instantiate `module:Name` (a class or a zero-argument factory)."""
    module_name, _, attr = ref.strip().partition(":")
    if not module_name or not attr:
        raise ValueError(f"plugin reference {ref!r} is not 'module:Name'")
    plugin = getattr(importlib.import_module(module_name), attr)()
    for needed in ("name", "spec", "validate", "train"):
        if not hasattr(plugin, needed):
            raise TypeError(f"plugin {ref!r} has no {needed!r}: see docs/plugins.md")
    return plugin


def register_from_env(value: str | None = None) -> None:
    """Add the plugins named in `TRAINER_PLUGINS` (idempotent)."""
    value = os.environ.get(PLUGINS_ENV, "") if value is None else value
    for ref in filter(None, (part.strip() for part in value.split(","))):
        plugin = load_plugin(ref)
        PLUGINS[plugin.name] = plugin


def get_plugin(framework: str) -> TrainerPlugin:
    """The plugin for `framework`, or a `FieldError` naming the ones this trainer has."""
    try:
        return PLUGINS[framework]
    except KeyError:
        raise FieldError(("framework",), f"unknown framework {framework!r}", sorted(PLUGINS)) from None


register_from_env()

__all__ = [
    "PLUGINS",
    "JobContext",
    "TrainerPlugin",
    "UserError",
    "get_plugin",
    "load_plugin",
    "register_from_env",
    "primary_device",
    "resolve_device",
]
