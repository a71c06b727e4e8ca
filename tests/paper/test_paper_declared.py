"""What the paper plugin declares for colorkit's core: the decoder-loss ablation's API on
``mdn``, the external ImageNet weights of ``effnet-lite0`` (under the method's ``backbone``),
and the machine's reference workload through the ``reference_embedder`` hook."""

from __future__ import annotations

import pytest
import torch

import colorkit
from colorkit.api import create_method

S = 16


def test_mdn_declares_what_the_decoder_loss_ablation_needs(stats16):
    m = create_method("mdn", stats=stats16, preset="tiny", image_size=S)
    assert m.decoder_loss_option == "decoder_loss" and m.decoder_loss_option in m.Config.model_fields
    assert [s.name for s in m.embedding_stages()] == ["vae"]  # no pretext, no MDN
    assert m.colour_embedder() is m.embedder
    assert m.external_weights() is None  # colornet: every tensor is in the checkpoint


def test_the_ablation_refuses_a_method_without_a_decoder_loss_option(tmp_path):
    from colorkit.eval.ablation import run_ablation

    with pytest.raises(colorkit.ColorkitError, match="declares no decoder loss option"):
        run_ablation(method="colornet", out=str(tmp_path), progress=False)


def test_effnet_weights_are_declared_external_under_the_methods_backbone(stats16):
    m = create_method("mdn", stats=stats16, preset="tiny", image_size=S, backbone="effnet-lite0")
    ext = m.external_weights()
    assert ext.keys == {f"backbone.{k}" for k in m.backbone.state_dict()}
    assert ext.digest() == ""  # not loaded from the package yet
    digest = ext.load()
    assert ext.digest() == digest == m.provenance()["backbone_weights_sha256"]


def test_the_reference_workload_is_the_small_vae():
    from colorkit_paper.vae import VAE

    from colorkit.eval.machine import _reference_vae

    torch.manual_seed(0)
    vae = _reference_vae()
    torch.manual_seed(0)
    same = VAE(preset="small", image_size=64)
    assert type(vae) is VAE and vae.config == same.config
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), same.state_dict().values()))
