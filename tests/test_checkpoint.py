"""Checkpoints: round trip, refusal of non-safetensors, mismatch messages, crash safety."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

import colorkit
from colorkit.core import checkpoint as ck
from colorkit.core import plugin_manager as plugins
from colorkit.core.interfaces import Component, ComponentConfig
from colorkit.core.registry import ColorkitError


class TinyConfig(ComponentConfig):
    width: int = 4


class Tiny(Component):
    kind = "backbone"
    Config = TinyConfig
    PRESETS = {"paper": {"width": 8}, "small": {"width": 4}, "tiny": {"width": 2}}

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        self.lin = nn.Linear(3, self.config.width)
        self.bn = nn.BatchNorm1d(self.config.width)


@pytest.fixture
def registered():
    colorkit.register("backbone", "ck-tiny")(Tiny)
    yield
    colorkit.unregister("backbone", "ck-tiny")


def make(**kw):
    return plugins.registry("backbone").create("ck-tiny", **kw)


def test_round_trip(tmp_path, registered):
    m = make(preset="paper")
    torch.nn.init.normal_(m.lin.weight)
    ck.save_component(m, tmp_path / "c")
    meta = json.loads((tmp_path / "c" / "model.json").read_text())
    assert meta["kind"] == "backbone" and meta["name"] == "ck-tiny" and meta["config"]["width"] == 8
    m2 = ck.load_component(tmp_path / "c", kind="backbone", name="ck-tiny")
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])


def test_wrong_kind_name_and_shapes(tmp_path, registered):
    ck.save_component(make(preset="paper"), tmp_path / "c")
    with pytest.raises(ColorkitError, match="holds a 'backbone', expected a 'embedder'"):
        ck.load_component(tmp_path / "c", kind="embedder")
    with pytest.raises(ColorkitError, match="holds 'ck-tiny', expected 'other'"):
        ck.load_component(tmp_path / "c", name="other")
    meta = json.loads((tmp_path / "c" / "model.json").read_text())
    meta["config"]["width"] = 5
    (tmp_path / "c" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ColorkitError, match=r"shape mismatch in 6 .*bn.bias: saved \[8\], model \[5\]"):
        ck.load_component(tmp_path / "c")


def test_version_and_format_checked(tmp_path, registered):
    ck.save_component(make(), tmp_path / "c")
    meta = json.loads((tmp_path / "c" / "model.json").read_text())
    meta["colorkit_version"] = "9.0.0"
    (tmp_path / "c" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ColorkitError, match="major versions differ"):
        ck.load_component(tmp_path / "c")


def test_refuses_pickle_and_garbage(tmp_path, registered):
    torch.save({"a": torch.zeros(1)}, tmp_path / "w.pt")
    with pytest.raises(ColorkitError, match="only safetensors"):
        ck.load_tensors(tmp_path / "w.pt")
    ck.save_component(make(), tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ColorkitError, match="not a valid safetensors file"):
        ck.load_component(tmp_path / "c")


def test_crash_during_save_keeps_previous(tmp_path, registered, monkeypatch):
    m = make()
    with torch.no_grad():
        m.lin.weight.fill_(1.0)
    ck.save_component(m, tmp_path / "c")
    with torch.no_grad():
        m.lin.weight.fill_(2.0)

    def crash(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ck, "save_tensors", crash)
    with pytest.raises(OSError, match="simulated"):
        ck.save_component(m, tmp_path / "c")
    monkeypatch.undo()
    assert not list(tmp_path.glob("c.tmp-*"))  # no debris
    back = ck.load_component(tmp_path / "c")
    assert torch.all(back.lin.weight == 1.0)


def test_crash_between_renames_recovers_old(tmp_path, registered, monkeypatch):
    m = make()
    with torch.no_grad():
        m.lin.weight.fill_(1.0)
    ck.save_component(m, tmp_path / "c")
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append((src, dst))
        if str(dst) == str(tmp_path / "c"):  # the old dir was moved aside; the new one never arrives
            raise KeyboardInterrupt("killed (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        ck.save_component(m, tmp_path / "c")
    monkeypatch.undo()
    assert not (tmp_path / "c").exists() and (tmp_path / "c.old").is_dir()
    back = ck.load_component(tmp_path / "c")  # recovered from c.old
    assert torch.all(back.lin.weight == 1.0)


def test_a_directly_built_component_knows_its_name_and_round_trips(tmp_path, registered):
    """Built from its class, not through the registry: it still knows its registered name,
    saves it, and the checkpoint rebuilds through the registry under it."""
    m = Tiny(preset="paper")
    assert m.registry_name == "ck-tiny"
    ck.save_component(m, tmp_path / "c")
    assert json.loads((tmp_path / "c" / "model.json").read_text())["name"] == "ck-tiny"
    back = ck.load_component(tmp_path / "c", kind="backbone", name="ck-tiny")
    assert back.registry_name == "ck-tiny" and torch.equal(back.lin.weight, m.lin.weight)


def test_an_unregistered_class_has_no_name():
    class Unregistered(Tiny):
        pass

    assert Unregistered().registry_name == ""
