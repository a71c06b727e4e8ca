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
