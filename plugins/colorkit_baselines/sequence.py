"""Clips with the sampling baselines (``cvae``, ``cgan``): the same noise in every frame,
grouped the same way.

On an image, ``centres`` draws ``num_samples`` colorizations (CVAE: codes z ~ N(0, I);
cGAN: dropout masks) and k-means them; the k centres, largest cluster first, are the
colorizations. Done independently per frame, both the draws and the clustering change, and
version j jumps between colorings. :class:`ClusterSequenceSampler` draws the *same* noise
in every frame of a scene (the scene's generator state, restored for each frame), clusters
the draws of the scene's first frame once, and in every frame returns the mean of the draws
of each of those clusters: version j is always the same group of noise vectors, decoded
with the frame's grey image. A single-frame scene gets exactly what ``sample`` gives it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from colorkit.core.cluster import kmeans
from colorkit.core.registry import ColorkitError
from colorkit.core.sequence import SequenceSampler

from .evalmode import eval_mode


class ClusterSequenceSampler(SequenceSampler):
    """See the module docstring; ``method`` is a :class:`~colorkit_baselines.sampling.SampledMethod`."""

    def __init__(self, method: Any, k: int, *, mode: str | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(method, k, mode=mode, generator=generator)
        n = method.config.num_samples
        if not 1 <= k <= n:
            raise ColorkitError(f"cannot cluster {n} samples (num_samples) into k={k}")
        self.groups: dict[int, Tensor] = {}  # scene -> one-hot (n, k) of the draws, largest group first

    def sample_frames(self, grey: Tensor, scenes: Tensor, meta: list[Any] | None) -> Tensor:
        m = self.method
        m.check_grey(grey)
        n = m.config.num_samples
        outs = []
        with eval_mode(m):
            for i in range(grey.shape[0]):
                s = int(scenes[i])
                gen = self.generator_for(s)
                draws = m.draw_many(grey[i : i + 1], n, gen)[0]  # (n, 2, H, W): the scene's noise
                flat = draws.flatten(1)
                if s not in self.groups:
                    res = kmeans(flat[None], self.k, iters=m.config.kmeans_iters, generator=gen)
                    onehot = torch.nn.functional.one_hot(res.labels[0], self.k).to(flat.dtype)  # (n, k)
                    order = torch.sort(onehot.sum(0), descending=True, stable=True).indices
                    self.groups[s] = onehot[:, order]
                onehot = self.groups[s].to(flat.device)
                centres = onehot.T @ flat / onehot.sum(0).clamp_min(1)[:, None]  # (k, 2*H*W)
                outs.append(centres.reshape(self.k, *draws.shape[1:]))
        return torch.stack(outs)
