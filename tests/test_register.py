"""``colorkit.create(kind, name)`` / ``colorkit.list(kind)`` over any kind, and
``@colorkit.register(kind, name)``: a component defined in the running process (a script,
a notebook, a test) is created, listed, trained and benched like a package's, until
``colorkit.unregister`` removes it."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

import colorkit
from colorkit.cli import main
from colorkit.core import plugin_manager as plugins
from colorkit.testing import make_image_folder

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "colorkit-knn"


def _cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture
def knn_class(monkeypatch):
    """The example package's method class, imported from its source (not installed: no entry point)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import colorkit_knn

    yield colorkit_knn.KNNColorizer
    for mod in [m for m in sys.modules if m == "colorkit_knn" or m.startswith("colorkit_knn.")]:
        del sys.modules[mod]


@pytest.fixture
def mine(knn_class):
    colorkit.register("method", "ck-mine")(knn_class)
    yield "ck-mine"
    if "ck-mine" in colorkit.list("method"):
        colorkit.unregister("method", "ck-mine")


def test_create_and_list_take_any_kind():
    assert colorkit.list("method") == colorkit.list_methods() and "mdn" in colorkit.list("method")
    assert colorkit.list("method", "mdn*") == colorkit.list_methods("mdn*") == ["mdn", "mdn-skip"]
    assert colorkit.list("metric") == colorkit.list_metrics()
    m = colorkit.create("metric", "error_of_best")
    assert type(m) is type(colorkit.create_metric("error_of_best")) and m.registry_name == "error_of_best"
    with pytest.raises(colorkit.ColorkitError, match="unknown component kind 'methods'; expected one of"):
        colorkit.list("methods")


def test_a_registered_class_is_created_listed_and_removed(mine, knn_class, capsys):
    assert mine in colorkit.list("method") and mine in colorkit.list_methods()
    m = colorkit.create_method(mine, stats=None, preset="tiny", image_size=16)
    assert isinstance(m, knn_class) and m.registry_name == mine and m.config.bank_size == 64
    assert type(colorkit.create("method", mine, stats=None, preset="tiny")) is knn_class
    code, out, err = _cli(["plugins", "--kind", "method", "--json"], capsys)
    row = {c["name"]: c for c in json.loads(out)["components"]}[mine]
    assert code == 0 and row["distribution"] == "in-process" and row["plugin"] == "colorkit_knn"
    assert row["description"].startswith("k-nearest-neighbour")  # the docstring's first line
    colorkit.unregister("method", mine)
    assert mine not in colorkit.list("method")
    with pytest.raises(colorkit.ColorkitError, match="unknown method 'ck-mine'"):
        colorkit.create_method(mine)


def test_it_outlives_a_plugin_reload(mine):
    plugins.reload()
    assert mine in colorkit.list("method")


def test_a_taken_name_is_refused_and_a_packages_cannot_be_removed(mine, knn_class):
    with pytest.raises(colorkit.ColorkitError, match=r"duplicate method name 'mdn': registered by plugin 'paper'"):
        colorkit.register("method", "mdn")(knn_class)
    with pytest.raises(colorkit.ColorkitError, match="duplicate method name 'ck-mine'"):
        colorkit.register("method", mine, description="again")(knn_class)
    with pytest.raises(colorkit.ColorkitError, match=r"'mdn' was not registered in this process \(registered by"):
        colorkit.unregister("method", "mdn")
    assert "mdn" in colorkit.list("method")


def test_train_and_bench_a_registered_method_in_process(mine, tmp_path, capsys):
    folder = make_image_folder(tmp_path / "imgs", n=30, size=40, seed=3)
    out = tmp_path / "bench"
    code, stdout, err = _cli(["bench", "--methods", mine, "--dataset", str(folder), "--preset", "tiny", "--size", "32",
                              "--no-references", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    row = res["methods"][mine]
    assert math.isfinite(row["error_of_best"]) and row["variance"] > 0
    assert (out / "runs" / mine / "seed-0" / "model.safetensors").is_file()
