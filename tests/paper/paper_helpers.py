"""Helpers for the paper plugin's tests: synthetic colour statistics and data, and a
tiny stand-in for the training engine."""

from __future__ import annotations

import torch

from colorkit.core.interfaces import StepContext
from colorkit.core.stats import ColorStats, G, in_gamut_cells


def synthetic_stats(image_size: int = 16, k: int = 20, seed: int = 0,
                    dtype: torch.dtype = torch.float32) -> ColorStats:
    """A real :class:`ColorStats` with random but valid fields: orthonormal PCA rows,
    descending variances, positive weights on the sRGB-reachable grid cells."""
    g = torch.Generator().manual_seed(seed)
    d = 2 * image_size * image_size
    q, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))  # (d, k)
    var = torch.sort(torch.rand(k, generator=g, dtype=torch.float64) * 0.5 + 0.01, descending=True).values
    in_gamut = in_gamut_cells("reachable").clone()
    p = in_gamut.double() / in_gamut.sum()
    w = (torch.rand(G, G, generator=g, dtype=torch.float64) * 3 + 0.2)
    return ColorStats(
        image_size=image_size,
        pca_components=q.T.contiguous().to(dtype),
        pca_variances=var.to(dtype),
        pca_mean=torch.zeros(d, dtype=dtype),
        bin_prob=p.float(),
        bin_prob_smoothed=p.float(),
        bin_weights=w.to(dtype),
        in_gamut=in_gamut,
    )


def structured_batch(n: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Images whose colour depends on the grey level (learnable): ab is a smooth function
    of a random grey gradient, with one of two palettes (so the mapping is multi-modal)."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    angle = torch.rand(n, 1, 1, generator=g) * 6.28
    grey = 0.5 + 0.4 * torch.sin(angle.cos() * 4 * xs + angle.sin() * 4 * ys)  # (n, H, W)
    palette = (torch.rand(n, 1, 1, generator=g) > 0.5).float() * 2 - 1
    a = 0.3 * palette * (grey - 0.5) * 2
    b = 0.25 * (1 - grey) - 0.1 * palette
    return {"grey": grey[:, None], "ab": torch.stack([a, b], 1), "index": torch.arange(n)}


def run_stage(stage, data: dict[str, torch.Tensor], steps: int, seed: int = 0) -> list[float]:
    """A tiny stand-in for the engine: on_start, optimizers, shuffled batches, ``step``."""
    if stage.on_start is not None:
        stage.on_start(Split(data))
    for mod in stage.modules.values():
        mod.train()
    for mod in stage.frozen:
        mod.eval()
    opts = stage.make_optimizers()

    def optimize(name: str, loss: torch.Tensor) -> None:
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    ctx = StepContext(optimizers=opts, optimize=optimize, epoch=0, step=0)
    g = torch.Generator().manual_seed(seed)
    n, losses = data["grey"].shape[0], []
    for i in range(steps):
        idx = torch.randperm(n, generator=g)[: stage.batch_size]
        ctx.step = i
        logs = stage.step({k: v[idx] for k, v in data.items()}, ctx)
        losses.append(float(logs["loss"]))
    return losses


class Split:
    def __init__(self, data: dict[str, torch.Tensor]) -> None:
        self.data = data

    def __len__(self) -> int:
        return int(self.data["grey"].shape[0])

    def batch(self, idx) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.data.items()}
