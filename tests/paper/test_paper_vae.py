"""VAE embedders (paper section 6.1; "ours+skip" section 7.3) and the SAME-padding conv."""

from __future__ import annotations

import pytest
import torch
from colorkit_paper.vae import VAE, VAESkip

from colorkit import ColorkitError
from colorkit.core.layers import SameConv2d


@pytest.mark.parametrize("kernel, stride, size, out", [(4, 1, 4, 4), (4, 1, 7, 7), (5, 2, 16, 8), (4, 2, 8, 4),
                                                      (5, 2, 5, 3), (5, 2, 1, 1), (3, 1, 6, 6)])
def test_same_conv_output_size(kernel, stride, size, out):
    conv = SameConv2d(2, 3, kernel, stride)
    assert conv(torch.zeros(1, 2, size, size)).shape == (1, 3, out, out)


def test_even_kernel_pads_one_before_two_after():
    conv = SameConv2d(1, 1, 4, 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # output(i) = input(i - 1): one zero row/column before
    x = torch.arange(16.0).view(1, 1, 4, 4) + 1
    y = conv(x)
    assert y[0, 0, 0].abs().sum() == 0 and y[0, 0, :, 0].abs().sum() == 0
    torch.testing.assert_close(y[0, 0, 1:, 1:], x[0, 0, :3, :3])


@pytest.mark.parametrize("cls", [VAE, VAESkip])
@pytest.mark.parametrize("size", [16, 32, 64])
def test_shapes_and_range(cls, size):
    vae = cls(preset="tiny", image_size=size).eval()
    ab = torch.rand(2, 2, size, size) - 0.5
    grey = torch.rand(2, 1, size, size)
    post = vae.encode(ab, grey)
    assert post.mu.shape == post.logvar.shape == (2, vae.latent_dim)
    out = vae.decode(post.mu, grey)
    assert out.shape == (2, 2, size, size)
    assert out.abs().max() <= 1.0  # tanh
    recon, _ = vae(ab, grey)
    torch.testing.assert_close(recon, out)  # eval: decodes the posterior mean


def test_paper_architecture():
    vae = VAE(preset="paper")
    enc = [m for m in vae.encoder.convs.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in enc] == [
        (5, 2, 128), (5, 2, 256), (5, 2, 512), (4, 2, 1024)]
    assert vae.encoder.fc.in_features == 1024 * 4 * 4 and vae.encoder.fc.out_features == 2 * 64
    dec = [m for m in vae.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in dec] == [
        (4, 1, 1024), (5, 1, 512), (5, 1, 256), (5, 1, 128), (5, 1, 2)]
    assert VAE(preset="small").config.widths == (32, 64, 128, 256)


def test_skip_decoder_uses_grey():
    vae = VAESkip(preset="tiny", image_size=16).eval()
    z = torch.randn(1, vae.latent_dim)
    a = vae.decode(z, torch.zeros(1, 1, 16, 16))
    b = vae.decode(z, torch.rand(1, 1, 16, 16))
    assert not torch.allclose(a, b)
    with pytest.raises(ColorkitError, match="grey"):
        vae.decode(z)


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="power of two"):
        VAE(preset="tiny", image_size=24)
    with pytest.raises(ColorkitError, match=r"\(B, 2, 16, 16\)"):
        VAE(preset="tiny", image_size=16).encode(torch.zeros(1, 2, 32, 32))


def test_backward_reaches_all_parameters():
    vae = VAESkip(preset="tiny", image_size=16)
    ab, grey = torch.rand(4, 2, 16, 16) - 0.5, torch.rand(4, 1, 16, 16)
    recon, post = vae(ab, grey)
    ((recon - ab).pow(2).sum() + post.kl().sum()).backward()
    assert all(p.grad is not None for p in vae.parameters())
