"""What a third-party package can get wrong, and what colorkit says: a method whose
``sample()`` gives the wrong shape (named with its distribution, from the CLI and the
library), a metric that declares no units (not scored, said so), a plugin that is installed
but fails to import (said so, with why, instead of "not installed"), a sampling mode that
gives the same colorizations as another (said once by the bench)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from PIL import Image
from test_plugins import make_dist

import colorkit
from colorkit.core import plugin_manager as plugins
from colorkit.core.registry import ColorkitError
from colorkit.testing import make_image_folder

SHAPES = '''
import torch
from torch import nn
from colorkit import ComponentConfig, Method, Metric, hookimpl


class Cfg(ComponentConfig):
    width: int = 2


class OneShort(Method):
    """Gives one colorization fewer than asked."""

    Config = Cfg
    PRESETS = {"paper": {}, "small": {}, "tiny": {}}

    def __init__(self, config=None, *, stats, **fields):
        super().__init__(config, stats=stats, **fields)
        self.head = nn.Conv2d(1, 2, 1)

    def stages(self):
        return []

    def sample(self, grey, k, *, mode=None, generator=None):
        ab = torch.tanh(self.head(grey))[:, None]
        return ab.expand(-1, max(k - 1, 1), -1, -1, -1).contiguous()


class Twin(OneShort):
    """Modes a and b give the same colorizations; c spreads them twice as far."""

    sample_modes = ("a", "b", "c")

    def sample(self, grey, k, *, mode=None, generator=None):
        mode = self.check_mode(mode)
        ab = torch.tanh(self.head(grey))[:, None].expand(-1, k, -1, -1, -1)
        return (ab + torch.linspace(-0.2, 0.2, k).view(1, k, 1, 1, 1) * (2 if mode == "c" else 1)).contiguous()


class Unitless(Metric):
    """Mean a channel of the colorizations (its units are not declared)."""

    higher_is_better = None

    def per_image(self, samples, target, grey):
        return samples[:, :, 0].flatten(1).mean(1)


@hookimpl
def register_methods(register):
    register("ck-one-short", OneShort)
    register("ck-twin", Twin)


@hookimpl
def register_metrics(register):
    register("ck_unitless", Unitless)
'''

BROKEN = '''
import ck_missing_dependency  # not installed: importing this plugin fails

from colorkit import hookimpl
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    make_dist(root, "ck-test-shapes", "ck_test_shapes", SHAPES)
    make_dist(root, "ck-test-broken", "ck_test_broken", BROKEN)
    sys.path.insert(0, str(root))
    plugins.reload()
    yield root
    sys.path.remove(str(root))
    for mod in [m for m in sys.modules if m.startswith("ck_test_")]:
        del sys.modules[mod]
    plugins.reload()


@pytest.fixture(scope="module")
def data(site, tmp_path_factory):
    from colorkit.core.stats import load_or_compute_stats
    from colorkit.data import prepare

    folder = make_image_folder(tmp_path_factory.mktemp("third-party") / "imgs", n=24, size=32, seed=5)
    ds = prepare(folder, size=32, split_seed=0, progress=False)
    return folder, ds, load_or_compute_stats(ds)


def _run(data, out, method):
    """A finished run directory of an untrained ``method`` (tiny preset)."""
    from test_untrusted import make_run

    return make_run(data, out, method)


def one_error_line(code, err, needle):
    """Exit status 2 and one error line naming ``needle``; the other lines are the warning
    about the plugin of this module that fails to import, on purpose."""
    errors = [ln for ln in err.splitlines() if not ln.startswith("colorkit: warning: plugin 'ck_test_broken'")]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("colorkit: error:") and needle in errors[0], err
    return errors[0]


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(p)
    return p


# ------------------------------------------------------------------ a wrong sample() shape
def test_a_wrong_sample_shape_is_one_line_naming_the_method_and_its_distribution(data, tmp_path, photo, capsys):
    run = _run(data, tmp_path / "run", "ck-one-short")
    out = tmp_path / "o"
    code, _, err = run_cli(["colorize", str(photo), "--run", str(run), "--k", "3", "--out", str(out)], capsys)
    one_error_line(code, err, "method 'ck-one-short' of plugin 'ck_test_shapes' (distribution 'ck-test-shapes')")
    assert "(1, 2, 2, 32, 32)" in err and "expected (1, 3, 2, 32, 32)" in err
    assert not out.exists() or not any(p.suffix == ".png" for p in out.rglob("*"))


def test_a_wrong_sample_shape_from_the_library(data, tmp_path, photo):
    model = colorkit.load(_run(data, tmp_path / "run", "ck-one-short"))
    with pytest.raises(ColorkitError, match=r"method 'ck-one-short' of plugin 'ck_test_shapes' \(distribution "
                                            r"'ck-test-shapes'\) gave samples of shape \(1, 2, 2, 32, 32\)"):
        model.colorize(photo, k=3)
    with pytest.raises(ColorkitError, match="ck-test-shapes"):
        model.sample(torch.rand(2, 1, 32, 32), k=4)
    assert model.sample(torch.rand(2, 1, 32, 32), k=1).shape == (2, 1, 2, 32, 32)  # k = 1 is what it gives


# ------------------------------------------------------------------ a metric without units
def test_a_metric_without_units_is_not_scored_and_says_why(data):
    from colorkit.eval.evaluate import build_metrics

    metrics, skipped = build_metrics(data[2])
    assert "ck_unitless" not in metrics and "error_of_best" in metrics
    assert skipped["ck_unitless"].startswith("declares no units")


def test_the_plugins_listing_says_units_not_declared(site, capsys):
    code, out, _ = run_cli(["plugins", "--kind", "metric"], capsys)
    assert code == 0
    (line,) = [ln for ln in out.splitlines() if "ck_unitless" in ln]
    assert "units not declared" in line
    assert not [ln for ln in out.splitlines() if "units not declared" in ln and "ck_unitless" not in ln]
    code, out, _ = run_cli(["plugins", "--kind", "metric", "--json"], capsys)
    (entry,) = [c for c in json.loads(out)["components"] if c["name"] == "ck_unitless"]
    assert "units not declared" in entry["description"]


# ------------------------------------------------------------------ a plugin that fails to import
def test_a_plugin_that_fails_to_import_is_not_called_not_installed(data, tmp_path, photo, capsys):
    run = _run(data, tmp_path / "run", "mdn")
    info = json.loads((run / "run.json").read_text())
    info["components"]["backbone:ck-fancy"] = {"plugin": "ck_test_broken", "distribution": "ck-test-broken",
                                               "version": "1.0"}
    (run / "run.json").write_text(json.dumps(info))
    code, _, err = run_cli(["colorize", str(photo), "--run", str(run), "--out", str(tmp_path / "o")], capsys)
    line = one_error_line(code, err, "plugin 'ck_test_broken' (distribution 'ck-test-broken'), which is installed "
                                     "but failed to import")
    assert "No module named 'ck_missing_dependency'" in line
    assert "not installed" not in line and "pip install" not in line
    with pytest.raises(ColorkitError, match="failed to import"):
        colorkit.load(run)


def test_a_component_checkpoint_of_a_plugin_that_fails_to_import_says_so(data, tmp_path):
    from colorkit.core.checkpoint import load_component

    run = _run(data, tmp_path / "run", "mdn")
    ckpt = tmp_path / "ckpt"
    shutil.copytree(run, ckpt)
    meta = json.loads((ckpt / "model.json").read_text())
    meta.update(name="ck-gone", **{"class": "ck_test_broken.Gone"})
    (ckpt / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ColorkitError, match=r"'ck-gone', which is not registered; it may come from plugin "
                                            r"'ck_test_broken' .* failed to import \(ModuleNotFoundError"):
        load_component(ckpt)


# ------------------------------------------------------------------ two modes, one result
def test_the_bench_says_a_mode_identical_to_another_once(data, tmp_path, capsys):
    folder = data[0]
    run = _run(data, tmp_path / "run", "ck-twin")
    out = tmp_path / "bench"
    code, _, err = run_cli(["bench", "--methods", "ck-twin", "--no-references", "--runs", str(run), "--dataset",
                            str(folder), "--size", "32", "--preset", "tiny", "--k", "3", "--out", str(out),
                            "--quiet"], capsys)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    assert res["methods"]["ck-twin[b]"]["same_as"] == "ck-twin" and "same_as" not in res["methods"]["ck-twin[c]"]
    md = (out / "results.md").read_text()
    assert "ck-twin[b]: same as ck-twin" in md
    assert "| ck-twin[b] |" not in md and "| ck-twin[c] |" in md  # no second row for the same colorizations
