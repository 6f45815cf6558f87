"""The trainer image installs only the `trainer` extra (docker/requirements.py): every third-party
module trainer_runner imports must come from that extra or what it pulls in, or the container
dies at start (as it did when logging and error tracking arrived through the backend's list)."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(names: set[str]) -> set[str]:
    """The distributions installed with these: their requirements, recursively (no extras)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo.extend(_name(r) for r in requires if "extra ==" not in r)
    return seen


def test_the_trainer_extra_provides_every_module_trainer_runner_imports() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "trainer"
    ]
    installed = _closure({_name(r) for r in extra})
    providers = md.packages_distributions()
    missing = []
    for path in (ROOT / "trainer_runner").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module.split(".")[0]]
            else:
                continue
            for module in modules:
                if module in sys.stdlib_module_names or module == "trainer_runner":
                    continue
                dists = {_name(d) for d in providers.get(module, [])}
                if not dists & installed:
                    missing.append(f"{path.relative_to(ROOT)}: {module} (from {sorted(dists) or '?'})")
    assert not missing, "add to the trainer extra in pyproject.toml:\n" + "\n".join(sorted(set(missing)))
