"""Functional forms of colorkit's metrics (Deshpande et al., CVPR 2017, section 7).

Every function takes the ``k`` colorizations of each image and returns one value per image
(``reduction="none"``, shape ``(B,)``) or their mean / sum over images. The metric classes in
:mod:`colorkit.metrics.classes` call the same public ``*_per_image`` functions, so the two
forms cannot drift apart.

Shapes and units (see :mod:`colorkit.core.interfaces`):

* ``samples``: ``(B, k, 2, H, W)``, the k colorizations, CIE Lab a, b / 128;
* ``target``: ``(B, 2, H, W)``, the ground-truth ab of the image, same units;
* ``grey``: ``(B, 1, H, W)``, Lab L / 100 in [0, 1] (only the colourfulness metrics use it);
* ``stats``: anything with ``weight_of(ab (B, 2, H, W)) -> (B, H, W)``, the colourfulness
  weight of each pixel's ab bin (:class:`colorkit.core.stats.ColorStats`).

Definitions (paper section 7; docs/evaluation.md):

* absolute error (Table 1), "All": ``mean_{k, c, h, w} |samples - target|``; "Grid": the same
  over the pixels of :func:`central_grid_indices` only. The mean is over the k outputs too;
  for the paper's Table 1 ablation k = 1.
* weighted absolute error (Table 2): ``mean_{k, c, h, w} w(target)_{h,w} |samples - target|``,
  i.e. *not* divided by the sum of the weights: with weights normalised to mean 1 over the
  training pixels this matches the scale of Table 2.
* error-of-best (Table 3): ``min_k mean_{c, h, w} |samples_k - target|``.
* variance (Table 3): ``mean_{c, h, w} Var_k(samples)``, the population variance over the k
  colorizations (divided by k, not k - 1: it describes this set of k outputs, and is 0, not
  undefined, for k = 1). Units (ab/128)^2.
* with ``mask (B, 1, H, W)`` (1 at the pixels scored, 0 elsewhere; e.g. the pixels without a
  colour hint), error-of-best, variance and "All" average over the masked pixels only:
  ``sum(mask * x) / (C * sum(mask))`` in place of ``mean_{c, h, w} x``. An all-ones mask gives
  the unmasked values (up to the last bits of float addition).
* colourfulness (Hasler and Suesstrunk 2003) of the Lab image (grey, ab) in 0-255 sRGB:
  ``sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)`` with ``rg = R - G``,
  ``yb = (R + G) / 2 - B`` and population statistics over the pixels; averaged over the k.
* pairwise distance: ``mean_{i<j} mean_{c, h, w} |samples_i - samples_j|``; 0 when k = 1.
* histogram distance (realism of the colours used): the symmetric KL divergence, in nats,
  between the ab histogram of the k colorizations pooled together and that of the ground
  truth, over the 23 x 23 cells of :mod:`colorkit.core.stats`; each histogram is mixed with
  ``HIST_EPS`` of the uniform one so that empty cells stay finite.
* gradient-energy ratio (spatial coherence): ``log2((mean_k E(samples_k) + GRAD_EPS) /
  (E(target) + GRAD_EPS))`` with ``E(x) = mean_{c, h, w}`` of the squared horizontal plus
  vertical finite differences of ``x``; 0 when the outputs are as smooth as the ground truth,
  negative when smoother, positive when noisier (per-pixel speckle).
* colourfulness difference: ``mean_k M(samples_k) - M(target)``, M as above; 0 when the
  outputs are as colourful as the ground truth, negative when washed out.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import Tensor

from colorkit.core.registry import ColorkitError

Reduction = Literal["mean", "sum", "none"]

HIST_EPS = 1e-3
"""Weight of the uniform histogram mixed into both histograms of ``hist_kl``."""
GRAD_EPS = 1e-5
"""(ab/128)^2 added to both gradient energies of ``grad_log_ratio`` (flat images stay finite)."""

__all__ = [
    "WeightSource",
    "central_grid_indices",
    "colorfulness",
    "colorfulness_gt",
    "colorfulness_diff",
    "error_of_best",
    "grad_log_ratio",
    "hist_kl",
    "hasler_suesstrunk",
    "lab_to_rgb255",
    "mae_all",
    "mae_grid",
    "pairwise_distance",
    "variance",
    "wmae_all",
    "wmae_grid",
    # per-image forms (B,) the metric classes accumulate, and the input check they share
    "check_samples",
    "error_of_best_per_image",
    "variance_per_image",
    "mae_per_image",
    "wmae_per_image",
    "colorfulness_per_image",
    "colorfulness_gt_per_image",
    "pairwise_per_image",
    "hist_kl_per_image",
    "grad_log_ratio_per_image",
    "colorfulness_diff_per_image",
]


class WeightSource(Protocol):
    """What the weighted errors need from colour statistics."""

    def weight_of(self, ab: Tensor) -> Tensor:  # (B, 2, H, W) -> (B, H, W)
        ...


# --------------------------------------------------------------------------- checks
def check_samples(samples: Tensor, target: Tensor | None = None, grey: Tensor | None = None) -> None:
    if not isinstance(samples, Tensor) or samples.ndim != 5 or samples.shape[2] != 2:
        shape = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        hint = " (one colorization per image: use samples.unsqueeze(1))" if (
            isinstance(samples, Tensor) and samples.ndim == 4 and samples.shape[1] == 2) else ""
        raise ColorkitError(f"samples must have shape (B, k, 2, H, W); got {shape}{hint}")
    b, k, _, h, w = samples.shape
    if k < 1:
        raise ColorkitError(f"samples must hold at least one colorization per image; got k = {k}")
    if target is not None and tuple(target.shape) != (b, 2, h, w):
        raise ColorkitError(
            f"target must have shape (B, 2, H, W) = {(b, 2, h, w)} to match samples "
            f"{tuple(samples.shape)}; got {tuple(target.shape)}"
        )
    if grey is not None and tuple(grey.shape) != (b, 1, h, w):
        raise ColorkitError(
            f"grey must have shape (B, 1, H, W) = {(b, 1, h, w)} to match samples "
            f"{tuple(samples.shape)}; got {tuple(grey.shape)}"
        )


def _check_mask(mask: Tensor, samples: Tensor) -> Tensor:
    """``mask (B, 1, H, W)`` (bool or numbers, 1 = scored) as ``(B, 1, 1, H, W)`` in the
    samples' float type, on their device."""
    b, _, _, h, w = samples.shape
    if not isinstance(mask, Tensor) or tuple(mask.shape) != (b, 1, h, w):
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ColorkitError(f"mask must have shape (B, 1, H, W) = {(b, 1, h, w)} to match samples "
                            f"{tuple(samples.shape)}; got {shape}")
    return mask.to(device=samples.device, dtype=_float(samples).dtype).unsqueeze(1)


def _masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """``x (B, k, C, H, W)`` -> ``(B, k)``: the mean over channels and pixels, over the pixels
    of ``mask (B, 1, 1, H, W)`` only when it is given."""
    if mask is None:
        return x.mean(dim=(2, 3, 4))
    return (x * mask).sum(dim=(2, 3, 4)) / (mask.sum(dim=(2, 3, 4)) * x.shape[2])


def _float(x: Tensor) -> Tensor:
    """At least float32: means over thousands of pixels are wrong in half precision."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _reduce(values: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    raise ColorkitError(f"unknown reduction {reduction!r}; expected 'mean', 'sum' or 'none'")


# --------------------------------------------------------------------------- the grid
def _central_line(size: int, n: int) -> Tensor:
    if size < n:
        raise ColorkitError(f"an image side of {size} pixels cannot hold a grid of {n} points")
    if n == 1:
        return torch.tensor([(size - 1) // 2])
    target = max(1, size // (2 * n))
    fits = [s for s in (target, target + 1, target - 1) if s >= 1 and (n - 1) * s <= size - 1]
    exact = [s for s in fits if (size - 1 - (n - 1) * s) % 2 == 0]
    s = (exact or fits)[0]
    start = (size - 1 - (n - 1) * s) // 2
    return start + s * torch.arange(n)


def central_grid_indices(H: int, W: int, n: int = 8) -> tuple[Tensor, Tensor]:
    """Rows and columns of the "Grid" pixels: an ``n x n`` uniformly spaced grid in the centre.

    Along each side of ``size`` pixels the ``n`` indices are ``start + s * i``, ``i = 0..n-1``.
    The spacing ``s`` is ``max(1, size // (2n))``, so that the grid spans about the central half
    of the image, moved to ``s + 1`` (else ``s - 1``) when that makes the grid exactly symmetric
    about the centre ``(size - 1) / 2``; ``start`` centres it. Where no spacing allows exact
    symmetry (e.g. an odd ``size`` under 2n - 1, or an even ``n`` with an odd ``size``) the grid is
    off-centre by half a pixel, towards the top / left.

    Examples: 64 -> s = 5, rows 14, 19, ..., 49; 32 -> s = 3, rows 5..26; 16 -> 4..11;
    8 -> 0..7; 256 -> s = 17, rows 68..187.

    Returns ``(rows, cols)``, int64 tensors of length ``n``; the grid is
    ``x[..., rows[:, None], cols[None, :]]``.
    """
    if n < 1:
        raise ColorkitError(f"grid size n must be at least 1; got {n}")
    return _central_line(int(H), n), _central_line(int(W), n)


def _grid(x: Tensor, n: int = 8) -> Tensor:
    """``x[..., H, W] -> x[..., n, n]`` at the central grid pixels."""
    rows, cols = central_grid_indices(x.shape[-2], x.shape[-1], n)
    rows, cols = rows.to(x.device), cols.to(x.device)
    return x[..., rows[:, None], cols[None, :]]


# --------------------------------------------------------------------------- per image
def _abs_err(samples: Tensor, target: Tensor) -> Tensor:
    """``|samples - target|``, ``(B, k, 2, H, W)``."""
    return (_float(samples) - _float(target).unsqueeze(1)).abs()


def _weights(stats: WeightSource, target: Tensor, like: Tensor) -> Tensor:
    """Colourfulness weight of each ground-truth pixel, ``(B, 1, 1, H, W)`` (broadcasts over k, c)."""
    w = stats.weight_of(target)
    b, _, h, wd = target.shape
    if tuple(w.shape) != (b, h, wd):
        raise ColorkitError(
            f"stats.weight_of(target) must return (B, H, W) = {(b, h, wd)}; got {tuple(w.shape)}"
        )
    return w.to(device=like.device, dtype=like.dtype)[:, None, None]


def error_of_best_per_image(samples: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """``mask``: ``(B, 1, 1, H, W)`` (:func:`_check_mask`) or None (every pixel)."""
    return _masked_mean(_abs_err(samples, target), mask).amin(dim=1)  # (B, k) -> (B,)


def variance_per_image(samples: Tensor, mask: Tensor | None = None) -> Tensor:
    if mask is None:
        return _float(samples).var(dim=1, unbiased=False).mean(dim=(1, 2, 3))
    return _masked_mean(_float(samples).var(dim=1, unbiased=False).unsqueeze(1), mask)[:, 0]


def mae_per_image(samples: Tensor, target: Tensor, grid: bool, mask: Tensor | None = None) -> Tensor:
    err = _abs_err(samples, target)
    if mask is not None:  # the same count of pixels in each of the k: the mean of the k means
        return _masked_mean(err, mask).mean(dim=1)
    if grid:
        err = _grid(err)
    return err.mean(dim=(1, 2, 3, 4))


def wmae_per_image(samples: Tensor, target: Tensor, stats: WeightSource, grid: bool) -> Tensor:
    err = _abs_err(samples, target)
    err = err * _weights(stats, target, err)
    if grid:
        err = _grid(err)
    return err.mean(dim=(1, 2, 3, 4))


def pairwise_per_image(samples: Tensor) -> Tensor:
    b, k = samples.shape[:2]
    if k == 1:
        return samples.new_zeros(b, dtype=_float(samples).dtype)
    flat = _float(samples).reshape(b, k, -1)
    dist = torch.cdist(flat, flat, p=1) / flat.shape[-1]  # (B, k, k) mean |s_i - s_j|
    i, j = torch.triu_indices(k, k, offset=1, device=samples.device)
    return dist[:, i, j].mean(dim=1)


def lab_to_rgb255(grey: Tensor, ab: Tensor) -> Tensor:
    """sRGB in [0, 255] of the Lab image ``(L = 100 grey, a, b = 128 ab)``.

    ``grey`` ``(..., 1, H, W)`` and ``ab`` ``(..., 2, H, W)`` -> ``(..., 3, H, W)``; out-of-gamut
    colours are clamped to [0, 255] per channel (:func:`colorkit.core.color.lab_to_rgb`, D65).
    """
    from colorkit.core.color import AB_SCALE, L_SCALE, lab_to_rgb

    lab = torch.cat([_float(grey) * L_SCALE, _float(ab) * AB_SCALE], dim=-3)
    return lab_to_rgb(lab, clip=False).clamp(0.0, 1.0) * 255.0


def hasler_suesstrunk(rgb255: Tensor) -> Tensor:
    """Hasler and Suesstrunk's colourfulness M of ``(..., 3, H, W)`` sRGB in [0, 255] -> ``(...)``."""
    r, g, b = rgb255.unbind(dim=-3)
    rg = (r - g).flatten(-2)
    yb = (0.5 * (r + g) - b).flatten(-2)
    std = torch.sqrt(rg.var(dim=-1, unbiased=False) + yb.var(dim=-1, unbiased=False))
    mean = torch.sqrt(rg.mean(dim=-1) ** 2 + yb.mean(dim=-1) ** 2)
    return std + 0.3 * mean


def colorfulness_per_image(samples: Tensor, grey: Tensor) -> Tensor:
    k = samples.shape[1]
    grey_k = grey.unsqueeze(1).expand(-1, k, -1, -1, -1)  # (B, k, 1, H, W)
    return hasler_suesstrunk(lab_to_rgb255(grey_k, samples)).mean(dim=1)


def colorfulness_gt_per_image(target: Tensor, grey: Tensor) -> Tensor:
    return hasler_suesstrunk(lab_to_rgb255(grey, target))


def _ab_histogram(ab: Tensor) -> Tensor:
    """Normalised histogram over the 23 x 23 ab cells of every pixel of ``ab``
    ``(B, ..., 2, H, W)`` pooled per image: ``(B, 529)`` float64."""
    from colorkit.core.stats import G, ab_to_bin_index

    b = ab.shape[0]
    cells = ab_to_bin_index(ab.reshape(b, -1, 2, *ab.shape[-2:])).reshape(b, -1)  # (B, P)
    hist = torch.zeros(b, G * G, dtype=torch.float64, device=ab.device)
    hist.scatter_add_(1, cells, torch.ones_like(cells, dtype=torch.float64))
    return hist / hist.sum(1, keepdim=True)


def hist_kl_per_image(samples: Tensor, target: Tensor) -> Tensor:
    p = _ab_histogram(samples)
    q = _ab_histogram(target)
    uniform = 1.0 / p.shape[1]
    p = (1 - HIST_EPS) * p + HIST_EPS * uniform
    q = (1 - HIST_EPS) * q + HIST_EPS * uniform
    return ((p - q) * (p.log() - q.log())).sum(1)  # KL(p||q) + KL(q||p)


def _grad_energy(ab: Tensor) -> Tensor:
    """Mean squared finite difference (horizontal + vertical) over ``(..., C, H, W)`` -> ``(...)``."""
    x = _float(ab)
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean(dim=(-3, -2, -1))
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean(dim=(-3, -2, -1))
    return dx + dy


def grad_log_ratio_per_image(samples: Tensor, target: Tensor) -> Tensor:
    es = _grad_energy(samples).mean(dim=1)  # (B,)
    et = _grad_energy(target)  # (B,)
    return torch.log2((es + GRAD_EPS) / (et + GRAD_EPS))


def colorfulness_diff_per_image(samples: Tensor, target: Tensor, grey: Tensor) -> Tensor:
    return colorfulness_per_image(samples, grey) - colorfulness_gt_per_image(target, grey)


# --------------------------------------------------------------------------- public forms
def error_of_best(samples: Tensor, target: Tensor, reduction: Reduction = "mean", *,
                  mask: Tensor | None = None) -> Tensor:
    """Error-of-best (Table 3): per image, the smallest over its k colorizations of the mean
    absolute error over pixels and both channels. ab/128 units; lower is better.

    ``samples (B, k, 2, H, W)``, ``target (B, 2, H, W)`` -> ``(B,)`` or a scalar. ``mask
    (B, 1, H, W)``: average over the pixels where it is 1 only (e.g. those without a hint)."""
    check_samples(samples, target)
    m = None if mask is None else _check_mask(mask, samples)
    return _reduce(error_of_best_per_image(samples, target, m), reduction)


def variance(samples: Tensor, reduction: Reduction = "mean", *, mask: Tensor | None = None) -> Tensor:
    """Variance (Table 3): per image, the population variance (divisor k) across the k
    colorizations at each pixel and channel, averaged over pixels and channels.
    (ab/128)^2 units; a proxy for diversity, higher is more diverse.

    ``samples (B, k, 2, H, W)`` -> ``(B,)`` or a scalar. ``mask (B, 1, H, W)``: average over
    the pixels where it is 1 only."""
    check_samples(samples)
    m = None if mask is None else _check_mask(mask, samples)
    return _reduce(variance_per_image(samples, m), reduction)


def mae_all(samples: Tensor, target: Tensor, reduction: Reduction = "mean", *,
            mask: Tensor | None = None) -> Tensor:
    """Absolute error, "All" (Table 1): mean of |samples - target| over the k colorizations,
    both channels and every pixel. ab/128 units.

    ``samples (B, k, 2, H, W)``, ``target (B, 2, H, W)`` -> ``(B,)`` or a scalar. ``mask
    (B, 1, H, W)``: average over the pixels where it is 1 only."""
    check_samples(samples, target)
    m = None if mask is None else _check_mask(mask, samples)
    return _reduce(mae_per_image(samples, target, grid=False, mask=m), reduction)


def mae_grid(samples: Tensor, target: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Absolute error, "Grid" (Table 1): as :func:`mae_all` over the 8 x 8 pixels of
    :func:`central_grid_indices` only. ab/128 units."""
    check_samples(samples, target)
    return _reduce(mae_per_image(samples, target, grid=True), reduction)


def wmae_all(samples: Tensor, target: Tensor, stats: WeightSource,
             reduction: Reduction = "mean") -> Tensor:
    """Weighted absolute error, "All" (Table 2): mean over the k colorizations, both channels
    and every pixel of ``w * |samples - target|``, ``w = stats.weight_of(target)`` the
    colourfulness weight of the pixel's ground-truth bin. Not divided by the sum of the
    weights. ab/128 units times the (dimensionless) weight."""
    check_samples(samples, target)
    return _reduce(wmae_per_image(samples, target, stats, grid=False), reduction)


def wmae_grid(samples: Tensor, target: Tensor, stats: WeightSource,
              reduction: Reduction = "mean") -> Tensor:
    """Weighted absolute error, "Grid" (Table 2): :func:`wmae_all` over the pixels of
    :func:`central_grid_indices` only."""
    check_samples(samples, target)
    return _reduce(wmae_per_image(samples, target, stats, grid=True), reduction)


def colorfulness(samples: Tensor, grey: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Hasler-Suesstrunk colourfulness M (0-255 sRGB) of each colorization ``(grey, sample)``,
    averaged over the k colorizations.

    ``samples (B, k, 2, H, W)``, ``grey (B, 1, H, W)`` -> ``(B,)`` or a scalar."""
    check_samples(samples, grey=grey)
    return _reduce(colorfulness_per_image(samples, grey), reduction)


def colorfulness_gt(target: Tensor, grey: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Hasler-Suesstrunk colourfulness M (0-255 sRGB) of the ground truth ``(grey, target)``:
    the reference for :func:`colorfulness`. ``(B, 2, H, W)``, ``(B, 1, H, W)`` -> ``(B,)``."""
    if not isinstance(target, Tensor) or target.ndim != 4 or target.shape[1] != 2:
        shape = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
        raise ColorkitError(f"target must have shape (B, 2, H, W); got {shape}")
    check_samples(target.unsqueeze(1), grey=grey)
    return _reduce(colorfulness_gt_per_image(target, grey), reduction)


def pairwise_distance(samples: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Mean pairwise distance: over the pairs i < j of an image's k colorizations, the mean
    absolute difference per pixel and channel. ab/128 units; 0 when k = 1.

    ``samples (B, k, 2, H, W)`` -> ``(B,)`` or a scalar."""
    check_samples(samples)
    return _reduce(pairwise_per_image(samples), reduction)


def hist_kl(samples: Tensor, target: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Symmetric KL (nats) between the pooled ab histogram of the k colorizations and the
    ground truth's, per image (see the module docstring)."""
    check_samples(samples, target)
    return _reduce(hist_kl_per_image(samples, target), reduction)


def grad_log_ratio(samples: Tensor, target: Tensor, reduction: Reduction = "mean") -> Tensor:
    """log2 of the ab gradient energy of the colorizations over the ground truth's, per image."""
    check_samples(samples, target)
    return _reduce(grad_log_ratio_per_image(samples, target), reduction)


def colorfulness_diff(samples: Tensor, target: Tensor, grey: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Colourfulness M of the colorizations (mean over k) minus the ground truth's, per image."""
    check_samples(samples, target, grey)
    return _reduce(colorfulness_diff_per_image(samples, target, grey), reduction)
