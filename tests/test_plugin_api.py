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
