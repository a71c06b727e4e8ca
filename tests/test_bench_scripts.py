"""The benchmark scripts that compare two checkouts run the checkout they are given."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def under_load(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_under_load

    return bench_under_load


def test_under_load_runs_the_checkout_it_is_given(under_load, tmp_path, monkeypatch):
    other = tmp_path / "other"
    (other / "colorkit").mkdir(parents=True)
    (other / "colorkit" / "__init__.py").write_text("")
    monkeypatch.chdir(ROOT)  # a working folder that holds this checkout's colorkit, which python -m puts first
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(other), str(other / "plugins")]))
    found = under_load.which_colorkit(argparse.Namespace(checkout=other), env)
    assert Path(found) == (other / "colorkit").resolve()
    mine = under_load.which_colorkit(argparse.Namespace(checkout=None), dict(os.environ))
    assert Path(mine) == (ROOT / "colorkit").resolve()


def test_under_load_stops_when_the_checkout_is_not_what_runs(under_load, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit, match="not from the checkout"):
        under_load.which_colorkit(argparse.Namespace(checkout=empty), dict(os.environ))


FAKE_BENCH = """
import json, sys, time
from pathlib import Path
args = sys.argv[1:]
methods = args[args.index("--methods") + 1].split(",")
out = Path(args[args.index("--out") + 1])
rows = {}
for m in methods:
    t0 = time.perf_counter()
    time.sleep(1.2)
    rows[m] = {"train_seconds": time.perf_counter() - t0, "error_of_best": 0.1}
out.mkdir(parents=True)
(out / "results.json").write_text(json.dumps({"methods": rows, "threads": 2, "machine": {
    "thread_changes": [], "reference_steps_per_s": 5.0}}))
"""


def test_under_load_starts_the_competitor_mid_run_and_records_both_speeds(under_load, tmp_path):
    """The plumbing, with a stand-in bench of seconds and a 1-thread competitor."""
    fake = tmp_path / "fake_bench.py"
    fake.write_text(FAKE_BENCH)
    import sys

    m = under_load.main(["--force", "--no-csv", "--methods", "a,b", "--bench-command", f"{sys.executable} {fake}",
                         "--competitor-after", "0.5", "--competitor-alone", "1", "--competitor-threads", "1",
                         "--load-every", "0.2", "--baseline", str(ROOT)])
    assert set(m["quiet"]["train"]) == set(m["loaded"]["train"]) == set(m["baseline"]["train"]) == {"a", "b"}
    assert m["figures_identical_to_baseline"]
    assert m["quiet"]["competitor"] is None  # alone: no competitor
    comp = m["loaded"]["competitor"]
    assert 0.4 <= comp["started_at_s"] < 2.4 and comp["threads"] == 1  # started mid-run, not before
    assert m["competitor_alone"]["steps_per_s"] > 0 and m["competitor_alone"]["seconds"] >= 1
    assert m["figures_identical"] and m["loaded"]["thread_changes"] == []
    for run in ("quiet", "loaded"):
        load = m[run]["load"]
        assert load["max"] >= load["mean"] >= 0 and len({"start", "end", "mean", "max"} & set(load)) == 4
    late = under_load.main(["--force", "--no-csv", "--methods", "a", "--bench-command", f"{sys.executable} {fake}",
                            "--competitor-after", "60", "--competitor-alone", "0", "--load-every", "0.2"])
    assert late["loaded"]["competitor"] is None and late["competitor_alone"] is None  # the bench ended first


def test_ceiling_takes_the_runs_split_seed(tmp_path, monkeypatch):
    """ceiling.py (and compare_runs.py through it) read the split of a run's data section,
    whose field is ``split_seed``: the test split is the run's own."""
    from colorkit.data import prepare
    from colorkit.testing import make_image_folder

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import ceiling

    folder = make_image_folder(tmp_path / "imgs", n=20, size=24, seed=2)
    data = {"dataset": str(folder), "size": 16, "crop": False, "split_seed": 7, "test_size": 5,
            "cache_dir": str(tmp_path / "cache")}
    monkeypatch.setattr(ceiling, "read_run", lambda run_dir: {"config": {"data": data}})
    split, where = ceiling.run_test_split("run", None)
    want = prepare(str(folder), size=16, split_seed=7, test_size=5, cache_dir=tmp_path / "cache", progress=False)
    assert len(split) == 5 and list(split.indices) == list(want.test_idx) and "test split" in where


FAKE_LOAD = """
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--threads", type=int)
p.add_argument("--seconds", type=float)
p.add_argument("--report")
a = p.parse_args()
open(a.report, "w").write(json.dumps({"steps_per_s": a.threads * 100 + os.nice(0)}))
"""


def test_share_frontier_runs_each_side_at_its_threads_and_nice(tmp_path, monkeypatch):
    """Both sides start at once, each with its thread count, the 1-thread one under its nice level."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import share_frontier

    fake = tmp_path / "load.py"
    fake.write_text(FAKE_LOAD)
    monkeypatch.setattr(share_frontier, "LOAD", fake)
    base = os.nice(0)
    assert share_frontier.run([(2, 0), (1, 5)], 0.1) == [200 + base, 100 + min(base + 5, 19)]


def test_compare_runs_averages_each_group_of_runs_per_image(monkeypatch, capsys):
    """--per-group N averages the per-image errors of N consecutive runs (seeds of one
    configuration) before the intervals; a count that does not divide the runs is an error."""
    import types

    import torch

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import compare_runs

    target = torch.zeros(4, 2, 3, 3)
    offset = {"a0": 0.1, "a1": 0.3, "b0": 0.0, "b1": 0.2}  # every pixel off by this much

    class Split:
        def __len__(self):
            return 4

        def batch(self, idx):
            return {"grey": torch.zeros(4, 1, 3, 3), "ab": target}

    def fake_load(run, device):
        return types.SimpleNamespace(sample=lambda grey, k: torch.full((4, k, 2, 3, 3), offset[run]))

    monkeypatch.setattr(compare_runs, "load", fake_load)
    monkeypatch.setattr(compare_runs, "read_run", lambda run: {"dataset": {"hash": "h"}})
    monkeypatch.setattr(compare_runs, "run_test_split", lambda run, test: (Split(), "test split"))
    rows = compare_runs.main(["a0", "a1", "b0", "b1", "--per-group", "2"])
    assert [name for name, _ in rows] == ["a0 + a1", "b0 + b1"]
    assert [round(v, 6) for _, v in rows] == [0.2, 0.1]
    assert "-0.1000 [-0.1000, -0.1000]" in capsys.readouterr().out
    assert [round(v, 6) for _, v in compare_runs.main(["a0", "b0"])] == [0.1, 0.0]
    with pytest.raises(SystemExit, match="--per-group 3 must divide the number of runs"):
        compare_runs.main(["a0", "a1", "b0", "b1", "--per-group", "3"])


def test_synth_pair_runs_pairs_per_image(monkeypatch):
    """pair_runs.paired: means of both, the mean difference second - first and an interval
    that holds it; a constant shift has a zero-width interval."""
    import numpy as np

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks" / "synth_complex"))
    import pair_runs
    first = np.array([0.2, 0.4, 0.6, 0.8])
    out = pair_runs.paired(first, first + 0.1)
    assert out["first"] == 0.5 and out["second"] == 0.6 and out["difference"] == 0.1 and out["ci"] == [0.1, 0.1]
    noisy = pair_runs.paired(first, first[::-1])
    assert noisy["difference"] == 0.0 and noisy["ci"][0] < 0 < noisy["ci"][1]
