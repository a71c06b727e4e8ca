"""The fused Triton decoder loss (colorkit_paper.fused) against the torch reference.

On a machine without CUDA the kernels run under the Triton interpreter: a module-scoped
fixture sets ``TRITON_INTERPRET=1`` for this module only and restores it afterwards. The
kernels are ``triton.jit``-ed lazily, per interpret mode, so the order in which modules
import triton or colorkit_paper does not matter. Shapes are small and odd (the interpreter
is slow); gradients use a random upstream ``grad_output``.
"""

from __future__ import annotations

import os

import pytest
import torch

triton = pytest.importorskip("triton", reason="triton does not import here; the fused loss cannot run")

from colorkit_paper import fused  # noqa: E402
from colorkit_paper.losses import PAPER_WEIGHTS, decoder_loss  # noqa: E402

from colorkit.core.stats import BIN_MIN, BIN_STEP, ColorStats, G  # noqa: E402

pytestmark = pytest.mark.triton

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True, scope="module")
def _interpret_on_cpu():
    """Run the kernels with the Triton interpreter when there is no GPU (this module only)."""
    prev = os.environ.get("TRITON_INTERPRET")
    if DEVICE == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    yield
    if prev is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = prev


@pytest.fixture(autouse=True)
def _no_forced_impl(monkeypatch):
    monkeypatch.delenv(fused.IMPL_ENV, raising=False)


def make_stats(H: int, W: int, K: int = 20, seed: int = 0) -> ColorStats:
    """A :class:`colorkit.core.stats.ColorStats` with random orthonormal components (QR),
    descending variances and a random (23, 23) weight table, on DEVICE."""
    g = torch.Generator().manual_seed(seed)
    N = 2 * H * W
    K = min(K, N)
    q, _ = torch.linalg.qr(torch.randn(N, K, generator=g, dtype=torch.float64))
    var = torch.sort(torch.rand(K, generator=g, dtype=torch.float64) * 0.5 + 0.01, descending=True).values
    table = torch.rand(G, G, generator=g) * 4 + 0.25
    prob = torch.full((G, G), 1.0 / (G * G))
    return ColorStats(
        image_size=H,
        pca_components=q.t().float().contiguous().to(DEVICE),
        pca_variances=var.float().to(DEVICE),
        pca_mean=torch.zeros(N, device=DEVICE),
        bin_prob=prob,
        bin_prob_smoothed=prob,
        bin_weights=table.to(DEVICE),
        in_gamut=torch.ones(G, G, dtype=torch.bool),
    )


def make_inputs(shape, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=g) * 1.8 - 0.9
    pred = target + 0.3 * torch.randn(shape, generator=g)
    return pred.to(DEVICE, dtype), target.to(DEVICE, dtype)


def loss_and_grad(pred, target, stats, weights, impl, gout):
    pred = pred.detach().clone().requires_grad_(True)
    loss = decoder_loss(pred, target, stats, weights=weights, impl=impl)
    if not loss.requires_grad:  # no term: a constant
        return loss, torch.zeros_like(pred)
    loss.backward(gout.to(loss.dtype))
    return loss.detach(), pred.grad


def assert_matches_fp32(pred, target, stats, weights, seed=0):
    gout = torch.randn(pred.shape[0], generator=torch.Generator().manual_seed(seed)).to(DEVICE)
    lk, gk = loss_and_grad(pred, target, stats, weights, "triton", gout)
    lr, gr = loss_and_grad(pred, target, stats, weights, "torch", gout)
    assert lk.dtype == lr.dtype and gk.dtype == pred.dtype and gk.shape == pred.shape
    torch.testing.assert_close(lk, lr, rtol=1e-4, atol=1e-6 * max(1.0, lr.abs().max().item()))
    torch.testing.assert_close(gk, gr, rtol=1e-4, atol=1e-5 * max(1e-3, gr.abs().max().item()))


ALL = {"hist": 1.0, "mah": 0.1, "grad": 1e-3, "l2": 0.5}
WEIGHT_SETS = [
    PAPER_WEIGHTS,
    ALL,
    {"hist": 0.0, "mah": 0.2, "grad": 0.0, "l2": 1.0},
    {"grad": 2.0},
    {"hist": 1.0},
    {"mah": 1.0},
    {"l2": 1.0, "grad": 0.0},
    {},
]


@pytest.mark.parametrize("shape", [(1, 2, 5, 7), (3, 2, 16, 16), (2, 2, 13, 64), (4, 2, 1, 9), (2, 2, 11, 1)])
def test_fp32_matches_reference(shape):
    stats = make_stats(shape[2], shape[3])
    pred, target = make_inputs(shape)
    assert_matches_fp32(pred, target, stats, ALL)


@pytest.mark.parametrize("weights", WEIGHT_SETS, ids=lambda w: "-".join(f"{k}{v:g}" for k, v in w.items()) or "none")
def test_weight_dicts_including_zero_terms(weights):
    stats = make_stats(6, 9)
    pred, target = make_inputs((2, 2, 6, 9), seed=1)
    assert_matches_fp32(pred, target, stats, weights)


def test_many_chunks_and_sample_tiles(monkeypatch):
    """Small tiles, as on a GPU: chunk borders cut rows, neighbours cross chunks, 2 sample tiles."""
    monkeypatch.setenv(fused.CONFIG_ENV, "16,16,4")
    stats = make_stats(7, 9)
    pred, target = make_inputs((17, 2, 7, 9), seed=2)
    assert_matches_fp32(pred, target, stats, ALL)


def test_batch_of_one_paper_weights():
    stats = make_stats(8, 8)
    pred, target = make_inputs((1, 2, 8, 8), seed=3)
    assert_matches_fp32(pred, target, stats, None)


def _edge_values() -> torch.Tensor:
    """ab values (fp32, ab/128) on every cell edge (-115, -105, ..., 5, 15, ..., 115 Lab),
    one ulp either side of each edge, on every centre, and beyond the grid (+-125)."""
    lab = torch.arange(-125.0, 126.0, 5.0)
    edges = torch.arange(BIN_MIN - BIN_STEP / 2, -BIN_MIN + BIN_STEP, BIN_STEP) / 128
    up = torch.nextafter(edges, torch.tensor(2.0))
    down = torch.nextafter(edges, torch.tensor(-2.0))
    return torch.cat([lab / 128, up, down]).float()


EDGES = _edge_values()


def test_bin_lookup_matches_weight_of_at_cell_edges():
    """Pixel (i, j) has target ab = (EDGES[i], EDGES[j]) and d = (1, 0), so with the hist
    term alone dL/dpred there is -2 w(target pixel): the in-kernel lookup is checked
    exactly against ColorStats.weight_of."""
    a, b = torch.meshgrid(EDGES, EDGES.flip(0), indexing="ij")
    target = torch.stack([a, b])[None].to(DEVICE)  # (1, 2, E, E)
    pred = target - torch.tensor([1.0, 0.0], device=DEVICE)[None, :, None, None]
    stats = make_stats(1, 1, K=2)
    loss, grad = loss_and_grad(pred, target, stats, {"hist": 1.0}, "triton", torch.ones(1, device=DEVICE))
    w = stats.weight_of(target)  # (1, E, E)
    d = (target - pred)[:, 0]  # 1 up to rounding
    assert torch.equal(grad[:, 0], -(2 * w * d))
    assert torch.equal(grad[:, 1], torch.zeros_like(w))
    torch.testing.assert_close(loss, (w * d * d).sum().reshape(1), rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_bin_lookup_low_precision_targets(dtype):
    """weight_of upcasts ab to fp32 before binning; so does the kernel."""
    a, b = torch.meshgrid(EDGES, EDGES.flip(0), indexing="ij")
    target = torch.stack([a, b])[None].to(DEVICE, dtype)
    pred = target - torch.tensor([1.0, 0.0], device=DEVICE, dtype=dtype)[None, :, None, None]
    stats = make_stats(1, 1, K=2)
    _, grad = loss_and_grad(pred, target, stats, {"hist": 1.0}, "triton", torch.ones(1, device=DEVICE))
    d = (target.float() - pred.float())[:, 0]
    expected = (-(2 * stats.weight_of(target.float()) * d)).to(dtype)
    assert torch.equal(grad[:, 0], expected)


def test_image_with_pixels_on_bin_edges():
    g = torch.Generator().manual_seed(4)
    H, W = 9, 13
    target = EDGES[torch.randint(len(EDGES), (2, 2, H, W), generator=g)]
    pred = target + 0.1 * torch.randn(target.shape, generator=g)
    assert_matches_fp32(pred.to(DEVICE), target.to(DEVICE), make_stats(H, W), ALL)


def test_non_contiguous_inputs():
    stats = make_stats(10, 7)
    g = torch.Generator().manual_seed(5)
    pred = (0.5 * torch.randn(3, 2, 7, 10, generator=g)).to(DEVICE).transpose(-1, -2)  # (3, 2, 10, 7)
    target = (torch.rand(3, 2, 10, 14, generator=g) - 0.5).to(DEVICE)[..., ::2]
    assert not pred.is_contiguous() and not target.is_contiguous()
    assert_matches_fp32(pred, target, stats, ALL)


def test_residual_clamp_when_difference_lies_in_the_span():
    """d in the span of P: the residual is ~0 and may round below 0 (then clamped)."""
    H, W = 6, 6
    stats = make_stats(H, W)
    _, target = make_inputs((3, 2, H, W), seed=6)
    c = torch.randn(3, stats.pca_components.shape[0], generator=torch.Generator().manual_seed(6)).to(DEVICE)
    pred = target - (c @ stats.pca_components).reshape(target.shape)
    weights = {"mah": 1.0}
    gout = torch.ones(3, device=DEVICE)
    lk, gk = loss_and_grad(pred, target, stats, weights, "triton", gout)
    lr, gr = loss_and_grad(pred, target, stats, weights, "torch", gout)
    torch.testing.assert_close(lk, lr, rtol=1e-3, atol=1e-3 * lr.abs().max().item())
    torch.testing.assert_close(gk, gr, rtol=1e-3, atol=1e-3 * gr.abs().max().item())


# flash-attention's rule: |kernel - ref_fp32| <= 2 |torch_same_dtype - ref_fp32| + atol
ATOL = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}  # relative to max |ref_fp32|


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(2, 2, 9, 11), (1, 2, 16, 16)])
def test_low_precision_within_flash_attention_rule(dtype, shape):
    stats = make_stats(shape[2], shape[3])
    pred, target = make_inputs(shape, seed=7, dtype=dtype)
    gout = torch.randn(shape[0], generator=torch.Generator().manual_seed(7)).to(DEVICE)
    lk, gk = loss_and_grad(pred, target, stats, ALL, "triton", gout)
    ls, gs = loss_and_grad(pred, target, stats, ALL, "torch", gout)
    l32, g32 = loss_and_grad(pred.float(), target.float(), stats, ALL, "torch", gout)
    assert lk.dtype == dtype and gk.dtype == dtype
    for k, s, r in ((lk, ls, l32), (gk, gs, g32)):
        err_k = (k.float() - r).abs()
        err_s = (s.float() - r).abs()
        assert (err_k <= 2 * err_s + ATOL[dtype] * r.abs().max()).all(), (err_k.max(), err_s.max())


def test_mixed_dtypes_promote_like_the_reference():
    stats = make_stats(5, 6)
    pred, target = make_inputs((2, 2, 5, 6), seed=8)
    gout = torch.ones(2, device=DEVICE)
    lk, gk = loss_and_grad(pred.to(torch.bfloat16), target, stats, ALL, "triton", gout)
    lr, _ = loss_and_grad(pred.to(torch.bfloat16), target, stats, ALL, "torch", gout)
    assert lk.dtype == lr.dtype == torch.float32 and gk.dtype == torch.bfloat16


def test_target_is_treated_as_data():
    stats = make_stats(4, 5)
    pred, target = make_inputs((2, 2, 4, 5), seed=9)
    pred.requires_grad_(True)
    target.requires_grad_(True)
    decoder_loss(pred, target, stats, impl="triton").sum().backward()
    assert pred.grad is not None and target.grad is None


# ---- dispatch -------------------------------------------------------------------------------


def test_auto_and_env_dispatch(monkeypatch):
    cpu = torch.zeros(1, 2, 3, 3)
    assert fused.resolve_impl("auto", cpu) == "torch"
    assert fused.resolve_impl("torch", cpu) == "torch"
    assert fused.resolve_impl("triton", cpu) == "triton"
    monkeypatch.setenv(fused.IMPL_ENV, "triton")
    assert fused.resolve_impl("auto", cpu) == "triton"
    assert fused.resolve_impl("torch", cpu) == "torch"  # an explicit argument wins
    monkeypatch.setenv(fused.IMPL_ENV, "torch")
    assert fused.resolve_impl("auto", torch.zeros(1, 2, 3, 3, device=DEVICE)) == "torch"
    monkeypatch.setenv(fused.IMPL_ENV, "cuda")
    with pytest.raises(ValueError, match="COLORKIT_LOSS_IMPL"):
        fused.resolve_impl("auto", cpu)
    with pytest.raises(ValueError, match="impl must be"):
        fused.resolve_impl("fast", cpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="auto picks Triton only for CUDA tensors")
def test_auto_picks_triton_on_cuda():
    x = torch.zeros(1, 2, 3, 3, device="cuda")
    assert fused.resolve_impl("auto", x) == "triton"
    assert fused.resolve_impl("auto", x, x.clone().requires_grad_(True)) == "torch"
    assert fused.resolve_impl("auto", x.double()) == "torch"


def test_env_forces_triton_through_decoder_loss(monkeypatch):
    stats = make_stats(4, 4)
    pred, target = make_inputs((2, 2, 4, 4), seed=11)
    calls = []
    real = fused.fused_decoder_loss
    monkeypatch.setattr(fused, "fused_decoder_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setenv(fused.IMPL_ENV, "triton")
    decoder_loss(pred, target, stats)
    assert calls == [1]
    monkeypatch.setenv(fused.IMPL_ENV, "torch")
    decoder_loss(pred, target, stats)
    assert calls == [1]


def test_triton_on_cpu_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    stats = make_stats(3, 3)
    pred, target = torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        decoder_loss(pred, target, stats, impl="triton")


def test_bad_inputs_are_clear_errors():
    stats = make_stats(3, 3)
    x = torch.zeros(1, 2, 3, 3, device=DEVICE)
    with pytest.raises(TypeError, match="float64"):
        decoder_loss(x.double(), x.double(), stats, impl="triton")
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        decoder_loss(x, x[:, :1], stats, impl="triton")
    with pytest.raises(ValueError, match="pca_components"):
        decoder_loss(
            torch.zeros(1, 2, 4, 4, device=DEVICE), torch.zeros(1, 2, 4, 4, device=DEVICE), stats, impl="triton"
        )


# ---- GPU build without a GPU ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_kernels_compile_for_sm90(dtype, monkeypatch):
    """Compile the three kernels to a cubin for sm_90 (H100) at the default GPU launch
    config, all terms on: catches what the interpreter does not check (tile shapes of
    tl.dot, types, layouts). Needs no GPU: ptxas ships with triton."""
    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except ImportError as exc:  # pragma: no cover - triton internals moved
        pytest.skip(f"triton's ahead-of-time compile API is not available: {exc}")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.delenv(fused.CONFIG_ENV, raising=False)
    monkeypatch.setattr(fused, "triton_interpret", lambda: False)
    bb, bp, nw = fused._launch_config(1024, 64 * 64)
    k_part, k_finish, k_bwd = fused._kernels()
    flags = dict(HAS_HIST=True, HAS_MAH=True, HAS_GRAD=True, K=20, KP=32)
    ints = dict.fromkeys(["B", "W", "HW", "N", "NA", "NB", "n_chunks"], "i32")
    floats = dict.fromkeys(["ab_scale", "bin_lo", "bin_step", "w_hist", "w_mah", "w_grad", "w_l2"], "fp32")
    data = dict.fromkeys(["pred_ptr", "target_ptr", "grad_ptr"], f"*{dtype}")

    def build(kernel, consts):
        sig = {a: "constexpr" if a in consts else data.get(a) or ints.get(a) or floats.get(a) or "*fp32"
               for a in kernel.arg_names}
        try:
            return triton.compile(ASTSource(kernel, sig, consts), target=GPUTarget("cuda", 90, 32),
                                  options={"num_warps": nw})
        except FileNotFoundError as exc:  # pragma: no cover - a triton build without ptxas
            pytest.skip(f"no ptxas: {exc}")

    for kernel, consts in ((k_part, dict(flags, BLOCK_B=bb, BLOCK_P=bp)),
                           (k_finish, dict(flags, BLOCK_B=bb)),
                           (k_bwd, dict(flags, BLOCK_B=bb, BLOCK_P=bp))):
        assert build(kernel, consts).asm["cubin"]
