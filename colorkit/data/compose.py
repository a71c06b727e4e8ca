"""Fast composition of video frames: k colour fields joined with a frame's own lightness.

The same computation as :func:`colorkit.data.imageio.compose_colorizations` (ab predicted
at the model size, upsampled bilinearly to the frame's resolution, joined with the frame's
own CIE L, converted to 8-bit sRGB with kornia's constants), arranged for frames of one
size in a stream: the frame's L and Lab ``f(Y)`` are computed once for all k versions,
the k colour fields are upsampled together, and the two costly curves go through tables
(sRGB decoding: 256 entries; sRGB encoding: :data:`ENCODE_STEPS` steps of linear light,
within one 8-bit level of the exact curve). A test compares it with the image path.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from colorkit.core.color import AB_SCALE

ENCODE_STEPS = 16384
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


def _encode_table() -> Tensor:
    x = torch.arange(ENCODE_STEPS, dtype=torch.float64) / (ENCODE_STEPS - 1)
    s = torch.where(x > 0.0031308, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, 12.92 * x)
    return (s.clamp(0, 1) * 255.0 + 0.5).floor().to(torch.uint8)


_DECODE = _decode_table()
_ENCODE = _encode_table()


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


def compose_frame(lightness: Tensor, ab: Tensor, versions: list[int] | None = None) -> list[np.ndarray]:
    """Colour fields ``ab`` ``(k, 2, s, s)`` (ab / 128) joined with ``lightness`` ``(H, W)``
    (CIE L, 0-100) -> one ``(H, W, 3)`` uint8 sRGB frame per version (all k, or those in
    ``versions``)."""
    h, w = lightness.shape
    idx = list(range(ab.shape[0])) if versions is None else list(versions)
    if not idx:
        return []
    field = F.interpolate(ab[idx].float().cpu(), size=(h, w), mode="bilinear", align_corners=False)
    fy = (lightness + 16.0) / 116.0
    y = _finv(fy)
    out = []
    scale = ENCODE_STEPS - 1
    for j in range(len(idx)):
        x = _finv(fy + field[j, 0] * (AB_SCALE / 500.0)) * _WHITE[0]
        z = _finv((fy - field[j, 1] * (AB_SCALE / 200.0)).clamp(min=0.0)) * _WHITE[2]
        frame = torch.empty(h, w, 3, dtype=torch.uint8)
        for c, (mx, my, mz) in enumerate(_XYZ_TO_RGB):
            lin = x * mx + y * my + z * mz
            frame[..., c] = _ENCODE[(lin.clamp(0.0, 1.0) * scale + 0.5).long()]
        out.append(frame.numpy())
    return out
