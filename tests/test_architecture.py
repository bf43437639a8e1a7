"""The import layers of ARCHITECTURE.md hold in the code: no upward import, no cycle, no private import.

The table in ARCHITECTURE.md assigns every unit (a top-level module or subpackage of ``dgflow``) to a layer;
this test reads it, parses every ``import`` of ``src/dgflow`` (those inside functions too) and fails with the
offending line when a unit imports a higher layer, when modules import each other in a circle, when a module
imports a private name of another module, when a unit is missing from the table, or when the longest chain of
units ("floors") exceeds 9.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "dgflow"
MAX_FLOORS = 9


def layer_table() -> dict[str, int]:
    """``{unit: layer}`` from the layer table of ARCHITECTURE.md."""
    layers: dict[str, int] = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            for unit in re.findall(r"`([\w.]+)`", cells[2]):
                assert unit not in layers, f"ARCHITECTURE.md lists {unit} twice"
                layers[unit] = int(cells[0])
    assert layers, "ARCHITECTURE.md has no layer table"
    return layers


def modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = ["dgflow", *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "dgflow"


@functools.lru_cache(None)
def imports() -> list[tuple[str, str, str, int]]:
    """``(module, imported module, imported name or "", line)`` for every import of a dgflow module."""
    mods = modules()
    found = []
    for module, path in mods.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                if target.split(".")[0] != "dgflow":
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.append((module, sub if sub in mods else target, "" if sub in mods else alias.name,
                                  node.lineno))
            elif isinstance(node, ast.Import):
                found += [(module, a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "dgflow"]
    return found


def where(module: str, line: int) -> str:
    return f"{modules()[module].relative_to(ROOT)}:{line}"


def test_every_unit_has_a_layer_and_every_listed_unit_exists():
    units = {unit_of(m) for m in modules()}
    table = layer_table()
    assert sorted(units - set(table)) == [], "units missing from ARCHITECTURE.md's layer table"
    assert sorted(set(table) - units) == [], "ARCHITECTURE.md lists units that do not exist"


def test_no_import_goes_up_a_layer():
    layer = layer_table()
    upward = [f"{where(m, line)}: {unit_of(m)} (layer {layer[unit_of(m)]}) imports {t} (layer {layer[unit_of(t)]})"
              for m, t, _, line in imports() if layer[unit_of(t)] > layer[unit_of(m)]]
    assert upward == []


def test_no_import_cycles_between_modules_or_units():
    for graph_of in (lambda m: m, unit_of):
        graph: dict[str, set[str]] = defaultdict(set)
        for m, t, _, _ in imports():
            if graph_of(m) != graph_of(t):
                graph[graph_of(m)].add(graph_of(t))
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> None:
            state[node] = 1
            for nxt in sorted(graph[node]):
                if state.get(nxt) == 1:
                    raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [node, nxt]))
                if nxt not in state:
                    visit(nxt, path + [node] if nxt not in path else path)
            state[node] = 2

        for node in sorted(graph):
            if node not in state:
                visit(node, [])


def test_no_private_name_is_imported_across_modules():
    private = [f"{where(m, line)}: {m} imports {name} from {t}" for m, t, name, line in imports()
               if name.startswith("_") and not name.startswith("__") and t != m]
    private += [f"{where(m, line)}: {m} imports the private module {t}" for m, t, _, line in imports()
                if any(p.startswith("_") and p not in ("__init__", "_version") for p in t.split("."))]
    assert private == []


def test_at_most_nine_floors():
    graph: dict[str, set[str]] = defaultdict(set)
    for m, t, _, _ in imports():
        if unit_of(m) != unit_of(t) and unit_of(m) not in ("__main__",):
            graph[unit_of(m)].add(unit_of(t))

    @functools.lru_cache(None)
    def floors(unit: str) -> tuple[int, tuple[str, ...]]:
        best = max((floors(v) for v in graph[unit]), default=(0, ()))
        return best[0] + 1, (unit, *best[1])

    height, chain = max(floors(u) for u in list(graph))
    assert height <= MAX_FLOORS, f"{height} floors: {' -> '.join(chain)}"
