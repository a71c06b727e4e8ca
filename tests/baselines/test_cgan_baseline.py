"""cgan (pix2pix, paper section 5): dropout noise at test time, both optimizers, shapes."""

from __future__ import annotations

import torch
from colorkit_baselines.pix2pix import PatchDiscriminator, UNetGenerator

import colorkit


def _cgan(stats, **fields):
    return colorkit.create_method("cgan", stats=stats, preset="tiny", image_size=32, **fields)


def test_dropout_is_the_noise_and_stays_on_in_eval(stats, batch):
    m = _cgan(stats).eval()
    grey = batch["grey"][:2]
    with torch.no_grad():
        a, b = m(grey), m(grey)
        assert not torch.allclose(a, b), "two calls with dropout on differ"
        g1, g2 = (m(grey, torch.Generator().manual_seed(0)) for _ in range(2))
        assert torch.equal(g1, g2), "the same generator gives the same masks"
        m.G.dropout_at_test = False
        assert torch.equal(m(grey), m(grey)), "dropout off: deterministic"
    off = _cgan(stats, dropout_at_test=False).eval()
    with torch.no_grad():
        assert torch.equal(off(grey), off(grey))
        centres = off.sample(grey, 3, generator=torch.Generator().manual_seed(0))
    # Without noise every draw is the same colorization, so are the centres.
    torch.testing.assert_close(centres[:, 0], centres[:, 2])


def test_dropout_masks_do_not_touch_the_global_rng(stats, batch):
    m = _cgan(stats)
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    m.sample(batch["grey"][:1], 2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(3), before)


def test_step_updates_both_networks(stats, batch, make_ctx):
    m = _cgan(stats)
    stage = m.stages()[0]
    assert stage.name == "cgan" and set(stage.modules) == {"G", "D"}
    opts = stage.make_optimizers()
    assert set(opts) == {"G", "D"}
    assert opts["G"].defaults["lr"] == 2e-4 and opts["G"].defaults["betas"] == (0.5, 0.999)
    before = {k: v.detach().clone() for k, v in m.state_dict().items() if v.is_floating_point()}
    m.train()
    calls = []
    ctx = make_ctx(opts, torch.Generator().manual_seed(0))
    inner = ctx.optimize
    ctx.optimize = lambda name, loss: (calls.append(name), inner(name, loss))
    logs = stage.step(batch, ctx)
    assert calls == ["D", "G"], "pix2pix order: discriminator first"
    assert set(logs) == {"loss", "d_loss", "g_gan", "l1"} and all(bool(torch.isfinite(v)) for v in logs.values())
    after = m.state_dict()
    for net in ("G", "D"):
        changed = [k for k in before if k.startswith(net + ".") and not torch.equal(before[k], after[k])]
        assert changed, f"{net} parameters did not change"
    assert all(p.requires_grad for p in m.D.parameters()), "D trainable again after G's step"


def test_lsgan_option(stats, batch, make_ctx):
    m = _cgan(stats, gan_loss="lsgan")
    stage = m.stages()[0]
    logs = stage.step(batch, make_ctx(stage.make_optimizers()))
    assert bool(torch.isfinite(logs["loss"]))


def test_network_shapes_at_64():
    g = UNetGenerator(64, width=4)
    assert len(g.down) == 6  # C64-C128-C256-C512-C512-C512 at pix2pix widths
    assert g(torch.rand(2, 1, 64, 64)).shape == (2, 2, 64, 64)
    d = PatchDiscriminator(width=4)
    assert d(torch.rand(2, 1, 64, 64), torch.rand(2, 2, 64, 64)).shape == (2, 1, 6, 6)
    widths = [m.out_channels for m in UNetGenerator(64, width=64).modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 512, 512]
