"""The import rules of docs/architecture.md hold in the code: each package imports only packages
of lower layers (checked for every import statement, also those inside functions), so the
package graph has no cycle, and no module imports the ``pykd`` dispatcher."""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pykd"


def layers() -> dict[str, int]:
    """Package -> layer, from the table in docs/architecture.md."""
    found: dict[str, int] = {}
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|([^|]+)\|", line)
        if m:
            for name in re.findall(r"`([\w_]+)`", m.group(2)):
                found[name] = int(m.group(1))
    return found


def package_of(module: str) -> str:
    """``pykd.decode.decoder`` -> ``kaldi``; ``pykd.cli_args`` -> ``cli_args``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports() -> list[tuple[str, str, str]]:
    """``(importing module file, its package, imported pykd module)`` of every import."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == "pykd" or name.startswith("pykd."):
                    edges.append((str(rel) + ".py", package_of(module), name))
    return edges


def test_every_package_is_in_a_layer() -> None:
    table = layers()
    packages = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()
    }
    packages.discard("__init__")
    assert packages <= set(table), f"not in docs/architecture.md: {sorted(packages - set(table))}"


def test_imports_go_to_lower_layers_only() -> None:
    table = layers()
    wrong = []
    for path, src, target in imports():
        dst = package_of(target)
        if dst == src or target == "pykd":
            continue
        if table[dst] >= table[src]:
            wrong.append(
                f"{path}: {src} (layer {table[src]}) imports {target} (layer {table[dst]})"
            )
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(wrong)


def test_package_graph_has_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for _path, src, target in imports():
        if package_of(target) != src:
            graph.setdefault(src, set()).add(package_of(target))
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:  # pragma: no cover - the failure message
        pytest.fail(f"import cycle between packages: {err.args[1]}")
    assert "io" in order


def test_only_the_entry_point_imports_the_dispatcher() -> None:
    users = [p for p, _src, target in imports() if target == "pykd.cli" and p != "pykd/__main__.py"]
    assert not users, f"import pykd.cli_args instead of the dispatcher: {users}"
