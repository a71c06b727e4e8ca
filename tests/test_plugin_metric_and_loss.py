"""A third-party package (an installed distribution the test writes, found through its
entry point) registers a metric and a decoder loss: ``colorkit train --method mdn --option
decoder_loss=<its loss>`` trains with it, ``colorkit bench`` scores the metric with its
units in results.json, .csv and .md; a second package whose ``register_commands`` raises
leaves ``colorkit bench`` working with one line naming it."""

from __future__ import annotations

import csv
import json
import sys

import pytest
from test_plugins import make_dist

from colorkit.cli import main
from colorkit.core import plugin_manager as plugins
from colorkit.testing import make_image_folder

PLUGIN = '''
import torch
from colorkit import DecoderLoss, Metric, hookimpl

CALLS = {"loss": 0}


class EdgeLoss(DecoderLoss):
    """Absolute error of horizontal differences, summed per image."""

    def forward(self, pred, target, stats):
        CALLS["loss"] += 1
        d = target - pred
        return (d[..., :, 1:] - d[..., :, :-1]).abs().flatten(1).sum(1)


class Spread(Metric):
    """Mean absolute deviation of the k colorizations from their mean."""

    units = "ab/128 (mean absolute deviation)"
    higher_is_better = True

    def per_image(self, samples, target, grey):
        return (samples - samples.mean(1, keepdim=True)).abs().flatten(1).mean(1)


@hookimpl
def register_decoder_losses(register):
    register("ck-edge", EdgeLoss)


@hookimpl
def register_metrics(register):
    register("ck_spread", Spread)
'''

BROKEN_COMMANDS = '''
from colorkit import hookimpl

@hookimpl
def register_commands(cli):
    raise RuntimeError("cannot add my command")
'''


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    make_dist(site, "ck-test-extras", "ck_test_extras", PLUGIN)
    make_dist(site, "ck-test-nocmd", "ck_test_nocmd", BROKEN_COMMANDS)
    monkeypatch.syspath_prepend(str(site))
    plugins.reload()
    from colorkit.cli import cli

    cli._plugins_added = False
    yield site
    cli._plugins_added = False
    for mod in [m for m in sys.modules if m.startswith("ck_test_")]:
        del sys.modules[mod]
    monkeypatch.undo()
    plugins.reload()


def _cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


TINY = ["--preset", "tiny", "--epochs", "1", "--size", "32", "--quiet"]


def test_train_with_a_plugin_decoder_loss(third_party, tmp_path, capsys):
    folder = make_image_folder(tmp_path / "imgs", n=30, size=40, seed=3)
    out = tmp_path / "run"
    code, _, err = _cli(["train", "--method", "mdn", "--dataset", str(folder), *TINY, "--out", str(out),
                         "--option", "decoder_loss=ck-edge", "--option", "use_cache=false"], capsys)
    assert code == 0, err
    assert sys.modules["ck_test_extras"].CALLS["loss"] > 0  # the VAE stage called it
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["method"]["options"]["decoder_loss"] == "ck-edge"
    assert info["config"]["data"]["size"] == 32 and info["config"]["stats"]["weighting"] == "rebalanced"
    vae = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if '"vae"' in x]
    assert vae and all(r["dec"] >= 0 for r in vae)


def test_bench_scores_a_plugin_metric_with_its_units(third_party, tmp_path, capsys):
    folder = make_image_folder(tmp_path / "imgs", n=30, size=40, seed=4)
    out = tmp_path / "bench"
    code, stdout, err = _cli(["bench", "--methods", "mdn", "--no-references", "--dataset", str(folder), *TINY,
                              "--out", str(out), "--option", "mdn:decoder_loss=ck-edge"], capsys)
    assert code == 0, err
    # the package whose register_commands raises is named on one line; bench still ran
    lines = [ln for ln in err.splitlines() if "ck_test_nocmd" in ln]
    assert len(lines) == 1 and "register_commands: RuntimeError: cannot add my command" in lines[0]
    res = json.loads((out / "results.json").read_text())
    units = "ab/128 (mean absolute deviation)"
    assert res["metrics"]["ck_spread"]["units"] == units and res["metrics"]["ck_spread"]["higher_is_better"] is True
    assert res["units"]["ck_spread"] == units
    assert res["methods"]["mdn"]["ck_spread"] >= 0
    assert res["config"]["options"] == {"mdn": {"decoder_loss": "ck-edge"}}
    run = json.loads((out / "runs" / "mdn" / "seed-0" / "run.json").read_text())
    assert run["options"] == {"decoder_loss": "ck-edge"}
    with open(out / "results.csv") as fh:
        header = next(csv.reader(fh))
    assert f"ck_spread [{units}]" in header
    md = (out / "results.md").read_text()
    assert "ck_spread" in md and f"ck_spread: {units}" in md


def test_help_works_with_a_broken_command_plugin(third_party, capsys):
    code, out, err = _cli(["--help"], capsys)
    assert code == 0 and "bench" in out
    assert sum("ck_test_nocmd" in ln for ln in err.splitlines()) == 1
