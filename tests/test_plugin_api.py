"""The shipped component plugins use only the plugin API docs/concepts.md names: the
top-level ``colorkit`` package, ``colorkit.testing``, ``colorkit.distributed`` and the
modules of ``colorkit.core``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ("colorkit", "colorkit.core", "colorkit.testing", "colorkit.distributed")


def outside_the_api(tree: ast.AST) -> list[str]:
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
            if node.module == "colorkit":  # from colorkit import x: x must be a top-level name
                import colorkit

                bad += [f"colorkit.{a.name}" for a in node.names if a.name not in colorkit.__all__
                        and a.name not in ("testing", "distributed")]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        bad += [n for n in names if (n == "colorkit" or n.startswith("colorkit.")) and n not in PUBLIC
                and not n.startswith(("colorkit.core.", "colorkit.testing."))]
    return bad


def test_the_check_finds_a_private_folder():
    src = "from colorkit.data.prepare import x\nfrom colorkit.core.layers import C\nfrom colorkit import nope\n"
    assert outside_the_api(ast.parse(src)) == ["colorkit.data.prepare", "colorkit.nope"]


@pytest.mark.parametrize("plugin", ["colorkit_paper", "colorkit_baselines", "colorkit_references"])
def test_shipped_plugins_use_the_plugin_api_only(plugin):
    bad = [f"{p.relative_to(ROOT)}: {m}" for p in sorted((ROOT / "plugins" / plugin).rglob("*.py"))
           for m in outside_the_api(ast.parse(p.read_text()))]
    assert not bad, "outside the plugin API (docs/concepts.md):\n" + "\n".join(bad)


def plugin_import_graph(package: Path) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports}`` (relative and absolute imports,
    those inside functions too: a deferred import that closes a circle is still a circle)."""
    names = {p.stem for p in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in sorted(package.glob("*.py")):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level == 1 or mod.startswith(package.name + ".") or mod == package.name:
                    mod = mod.removeprefix(package.name).lstrip(".")
                    deps |= {mod.split(".")[0]} if mod else {a.name for a in node.names}
        graph[path.stem] = (deps & names) - {path.stem}
    return graph


def test_the_cycle_check_sees_a_deferred_import(tmp_path):
    from test_layers_imports import find_cycle

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    assert find_cycle(plugin_import_graph(pkg)) == ["a", "b", "a"]


@pytest.mark.parametrize("plugin", ["colorkit_paper", "colorkit_baselines", "colorkit_references", "colorkit_synth"])
def test_plugin_modules_import_each_other_without_cycles(plugin):
    from test_layers_imports import find_cycle

    assert find_cycle(plugin_import_graph(ROOT / "plugins" / plugin)) is None
