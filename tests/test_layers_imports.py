"""The package's folders are layers (docs/concepts.md, "Layout"): a module imports only from
its own layer and the layers below it. Imports under ``if TYPE_CHECKING:`` are type hints
and are not counted."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "colorkit"
ORDER = ["core", "data", "metrics", "builtin_components", "api", "train", "eval", "apps", "cli"]
"""Bottom to top; ``testing`` (the contract kit for plugin authors) may use anything."""


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "colorkit" or len(parts) == 1:
        return None
    return parts[1] if parts[1] in ORDER else None


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "colorkit":  # from colorkit import api, ...
                out += [(node.lineno, f"colorkit.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def test_no_module_imports_a_layer_above_its_own():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        own = rel.parts[0].removesuffix(".py")
        if own not in ORDER:
            continue
        for line, module in imports(path):
            target = layer_of(module)
            if target is not None and ORDER.index(target) > ORDER.index(own):
                bad.append(f"colorkit/{rel}:{line} ({own}) imports {module} ({target})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_check_sees_an_upward_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from colorkit.train.engine import Trainer\nfrom colorkit import api\n")
    assert [layer_of(m) for _, m in imports(f)] == ["train", None, "api"]


def test_a_plugin_author_needs_only_the_top_level_package():
    """Where a class lives is not part of the API: everything a plugin uses comes from
    ``colorkit`` itself (the example package in docs/examples does just that)."""
    import colorkit
    from colorkit.core import interfaces

    for name in ("Method", "Stage", "StageEnd", "StepContext", "Metric", "RatioMetric", "DecoderLoss", "Backbone",
                 "Embedder", "ComponentConfig", "ColorStats", "hookimpl", "noise", "ColorkitError", "Trainer",
                 "TrainConfig", "check_component", "DataConfig", "SampleConfig"):
        assert getattr(colorkit, name) is not None, name
    assert colorkit.Metric is interfaces.Metric
    assert colorkit.distributed.world_size() == 1
    example = Path(__file__).resolve().parents[1] / "docs" / "examples" / "colorkit-knn" / "colorkit_knn"
    deep = [f"{p.name}:{line} {m}" for p in example.glob("*.py") for line, m in imports(p)
            if layer_of(m) is not None]
    assert not deep, deep


def core_import_graph() -> dict[str, set[str]]:
    """``{module: core modules it imports}`` for the modules of ``colorkit/core`` (imports
    inside functions count: a cycle through a deferred import is still a cycle)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "core").glob("*.py")):
        name = f"colorkit.core.{path.stem}"
        graph[name] = {m for _, m in imports(path) if m.startswith("colorkit.core.") and m != name}
    return graph


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


def test_core_modules_import_each_other_without_cycles():
    """E.g. checkpoint code never imports the colour statistics, which write their file
    with it: the knowledge of a method's ``stats.safetensors`` is in ``core/stats.py``."""
    cycle = find_cycle(core_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
    assert "colorkit.core.stats" not in core_import_graph()["colorkit.core.checkpoint"]


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
