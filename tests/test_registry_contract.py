"""Registry-wide contract: every registered component, built-in or installed plugin, is
checked for forward, backward, sampling shapes and units, determinism and the save/load
round trip (timm's test_models.py habit). A new plugin is tested for free."""

from __future__ import annotations

import pytest

from colorkit.core.plugin_manager import all_entries, failures
from colorkit.testing import check_component


def _params():
    out = []
    for e in all_entries():
        name = e.name
        if name.endswith(":"):  # a family: test the example variant it names
            variant = getattr(e.factory, "example_variant", None)
            if variant is None:
                continue
            name = name + variant
        marks = (
            [pytest.mark.slow] if e.kind == "method" and isinstance(e.factory, type) and e.factory.slow_contract else []
        )
        out.append(pytest.param(e.kind, name, id=f"{e.kind}-{name}", marks=marks))
    return out


def test_no_plugin_failed_to_load():
    assert failures() == []


def test_every_kind_has_builtins():
    kinds = {e.kind for e in all_entries()}
    assert {"backbone", "embedder", "method", "decoder_loss", "metric", "dataset"} <= kinds


@pytest.mark.parametrize("kind,name", _params())
def test_contract(kind, name, colorkit_tiny_stats, colorkit_tiny_dataset, tmp_path):
    check_component(name, kind, stats=colorkit_tiny_stats, dataset=colorkit_tiny_dataset, tmp_dir=tmp_path)
