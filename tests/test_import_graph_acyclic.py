"""colorkit/core and colorkit/train import each other's modules without a cycle, counting
every import: at the top, inside functions and under ``if TYPE_CHECKING:`` alike (a type
hint that needs the other module is a dependency too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_layers_imports import ORDER, find_cycle

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


@pytest.mark.parametrize("folder", ["core", "train", "inference", "apps", "eval", "data"])
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


def every_import(path: Path) -> list[str]:
    """Every ``colorkit`` module or name ``path`` imports, anywhere (type hints included)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [node.module] + ([f"colorkit.{a.name}" for a in node.names] if node.module == "colorkit" else [])
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def test_no_import_runs_up_a_layer_even_in_a_type_hint_or_to_the_package():
    """Stricter than tests/test_layers_imports.py: type hints count, and a module below the
    top may not import the ``colorkit`` package itself (whose ``__init__`` imports the layers)."""
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        own = rel.parts[0].removesuffix(".py")
        if own not in ORDER or own == "cli":
            continue
        for module in every_import(path):
            parts = module.split(".")
            if parts[0] != "colorkit":
                continue
            target = parts[1] if len(parts) > 1 else "__init__"
            if target == "__init__" or (target in ORDER and ORDER.index(target) > ORDER.index(own)):
                bad.append(f"colorkit/{rel} ({own}) imports {module}")
    assert not bad, "\n".join(bad)


def test_colorize_hands_its_inputs_to_apps_once():
    """``colorkit colorize`` parses its options and calls one function of apps, which tells
    clips, folders and photos apart: the command never loads a model or reads an input."""
    used = [m for m in every_import(ROOT / "cli" / "colorize.py") if m.startswith("colorkit.")]
    apps = [m for m in used if m.startswith("colorkit.apps")]
    assert apps == ["colorkit.apps.colorize"], apps
    assert not [m for m in used if m in {"colorkit.data.video", "colorkit.inference", "colorkit.apps.folder"}], used
