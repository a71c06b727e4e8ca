"""Building blocks in the paper's notation (Deshpande et al., CVPR 2017, section 6), shared
by the paper's networks (``colorkit_paper``) and the baselines (``colorkit_baselines``).

``C_a(k, s, n)``: convolution, kernel ``k``, stride ``s``, ``n`` output channels, activation
``a``, zero padding; ``B``: batch normalisation; ``U(f)``: bilinear up-sampling by ``f``.
The paper applies the activation before ``B`` (``C_ReLU(...) -> B``); so do we.

Padding is TensorFlow's ``SAME`` rule (the authors' code is TensorFlow): output side
``ceil(H / s)``, the odd padding zero at the bottom/right. So a stride-1 conv keeps the
size, also for the even kernel 4 (pad 1 before, 2 after), and a stride-2 conv halves it.
``ConvBlock(..., padding="symmetric")`` pads ``(k - 1) // 2`` on every side instead (the
baselines' convention: the same size for odd kernels at stride 1, ``floor`` at stride 2).
"""

from __future__ import annotations

import math
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zero padding of TF ``SAME`` for an input side ``size``: the output
    side is ``ceil(size / stride)``."""
    span = dilation * (kernel - 1) + 1
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """``Conv2d`` with TF ``SAME`` zero padding (asymmetric for even kernels), computed
    from the input size: ``(B, Cin, H, W) -> (B, Cout, ceil(H/s), ceil(W/s))``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1,
                 bias: bool = True) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, dilation=dilation, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        (k, _), (s, _), (d, _) = self.kernel_size, self.stride, self.dilation
        top, bottom = same_padding(x.shape[-2], k, s, d)
        left, right = same_padding(x.shape[-1], k, s, d)
        if top == bottom == left == right:
            return F.conv2d(x, self.weight, self.bias, self.stride, top, self.dilation)
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation)


class ConvBlock(nn.Sequential):
    """``C_ReLU(k, s, n) -> B``: conv, ReLU, then batch norm (when ``bn``). ``padding``:
    ``"same"`` (TF SAME, :class:`SameConv2d`) or ``"symmetric"`` (``(k - 1) // 2`` zeros on
    every side). The layers are ``[conv, ReLU, BN]`` either way (the same state-dict keys)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1,
                 bn: bool = True, padding: Literal["same", "symmetric"] = "same") -> None:
        if padding == "same":
            conv: nn.Module = SameConv2d(cin, cout, kernel, stride, dilation)
        elif padding == "symmetric":
            conv = nn.Conv2d(cin, cout, kernel, stride, padding=dilation * (kernel - 1) // 2, dilation=dilation)
        else:
            raise ValueError(f"padding must be 'same' or 'symmetric', got {padding!r}")
        layers: list[nn.Module] = [conv, nn.ReLU(inplace=True)]
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        super().__init__(*layers)


def up2(x: Tensor) -> Tensor:
    """``U(2)``: bilinear up-sampling by 2, ``(B, C, H, W) -> (B, C, 2H, 2W)``."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def grey_at_size(grey: Tensor, size: int) -> Tensor:
    """``grey (B, 1, H, W)`` checked and resized (bilinear, antialiased) to ``size x size``
    when it is not already; what a method trained at ``size`` feeds its networks."""
    if grey.dim() != 4 or grey.shape[1] != 1:
        from colorkit.core.registry import ColorkitError

        raise ColorkitError(f"sample expects grey of shape (B, 1, H, W); got {tuple(grey.shape)}")
    if tuple(grey.shape[-2:]) == (size, size):
        return grey
    return F.interpolate(grey, size=(size, size), mode="bilinear", antialias=True)
