"""Clips with the MDN (``mdn``, ``mdn-skip``): k mixture components chosen per scene.

Colorizing each frame on its own, version j is the frame's j-th most probable component,
and the ranking of the mixture weights changes from frame to frame (the coat turns from
red to blue when two weights cross). :class:`MixtureSequenceSampler` instead

1. chooses the k components once per scene: with ``sequence_choice="scene-mean"`` (the
   default) from the scene's mean mixture weights over all its frames (a first pass,
   ``observe``), with ``"first-frame"`` from the weights of the scene's first frame;
   ``topk`` takes the k largest, ``mixture`` draws k components from them and one noise
   vector per version, both fixed for the scene;
2. in every frame takes the chosen components' means (plus the fixed noise in
   ``mixture``) as the k codes, and
3. smooths the codes over time within the scene: ``z_t <- a z_{t-1} + (1 - a) z_t`` with
   ``a = sequence_smoothing`` (0: no smoothing), restarted at every scene cut;
4. decodes each code with the frame's own grey image (``mdn-skip``'s decoder sees it).

A single-frame scene gets exactly what ``sample`` gives that frame.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from colorkit.core.layers import grey_at_size
from colorkit.core.registry import ColorkitError
from colorkit.core.sequence import SequenceSampler


class MixtureSequenceSampler(SequenceSampler):
    """See the module docstring; ``method`` is an :class:`~colorkit_paper.method.MDNMethod`."""

    def __init__(self, method: Any, k: int, *, mode: str | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(method, k, mode=mode, generator=generator)
        c = method.config
        if self.mode == "topk" and not 1 <= k <= c.components:
            raise ColorkitError(f"topk sampling gives at most {c.components} colorizations (one per mixture "
                                f"component); asked for k={k}")
        self.smoothing = float(c.sequence_smoothing)
        self.needs_observe = c.sequence_choice == "scene-mean"
        self.sums: dict[int, tuple[Tensor, int]] = {}  # scene -> (sum of pi (M,) float64, frames)
        self.chosen: dict[int, tuple[Tensor, Tensor | None]] = {}  # scene -> (components (k,), noise (k, d))
        self.prev: tuple[int, Tensor] | None = None  # (scene, smoothed codes (k, d)) of the last frame

    def _mixture(self, grey: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        m = self.method
        g = grey_at_size(grey.to(next(m.parameters()).device), m.config.image_size)
        log_pi, mu = m.mdn(m.backbone(g))  # (T, M), (T, M, d)
        return g, log_pi, mu

    @torch.no_grad()
    def observe_frames(self, grey: Tensor, scenes: Tensor) -> None:
        with _eval(self.method):
            _, log_pi, _ = self._mixture(grey)
        pi = log_pi.double().exp().cpu()
        for s in scenes.unique().tolist():
            sel = scenes == s
            total, n = self.sums.get(s, (torch.zeros(pi.shape[1], dtype=torch.float64), 0))
            self.sums[s] = (total + pi[sel].sum(0), n + int(sel.sum()))

    def _choose(self, scene: int, pi_here: Tensor) -> tuple[Tensor, Tensor | None]:
        if scene not in self.chosen:
            if self.needs_observe and scene in self.sums:
                total, n = self.sums[scene]
                pi = (total / n).float()
            else:  # first-frame choice (or a scene that was not observed): its first frame here
                pi = pi_here.float()
            d = self.method.embedder.latent_dim
            gen = self.generator_for(scene)
            if self.mode == "topk":
                comps = torch.sort(pi.log(), descending=True, stable=True).indices[: self.k]
                noise = None
            else:  # as colorkit_paper.mdn.sample_mixture, once for the scene
                dev = gen.device if gen is not None else torch.device("cpu")
                comps = torch.multinomial(pi[None].to(dev), self.k, replacement=True, generator=gen)[0].cpu()
                noise = torch.randn((self.k, d), generator=gen, device=dev, dtype=torch.float32).cpu()
            self.chosen[scene] = (comps, noise)
        return self.chosen[scene]

    @torch.no_grad()
    def sample_frames(self, grey: Tensor, scenes: Tensor, meta: list[Any] | None) -> Tensor:
        m = self.method
        (h, w), t = grey.shape[-2:], grey.shape[0]
        with _eval(m):
            g, log_pi, mu = self._mixture(grey)
            pi_cpu = log_pi.float().exp().cpu()
            codes = []
            for i in range(t):
                s = int(scenes[i])
                comps, noise = self._choose(s, pi_cpu[i])
                z = mu[i, comps.to(mu.device)]  # (k, d)
                if noise is not None:
                    z = z + math.sqrt(m.config.variance) * noise.to(z)
                if self.prev is not None and self.prev[0] == s and self.smoothing > 0:
                    z = self.smoothing * self.prev[1] + (1.0 - self.smoothing) * z
                self.prev = (s, z)
                codes.append(z)
            z = torch.stack(codes)  # (T, k, d)
            gk = g.repeat_interleave(self.k, dim=0) if m.embedder.uses_grey else None
            ab = m.embedder.decode(z.reshape(t * self.k, -1), gk)  # (T*k, 2, s, s)
        if (h, w) != tuple(ab.shape[-2:]):
            ab = F.interpolate(ab, size=(h, w), mode="bilinear")
        return ab.reshape(t, self.k, 2, h, w)


class _eval:
    """Evaluation mode for the block, the module's mode restored after."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.was = self.module.training
        self.module.eval()

    def __exit__(self, *exc: Any) -> None:
        self.module.train(self.was)
