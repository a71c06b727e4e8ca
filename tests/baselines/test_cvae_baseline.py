"""cvae (paper section 6.3): architecture shapes, the z x grey-map product, training."""

from __future__ import annotations

import torch
from colorkit_baselines.cvae import CVAE

import colorkit


def test_grey_map_and_decoder_shapes_at_64(stats):
    m = CVAE(stats=stats, preset="tiny")
    grey, ab = torch.rand(2, 1, 64, 64), torch.rand(2, 2, 64, 64) * 2 - 1
    feats = m.grey_encoder(grey)
    d = m.config.latent_dim
    assert [tuple(f.shape[1:]) for f in feats] == [(4, 32, 32), (8, 16, 16), (8, 8, 8), (d, 4, 4)]
    post = m.colour_encoder(ab, grey)
    assert post.mu.shape == post.logvar.shape == (2, d)
    assert m.decode(torch.randn(2, d), feats).shape == (2, 2, 64, 64)


def test_paper_widths_in_config():
    c = CVAE.make_config(preset="paper")
    assert (c.latent_dim, c.grey_widths, c.colour_widths, c.decoder_widths) == (
        64, (128, 256, 512), (128, 256, 512, 1024), (1024, 512, 256, 128))
    small = CVAE.make_config(preset="small")
    assert small.grey_widths == (32, 64, 128) and small.kl_weight == 1e-2


def test_decoder_has_the_vae_bottleneck(stats):
    """As the paper's VAE decoder: C(4,1,1024) B at S/16 (4x4 for 64x64), size kept."""
    m = CVAE(stats=stats, preset="paper")
    conv = m.decoder.bottleneck[1]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (64, 1024, (4, 4), (1, 1))
    assert isinstance(m.decoder.bottleneck[-1], torch.nn.BatchNorm2d)
    with torch.no_grad():
        assert m.decoder.bottleneck.eval()(torch.randn(1, 64, 4, 4)).shape == (1, 1024, 4, 4)


def test_zero_code_gives_zero_decoder_input(stats):
    """z is replicated and multiplied with the grey map: z = 0 removes the grey map's values."""
    m = CVAE(stats=stats, preset="tiny", image_size=32).eval()
    seen = {}

    def keep_input(module, args):
        seen["h"] = args[0]

    m.decoder.register_forward_pre_hook(keep_input)
    with torch.no_grad():
        m.decode(torch.zeros(1, m.config.latent_dim), m.grey_encoder(torch.rand(1, 1, 32, 32)))
    assert seen["h"].shape == (1, m.config.latent_dim, 2, 2) and not bool(seen["h"].any())


def test_encoder_without_grey(stats, batch, make_ctx):
    m = CVAE(stats=stats, preset="tiny", image_size=32, encoder_sees_grey=False)
    assert m.colour_encoder.convs[0][0].in_channels == 2
    stage = m.stages()[0]
    assert bool(torch.isfinite(stage.step(batch, make_ctx(stage.make_optimizers()))["loss"]))


def test_training_reduces_the_loss(stats, make_batch, make_ctx):
    torch.manual_seed(0)
    m = colorkit.create_method("cvae", stats=stats, preset="tiny", image_size=32, lr=3e-3)
    stage = m.stages()[0]
    assert stage.name == "cvae" and set(stage.make_optimizers()) == {"vae"}
    ctx = make_ctx(stage.make_optimizers(), torch.Generator().manual_seed(0))
    batch = make_batch(16)
    m.train()
    losses = [float(stage.step(batch, ctx)["loss"]) for _ in range(40)]
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
