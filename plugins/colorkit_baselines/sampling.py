"""What the two baselines share: their test-time procedure (Deshpande et al., CVPR 2017,
sections 5 and 6.3) and the config fields that drive it and their single training stage.

Test time: draw ``num_samples`` (256 in the paper) colorizations of each grey image with
the model's noise (CVAE: z ~ N(0, I); cGAN: dropout masks), then k-means them to ``k``
(5 in the paper) with :func:`colorkit.core.cluster.diverse_from_samples`; the cluster centres,
largest cluster first, are the diverse colorizations (mode ``"centres"``). Mode
``"samples"`` returns ``k`` raw draws instead.

All randomness is drawn from the ``generator`` given to :meth:`SampledMethod.sample`, on
the generator's device, then moved to the model's; the same generator state therefore
gives the same colorizations, on any device and after a checkpoint round trip.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from colorkit.core.cluster import diverse_from_samples
from colorkit.core.interfaces import ComponentConfig, Method
from colorkit.core.registry import ColorkitError

from .evalmode import eval_mode
from .sequence import ClusterSequenceSampler


class SampledConfig(ComponentConfig):
    """Fields common to the baselines (sizes in pixels, learning rate for Adam)."""

    image_size: int = Field(64, ge=16, description="side of the square training images")
    num_samples: int = Field(256, ge=1, description="draws per grey image before k-means (paper: 256)")
    sample_batch: int = Field(256, ge=1, description="most images per forward pass when sampling")
    kmeans_iters: int = Field(50, ge=1)
    epochs: int = Field(10, ge=1, description="training epochs (paper: 10)")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-4, gt=0)


class SampledMethod(Method):
    """A method whose colorizations are k-means centres of many noisy draws.

    Subclasses implement :meth:`draw`; :meth:`sample` handles modes, chunking and
    clustering."""

    sample_modes: ClassVar[tuple[str, ...]] = ("centres", "samples")
    sample_options: ClassVar[tuple[str, ...]] = ("num_samples", "sample_batch", "kmeans_iters")
    config: SampledConfig

    def check_grey(self, grey: Tensor) -> None:
        s = self.config.image_size
        if grey.dim() != 4 or grey.shape[1] != 1 or tuple(grey.shape[2:]) != (s, s):
            raise ColorkitError(
                f"{type(self).__name__} expects grey images of shape (B, 1, {s}, {s}) "
                f"(config image_size={s}); got {tuple(grey.shape)}"
            )

    @abstractmethod
    def draw(self, grey: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
        """``n`` noisy colorizations of each grey image (B, 1, H, W): (B, n, 2, H, W).
        Called in eval mode under ``torch.no_grad``; ``B * n`` fits one forward pass."""

    def draw_many(self, grey: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
        """``n`` draws per image (B, n, 2, H, W), in passes of at most ``sample_batch`` images."""
        per_pass = max(1, self.config.sample_batch // grey.shape[0])
        chunks = [self.draw(grey, min(per_pass, n - s0), generator) for s0 in range(0, n, per_pass)]
        return torch.cat(chunks, 1)

    def sample(self, grey: Tensor, k: int, *, mode: str | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """k colorizations per grey image, (B, k, 2, H, W) in ab / 128, within [-1, 1].

        ``"centres"``: k-means centres of ``num_samples`` draws, largest cluster first;
        ``"samples"``: k raw draws."""
        mode = self.check_mode(mode)
        self.check_grey(grey)
        if mode == "centres" and not 1 <= k <= self.config.num_samples:
            raise ColorkitError(
                f"cannot cluster {self.config.num_samples} samples (num_samples) into k={k}"
            )
        with eval_mode(self):
            if mode == "samples":
                return self.draw_many(grey, k, generator)
            draws = self.draw_many(grey, self.config.num_samples, generator)
            return diverse_from_samples(draws, k, iters=self.config.kmeans_iters, generator=generator)

    def sequence_sampler(self, k: int, *, mode: str | None = None,
                         generator: torch.Generator | None = None) -> Any:
        """Clips: ``centres`` clusters the draws of each scene's first frame once and keeps
        that grouping of the noise in every frame (:class:`ClusterSequenceSampler`);
        ``samples`` keeps the k draws' noise fixed (the default sampler)."""
        if self.check_mode(mode) == "centres":
            return ClusterSequenceSampler(self, k, mode=mode, generator=generator)
        return super().sequence_sampler(k, mode=mode, generator=generator)

