"""pytest plugin (entry point ``pytest11``): fixtures for colorkit plugin authors.

* ``colorkit_tiny_dataset``: a prepared data set of 40 synthetic colour images at 32x32
  (session-scoped, in a temporary folder);
* ``colorkit_tiny_stats``: its colour statistics;
* ``colorkit_contract``: ``colorkit_contract(MyMethodOrName)`` runs the contract check.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def colorkit_tiny_dataset(tmp_path_factory):
    from colorkit.testing import make_image_folder, tiny_dataset

    root = tmp_path_factory.mktemp("colorkit-tiny")
    folder = make_image_folder(root / "images", n=40, size=48)
    return tiny_dataset(folder, size=32, cache_dir=root / "cache")


@pytest.fixture(scope="session")
def colorkit_tiny_stats(colorkit_tiny_dataset):
    from colorkit.testing import tiny_stats

    return tiny_stats(colorkit_tiny_dataset)


@pytest.fixture
def colorkit_contract(colorkit_tiny_stats, colorkit_tiny_dataset, tmp_path):
    from colorkit.testing import check_component

    def run(obj, kind=None, **kw):
        kw.setdefault("stats", colorkit_tiny_stats)
        kw.setdefault("tmp_dir", tmp_path)
        kw.setdefault("dataset", colorkit_tiny_dataset)
        return check_component(obj, kind, **kw)

    return run
