"""The isolation principle (ARCHITECTURE.md): backend and trainer share only HTTP and s3:// URIs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.isolation

ROOT = Path(__file__).resolve().parents[1]
BACKEND = {"app", "state", "components", "services"}
HEAVY = {"torch", "torchvision", "ultralytics", "timm"}
PRODUCT = ["app", "components", "state", "services", "trainer_runner", "client", "alembic", "rxconfig.py"]


def _sources() -> list[Path]:
    files: list[Path] = []
    for entry in PRODUCT:
        path = ROOT / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def _imports(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def violations(files: list[Path], root: Path = ROOT) -> list[str]:
    found = []
    for path in files:
        rel = path.relative_to(root)
        roots = _imports(path)
        in_trainer = rel.parts[0] == "trainer_runner"
        if in_trainer and roots & BACKEND:
            found.append(f"{rel} imports backend {sorted(roots & BACKEND)}")
        if not in_trainer and "trainer_runner" in roots:
            found.append(f"{rel} imports trainer_runner")
        if not in_trainer and roots & HEAVY:
            found.append(f"{rel} imports {sorted(roots & HEAVY)}")
    return found


def test_product_code_respects_isolation() -> None:
    files = _sources()
    assert len(files) > 20
    assert violations(files) == []


def test_the_check_catches_violations(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    (tmp_path / "trainer_runner").mkdir()
    bad_backend = tmp_path / "services" / "x.py"
    bad_backend.write_text("import torch\nfrom trainer_runner.job import run\n")
    bad_trainer = tmp_path / "trainer_runner" / "y.py"
    bad_trainer.write_text("from services.infra.db import get_engine\n")
    found = violations([bad_backend, bad_trainer], root=tmp_path)
    assert any("imports trainer_runner" in v for v in found)
    assert any("['torch']" in v for v in found)
    assert any("imports backend ['services']" in v for v in found)


def test_no_tier_branches() -> None:
    pattern = re.compile(r"""\b(environment|env|tier|APP_ENV|settings\.env\w*)\s*(==|!=|in)\s*["'(\[]""")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _sources()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
