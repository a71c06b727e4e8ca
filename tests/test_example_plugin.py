"""The plugin authors' path, end to end: the example package docs/examples/colorkit-knn is
installed for real (pip, into a temporary folder put on sys.path), found through its
``[project.entry-points.colorkit]`` line, benchmarked beside ``mdn`` through the CLI, and
passes the contract check and its own tests. Afterwards nothing of it stays loaded."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import colorkit
from colorkit.cli import main
from colorkit.core import plugin_manager as plugins
from colorkit.testing import check_component, make_image_folder

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "colorkit-knn"


def _forget_knn() -> None:
    for mod in [m for m in sys.modules if m == "colorkit_knn" or m.startswith("colorkit_knn.")]:
        del sys.modules[mod]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example installed with pip into its own folder (a copy is built, so the source
    tree gets no build/ or egg-info)."""
    root = tmp_path_factory.mktemp("knn-install")
    src, target = root / "src", root / "site"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "colorkit_knn" / "plugin.py").is_file()
    assert list(target.glob("colorkit_knn-0.1.0.dist-info/entry_points.txt"))
    return target


@pytest.fixture(scope="module")
def knn(site):
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        plugins.reload()
        yield site
    _forget_knn()
    plugins.reload()
    assert "knn" not in colorkit.list_methods()


def _cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_plugins_lists_knn_from_its_distribution(knn, capsys):
    code, out, err = _cli(["plugins", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    rows = {(c["kind"], c["name"]): c for c in data["components"]}
    row = rows[("method", "knn")]
    assert row["distribution"] == "colorkit-knn" and row["plugin"] == "knn"
    assert row["factory"] == "colorkit_knn.KNNColorizer" and row["description"]
    assert rows[("metric", "chroma_ratio")]["distribution"] == "colorkit-knn"
    assert {"name": "knn", "distribution": "colorkit-knn", "module": "colorkit_knn.plugin"} in data["plugins"]
    assert data["failures"] == []


def test_bench_mdn_and_knn(knn, tmp_path, capsys):
    folder = make_image_folder(tmp_path / "imgs", n=40, size=48, seed=5)
    out = tmp_path / "bench"
    code, stdout, err = _cli(["bench", "--methods", "mdn,knn", "--dataset", str(folder), "--preset", "tiny",
                              "--epochs", "1", "--size", "32", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    assert {"mdn", "knn", "knn[random-of-top]"} <= set(res["methods"])
    for name in ("mdn", "knn", "knn[random-of-top]"):
        row = res["methods"][name]
        assert math.isfinite(row["error_of_best"]) and 0 <= row["error_of_best"] <= row["mae_all"] + 1e-9
    assert res["methods"]["knn"]["variance"] > 0  # k different training images
    # the package's metric is scored for every row, with its units, without an interval
    assert res["units"]["chroma_ratio"] == "ratio (colorization chroma / true chroma)"
    assert res["metrics"]["chroma_ratio"]["interval"].startswith("none")
    assert all(math.isfinite(r["chroma_ratio"]) and r["chroma_ratio"] >= 0 for r in res["methods"].values())
    assert (out / "runs" / "knn" / "seed-0" / "model.safetensors").is_file()
    assert "| knn |" in (out / "results.md").read_text() and "| knn |" in stdout


def test_contract(knn, colorkit_tiny_stats, colorkit_tiny_dataset, tmp_path):
    check_component("knn", "method", stats=colorkit_tiny_stats, dataset=colorkit_tiny_dataset,
                    tmp_dir=tmp_path)


def test_the_packages_own_tests_pass(knn, tmp_path):
    """What a plugin author runs: pytest in the package folder, colorkit's fixtures
    arriving through colorkit's pytest11 entry point."""
    src = tmp_path / "colorkit-knn"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(knn), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=src, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
