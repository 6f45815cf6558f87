"""Rendering the Kubernetes overlays and reading the Compose file, for the deploy tests."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KUSTOMIZE_DIR = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("local", "production")
COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
# The Kubernetes version the manifests are checked against (kubernetes-validate bundles schemas).
KUBERNETES_VERSION = "1.35.0"


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of one overlay, with the kubectl of the `deploy` extra (a current
    kustomize; Debian's kubectl is too old for the overlays' syntax)."""
    result = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(KUSTOMIZE_DIR / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def env_file_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split("=", 1)[0].strip())
    return names


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded
