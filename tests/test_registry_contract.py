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


COMPONENT_KINDS = ("backbone", "embedder", "method", "decoder_loss")


@pytest.mark.parametrize("kind,name", [p for p in _params() if p.values[0] in COMPONENT_KINDS])
def test_save_and_load_round_trip(kind, name, colorkit_tiny_stats, tmp_path):
    """Every registered component saves with ``Component.save`` and comes back whole with
    ``Component.load`` of its kind's base class (the same class, config and tensors)."""
    import warnings

    import torch

    from colorkit.core.interfaces import Backbone, DecoderLoss, Embedder, Method
    from colorkit.core.plugin_manager import registry

    factory = registry(kind).get(name).factory
    fields = {"image_size": colorkit_tiny_stats.image_size} if "image_size" in factory.Config.model_fields else {}
    extra = {"stats": colorkit_tiny_stats} if kind == "method" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a timm model built without pretrained weights says so
        obj = registry(kind).create(name, preset="tiny", **fields, **extra)
        obj.save(tmp_path / "ck")
        base = {"backbone": Backbone, "embedder": Embedder, "method": Method, "decoder_loss": DecoderLoss}[kind]
        back = base.load(tmp_path / "ck")
    assert type(back) is type(obj) and back.config == obj.config and back.registry_name == name
    a, b = obj.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
