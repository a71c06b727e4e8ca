"""mdn's decoder loss is built from registered decoder-loss names with weights keyed by name
(:class:`colorkit_paper.decoder_losses.WeightedDecoderLoss`): the paper's default is
computed exactly as eq. 4 was (one call of the fused/term loss, the same numbers), and a
decoder loss registered by anyone else trains the VAE."""

from __future__ import annotations

import pytest
import torch
from colorkit_paper import decoder_losses
from colorkit_paper.decoder_losses import WeightedDecoderLoss
from colorkit_paper.losses import PAPER_WEIGHTS, decoder_loss
from paper_helpers import synthetic_stats

from colorkit import ColorkitError, create_method
from colorkit.core import plugin_manager as plugins
from colorkit.core.registry import Entry

S = 16


@pytest.fixture(scope="module")
def stats16():
    return synthetic_stats(S, seed=2)


def _fields(seed=0, n=3):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 2, S, S, generator=g) * 1.6 - 0.8
    pred = (target + 0.3 * torch.randn(n, 2, S, S, generator=g)).requires_grad_(True)
    return pred, target


@pytest.mark.parametrize("impl", ["torch", "triton"])
def test_default_is_eq4_exactly(stats16, impl, monkeypatch):
    """The default ``decoder_loss`` of mdn gives the same loss and gradient, bit for bit,
    as the eq. 4 call mdn made before losses were looked up by name, in one call."""
    if impl == "triton":
        pytest.importorskip("triton")
        if not torch.cuda.is_available():
            monkeypatch.setenv("TRITON_INTERPRET", "1")
    m = create_method("mdn", stats=stats16, preset="tiny", image_size=S, use_cache=False, loss_impl=impl)
    assert m.config.decoder_loss == PAPER_WEIGHTS
    calls = []
    real = decoder_losses.decoder_loss
    monkeypatch.setattr(decoder_losses, "decoder_loss", lambda *a, **k: calls.append(k) or real(*a, **k))
    pred, target = _fields()
    new = m.decoder_loss(pred, target, stats16)
    (g_new,) = torch.autograd.grad(new.sum(), pred)
    old = decoder_loss(pred, target, stats16, weights=dict(PAPER_WEIGHTS), impl=impl)
    (g_old,) = torch.autograd.grad(old.sum(), pred)
    assert torch.equal(new, old) and torch.equal(g_new, g_old)
    assert calls == [{"weights": PAPER_WEIGHTS, "impl": impl}]  # the three terms in one pass


def test_names_weights_and_the_paper_entry(stats16):
    pred, target = _fields(1)
    with torch.no_grad():
        paper = WeightedDecoderLoss({"paper": 2.0}, impl="torch")(pred, target, stats16)
        parts = WeightedDecoderLoss({"hist": 2.0, "mah": 0.2, "grad": 2e-3}, impl="torch")(pred, target, stats16)
        torch.testing.assert_close(paper, parts)
        one = WeightedDecoderLoss({"l2": 1.0}, impl="torch")(pred, target, stats16)
        torch.testing.assert_close(one, (target - pred).pow(2).flatten(1).sum(1))


def test_option_takes_a_single_name(stats16):
    m = create_method("mdn", stats=stats16, preset="tiny", image_size=S, use_cache=False, decoder_loss="l2")
    assert m.config.decoder_loss == {"l2": 1.0}
    with pytest.raises(ColorkitError, match="unknown decoder loss 'nope'"):
        create_method("mdn", stats=stats16, preset="tiny", image_size=S, decoder_loss="nope")


def test_the_former_field_name_is_an_unknown_field(stats16):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="loss_weights"):
        create_method("mdn", stats=stats16, preset="tiny", image_size=S, use_cache=False,
                      loss_weights={"l2": 1.0, "grad": 0.5})


class Tv(torch.nn.Module):
    """Total variation of the error, a decoder loss from elsewhere."""

    calls = 0

    def forward(self, pred, target, stats):
        Tv.calls += 1
        d = target - pred
        return (d[..., 1:, :] - d[..., :-1, :]).abs().flatten(1).sum(1)


def test_a_third_party_loss_trains_the_vae(stats16, monkeypatch):
    reg = plugins.registry("decoder_loss")
    monkeypatch.setitem(reg.entries, "ck-tv", Entry("decoder_loss", "ck-tv", Tv, "test", "test-dist", "tv"))
    m = create_method("mdn", stats=stats16, preset="tiny", image_size=S, use_cache=False,
                      decoder_loss={"ck-tv": 1.0, "l2": 0.5})
    pred, target = _fields(2)
    out = m.decoder_loss(pred, target, stats16)
    d = target - pred
    expect = (d[..., 1:, :] - d[..., :-1, :]).abs().flatten(1).sum(1) + 0.5 * d.pow(2).flatten(1).sum(1)
    torch.testing.assert_close(out, expect)
    assert Tv.calls == 1
