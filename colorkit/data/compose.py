"""Composition: colour fields joined with a photo's or a frame's own lightness, as 8-bit sRGB.

The colour field (ab / 128, predicted at the model size, e.g. 64x64) is upsampled
bilinearly to the image's resolution with PyTorch's half-pixel convention
(``align_corners=False``, clamped at the edges), done separably: along the width for the
field's few rows, then row by row. It is joined with the image's own CIE L and converted
to sRGB with kornia's constants (D65, 2 degree observer), clipped and rounded to 8 bits;
sRGB decoding of the input goes through a 256-entry table. A test compares the result
with kornia's ``lab_to_rgb`` of ``F.interpolate``'s field: within one 8-bit level.

Everything runs in bands of rows so that temporaries stay small:

- Photos (:class:`Lightness`, :func:`compose_image`): one colorization at a time, each
  torch operation on at most :data:`SERIAL_ELEMENTS` elements, which PyTorch runs on the
  calling thread. So composition can run in the writer's threads beside the model
  without starting more OpenMP threads than there are cores, and its output does not
  depend on the number of threads. Memory: the lightness (4 bytes per pixel) and one
  output (3 bytes per pixel), whatever k.
- Video frames (:func:`compose_frame`): all versions of a frame together, in larger
  bands that PyTorch spreads over its threads; the frame's lightness is shared by the
  versions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from colorkit.core.color import AB_SCALE

SERIAL_ELEMENTS = 32768
"""Elements per torch operation in photo composition: PyTorch runs an elementwise operation
of at most this many elements (its grain size) on the calling thread."""

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


_F0 = 6.0 / 29.0  # where Lab's f switches from its linear part to the cube root
_Y0 = 0.008856  # kornia's threshold in Y; f(_Y0) = _F0


def _finv(f: Tensor) -> Tensor:
    """Lab's inverse f: ``f**3`` above _F0, ``(f - 4/29) / 7.787`` below. The two parts
    meet at _F0, so each is evaluated on ``f`` clamped to its side and the value at _F0
    taken off once (cheaper than a ``where``; equal to it within float rounding)."""
    g = f.clamp(min=_F0)
    return g.mul(g).mul_(g).add_(f.clamp(max=_F0).sub_(4.0 / 29.0).div_(7.787)).sub_(_F0**3)


def _lightness(rgb: np.ndarray) -> Tensor:
    rgb = np.ascontiguousarray(rgb)
    t = torch.from_numpy(rgb if rgb.flags.writeable else rgb.copy())
    lin = _DECODE.index_select(0, t.reshape(-1).long()).view(*t.shape)  # (h, W, 3)
    y = lin[..., 0] * _Y_FROM_RGB[0] + lin[..., 1] * _Y_FROM_RGB[1] + lin[..., 2] * _Y_FROM_RGB[2]
    # f: the cube root above _Y0, 7.787 y + 4/29 below; as in _finv, the parts meet at _Y0.
    f = y.clamp(min=_Y0).pow_(1.0 / 3.0).add_(y.clamp_(max=_Y0).sub_(_Y0).mul_(7.787))
    return f.mul_(116.0).sub_(16.0)


def frame_lightness(rgb: np.ndarray) -> Tensor:
    """CIE L (0-100) ``(H, W)`` float32 of an 8-bit sRGB frame ``(H, W, 3)``."""
    return _lightness(rgb)


def serial_rows(width: int, channels: int = 1) -> int:
    """Rows of ``width`` pixels (times ``channels``) that fit in :data:`SERIAL_ELEMENTS`."""
    return max(1, SERIAL_ELEMENTS // (width * channels))


@dataclass(frozen=True)
class Lightness:
    """A photo's own CIE L (0-100), ``L`` ``(H, W)`` float32: what its colorizations share."""

    L: Tensor

    @classmethod
    def of(cls, img: Image.Image) -> Lightness:
        """The lightness of RGB ``img``, computed in bands of rows (on the calling thread)."""
        w, h = img.size
        out = torch.empty(h, w)
        band = serial_rows(w, 3)
        for r0 in range(0, h, band):
            r1 = min(h, r0 + band)
            out[r0:r1] = _lightness(np.asarray(img.crop((0, r0, w, r1))))
        return cls(out)

    @property
    def size(self) -> tuple[int, int]:
        """Width and height, as PIL gives them."""
        return self.L.shape[1], self.L.shape[0]


def _rows(h: int, s_h: int) -> tuple[Tensor, Tensor, Tensor]:
    """PyTorch's half-pixel source rows (clamped at the edges) for ``s_h`` -> ``h`` rows."""
    src = ((torch.arange(h, dtype=torch.float64) + 0.5) * (s_h / h) - 0.5).clamp(min=0.0)
    y0 = src.floor().long().clamp(max=s_h - 1)
    return y0, (y0 + 1).clamp(max=s_h - 1), (src - y0.double()).float()


def _encode(lin: Tensor) -> Tensor:
    """Linear light -> 8-bit sRGB (kornia's curve, clipped, rounded). The curve's power part
    (concave) lies under its linear part (12.92 x) above the threshold and, clamped to the
    threshold, over it below: the smaller of the two is the curve."""
    lin = lin.clamp_(0.0, 1.0)
    hi = lin.clamp(min=0.0031308).pow_(1.0 / 2.4).mul_(1.055).sub_(0.055)
    return torch.minimum(hi, lin.mul_(12.92)).mul_(255.0).add_(0.5).to(torch.uint8)


def _band(fy: Tensor, y: Tensor, a_w: Tensor, b_w: Tensor, i0: Tensor, i1: Tensor, wt: Tensor, out: Tensor) -> None:
    """One band of rows of one version into ``out`` ``(b, W, 3)`` uint8: ``fy`` and ``y``
    the band's ``(L + 16) / 116`` and relative luminance, ``a_w`` / ``b_w`` the field's a
    and b in ``f`` units at full width ``(s, W)``, rows ``i0``/``i1`` mixed by ``wt``."""
    fx = torch.lerp(a_w.index_select(0, i0), a_w.index_select(0, i1), wt).add_(fy)
    fz = torch.lerp(b_w.index_select(0, i0), b_w.index_select(0, i1), wt).neg_().add_(fy).clamp_(min=0.0)
    x, z = _finv(fx).mul_(_WHITE[0]), _finv(fz).mul_(_WHITE[2])
    for c, (mx, my, mz) in enumerate(_XYZ_TO_RGB):
        out[:, :, c] = _encode(x * mx + y * my + z * mz)


def _widths(ab: Tensor, w: int) -> tuple[Tensor, Tensor]:
    """One field ``(2, s, s)`` upsampled along the width to ``(s, w)`` per channel, in
    ``f`` units (a / 500 and b / 200), by operations of at most SERIAL_ELEMENTS."""
    s_h, s_w = ab.shape[-2:]
    x0, x1, wx = _rows(w, s_w)
    scaled = (ab[0] * (AB_SCALE / 500.0), ab[1] * (AB_SCALE / 200.0))
    outs = []
    step = serial_rows(w)
    for ch in scaled:
        o = torch.empty(s_h, w)
        for r0 in range(0, s_h, step):
            part = ch[r0:r0 + step]
            o[r0:r0 + step] = torch.lerp(part[:, x0], part[:, x1], wx)
        outs.append(o)
    return outs[0], outs[1]


@torch.no_grad()
def compose_image(light: Lightness, ab: Tensor) -> Image.Image:
    """One colour field ``ab`` ``(2, s, s)`` (ab / 128) joined with ``light`` at its
    resolution, as an RGB PIL image. Every operation is on at most SERIAL_ELEMENTS
    elements: it runs on the calling thread and gives the same bytes on any number of
    threads."""
    L = light.L
    h, w = L.shape
    a_w, b_w = _widths(ab.float().cpu(), w)
    y0, y1, wy = _rows(h, ab.shape[-2])
    out = np.empty((h, w, 3), dtype=np.uint8)
    view = torch.from_numpy(out)
    band = serial_rows(w)
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        fy = L[r0:r1].add(16.0).div_(116.0)
        _band(fy, _finv(fy), a_w, b_w, y0[r0:r1], y1[r0:r1], wy[r0:r1, None], view[r0:r1])
    return Image.fromarray(out)


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
        for n in range(len(idx)):
            _band(fy, y, a_w[n], b_w[n], y0[r0:r1], y1[r0:r1], wy[r0:r1, None], views[n][r0:r1])
    return outs
