"""Fast composition of video frames: k colour fields joined with a frame's own lightness.

The same computation as :func:`colorkit.data.imageio.compose_colorizations` (ab predicted
at the model size, upsampled bilinearly to the frame's resolution, joined with the frame's
own CIE L, converted to 8-bit sRGB with kornia's constants), arranged for frames of one
size in a stream: the frame's L and Lab ``f(Y)`` are computed once for all k versions,
the colour fields are upsampled by rows (widths once, then each band of rows), the work
runs in bands of rows that stay in cache, and sRGB decoding goes through a 256-entry
table. A test compares it with the image path (within one 8-bit level).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from colorkit.core.color import AB_SCALE

_WHITE = (0.95047, 1.0, 1.08883)
_XYZ_TO_RGB = (
    (3.2404813432005266, -1.5371515162713185, -0.4985363261688878),
    (-0.9692549499965682, 1.8759900014898907, 0.0415559265582928),
    (0.0556466391351772, -0.2040413383665112, 1.0573110696453443),
)
_Y_FROM_RGB = (0.212671, 0.715160, 0.072169)


def _decode_table() -> Tensor:
    v = torch.arange(256, dtype=torch.float64) / 255.0
    return torch.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92).float()


_DECODE = _decode_table()


def _finv(f: Tensor) -> Tensor:
    return torch.where(f > 0.2068966, f * f * f, (f - 4.0 / 29.0) / 7.787)


def frame_lightness(rgb: np.ndarray) -> Tensor:
    """CIE L (0-100) ``(H, W)`` float32 of an 8-bit sRGB frame ``(H, W, 3)``."""
    rgb = np.ascontiguousarray(rgb)
    t = torch.from_numpy(rgb if rgb.flags.writeable else rgb.copy())
    lin = _DECODE[t.long()]  # (H, W, 3)
    y = lin[..., 0] * _Y_FROM_RGB[0] + lin[..., 1] * _Y_FROM_RGB[1] + lin[..., 2] * _Y_FROM_RGB[2]
    f = torch.where(y > 0.008856, y.clamp_min(1e-12).pow(1.0 / 3.0), 7.787 * y + 4.0 / 29.0)
    return 116.0 * f - 16.0


def _rows(h: int, s_h: int) -> tuple[Tensor, Tensor, Tensor]:
    """PyTorch's half-pixel source rows (clamped at the edges) for ``s_h`` -> ``h`` rows."""
    src = ((torch.arange(h, dtype=torch.float64) + 0.5) * (s_h / h) - 0.5).clamp(min=0.0)
    y0 = src.floor().long().clamp(max=s_h - 1)
    return y0, (y0 + 1).clamp(max=s_h - 1), (src - y0.double()).float()


def _encode(lin: Tensor) -> Tensor:
    """Linear light -> 8-bit sRGB (kornia's curve, clipped, rounded)."""
    lin = lin.clamp_(0.0, 1.0)
    hi = lin.clamp(min=0.0031308).pow_(1.0 / 2.4).mul_(1.055).sub_(0.055)
    return torch.where(lin > 0.0031308, hi, lin.mul_(12.92)).mul_(255.0).add_(0.5).to(torch.uint8)


def compose_frame(lightness: Tensor, ab: Tensor, versions: list[int] | None = None,
                  band: int = 64) -> list[np.ndarray]:
    """Colour fields ``ab`` ``(k, 2, s, s)`` (ab / 128) joined with ``lightness`` ``(H, W)``
    (CIE L, 0-100) -> one ``(H, W, 3)`` uint8 sRGB frame per version (all k, or those in
    ``versions``). Works in bands of ``band`` rows, so its temporaries stay in cache."""
    h, w = lightness.shape
    idx = list(range(ab.shape[0])) if versions is None else list(versions)
    if not idx:
        return []
    s_h = ab.shape[-2]
    ab_w = F.interpolate(ab[idx].float().cpu(), size=(s_h, w), mode="bilinear", align_corners=False)  # (n, 2, s, W)
    a_w, b_w = ab_w[:, 0] * (AB_SCALE / 500.0), ab_w[:, 1] * (AB_SCALE / 200.0)
    y0, y1, wy = _rows(h, s_h)
    outs = [np.empty((h, w, 3), dtype=np.uint8) for _ in idx]
    views = [torch.from_numpy(o) for o in outs]
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        fy = (lightness[r0:r1] + 16.0) / 116.0
        y = _finv(fy)
        wt = wy[r0:r1, None]
        i0, i1 = y0[r0:r1], y1[r0:r1]
        for n in range(len(idx)):
            fx = torch.lerp(a_w[n][i0], a_w[n][i1], wt).add_(fy)
            fz = torch.lerp(b_w[n][i0], b_w[n][i1], wt).neg_().add_(fy).clamp_(min=0.0)
            x, z = _finv(fx).mul_(_WHITE[0]), _finv(fz).mul_(_WHITE[2])
            for c, (mx, my, mz) in enumerate(_XYZ_TO_RGB):
                views[n][r0:r1, :, c] = _encode(x * mx + y * my + z * mz)
    return outs
