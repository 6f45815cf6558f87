"""The client installs and runs without the backend: it imports nothing of the platform's code,
no torch, and only the dependencies its own pyproject.toml declares."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.client

CLIENT = Path(__file__).resolve().parents[2] / "client"


def test_imports_are_the_stdlib_and_declared_dependencies_only() -> None:
    declared = {"httpx", "pydantic", "typer", "rich"}
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("=")[0].split("[")[0].strip() for d in project["dependencies"]]
    names += [d.split(">")[0].strip() for d in project["optional-dependencies"]["cli"]]
    assert set(names) == declared
    assert project["scripts"]["vtp"] == "vtp_client.cli:main"
    found: set[str] = set()
    for path in (CLIENT / "vtp_client").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    outside = {n for n in found - declared - {"vtp_client", "__future__"} if n not in sys.stdlib_module_names}
    assert outside == set()


def test_the_command_line_loads_nothing_of_the_backend(tmp_path: Path) -> None:
    """`vtp --help` run from outside the repository, with the backend's entry points ignored."""
    probe = (
        "import sys; import vtp_client.cli as c; "
        "heavy = {'services', 'app', 'state', 'trainer_runner', 'torch', 'fastapi', 'sqlmodel', 'reflex'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
