"""One set of variables for every tier: what `vtp up`, the Compose file and the Kubernetes overlays
set for the backend and for the trainer are the same names, each documented in .env.example.

A variable added to one tier and forgotten in another (or misspelt in one) fails here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.infra.settings import Settings
from services.runtime.stack import children
from tests.deploy.manifests import KUSTOMIZE_DIR, OVERLAYS, ROOT, compose, env_file_names, of_kind, render

pytestmark = pytest.mark.deploy
PREFIXES = ("VTP_", "TRAINER_")


def _ours(names: set[str]) -> set[str]:
    return {n for n in names if n.startswith(PREFIXES)}


def documented() -> set[str]:
    """The variables .env.example names (commented-out optional ones included)."""
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        stripped = line.lstrip("# ").split("=", 1)
        if len(stripped) == 2 and stripped[0].startswith(PREFIXES) and " " not in stripped[0]:
            names.add(stripped[0])
    return names


def vtp_up(tmp_path: Path, *, ray: bool) -> tuple[set[str], set[str]]:
    """(backend, trainer) variables `vtp up` sets itself, with none in its own environment."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(PREFIXES)}
    try:
        settings = Settings(data_dir=tmp_path / "data", trainer_workdir=tmp_path / "trainer")
        by_name = {c.name: c for c in children(settings, ray=ray)}
    finally:
        os.environ.update(saved)
    return _ours(set(by_name["web"].env)), _ours(set(by_name["trainer"].env))


def compose_sets() -> tuple[set[str], set[str]]:
    services = compose()["services"]
    backend = _ours(set(services["web"]["environment"]))
    for name in ("worker", "migrate"):
        assert _ours(set(services[name]["environment"])) == backend, name
    return backend, _ours(set(services["trainer"]["environment"]))


def kubernetes_sets(overlay: str) -> tuple[set[str], set[str]]:
    """Keys of the ConfigMaps and Secrets the pods load. Production renders no Secret (the operator
    creates it from the base's list of keys), so its secret keys come from that list."""
    objects = render(overlay)
    keys: dict[str, set[str]] = {}
    for obj in [*of_kind(objects, "ConfigMap"), *of_kind(objects, "Secret")]:
        keys[obj["metadata"]["name"].rsplit("-", 1)[0]] = set(obj.get("data", {}))
    base = KUSTOMIZE_DIR / "base"
    keys.setdefault("vtp-secrets", env_file_names(base / "secrets.env"))
    keys.setdefault("vtp-trainer-secrets", env_file_names(base / "trainer-secrets.env"))
    backend = keys["vtp-config"] | keys["vtp-secrets"]
    trainer = keys["vtp-trainer-config"] | keys["vtp-trainer-secrets"]
    return _ours(backend), _ours(trainer)


def test_every_tier_sets_the_same_variables(tmp_path: Path) -> None:
    up_backend, up_trainer = vtp_up(tmp_path, ray=False)
    _, up_ray_trainer = vtp_up(tmp_path, ray=True)
    compose_backend, compose_trainer = compose_sets()
    # The trainer: Compose runs it as `vtp up` does (local executor); Kubernetes as `vtp up --ray`.
    assert compose_trainer == up_trainer
    for overlay in OVERLAYS:
        k8s_backend, k8s_trainer = kubernetes_sets(overlay)
        assert k8s_trainer == up_ray_trainer, overlay
        assert k8s_backend == compose_backend, overlay
    # `vtp up` derives the service URLs from host and ports; what it sets, the others set too.
    assert up_backend <= compose_backend
    every = up_backend | up_trainer | up_ray_trainer | compose_backend | compose_trainer
    assert every - documented() == set(), "set by a tier but not documented in .env.example"


def test_backend_variables_are_settings_and_trainer_gets_none_of_them() -> None:
    compose_backend, compose_trainer = compose_sets()
    fields = {f"VTP_{name.upper()}" for name in Settings.model_fields}
    assert compose_backend - fields == set(), "not a field of services.infra.settings.Settings"
    assert not any(n.startswith("VTP_") for n in compose_trainer)
    assert not any(n.startswith("TRAINER_") for n in compose_backend)


def test_parity_check_notices_a_missing_variable(tmp_path: Path) -> None:
    """The comparison can fail: one variable fewer in a tier is a difference."""
    compose_backend, _ = compose_sets()
    k8s_backend, _ = kubernetes_sets("local")
    assert k8s_backend - {"VTP_S3_BUCKET"} != compose_backend
