"""Decoder losses of Deshpande et al. (CVPR 2017), section 3.1: the torch reference.

All take a predicted and a true colour field ``pred``, ``target`` of shape ``(B, 2, H, W)``
in ab / 128 units and return a per-sample loss ``(B,)``, summed over pixels and channels
(the paper's squared norms), never averaged. Notation: ``d = C - f = target - pred``.

* ``l2``   : ||C - f||^2                                                   (plain VAE)
* ``hist`` : sum_p w(C_p) ||C_p - f_p||^2, eq. (2); w = colourfulness weight of the true
  pixel's ab bin (:meth:`colorkit.core.stats.ColorStats.weight_of`). The paper writes
  ||(H^-1)^T [C - f]||^2 but its text puts 1/H_p "as a weight in the squared difference";
  colorkit follows the text (w multiplies the squared difference, not the difference).
* ``mah``  : sum_k (d . P_k)^2 / sigma_k^2 + ||d_res||^2 / sigma_K^2, section 3.1, with
  ||d_res||^2 = ||d||^2 - sum_k (d . P_k)^2 for orthonormal P (K = 20).
* ``grad`` : ||grad_h C - grad_h f||^2 + ||grad_v C - grad_v f||^2, eq. (3), forward
  differences inside the image (no padding), i.e. of d.

The paper's decoder loss, eq. (4): L_dec = L_hist + 0.1 L_mah + 1e-3 L_grad.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from colorkit.core.stats import ColorStats

PAPER_WEIGHTS: dict[str, float] = {"hist": 1.0, "mah": 0.1, "grad": 1e-3}


def _check(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 2:
        raise ValueError(
            f"decoder loss expects pred and target of shape (B, 2, H, W); "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def l2_loss(pred: Tensor, target: Tensor) -> Tensor:
    """||C - f||^2 per sample, ``(B,)``."""
    _check(pred, target)
    return (target - pred).pow(2).flatten(1).sum(1)


def hist_loss(pred: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Eq. (2): sum_p w_p ||C_p - f_p||^2 with ``weights`` ``(B, H, W)`` (from the target)."""
    _check(pred, target)
    sq = (target - pred).pow(2).sum(1)  # (B, H, W)
    return (weights.to(sq.dtype) * sq).flatten(1).sum(1)


def mah_loss(pred: Tensor, target: Tensor, components: Tensor, variances: Tensor) -> Tensor:
    """Section 3.1 specificity loss. ``components`` ``(K, 2HW)`` orthonormal rows,
    ``variances`` ``(K,)`` descending (sigma_k^2). Returns ``(B,)``."""
    _check(pred, target)
    d = (target - pred).flatten(1)  # (B, 2HW)
    proj = d @ components.to(d.dtype).t()  # (B, K)
    var = variances.to(d.dtype)
    sq_proj = proj.pow(2)
    residual = (d.pow(2).sum(1) - sq_proj.sum(1)).clamp_min(0.0)
    return (sq_proj / var).sum(1) + residual / var[-1]


def grad_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Eq. (3): squared error of horizontal and vertical forward differences, ``(B,)``."""
    _check(pred, target)
    d = target - pred
    dh = d[..., :, 1:] - d[..., :, :-1]
    dv = d[..., 1:, :] - d[..., :-1, :]
    return dh.pow(2).flatten(1).sum(1) + dv.pow(2).flatten(1).sum(1)


TERMS = {"l2", "hist", "mah", "grad"}


def decoder_loss(
    pred: Tensor,
    target: Tensor,
    stats: ColorStats,
    *,
    weights: dict[str, float] | None = None,
    impl: str = "auto",
) -> Tensor:
    """Weighted sum of the paper's decoder-loss terms per sample, ``(B,)``, in one pass.

    This is what the registered decoder losses ``l2``, ``hist``, ``mah``, ``grad`` and
    ``paper`` (:mod:`colorkit_paper.decoder_losses`) compute; methods and users reach it
    through those registered names. ``weights`` maps term names to their lambda; default
    :data:`PAPER_WEIGHTS` (eq. 4).

    ``impl``: ``"torch"`` (this module's reference, the test oracle), ``"triton"`` (the fused
    kernels of :mod:`colorkit_paper.fused`: CUDA tensors, or CPU under ``TRITON_INTERPRET=1``;
    fp32/fp16/bf16; differentiable in ``pred`` only, ``target`` is treated as data) or
    ``"auto"``: the environment variable ``COLORKIT_LOSS_IMPL=torch|triton`` if set, else
    Triton for CUDA tensors when triton imports, else torch.
    """
    weights = dict(PAPER_WEIGHTS if weights is None else weights)
    unknown = set(weights) - TERMS
    if unknown:
        raise ValueError(f"unknown decoder-loss terms {sorted(unknown)}; expected some of {sorted(TERMS)}")
    from colorkit_paper.fused import fused_decoder_loss, resolve_impl

    if resolve_impl(impl, pred, target) == "triton":
        return fused_decoder_loss(pred, target, stats, weights)
    return weighted_terms(pred, target, stats, weights)


def weighted_terms(pred: Tensor, target: Tensor, stats: ColorStats, weights: dict[str, float]) -> Tensor:
    """The torch reference of :func:`decoder_loss`, term by term, ``(B,)``."""
    total = pred.new_zeros(pred.shape[0])
    if weights.get("l2"):
        total = total + weights["l2"] * l2_loss(pred, target)
    if weights.get("hist"):
        total = total + weights["hist"] * hist_loss(pred, target, stats.weight_of(target))
    if weights.get("mah"):
        total = total + weights["mah"] * mah_loss(pred, target, stats.pca_components, stats.pca_variances)
    if weights.get("grad"):
        total = total + weights["grad"] * grad_loss(pred, target)
    return total
