"""No module reaches into another module's private names: what one module needs from another
is public there (no leading underscore). Checked over colorkit, the bundled plugins, the
benchmarks and the scripts: ``from X import _y`` and ``X._y`` on an imported module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("colorkit", "plugins", "benchmarks", "scripts")
LEFT: set[str] = set()
"""Uses not made public yet because their modules are being rewritten elsewhere; each must
still exist (then remove it here once it is public)."""


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_file(dotted: str, here: Path) -> Path | None:
    """The file of the project module ``dotted`` (colorkit's, a bundled plugin's, or one beside
    ``here`` as the benchmarks and scripts import each other), or None (another package's)."""
    rel = Path(*dotted.split("."))
    for base in (ROOT, ROOT / "plugins", here.parent):
        for cand in (base / rel.with_suffix(".py"), base / rel / "__init__.py"):
            if cand.is_file():
                return cand
    return None


def _absolute(node: ast.ImportFrom, here: Path) -> str:
    """The dotted module a ``from`` import reads, with a relative one made absolute."""
    if not node.level:
        return node.module or ""
    parts = list(here.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "plugins":
        parts = parts[1:]
    parts = parts[:len(parts) - node.level]
    return ".".join([*parts, *([node.module] if node.module else [])])


def private_uses(tree: ast.AST, here: Path) -> list[str]:
    """``from X import _y`` where ``X`` is a project module, and ``m._y`` where ``m`` names a
    project module (``import X``, ``import X as m``, ``from P import m``) in ``tree``."""
    modules: set[str] = set()
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names if _module_file(a.name, here)}
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, here)
            if not _module_file(source, here):
                continue
            bad += [f"from {source} import {a.name}" for a in node.names if _private(a.name)]
            modules |= {a.asname or a.name for a in node.names if _module_file(f"{source}.{a.name}", here)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):  # colorkit.core.fs._x: the root names the module
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules:
                bad.append(ast.unparse(node))
    return bad


def test_the_scan_finds_both_forms():
    here = ROOT / "colorkit" / "train" / "x.py"
    src = ("import colorkit.core.fs as fs\nfrom colorkit.core.threads import _cpu, __version__\n"
           "from colorkit.core import hints\nfrom colorkit.core.hints import Hint\nfrom torch._utils import _flat\n"
           "from . import runs\nfrom ..core.color import _lab\nimport numpy as np\n"
           "fs._g()\nhints._h\nHint._i\nnp._j\nruns._k\nfs.__doc__\nx._m\n")
    assert sorted(private_uses(ast.parse(src), here)) == ["from colorkit.core.color import _lab",
                                                          "from colorkit.core.threads import _cpu", "fs._g",
                                                          "hints._h", "runs._k"]


def test_no_module_imports_a_private_name_of_another():
    bad = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if any(p.startswith(".") or p == "build" for p in path.relative_to(ROOT).parts):
                continue
            bad += [f"{path.relative_to(ROOT)}: {use}" for use in private_uses(ast.parse(path.read_text()), path)]
    assert LEFT <= set(bad), f"no longer used privately, remove from LEFT: {sorted(LEFT - set(bad))}"
    bad = [b for b in bad if b not in LEFT]
    assert not bad, "make these public in their own module:\n" + "\n".join(bad)

