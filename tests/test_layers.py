"""The backend's layers, checked statically (see ARCHITECTURE.md).

- Pages, REST routes and Reflex state are thin: they never open a database session or decide
  access themselves; the application layer (services.actions) does both, for both channels.
- `authorize` is called from the application layer only.
- services/ packages depend downwards only: infra <- domain <- actions <- runtime.
- No import cycles anywhere in the backend, function-local imports included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.isolation

ROOT = Path(__file__).resolve().parents[1]
BACKEND = ("app", "components", "state", "services")
THIN = ("app/api/routes", "app/pages", "state", "components")
# The one request dependency that opens a session (to resolve the bearer token) lives here.
SESSION_ALLOWED = {"app/api/deps.py"}
FORBIDDEN_IN_THIN = {
    ("sqlmodel", "Session"),
    ("services.infra.db", "session_scope"),
    ("services.infra.db", "get_engine"),
    ("services.domain.permissions", "authorize"),
}
LAYER = {"services.infra": 0, "services.domain": 1, "services.actions": 2, "services.runtime": 3}


def _modules() -> dict[str, Path]:
    found = {}
    for top in BACKEND:
        for path in (ROOT / top).rglob("*.py"):
            relative = path.relative_to(ROOT).with_suffix("")
            parts = list(relative.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imports(path: Path, module: str) -> list[tuple[str, str | None]]:
    """(module, name) pairs this file imports, wherever in the file; relative imports resolved."""
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = (
                    module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                )
                base = ".".join([*package, base] if base else package)
            out += [(base, alias.name) for alias in node.names]
    return out


def _targets(imported: str, name: str | None, modules: dict[str, Path]) -> set[str]:
    """The backend modules an import statement loads (`from pkg import mod` loads pkg.mod)."""
    found = set()
    if name and f"{imported}.{name}" in modules:
        found.add(f"{imported}.{name}")
    elif imported in modules:
        found.add(imported)
    return found


def test_thin_layers_do_not_open_sessions_or_authorize() -> None:
    offenders = []
    for module, path in _modules().items():
        relative = str(path.relative_to(ROOT))
        if not relative.startswith(THIN) or relative in SESSION_ALLOWED:
            continue
        for imported, name in _imports(path, module):
            if (imported, name) in FORBIDDEN_IN_THIN:
                offenders.append(f"{relative}: from {imported} import {name}")
    assert not offenders, "go through services.actions instead:\n" + "\n".join(offenders)


def test_only_the_application_layer_authorizes() -> None:
    offenders = [
        f"{module} imports authorize"
        for module, path in _modules().items()
        if not module.startswith(("services.actions", "services.domain.permissions"))
        and ("services.domain.permissions", "authorize") in _imports(path, module)
    ]
    assert not offenders, offenders


def _layer(module: str) -> int | None:
    return next((rank for prefix, rank in LAYER.items() if module.startswith(prefix)), None)


def test_services_depend_downwards_only() -> None:
    modules = _modules()
    offenders = []
    for module, path in modules.items():
        mine = _layer(module)
        if mine is None:
            continue
        for imported, name in _imports(path, module):
            for target in _targets(imported, name, modules):
                theirs = _layer(target)
                if theirs is not None and theirs > mine:
                    offenders.append(f"{module} -> {target}")
    assert not offenders, "a lower layer imports a higher one:\n" + "\n".join(sorted(offenders))


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {
        module: {
            target
            for imported, name in _imports(path, module)
            for target in _targets(imported, name, modules)
            if target != module and not module.startswith(target + ".")  # a package's own parent
        }
        for module, path in modules.items()
    }
    cycles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"
