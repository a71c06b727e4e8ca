"""colorkit/core and colorkit/train import each other's modules without a cycle, counting
every import: at the top, inside functions and under ``if TYPE_CHECKING:`` alike (a type
hint that needs the other module is a dependency too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "colorkit"


def imported_modules(path: Path, package: str, modules: set[str]) -> set[str]:
    """The modules of ``package`` that ``path`` imports anywhere (``from colorkit.core
    import cachefile`` imports ``colorkit.core.cachefile``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out |= {n for n in names if n in modules}
    return out


def graph_of(folder: str) -> dict[str, set[str]]:
    package = f"colorkit.{folder}"
    paths = {f"{package}.{p.stem}": p for p in sorted((ROOT / folder).glob("*.py")) if p.stem != "__init__"}
    return {name: imported_modules(path, package, set(paths)) - {name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("folder", ["core", "train"])
def test_no_import_cycle_even_through_type_hints(folder):
    cycle = find_cycle(graph_of(folder))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_checkpoint_owns_method_checkpoints_and_stats_import_no_checkpoint_code():
    core = graph_of("core")
    assert "colorkit.core.checkpoint" not in core["colorkit.core.stats"]
    assert "colorkit.core.checkpoint" not in core["colorkit.core.cachefile"]
    assert "colorkit.core.interfaces" not in core["colorkit.core.checkpoint"]
    from colorkit.core import checkpoint, stats

    assert callable(checkpoint.load_method_checkpoint) and not hasattr(stats, "load_method_checkpoint")


def test_the_check_sees_a_cycle_through_a_type_hint(tmp_path):
    hint = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from colorkit.x import b\n"
    (tmp_path / "a.py").write_text(hint)
    assert imported_modules(tmp_path / "a.py", "colorkit.x", {"colorkit.x.b"}) == {"colorkit.x.b"}
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
