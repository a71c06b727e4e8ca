"""The public API: a downstream package prepares data, trains, benches and colorizes with
names from the top-level ``colorkit`` package only, and every ``colorkit.<name>`` the docs
use exists."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import colorkit

ROOT = Path(__file__).resolve().parents[1]

DOWNSTREAM = '''
"""A downstream package: only top-level colorkit names."""
import json
from pathlib import Path

import colorkit


def main(images, work):
    work = Path(work)
    cache = work / "cache"
    ds = colorkit.prepare(images, size=32, test_size=8, cache_dir=cache, progress=False)
    stats = colorkit.color_stats(ds)
    grey, ab = colorkit.to_model_space(ds.split("test").batch([0, 1])["grey"].repeat(1, 3, 1, 1))
    assert grey.shape == (2, 1, 32, 32) and ab.shape == (2, 2, 32, 32)
    assert "cgan" in colorkit.list_methods() and "cgan" in colorkit.registry(KIND).names()
    data = colorkit.DataConfig(dataset=str(images), size=32, test_size=8, cache_dir=str(cache))
    run = colorkit.train("cgan", data=data, preset="tiny", epochs=1, out=work / "run", progress=False, device="cpu")
    results = colorkit.bench("cgan", data=data, preset="tiny", runs=[str(run)], out=str(work / "bench"),
                             progress=False, references=False, device="cpu")
    colorizer = colorkit.load(run, device="cpu")
    photos = colorizer.colorize(Path(images) / "img_000.jpg", k=2)
    g, a = colorkit.to_model_space(photos[0])
    rgb = colorkit.from_model_space(g, a)
    print(json.dumps({"k": len(photos), "size": list(photos[0].size), "rgb": list(rgb.shape),
                      "methods": sorted(results["methods"]), "stats": type(stats).__name__}))

'''


def _top_level_only(tree: ast.AST) -> list[str]:
    """Imports of colorkit submodules, and attributes of ``colorkit`` that are not public names."""
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("colorkit."):
            bad.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.startswith("colorkit.")]
        elif isinstance(node, ast.ImportFrom) and node.module == "colorkit":
            bad += [a.name for a in node.names if a.name not in colorkit.__all__]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "colorkit":
            if node.attr not in colorkit.__all__:
                bad.append(f"colorkit.{node.attr}")
    return bad


def test_a_downstream_package_needs_only_top_level_names(tmp_path):
    pkg = tmp_path / "pkg" / "downstream"
    pkg.mkdir(parents=True)
    src = DOWNSTREAM.replace("KIND", repr("method"))
    (pkg / "__init__.py").write_text(src)
    assert _top_level_only(ast.parse(src)) == []
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(36):  # smooth colourful images made here, not by colorkit's own helpers
        base = rng.uniform(0.1, 0.9, 3)
        ramp = np.linspace(0, 1, 40)[None, :, None] * rng.uniform(-0.4, 0.4, 3)
        arr = (np.clip(base + ramp + np.zeros((40, 40, 3)), 0, 1) * 255).astype(np.uint8)
        Image.fromarray(arr).save(images / f"img_{i:03d}.jpg")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "pkg"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", "import sys, downstream; downstream.main(*sys.argv[1:])", str(images),
                        str(tmp_path / "work")], env=env,
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"k": 2, "size": [40, 40], "rgb": [1, 3, 40, 40], "methods": ["cgan", "cgan[samples]"],
                   "stats": "ColorStats"}, out


def test_the_check_sees_a_deep_import():
    tree = ast.parse("import colorkit\nfrom colorkit.train.runs import train\nx = colorkit.eval\n"
                     "from colorkit import prepare, nothing_here\n")
    assert _top_level_only(tree) == ["from colorkit.train.runs import ...", "nothing_here", "colorkit.eval"]


def test_model_space_round_trip_and_errors():
    rgb = torch.rand(2, 3, 8, 8)
    grey, ab = colorkit.to_model_space(rgb)
    assert torch.allclose(colorkit.from_model_space(grey, ab), rgb, atol=1e-3)
    g2, a2 = colorkit.to_model_space((rgb[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    assert g2.shape == (1, 1, 8, 8) and torch.allclose(g2[0], grey[0], atol=0.01)
    with pytest.raises(colorkit.ColorkitError, match="expected a float tensor"):
        colorkit.to_model_space(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_colorkit_name_in_the_docs_exists():
    """``colorkit.X`` and ``from colorkit import X`` in the docs' code name real top-level attributes."""
    missing = []
    for path in DOC_FILES:
        for block in re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S):
            for m in re.finditer(r"(?<![\w.])colorkit\.([A-Za-z_]\w*)", block):
                if not hasattr(colorkit, m.group(1)) and m.group(1) not in {"core", "data", "train", "eval", "apps",
                                                                            "cli", "metrics", "testing", "api"}:
                    missing.append(f"{path.name}: colorkit.{m.group(1)}")
            for m in re.finditer(r"from colorkit import ([^\n]+)", block):
                names = [n.strip(" ()") for n in m.group(1).split("#")[0].split(",")]
                missing += [f"{path.name}: from colorkit import {n}" for n in names if n and not hasattr(colorkit, n)]
    assert not missing, missing


def test_the_quickstart_uses_only_top_level_names():
    text = (ROOT / "docs" / "quickstart.md").read_text()
    bad = []
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        bad += _top_level_only(ast.parse(textwrap.dedent(block)))
    assert not bad, bad
