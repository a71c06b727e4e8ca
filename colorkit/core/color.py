"""Batched colour conversion between sRGB, CIE Lab and colorkit's model units.

Deshpande et al. (CVPR 2017) work in Lab: the grey image is L, the colour field is (a, b).
colorkit uses true CIE Lab (sRGB primaries, D65 white, 2 degree observer, computed in
float by :mod:`kornia.color`) and scales it to the paper's units (docs/concepts.md):

* ``grey = L / 100``, shape ``(..., 1, H, W)``, in [0, 1];
* ``ab = (a, b) / 128``, shape ``(..., 2, H, W)``, roughly in [-1, 1].

All functions take and return torch tensors (channels at dim -3) except
:func:`uint8_hwc_to_model`, which takes the ``(N, H, W, 3)`` uint8 arrays that
:mod:`colorkit.data` stores.
"""

from __future__ import annotations

import numpy as np
import torch
from kornia.color import lab_to_rgb as _k_lab_to_rgb
from kornia.color import rgb_to_lab as _k_rgb_to_lab
from torch import Tensor

from colorkit.core.registry import ColorkitError

AB_SCALE = 128.0
"""Lab a, b units per model unit: ``ab = (a, b) / AB_SCALE``."""
L_SCALE = 100.0
"""Lab L units per model unit: ``grey = L / L_SCALE``."""

__all__ = [
    "AB_SCALE",
    "L_SCALE",
    "rgb_to_lab",
    "lab_to_rgb",
    "rgb_to_model",
    "model_to_rgb",
    "rgb_to_grey",
    "uint8_hwc_to_model",
    "to_model_space",
    "from_model_space",
]


def _check_channels(x: Tensor, c: int, what: str) -> None:
    if not isinstance(x, Tensor):
        raise ColorkitError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3 or x.shape[-3] != c:
        raise ColorkitError(f"{what}: expected shape (..., {c}, H, W), got {tuple(x.shape)}")


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB ``(..., 3, H, W)`` in [0, 1] -> CIE Lab ``(..., 3, H, W)`` (D65).

    L is in [0, 100]; a and b are in Lab units (roughly [-128, 127]).
    """
    _check_channels(rgb, 3, "rgb_to_lab")
    return _k_rgb_to_lab(rgb)


def lab_to_rgb(lab: Tensor, clip: bool = True) -> Tensor:
    """CIE Lab ``(..., 3, H, W)`` (L in [0, 100], a/b in Lab units) -> sRGB in [0, 1].

    Colours outside the sRGB gamut are clamped to [0, 1]; ``clip=False`` leaves them
    outside (to test whether a colour is in gamut, or to clamp after another step).
    """
    _check_channels(lab, 3, "lab_to_rgb")
    return _k_lab_to_rgb(lab, clip=clip)


def rgb_to_model(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """sRGB ``(..., 3, H, W)`` in [0, 1] -> ``(grey, ab)`` in model units.

    ``grey``: ``(..., 1, H, W)`` = L / 100 in [0, 1]; ``ab``: ``(..., 2, H, W)`` = (a, b) / 128.
    """
    lab = rgb_to_lab(rgb)
    return lab[..., :1, :, :] / L_SCALE, lab[..., 1:, :, :] / AB_SCALE


def model_to_rgb(grey: Tensor, ab: Tensor) -> Tensor:
    """``grey (..., 1, H, W)`` (L / 100) and ``ab (..., 2, H, W)`` ((a, b) / 128) -> sRGB
    ``(..., 3, H, W)`` clamped to [0, 1]. ``grey`` and ``ab`` must have the same spatial size
    (upsample ``ab`` first to join it with a larger grey image)."""
    _check_channels(grey, 1, "model_to_rgb grey")
    _check_channels(ab, 2, "model_to_rgb ab")
    if grey.shape[-2:] != ab.shape[-2:]:
        raise ColorkitError(
            f"model_to_rgb: grey is {tuple(grey.shape[-2:])} pixels but ab is "
            f"{tuple(ab.shape[-2:])}; expected the same height and width"
        )
    lab = torch.cat([grey * L_SCALE, ab * AB_SCALE], dim=-3)
    return lab_to_rgb(lab)


def rgb_to_grey(rgb: Tensor) -> Tensor:
    """sRGB ``(..., 3, H, W)`` in [0, 1] -> grey ``(..., 1, H, W)`` = Lab L / 100 in [0, 1]."""
    return rgb_to_lab(rgb)[..., :1, :, :] / L_SCALE


def uint8_hwc_to_model(images: np.ndarray, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """uint8 RGB images ``(N, H, W, 3)`` (or one ``(H, W, 3)``) -> ``(grey (N,1,H,W),
    ab (N,2,H,W))`` float32 in model units, computed on ``device`` (default CPU)."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ColorkitError(
            f"uint8_hwc_to_model: expected a uint8 array (N, H, W, 3), got {arr.dtype} {arr.shape}"
        )
    if arr.ndim == 3:
        arr = arr[None]
    x = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
    rgb = x.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)  # (N, 3, H, W)
    return rgb_to_model(rgb)


def to_model_space(image) -> tuple[Tensor, Tensor]:
    """Any RGB image -> ``(grey, ab)`` in model units (``colorkit.to_model_space``).

    ``image``: a PIL image (any mode; converted to RGB), a uint8 array ``(H, W, 3)`` or
    ``(N, H, W, 3)``, or a float tensor ``(..., 3, H, W)`` in [0, 1]. Returns ``grey``
    ``(N, 1, H, W)`` = L / 100 and ``ab`` ``(N, 2, H, W)`` = (a, b) / 128 (``N = 1`` for one
    PIL image or one ``(H, W, 3)`` array; a tensor keeps its leading dimensions)."""
    if isinstance(image, Tensor):
        if not image.is_floating_point():
            raise ColorkitError(f"to_model_space: expected a float tensor (..., 3, H, W) in [0, 1], "
                                f"got {image.dtype}; divide uint8 values by 255 first")
        return rgb_to_model(image)
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        image = np.array(image.convert("RGB"))  # a writable copy
    if isinstance(image, np.ndarray):
        return uint8_hwc_to_model(image)
    raise ColorkitError(f"to_model_space: expected a PIL image, a uint8 array (H, W, 3) or a float tensor "
                        f"(..., 3, H, W), got {type(image).__name__}")


def from_model_space(grey: Tensor, ab: Tensor) -> Tensor:
    """``(grey, ab)`` in model units -> sRGB ``(..., 3, H, W)`` in [0, 1] (``colorkit.from_model_space``):
    the inverse of :func:`to_model_space` for tensors, clamped to the sRGB gamut."""
    return model_to_rgb(grey, ab)
