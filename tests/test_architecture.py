"""The layers of ``meta/`` (docs/ARCHITECTURE.md): each imports only layers below it, no cycles, and the
numerical core neither reads files, draws nor talks to a terminal."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "meta"
LAYERS = ["foundation", "stats", "sheets", "batch", "interop", "publish", "api", "cli"]
FOUNDATION = {"errors", "storage", "_version"}
CORE_FORBIDDEN = {"matplotlib", "click", "jinja2", "forestplot", "pathlib", "os", "shutil", "tomllib", "dask",
                  "pyarrow", "playwright"}


def layer_of(module: str) -> str:
    """'meta.stats.pooling' -> 'stats'; 'meta' and 'meta.api.*' (the public API) -> 'api'."""
    parts = module.split(".")
    if parts == ["meta"]:
        return "api"
    return "foundation" if parts[1] in FOUNDATION else parts[1]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path) -> list[str]:
    """Every module a file imports, absolute, including imports inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import; write 'from meta.… import'"
            found.append(node.module)
    return found


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_go_down_the_layers(module):
    own = LAYERS.index(layer_of(module))
    for target in imports_of(modules()[module]):
        if target == "meta" or target.startswith("meta."):
            other = layer_of(target)
            assert LAYERS.index(other) <= own, f"{module} ({layer_of(module)}) imports {target} ({other})"


@pytest.mark.parametrize("module", sorted(m for m in modules() if layer_of(m) == "stats"))
def test_numerical_core_has_no_files_plots_or_terminal(module):
    top = {name.split(".")[0] for name in imports_of(modules()[module])}
    assert not top & CORE_FORBIDDEN, f"{module} imports {sorted(top & CORE_FORBIDDEN)}"
    text = modules()[module].read_text(encoding="utf-8")
    assert "open(" not in text and "print(" not in text


def test_no_import_cycles_between_modules():
    graph = {m: {t for t in imports_of(p) if t in modules() and t != m} for m, p in modules().items()}
    state: dict[str, int] = {}

    def visit(node, trail):
        if state.get(node) == 1:
            pytest.fail("import cycle: " + " -> ".join(trail[trail.index(node):] + [node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):  # a package importing its own submodules is not a cycle
                continue
            visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        visit(node, [])


def test_layers_are_the_documented_folders():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert folders == set(LAYERS) - {"foundation"}
    loose = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert loose == FOUNDATION
