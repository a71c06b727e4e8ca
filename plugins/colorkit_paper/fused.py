"""Fused Triton decoder loss of Deshpande et al. (CVPR 2017), eq. (4), with its gradient.

Computes, per sample ``b`` of ``pred``, ``target`` ``(B, 2, H, W)`` (ab / 128 units),

    L_b = w_hist L_hist + w_mah L_mah + w_grad L_grad + w_l2 L_l2

exactly as :mod:`colorkit_paper.losses` (the torch reference and test oracle) defines the
terms, and ``dL/dpred``. Notation ``d = C - f = target - pred`` flattened to ``2HW``
(a-plane then b-plane), ``P`` the ``(K, 2HW)`` orthonormal PCA rows, ``s_k`` their variances.

Kernels (all accumulate in fp32; inputs may be fp32, fp16 or bf16):

1. ``_fwd_partials``: grid ``(n_chunks, n_btiles)``; a program reads a ``(BLOCK_B, BLOCK_P)``
   tile of pixels of ``pred`` and ``target`` (both planes) once, and from it
   - looks up the colourfulness weight of the target pixel's ab cell in the ``(23, 23)``
     table (in global memory; the cell rule of ``colorkit.core.stats.ab_to_bin``, the one
     ``ColorStats.weight_of`` uses: nearest centre, halves up, edge cells beyond the grid),
   - sums ``w_p ||d_p||^2`` (hist), ``||d||^2`` (l2 and the Mahalanobis residual),
     the forward differences of ``d`` (grad; the right and lower neighbours are re-read
     with masks, which hit in cache),
   - the ``K`` projections ``d . P_k`` with one ``tl.dot`` per plane against a
     ``(K, BLOCK_P)`` tile of ``P`` that is shared by the ``BLOCK_B`` samples of the tile;
   and writes the partial sums to ``(n_chunks, B, KP)`` and ``(n_chunks, B, 4)`` buffers.
2. ``_fwd_finish``: one program per ``BLOCK_B`` samples sums the partials in a fixed order
   (deterministic, no atomics), forms ``L_b`` and the two per-sample coefficients the
   gradient needs (``coef_k`` and ``dcoef`` below). ``residual = ||d||^2 - sum_k proj_k^2``
   is clamped at 0 as in the reference (and its gradient dropped where it clamps).
3. ``_bwd``: recomputes ``d`` tile by tile (one more read of ``pred``, ``target``, ``P``)
   and writes ``dL/dpred = -g_b dL/dd`` in ``pred``'s dtype, where

       dL/dd = 2 w_hist w_p d + dcoef_b d + sum_k coef_bk P_k - 2 w_grad div(grad d)
       coef_bk = 2 w_mah (1/s_k - r_b/s_K) proj_bk,   dcoef_b = 2 w_l2 + 2 w_mah r_b / s_K

   (``r_b`` = 1 unless the residual clamped). The gradient is recomputed in backward rather
   than computed in forward and saved (Liger's choice): the forward cannot produce it in
   the same pass (it needs the finished projections), a saved gradient costs a ``(B, 2, H, W)``
   buffer and a second read-modify-write to scale by ``grad_output``, and a forward-only
   call (evaluation) would pay for it needlessly.

The gradient with respect to ``target`` is not computed: the target is data and treated as
a constant (``None`` is returned for it, as for the statistics).

Kernels are ``triton.jit``-ed lazily, on first use, for the interpret mode in force at that
moment (``TRITON_INTERPRET=1`` runs them on CPU tensors with the Triton interpreter), so
importing this module never fails and never fixes the mode.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

try:  # guarded import: the torch reference is the fallback
    import triton
    import triton.language as tl

    _triton_importable = True
    _triton_import_error: Exception | None = None
except Exception as exc:  # pragma: no cover - depends on the environment
    triton = None  # type: ignore[assignment]
    tl = None  # type: ignore[assignment]
    _triton_importable = False
    _triton_import_error = exc

from colorkit.core.color import AB_SCALE
from colorkit.core.stats import BIN_MIN, BIN_STEP

if TYPE_CHECKING:  # pragma: no cover
    from colorkit.core.stats import ColorStats

__all__ = [
    "triton_available",
    "triton_interpret",
    "check_triton_usable",
    "resolve_impl",
    "fused_decoder_loss",
    "FusedDecoderLoss",
]

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
IMPL_ENV = "COLORKIT_LOSS_IMPL"


def triton_interpret() -> bool:
    """Whether ``TRITON_INTERPRET=1`` is set now (kernels then run on CPU tensors)."""
    if _triton_importable:
        try:
            return bool(triton.knobs.runtime.interpret)  # what triton.jit itself reads
        except AttributeError:  # pragma: no cover - triton < 3.4 has no knobs
            pass
    return os.environ.get("TRITON_INTERPRET", "0").lower() in {"1", "true", "on", "yes"}


#: Triton imports and can run here: a CUDA device, or ``TRITON_INTERPRET=1`` (at import time;
#: :func:`check_triton_usable` re-checks for a given tensor at call time).
triton_available: bool = _triton_importable and (torch.cuda.is_available() or triton_interpret())


def check_triton_usable(t: Tensor) -> None:
    """Raise a ``RuntimeError`` saying why the Triton loss cannot run on ``t``, if it cannot."""
    if not _triton_importable:
        raise RuntimeError(
            f"impl='triton' needs the triton package, which failed to import: {_triton_import_error!r}; "
            "use impl='torch' or impl='auto'"
        )
    if t.device.type == "cuda":
        return
    if t.device.type == "cpu" and triton_interpret():
        return
    if t.device.type == "cpu":
        raise RuntimeError(
            "impl='triton' got CPU tensors; Triton kernels run on CUDA tensors, or on CPU only "
            "under the interpreter (set TRITON_INTERPRET=1 before the first call); use impl='torch' or 'auto'"
        )
    raise RuntimeError(f"impl='triton' supports CUDA tensors (or CPU with TRITON_INTERPRET=1), got device {t.device}")


def resolve_impl(impl: str, pred: Tensor, target: Tensor | None = None) -> str:
    """Map ``impl`` (``"auto"``, ``"torch"``, ``"triton"``) to ``"torch"`` or ``"triton"``.

    An explicit ``"torch"`` or ``"triton"`` is honoured. ``"auto"`` follows the environment
    variable ``COLORKIT_LOSS_IMPL`` (``torch`` or ``triton``) when it is set, and otherwise
    picks Triton only for CUDA tensors of a supported dtype when triton imports, and not
    when ``target`` requires grad (the kernel treats the target as data; the reference
    differentiates it).
    """
    if impl not in {"auto", "torch", "triton"}:
        raise ValueError(f"impl must be 'auto', 'torch' or 'triton', got {impl!r}")
    if impl == "auto":
        forced = os.environ.get(IMPL_ENV, "").strip().lower()
        if forced in {"torch", "triton"}:
            impl = forced
        elif forced not in {"", "auto"}:
            raise ValueError(f"{IMPL_ENV} must be 'torch', 'triton' or 'auto', got {forced!r}")
    if impl == "auto":
        ok = _triton_importable and pred.device.type == "cuda" and pred.dtype in SUPPORTED_DTYPES
        if target is not None:
            ok = ok and target.dtype in SUPPORTED_DTYPES and not target.requires_grad
        return "triton" if ok else "torch"
    return impl


# --------------------------------------------------------------------------------------------
# Kernels (plain functions, jit-ed lazily by _kernels()).
# --------------------------------------------------------------------------------------------


def _fwd_partials(
    pred_ptr, target_ptr, comp_ptr, table_ptr,  # (B, 2, H, W) x2, (K, 2HW) f32, (NA, NB) f32
    proj_part_ptr, sc_part_ptr,  # (n_chunks, B, KP) f32, (n_chunks, B, 4) f32
    B, W, HW, N, NA, NB,  # N = 2 * HW; (NA, NB) table shape
    ab_scale, bin_lo, bin_step,  # 128, BIN_MIN - BIN_STEP / 2 = -115, BIN_STEP = 10 (Lab units)
    HAS_HIST: tl.constexpr, HAS_MAH: tl.constexpr, HAS_GRAD: tl.constexpr,
    K: tl.constexpr, KP: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_P: tl.constexpr,
):
    pid_p = tl.program_id(0)
    pid_b = tl.program_id(1)
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)  # (BB,)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)  # (BP,) pixel index in the plane
    mb = offs_b < B
    mp = offs_p < HW
    m = mb[:, None] & mp[None, :]  # (BB, BP)
    base = offs_b.to(tl.int64)[:, None] * N + offs_p[None, :]  # a-plane; b-plane at +HW

    ta = tl.load(target_ptr + base, mask=m, other=0.0).to(tl.float32)
    tb = tl.load(target_ptr + base + HW, mask=m, other=0.0).to(tl.float32)
    da = ta - tl.load(pred_ptr + base, mask=m, other=0.0).to(tl.float32)
    db = tb - tl.load(pred_ptr + base + HW, mask=m, other=0.0).to(tl.float32)
    sq = da * da + db * db  # (BB, BP) ||d_p||^2
    sq_sum = tl.reduce(sq, 1, _add_combine)  # (BB,)

    sc = sc_part_ptr + (pid_p * B + offs_b) * 4
    if HAS_HIST:
        # colorkit.core.stats.ab_to_bin: i = clamp(floor((a * ab_scale - bin_lo) / bin_step), 0, NA - 1)
        # in fp32, the same operations (a * 128 exact; one rounded subtraction; IEEE division)
        ia = tl.floor(tl.math.div_rn(ta * ab_scale - bin_lo, bin_step))
        ib = tl.floor(tl.math.div_rn(tb * ab_scale - bin_lo, bin_step))
        ia = tl.minimum(tl.maximum(ia, 0.0), NA - 1.0).to(tl.int32)
        ib = tl.minimum(tl.maximum(ib, 0.0), NB - 1.0).to(tl.int32)
        w = tl.load(table_ptr + ia * NB + ib, mask=m, other=0.0)
        tl.store(sc + 0, tl.reduce(w * sq, 1, _add_combine), mask=mb)
    tl.store(sc + 1, sq_sum, mask=mb)
    if HAS_GRAD:
        col = offs_p % W
        mh = m & ((col < W - 1) & mp)[None, :]  # right neighbour exists
        mv = m & ((offs_p + W) < HW)[None, :]  # lower neighbour exists
        dha = (tl.load(target_ptr + base + 1, mask=mh, other=0.0).to(tl.float32)
               - tl.load(pred_ptr + base + 1, mask=mh, other=0.0).to(tl.float32)) - da
        dhb = (tl.load(target_ptr + base + HW + 1, mask=mh, other=0.0).to(tl.float32)
               - tl.load(pred_ptr + base + HW + 1, mask=mh, other=0.0).to(tl.float32)) - db
        dva = (tl.load(target_ptr + base + W, mask=mv, other=0.0).to(tl.float32)
               - tl.load(pred_ptr + base + W, mask=mv, other=0.0).to(tl.float32)) - da
        dvb = (tl.load(target_ptr + base + HW + W, mask=mv, other=0.0).to(tl.float32)
               - tl.load(pred_ptr + base + HW + W, mask=mv, other=0.0).to(tl.float32)) - db
        g = tl.where(mh, dha * dha + dhb * dhb, 0.0) + tl.where(mv, dva * dva + dvb * dvb, 0.0)
        tl.store(sc + 2, tl.reduce(g, 1, _add_combine), mask=mb)
    if HAS_MAH:
        offs_k = tl.arange(0, KP)
        pm = (offs_k < K)[:, None] & mp[None, :]
        pa_ptr = comp_ptr + offs_k[:, None] * N + offs_p[None, :]  # (KP, BP)
        pa = tl.load(pa_ptr, mask=pm, other=0.0)
        pb = tl.load(pa_ptr + HW, mask=pm, other=0.0)
        proj = tl.dot(da, tl.trans(pa), input_precision="ieee")  # (BB, KP)
        proj = tl.dot(db, tl.trans(pb), acc=proj, input_precision="ieee")
        out = proj_part_ptr + (pid_p * B + offs_b)[:, None] * KP + offs_k[None, :]
        tl.store(out, proj, mask=mb[:, None])


def _fwd_finish(
    proj_part_ptr, sc_part_ptr, var_ptr,  # partials, (K,) f32 variances
    loss_ptr, coef_ptr, dcoef_ptr,  # (B,) f32, (B, KP) f32, (B,) f32
    B, n_chunks, w_hist, w_mah, w_grad, w_l2,
    HAS_HIST: tl.constexpr, HAS_MAH: tl.constexpr, HAS_GRAD: tl.constexpr,
    K: tl.constexpr, KP: tl.constexpr, BLOCK_B: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_b = pid * BLOCK_B + tl.arange(0, BLOCK_B)
    mb = offs_b < B
    offs_k = tl.arange(0, KP)
    mk = offs_k < K
    acc_hist = tl.full([BLOCK_B], 0.0, tl.float32)
    acc_sq = tl.full([BLOCK_B], 0.0, tl.float32)
    acc_grad = tl.full([BLOCK_B], 0.0, tl.float32)
    acc_proj = tl.full([BLOCK_B, KP], 0.0, tl.float32)
    for c in range(0, n_chunks):
        sc = sc_part_ptr + (c * B + offs_b) * 4
        if HAS_HIST:
            acc_hist += tl.load(sc + 0, mask=mb, other=0.0)
        acc_sq += tl.load(sc + 1, mask=mb, other=0.0)
        if HAS_GRAD:
            acc_grad += tl.load(sc + 2, mask=mb, other=0.0)
        if HAS_MAH:
            pp = proj_part_ptr + (c * B + offs_b)[:, None] * KP + offs_k[None, :]
            acc_proj += tl.load(pp, mask=mb[:, None], other=0.0)
    loss = w_l2 * acc_sq
    dcoef = tl.full([BLOCK_B], 0.0, tl.float32) + 2.0 * w_l2
    if HAS_HIST:
        loss += w_hist * acc_hist
    if HAS_GRAD:
        loss += w_grad * acc_grad
    if HAS_MAH:
        var = tl.load(var_ptr + offs_k, mask=mk, other=1.0)  # (KP,)
        var_last = tl.load(var_ptr + K - 1)
        psq = acc_proj * acc_proj
        raw_res = acc_sq - tl.reduce(psq, 1, _add_combine)
        res = tl.maximum(raw_res, 0.0)
        mah = tl.reduce(tl.where(mk[None, :], psq / var[None, :], 0.0), 1, _add_combine) + res / var_last
        loss += w_mah * mah
        inv_last = tl.where(raw_res > 0.0, 1.0 / var_last, 0.0)  # clamp_min passes no gradient at <= 0
        coef = 2.0 * w_mah * (1.0 / var[None, :] - inv_last[:, None]) * acc_proj
        coef = tl.where(mk[None, :], coef, 0.0)
        tl.store(coef_ptr + offs_b[:, None] * KP + offs_k[None, :], coef, mask=mb[:, None])
        dcoef += 2.0 * w_mah * inv_last
    tl.store(loss_ptr + offs_b, loss, mask=mb)
    tl.store(dcoef_ptr + offs_b, dcoef, mask=mb)


def _bwd(
    pred_ptr, target_ptr, comp_ptr, table_ptr,
    coef_ptr, dcoef_ptr, gout_ptr, grad_ptr,  # (B, KP), (B,), (B,) f32; (B, 2, H, W) pred dtype
    B, W, HW, N, NA, NB, ab_scale, bin_lo, bin_step, w_hist, w_grad,
    HAS_HIST: tl.constexpr, HAS_MAH: tl.constexpr, HAS_GRAD: tl.constexpr,
    K: tl.constexpr, KP: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_P: tl.constexpr,
):
    pid_p = tl.program_id(0)
    pid_b = tl.program_id(1)
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    mb = offs_b < B
    mp = offs_p < HW
    m = mb[:, None] & mp[None, :]
    base = offs_b.to(tl.int64)[:, None] * N + offs_p[None, :]

    ta = tl.load(target_ptr + base, mask=m, other=0.0).to(tl.float32)
    tb = tl.load(target_ptr + base + HW, mask=m, other=0.0).to(tl.float32)
    da = ta - tl.load(pred_ptr + base, mask=m, other=0.0).to(tl.float32)
    db = tb - tl.load(pred_ptr + base + HW, mask=m, other=0.0).to(tl.float32)

    dcoef = tl.load(dcoef_ptr + offs_b, mask=mb, other=0.0)[:, None]  # (BB, 1)
    ga = dcoef * da  # dL/dd, a-plane
    gb = dcoef * db
    if HAS_HIST:
        ia = tl.floor(tl.math.div_rn(ta * ab_scale - bin_lo, bin_step))  # as in _fwd_partials
        ib = tl.floor(tl.math.div_rn(tb * ab_scale - bin_lo, bin_step))
        ia = tl.minimum(tl.maximum(ia, 0.0), NA - 1.0).to(tl.int32)
        ib = tl.minimum(tl.maximum(ib, 0.0), NB - 1.0).to(tl.int32)
        w2 = 2.0 * w_hist * tl.load(table_ptr + ia * NB + ib, mask=m, other=0.0)
        ga += w2 * da
        gb += w2 * db
    if HAS_MAH:
        offs_k = tl.arange(0, KP)
        pm = (offs_k < K)[:, None] & mp[None, :]
        pa_ptr = comp_ptr + offs_k[:, None] * N + offs_p[None, :]  # (KP, BP)
        coef = tl.load(coef_ptr + offs_b[:, None] * KP + offs_k[None, :], mask=mb[:, None], other=0.0)
        ga = tl.dot(coef, tl.load(pa_ptr, mask=pm, other=0.0), acc=ga, input_precision="ieee")
        gb = tl.dot(coef, tl.load(pa_ptr + HW, mask=pm, other=0.0), acc=gb, input_precision="ieee")
    if HAS_GRAD:
        # d/dd of sum (d[x+1]-d[x])^2 + (d[y+1]-d[y])^2 = 2 * (4-neighbour Laplacian with
        # Neumann boundaries, negated): sum over existing neighbours n of (d - d_n)
        col = offs_p % W
        ml = m & (col > 0)[None, :]
        mr = m & (col < W - 1)[None, :]
        mu = m & (offs_p >= W)[None, :]
        md = m & ((offs_p + W) < HW)[None, :]
        lap_a = tl.full([BLOCK_B, BLOCK_P], 0.0, tl.float32)
        lap_b = tl.full([BLOCK_B, BLOCK_P], 0.0, tl.float32)
        # left
        na = (tl.load(target_ptr + base - 1, mask=ml, other=0.0).to(tl.float32)
              - tl.load(pred_ptr + base - 1, mask=ml, other=0.0).to(tl.float32))
        nb = (tl.load(target_ptr + base + HW - 1, mask=ml, other=0.0).to(tl.float32)
              - tl.load(pred_ptr + base + HW - 1, mask=ml, other=0.0).to(tl.float32))
        lap_a += tl.where(ml, da - na, 0.0)
        lap_b += tl.where(ml, db - nb, 0.0)
        # right
        na = (tl.load(target_ptr + base + 1, mask=mr, other=0.0).to(tl.float32)
              - tl.load(pred_ptr + base + 1, mask=mr, other=0.0).to(tl.float32))
        nb = (tl.load(target_ptr + base + HW + 1, mask=mr, other=0.0).to(tl.float32)
              - tl.load(pred_ptr + base + HW + 1, mask=mr, other=0.0).to(tl.float32))
        lap_a += tl.where(mr, da - na, 0.0)
        lap_b += tl.where(mr, db - nb, 0.0)
        # up
        na = (tl.load(target_ptr + base - W, mask=mu, other=0.0).to(tl.float32)
              - tl.load(pred_ptr + base - W, mask=mu, other=0.0).to(tl.float32))
        nb = (tl.load(target_ptr + base + HW - W, mask=mu, other=0.0).to(tl.float32)
              - tl.load(pred_ptr + base + HW - W, mask=mu, other=0.0).to(tl.float32))
        lap_a += tl.where(mu, da - na, 0.0)
        lap_b += tl.where(mu, db - nb, 0.0)
        # down
        na = (tl.load(target_ptr + base + W, mask=md, other=0.0).to(tl.float32)
              - tl.load(pred_ptr + base + W, mask=md, other=0.0).to(tl.float32))
        nb = (tl.load(target_ptr + base + HW + W, mask=md, other=0.0).to(tl.float32)
              - tl.load(pred_ptr + base + HW + W, mask=md, other=0.0).to(tl.float32))
        lap_a += tl.where(md, da - na, 0.0)
        lap_b += tl.where(md, db - nb, 0.0)
        ga += (2.0 * w_grad) * lap_a
        gb += (2.0 * w_grad) * lap_b
    # dL/dpred = -g_b dL/dd, since d = target - pred
    gout = -tl.load(gout_ptr + offs_b, mask=mb, other=0.0)[:, None]
    out_ty = grad_ptr.dtype.element_ty
    tl.store(grad_ptr + base, (gout * ga).to(out_ty), mask=m)
    tl.store(grad_ptr + base + HW, (gout * gb).to(out_ty), mask=m)


def _add(a, b):
    return a + b


# Kernels use only builtins: tl.reduce(x, axis, _add_combine), not tl.sum, and tl.full, not
# tl.zeros: those are triton.jit functions, fixed to interpret mode or not when triton.language was first
# imported, while tl.reduce is a builtin and the interpreter only calls ``_add_combine.fn``.
# So the kernels run whichever mode triton was imported under.
_add_combine = triton.runtime.jit.JITFunction(_add) if _triton_importable else None

_KERNELS: dict[bool, tuple[Any, Any, Any]] = {}


def _kernels() -> tuple[Any, Any, Any]:
    """The three kernels, jit-ed for the interpret mode in force now (cached per mode)."""
    mode = triton_interpret()  # triton.jit reads TRITON_INTERPRET when it decorates
    if mode not in _KERNELS:
        _KERNELS[mode] = (triton.jit(_fwd_partials), triton.jit(_fwd_finish), triton.jit(_bwd))
    return _KERNELS[mode]


# --------------------------------------------------------------------------------------------
# Host side
# --------------------------------------------------------------------------------------------


#: (ab_scale, bin_lo, bin_step) of colorkit.core.stats.ab_to_bin, the rule ColorStats.weight_of uses:
#: cell = clamp(floor((ab * 128 - (BIN_MIN - BIN_STEP / 2)) / BIN_STEP), 0, G - 1), i.e. the
#: nearest bin centre with halves rounded up. torch divides by the Python scalar BIN_STEP
#: exactly on CPU but multiplies by fp32(1 / 10) on CUDA; the kernel divides exactly
#: (div_rn). The two give the same cell for every fp32 value in [-130, 130] Lab (checked
#: exhaustively; beyond, both clamp to the edge cell), so the kernel matches weight_of on
#: both devices, for fp16/bf16 targets too (weight_of upcasts to fp32 first, as the kernel).
_BIN_RULE = (float(AB_SCALE), float(BIN_MIN - BIN_STEP / 2), float(BIN_STEP))


def _next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


CONFIG_ENV = "COLORKIT_FUSED_CONFIG"


def _launch_config(B: int, HW: int) -> tuple[int, int, int]:
    """``(BLOCK_B, BLOCK_P, num_warps)``; ``COLORKIT_FUSED_CONFIG="BB,BP,NW"`` overrides (tuning).

    On a GPU ``tl.dot`` needs every tile side >= 16. A ``BLOCK_B`` sample tile shares one
    ``(K, BLOCK_P)`` tile of ``P``, so larger ``BLOCK_B`` reads ``P`` from L2 fewer times.
    Chosen from register counts of sm_90 builds (no spills: forward ~100, backward ~215
    registers at 32 x 32, 8 warps; 32 x 64 or 4 warps spill in the backward); not yet timed
    on hardware (benchmarks/bench_decoder_loss.py --config sweeps it). Interpreter: few,
    large programs (each program is a Python call), and no minimum tile side.
    """
    forced = os.environ.get(CONFIG_ENV)
    if forced:
        try:
            bb, bp, nw = (int(v) for v in forced.split(","))
        except ValueError as exc:
            raise ValueError(f"{CONFIG_ENV} must be 'BLOCK_B,BLOCK_P,num_warps', got {forced!r}") from exc
        return bb, bp, nw
    if triton_interpret():
        return min(32, _next_pow2(B)), max(16, min(1024, _next_pow2(HW))), 4
    if B >= 32:
        return 32, 32, 8
    return 16, 32, 4


_DEVICE_CACHE: weakref.WeakKeyDictionary[Tensor, tuple[int, torch.device, Tensor]] = weakref.WeakKeyDictionary()


def _on_device(t: Tensor, device: torch.device) -> Tensor:
    """``t`` as contiguous float32 on ``device``; copies of a tensor held elsewhere are cached
    (keyed on the tensor and its version counter) so a CPU ``ColorStats`` is not re-uploaded
    at every step."""
    if t.device == device and t.dtype == torch.float32 and t.is_contiguous():
        return t
    hit = _DEVICE_CACHE.get(t)
    if hit is not None and hit[0] == t._version and hit[1] == device:
        return hit[2]
    out = t.detach().to(device=device, dtype=torch.float32).contiguous()
    try:
        _DEVICE_CACHE[t] = (t._version, device, out)
    except TypeError:  # pragma: no cover - tensors are weak-referenceable
        pass
    return out


def _forward(pred: Tensor, target: Tensor, comp: Tensor, var: Tensor, table: Tensor,
             w: tuple[float, float, float, float]) -> tuple[Tensor, Tensor, Tensor]:
    """Launch kernels 1-2. Returns ``loss (B,) f32, coef (B, KP) f32, dcoef (B,) f32``."""
    w_hist, w_mah, w_grad, w_l2 = w
    B, _, H, W = pred.shape
    HW = H * W
    K = comp.shape[0]
    KP = max(16, _next_pow2(K))
    BB, BP, nw = _launch_config(B, HW)
    n_chunks = triton.cdiv(HW, BP)
    dev = pred.device
    has = dict(HAS_HIST=w_hist != 0.0, HAS_MAH=w_mah != 0.0, HAS_GRAD=w_grad != 0.0)
    proj_part = torch.empty((n_chunks, B, KP), device=dev, dtype=torch.float32)
    # partials and coef are written only for the terms present, and read only for those
    sc_part = torch.empty((n_chunks, B, 4), device=dev, dtype=torch.float32)  # hist, ||d||^2, grad, -
    loss = torch.empty(B, device=dev, dtype=torch.float32)
    coef = torch.empty((B, KP), device=dev, dtype=torch.float32)
    dcoef = torch.empty(B, device=dev, dtype=torch.float32)
    k_part, k_finish, _ = _kernels()
    k_part[(n_chunks, triton.cdiv(B, BB))](
        pred, target, comp, table, proj_part, sc_part,
        B, W, HW, 2 * HW, table.shape[0], table.shape[1], *_BIN_RULE,
        K=K, KP=KP, BLOCK_B=BB, BLOCK_P=BP, num_warps=nw, **has,
    )
    k_finish[(triton.cdiv(B, BB),)](
        proj_part, sc_part, var, loss, coef, dcoef,
        B, n_chunks, float(w_hist), float(w_mah), float(w_grad), float(w_l2),
        K=K, KP=KP, BLOCK_B=BB, num_warps=nw, **has,
    )
    return loss, coef, dcoef


def _backward(pred: Tensor, target: Tensor, comp: Tensor, table: Tensor, coef: Tensor,
              dcoef: Tensor, grad_out: Tensor, w: tuple[float, float, float, float]) -> Tensor:
    """Launch kernel 3: ``dL/dpred`` ``(B, 2, H, W)`` in ``pred``'s dtype."""
    w_hist, w_mah, w_grad, _ = w
    B, _, H, W = pred.shape
    HW = H * W
    K = comp.shape[0]
    KP = coef.shape[1]
    BB, BP, nw = _launch_config(B, HW)
    # The interpreter rounds fp32 -> bf16 toward zero (GPUs round to nearest even): there the
    # kernel writes fp32 and torch rounds, so both paths return the same bits.
    out_dtype = torch.float32 if triton_interpret() else pred.dtype
    grad = torch.empty(pred.shape, device=pred.device, dtype=out_dtype)
    gout = grad_out.detach().to(torch.float32).contiguous()
    _, _, k_bwd = _kernels()
    k_bwd[(triton.cdiv(HW, BP), triton.cdiv(B, BB))](
        pred, target, comp, table, coef, dcoef, gout, grad,
        B, W, HW, 2 * HW, table.shape[0], table.shape[1], *_BIN_RULE, float(w_hist), float(w_grad),
        HAS_HIST=w_hist != 0.0, HAS_MAH=w_mah != 0.0, HAS_GRAD=w_grad != 0.0,
        K=K, KP=KP, BLOCK_B=BB, BLOCK_P=BP, num_warps=nw,
    )
    return grad.to(pred.dtype)


class FusedDecoderLoss(torch.autograd.Function):
    """Autograd wrapper: ``apply(pred, target, comp, var, table, w_hist, w_mah, w_grad, w_l2)``
    with contiguous ``pred``/``target`` and float32 contiguous stats on their device.
    Returns ``(B,)`` in the promoted dtype of ``pred`` and ``target``; gradient for ``pred`` only."""

    @staticmethod
    def forward(ctx, pred, target, comp, var, table, w_hist, w_mah, w_grad, w_l2):  # type: ignore[override]
        w = (float(w_hist), float(w_mah), float(w_grad), float(w_l2))
        loss, coef, dcoef = _forward(pred, target, comp, var, table, w)
        ctx.save_for_backward(pred, target, comp, table, coef, dcoef)
        ctx.w = w
        return loss.to(torch.promote_types(pred.dtype, target.dtype))

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        pred, target, comp, table, coef, dcoef = ctx.saved_tensors
        grad_pred = None
        if ctx.needs_input_grad[0]:
            grad_pred = _backward(pred, target, comp, table, coef, dcoef, grad_out, ctx.w)
        # target is data: treated as a constant (no gradient), as are the statistics
        return grad_pred, None, None, None, None, None, None, None, None


def fused_decoder_loss(pred: Tensor, target: Tensor, stats: ColorStats,
                       weights: dict[str, float]) -> Tensor:
    """Triton form of :func:`colorkit_paper.losses.decoder_loss`, per sample ``(B,)``.

    ``pred``, ``target``: ``(B, 2, H, W)``, fp32/fp16/bf16 (any strides; made contiguous),
    on CUDA, or on CPU under ``TRITON_INTERPRET=1``. ``weights``: validated term lambdas
    (missing terms are 0). Differentiable in ``pred`` only: ``target`` is treated as data.
    """
    check_triton_usable(pred)
    if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 2:
        raise ValueError(
            f"decoder loss expects pred and target of shape (B, 2, H, W); "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if target.device != pred.device:
        raise ValueError(f"pred is on {pred.device} but target is on {target.device}")
    for name, t in (("pred", pred), ("target", target)):
        if t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(
                f"impl='triton' supports float32, float16 and bfloat16; {name} is {t.dtype} (use impl='torch')"
            )
    B, _, H, W = pred.shape
    dev = pred.device
    w = tuple(float(weights.get(k) or 0.0) for k in ("hist", "mah", "grad", "l2"))
    comp = _on_device(stats.pca_components, dev)
    var = _on_device(stats.pca_variances, dev)
    table = _on_device(stats.bin_weights, dev)
    if w[1] != 0.0 and (comp.dim() != 2 or comp.shape[1] != 2 * H * W or var.shape != (comp.shape[0],)):
        raise ValueError(
            f"stats.pca_components must be (K, 2*H*W) = (K, {2 * H * W}) with pca_variances (K,); "
            f"got {tuple(comp.shape)} and {tuple(var.shape)}"
        )
    if w[0] != 0.0 and table.dim() != 2:
        raise ValueError(f"stats.bin_weights must be a 2-D table, got shape {tuple(table.shape)}")
    if B == 0 or not any(w):  # as the reference: no term, a constant zero
        return pred.new_zeros(B)
    return FusedDecoderLoss.apply(pred.contiguous(), target.detach().contiguous(), comp, var, table, *w)
