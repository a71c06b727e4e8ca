"""The package's folders are layers (docs/concepts.md, "Layout"): a module imports only from
its own layer and the layers below it. Imports under ``if TYPE_CHECKING:`` are type hints
and are not counted."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "colorkit"
ORDER = ["core", "data", "metrics", "builtin_components", "api", "train", "inference", "eval", "apps", "cli"]
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


# ------------------------------------------------------------------ the inference layer
INFERENCE = "colorkit.inference"


def every_import(path: Path, package: str = "") -> list[tuple[int, str, list[str]]]:
    """``(line, module, names)`` of every import in ``path``: at the top, inside functions and
    under ``if TYPE_CHECKING:`` alike (``import a.b`` gives ``("a.b", [])``); a relative
    import is resolved against ``package``, the dotted name of the file's own package."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".") if package else []
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out.append((node.lineno, module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
    return out


def private_inference_imports(path: Path, package: str = "") -> list[str]:
    """The imports in ``path`` of a private name (a leading underscore) of
    ``colorkit.inference``: a private module of it, or a private name from one of its modules."""
    bad = []
    for line, module, names in every_import(path, package):
        parts = module.split(".")
        if module != INFERENCE and not module.startswith(INFERENCE + "."):
            continue
        private = [p for p in parts[2:] if p.startswith("_")] + [n for n in names if n.startswith("_")]
        if private:
            bad.append(f"{path.name}:{line} {module} ({', '.join(private)})")
    return bad


def inference_imports(path: Path, package: str = "") -> list[str]:
    """Every import of ``colorkit.inference`` (or a module of it) in ``path``, wherever it
    stands, and every string naming such a module (e.g. for ``importlib.import_module``)."""
    bad = []
    for line, module, names in every_import(path, package):
        targets = [module] + ([f"{module}.{n}" for n in names] if module == "colorkit" else [])
        bad += [f"{path.name}:{line} {t}" for t in targets if t == INFERENCE or t.startswith(INFERENCE + ".")]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and (node.value == INFERENCE or node.value.startswith(INFERENCE + ".")):
            bad.append(f"{path.name}:{node.lineno} {node.value!r}")
    return bad


def _package_of(path: Path, top: Path) -> str:
    parts = list(path.relative_to(top).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] != "__init__" else parts[:-1])


def test_nothing_outside_the_inference_layer_imports_its_private_names():
    """``colorkit.inference``'s private names (modules or names with a leading underscore)
    are its own: no other module of colorkit, the bundled plugins, the benchmarks, the
    scripts or the tests imports one."""
    top = ROOT.parent
    bad = []
    for folder in ("colorkit", "plugins", "benchmarks", "scripts", "tests"):
        for path in sorted((top / folder).rglob("*.py")):
            if (ROOT / "inference") in path.parents or path == Path(__file__).resolve():
                continue
            bad += [f"{path.relative_to(top)}: {b}" for b in private_inference_imports(path, _package_of(path, top))]
    assert not bad, "private names of colorkit.inference imported from outside it:\n" + "\n".join(bad)


def test_data_and_core_never_import_the_inference_layer():
    """The layers below take plain tensors and images: no module of ``colorkit/data`` or
    ``colorkit/core`` imports ``colorkit.inference``, not even inside a function or for a
    type hint."""
    bad = []
    for layer in ("data", "core"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            bad += [f"colorkit/{path.relative_to(ROOT)}: {b}"
                    for b in inference_imports(path, _package_of(path, ROOT.parent))]
    assert not bad, "colorkit.inference imported below it:\n" + "\n".join(bad)


def test_the_inference_checks_see_private_and_deferred_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from typing import TYPE_CHECKING\n"
                 "from colorkit.inference.photo import _secret, check_k\n"
                 "import colorkit.inference._impl\n"
                 "from colorkit.inference.photo import check_k as _k\n"
                 "if TYPE_CHECKING:\n    from colorkit.inference.colorizer import Colorizer\n"
                 "def f():\n    from colorkit import inference\n    import importlib\n"
                 "    return importlib.import_module('colorkit.inference.clip')\n")
    assert private_inference_imports(f) == ["m.py:2 colorkit.inference.photo (_secret)",
                                            "m.py:3 colorkit.inference._impl (_impl)"]
    assert inference_imports(f) == ["m.py:2 colorkit.inference.photo", "m.py:3 colorkit.inference._impl",
                                    "m.py:4 colorkit.inference.photo", "m.py:6 colorkit.inference.colorizer",
                                    "m.py:8 colorkit.inference", "m.py:10 'colorkit.inference.clip'"]
    rel = tmp_path / "r.py"
    rel.write_text("from ..inference.output import _private\nfrom .imageio import open_image\n")
    assert private_inference_imports(rel, "colorkit.data") == ["r.py:1 colorkit.inference.output (_private)"]
    assert inference_imports(rel, "colorkit.data") == ["r.py:1 colorkit.inference.output"]
    clean = tmp_path / "c.py"
    clean.write_text("from colorkit.inference import load\nfrom colorkit.data.imageio import open_image\n")
    assert private_inference_imports(clean) == [] and inference_imports(clean) == ["c.py:1 colorkit.inference"]


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
    """E.g. the colour statistics never import checkpoint code: reading a method
    checkpoint's ``stats.safetensors`` is the checkpoint module's job."""
    cycle = find_cycle(core_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
    assert "colorkit.core.checkpoint" not in core_import_graph()["colorkit.core.stats"]


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# ------------------------------------------------------------------ import cycles
KNOWN_CYCLES: set[frozenset[str]] = set()
"""Cycles tolerated for now, each as the set of its modules."""


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(path: Path) -> list[str]:
    """Every dotted name ``path`` imports, as :func:`imports` but with ``from x import y``
    also giving ``x.y`` (a submodule, when ``y`` is one)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    out: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the colorkit modules it imports anywhere in its body (function-local imports
    included, ``if TYPE_CHECKING:`` blocks not). ``from colorkit.x import y`` is an import of
    the module ``colorkit.x.y`` when there is one, else of ``colorkit.x``."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for target in imported_names(path):
            if target.split(".")[0] != "colorkit":
                continue
            while target not in modules and "." in target:  # colorkit.x.Class -> colorkit.x
                target = target.rsplit(".", 1)[0]
            if target in modules and target not in (name, "colorkit"):
                deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_colorkit_modules():
    """No two colorkit modules import each other, directly or through others, anywhere in
    their bodies (a function-local import is still a cycle: the modules cannot be read,
    tested or replaced one without the other)."""
    graph = import_graph()
    bad = [c for c in cycles(graph) if frozenset(c) not in KNOWN_CYCLES]
    detail = []
    for comp in bad:
        members = set(comp)
        edges = [f"{a} -> {b}" for a in comp for b in sorted(graph[a] & members)]
        detail.append(", ".join(edges))
    assert not bad, "import cycles:\n" + "\n".join(detail)


def test_the_cycle_check_sees_a_function_local_cycle():
    graph = {"colorkit.a": {"colorkit.b"}, "colorkit.b": {"colorkit.c"}, "colorkit.c": {"colorkit.a"},
             "colorkit.d": {"colorkit.a"}}
    assert cycles(graph) == [["colorkit.a", "colorkit.b", "colorkit.c"]]
    assert cycles({"colorkit.a": {"colorkit.b"}, "colorkit.b": set()}) == []


# ------------------------------------------------------------------ one file-system module
RENAMES_LEFT = {
    # The colorize command still moves its staged outputs itself; it moves to the fs helpers
    # separately: remove this entry once it does.
    "colorkit/cli/colorize.py",
}


def test_every_rename_goes_through_the_fs_module():
    """Atomic writes, folder swaps and locks live in colorkit/core/fs.py only: no other module
    of colorkit or of the bundled plugins calls ``os.replace`` / ``os.rename`` or takes a
    ``flock`` itself."""
    top = ROOT.parent
    bad = []
    for path in sorted([*ROOT.rglob("*.py"), *(top / "plugins").rglob("*.py")]):
        rel = path.relative_to(top).as_posix()
        if rel == "colorkit/core/fs.py" or rel in RENAMES_LEFT:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if any(call in line for call in ("os.replace(", "os.rename(", "fcntl.flock(", ".rename(")):
                bad.append(f"{rel}:{n}: {line.strip()}")
    assert not bad, "write through colorkit.core.fs instead:\n" + "\n".join(bad)
