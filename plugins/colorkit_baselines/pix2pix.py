"""pix2pix networks (Isola et al., CVPR 2017) sized for small colour fields: the cGAN
baseline of Deshpande et al. (CVPR 2017), section 5.

* :class:`UNetGenerator`: grey (B,1,S,S) -> ab (B,2,S,S). Encoder of log2(S) blocks
  C64-C128-C256-C512-C512-C512 (S = 64), 4x4 convolutions of stride 2, LeakyReLU(0.2) before
  every block but the first, BatchNorm on all but the first and the innermost (pix2pix
  leaves BatchNorm out of its 1x1 bottleneck). Decoder mirrors it with skips (U-Net
  concatenation): ReLU, 4x4 transposed convolution of stride 2, BatchNorm, and dropout 0.5
  on the first 3 decoder blocks; the last block outputs 2 channels through tanh.
* :func:`dropout`: masks drawn from an explicit ``torch.Generator``. Dropout is the model's
  only noise, so it stays on at test time (``dropout_at_test``), also in eval mode.
* :class:`PatchDiscriminator`: 70x70 PatchGAN on concat(grey, ab) (B,3,S,S):
  C64 (no BN) - C128 - C256 with stride 2, C512 with stride 1, then a 1-channel conv:
  a 6x6 map of logits for S = 64.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from colorkit.core.interfaces import noise


def dropout(x: Tensor, p: float, active: bool, generator: torch.Generator | None = None) -> Tensor:
    """Inverted dropout whose mask comes from ``generator`` (torch's global one if None)."""
    if not active or p == 0.0:
        return x
    keep = noise("uniform", tuple(x.shape), generator, x) >= p
    return x * keep / (1.0 - p)


def _widths(depth: int, width: int) -> list[int]:
    return [width * min(2**i, 8) for i in range(depth)]  # 64, 128, 256, 512, 512, ...


class UNetGenerator(nn.Module):
    """pix2pix U-Net for images of side ``image_size`` (a power of two, >= 8)."""

    def __init__(self, image_size: int, width: int = 64, p: float = 0.5, dropout_blocks: int = 3,
                 dropout_at_test: bool = True) -> None:
        super().__init__()
        depth = image_size.bit_length() - 1
        if image_size != 2**depth or depth < 3:
            raise ValueError(f"the pix2pix U-Net needs a power-of-two image_size >= 8; got {image_size}")
        w = _widths(depth, width)
        self.p, self.dropout_blocks, self.dropout_at_test = p, dropout_blocks, dropout_at_test
        down: list[nn.Module] = [nn.Conv2d(1, w[0], 4, 2, 1)]  # (B, w0, S/2, S/2)
        for i in range(1, depth):
            inner = i == depth - 1
            down.append(nn.Sequential(
                nn.LeakyReLU(0.2),
                nn.Conv2d(w[i - 1], w[i], 4, 2, 1, bias=inner),
                nn.Identity() if inner else nn.BatchNorm2d(w[i]),
            ))  # (B, w_i, S/2^(i+1), ...)
        up: list[nn.Module] = []
        for i in range(depth):  # innermost first
            j = depth - 1 - i  # encoder level this block mirrors
            cin = w[j] if i == 0 else 2 * w[j]
            last = j == 0
            up.append(nn.Sequential(
                nn.ReLU(),
                nn.ConvTranspose2d(cin, 2 if last else w[j - 1], 4, 2, 1, bias=last),
                nn.Identity() if last else nn.BatchNorm2d(w[j - 1]),
            ))
        self.down, self.up = nn.ModuleList(down), nn.ModuleList(up)

    def forward(self, grey: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """grey (B,1,S,S) in [0,1] -> ab (B,2,S,S) in [-1,1]; dropout noise from ``generator``."""
        feats, h = [], grey
        for block in self.down:
            h = block(h)
            feats.append(h)
        active = self.training or self.dropout_at_test
        for i, block in enumerate(self.up):
            if i > 0:
                h = torch.cat([h, feats[-1 - i]], 1)
            h = block(h)
            if i < min(self.dropout_blocks, len(self.up) - 1):
                h = dropout(h, self.p, active, generator)
        return torch.tanh(h)


class PatchDiscriminator(nn.Module):
    """PatchGAN: concat(grey, ab) (B,3,S,S) -> logits (B,1,S/2^n - 2,...) (6x6 for S=64, n=3)."""

    def __init__(self, width: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        cout = width
        for n in range(1, n_layers + 1):
            cin, cout = cout, width * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(cin, cout, 4, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(cout, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, grey: Tensor, ab: Tensor) -> Tensor:
        return self.net(torch.cat([grey, ab], 1))
