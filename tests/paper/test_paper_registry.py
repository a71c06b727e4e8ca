"""Every component this plugin registers: built from ``preset="tiny"``, forward/backward,
and a checkpoint round trip through the registry (what the registry-wide contract needs)."""

from __future__ import annotations

import warnings

import pytest
import torch

from colorkit import api
from colorkit.core.checkpoint import load_method_checkpoint, save_component
from colorkit.core.plugin_manager import all_entries

S = 16
OURS = [e for e in all_entries() if e.plugin == "paper"]


def _build(entry, stats):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm: random-init warning
        if entry.kind == "method":
            return api.create_method(entry.name, stats=stats, preset="tiny", image_size=S)
        fields = entry.factory.Config.model_fields
        kw = {"image_size": S} if "image_size" in fields else {}
        return getattr(api, f"create_{entry.kind}")(entry.name, preset="tiny", **kw)


def _exercise(obj, kind, stats):
    g = torch.Generator().manual_seed(0)
    grey = torch.rand(2, 1, S, S, generator=g)
    ab = torch.rand(2, 2, S, S, generator=g) - 0.5
    if kind == "backbone":
        out = obj(grey)
        assert out.shape[:2] == (2, obj.out_channels) and out.shape[-1] == S // obj.reduction
        return out.sum(), out
    if kind == "embedder":
        recon, post = obj(ab, grey)
        return recon.sum() + post.kl().sum(), obj.eval().decode(post.mu, grey)
    if kind == "decoder_loss":
        pred = torch.zeros_like(ab, requires_grad=True)
        loss = obj(pred, ab, stats)
        assert loss.shape == (2,)
        return loss.sum(), loss
    if kind == "method":
        return None, obj.sample(grey, 3)
    raise AssertionError(kind)


def test_plugin_registers_everything():
    names = {(e.kind, e.name) for e in OURS}
    assert names == {("embedder", "vae"), ("embedder", "vae-skip"), ("backbone", "colornet"), ("backbone", "timm:"),
                     ("backbone", "effnet-lite0"),
                     ("method", "mdn"), ("method", "mdn-skip"),
                     ("method", "colornet")} | {
        ("decoder_loss", n) for n in ("l2", "hist", "mah", "grad", "paper")}
    assert all(e.description for e in OURS)


@pytest.mark.parametrize("entry", OURS, ids=lambda e: f"{e.kind}:{e.name}")
def test_build_forward_backward_round_trip(entry, stats16, tmp_path):
    obj = _build(entry, stats16)
    loss, out = _exercise(obj, entry.kind, stats16)
    if loss is not None and loss.requires_grad:
        loss.backward()
    save_component(obj, tmp_path / "ckpt", stats=stats16 if entry.kind == "method" else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = load_method_checkpoint(tmp_path / "ckpt", kind=entry.kind, name=entry.name)
    assert type(back) is type(obj) and back.config == obj.config
    obj.eval()
    back.eval()
    _, again = _exercise(back, entry.kind, stats16)
    _, ref = _exercise(obj, entry.kind, stats16)
    torch.testing.assert_close(again, ref)
