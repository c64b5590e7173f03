"""Imports go one way only, down DESIGN.md's list: this test keeps it true."""

from __future__ import annotations

import ast
from pathlib import Path

import pypod

SRC = Path(pypod.__file__).parent

# layer -> the layers it may import (besides itself and the shared leaf modules)
ALLOWED: dict[str, set[str]] = {
    "cli": {"engine", "build", "image", "runtime", "storage", "network"},
    "engine": {"monitor", "network", "runtime", "image", "storage", "config", "oci", "linux"},
    "build": {"image", "storage", "runtime", "config", "oci"},
    "monitor": {"runtime", "linux"},
    "image": {"storage", "config", "oci"},
    "network": {"linux", "config"},
    "runtime": {"linux", "oci"},
    "storage": {"linux", "oci"},
    "linux": {"oci"},
    "config": {"oci"},
    "oci": set(),
}  # fmt: skip
#: modules every layer may use: they import the standard library only
LEAVES = {
    "errors", "record", "log", "atomic", "fstree", "sqlite", "stdlite", "jsoncodec", "__init__",
}  # fmt: skip
#: support code for tests, the demo and benchmarks; no library module may import it
SUPPORT = {"testing"}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [m for m in found if m == "pypod" or m.startswith("pypod.")]


def test_imports_go_down_the_layers() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(rel.parts)
        layer = _layer(module)
        if layer in SUPPORT:
            continue
        for imported in _imports(path):
            target = _layer(imported)
            if imported == "pypod" or target in LEAVES or target == layer:
                continue
            if target in SUPPORT:
                problems.append(f"{module} imports test support {imported}")
            elif target not in ALLOWED.get(layer, set()):
                problems.append(f"{module} ({layer}) imports {imported} ({target})")
    assert problems == []


def test_leaf_modules_import_only_the_standard_library() -> None:
    for leaf in LEAVES - {"__init__"}:
        imported = _imports(SRC / f"{leaf}.py")
        assert all(_layer(m) in LEAVES for m in imported), (leaf, imported)
