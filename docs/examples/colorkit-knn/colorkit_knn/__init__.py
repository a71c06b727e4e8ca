"""colorkit-knn: k-nearest-neighbour colour transfer, a colorkit plugin.

Not a method of Deshpande et al. (CVPR 2017): a non-parametric reference point for the
benchmark. Training stores a bank of training images; a grey image is coloured with the
ab fields of the training images whose grey thumbnails are closest to its own.

* Bank (:class:`ColourBank`, registered buffers, so it is saved in ``model.safetensors``
  and restored by ``load_state_dict``): for up to ``bank_size`` training images, the grey
  thumbnail ``(N, t*t)`` (L / 100 averaged over ``t x t`` cells, ``t = thumb_size``) and the
  full ab field ``(N, 2, S, S)`` in ab / 128 (stored as float16: rounding error below
  5e-4 ab/128, about 0.06 Lab units), the image's row in the prepared data set, and the
  number of filled slots. The capacity is fixed by the config, so a checkpoint has the
  same tensor shapes however many images were stored.
* Training: one stage, ``bank``, whose step appends the batch; there is no optimizer
  (``make_optimizers`` returns ``{}``) and no gradient. Each epoch rebuilds the bank from
  empty, so more epochs only cost time. When the training split holds more than
  ``bank_size`` images, reservoir sampling keeps a uniform random subset (drawn from
  ``ctx.generator``, which the engine seeds and restores on resume). Under torchrun every process gathers all
  processes' batches, so each holds the same bank as one process would.
* Sampling, ``(B, k, 2, H, W)`` in ab / 128: distances are L2 between grey thumbnails.
  ``nearest`` (default): the ab fields of the k nearest training images, nearest first
  (the generator is not used). ``random-of-top``: k distinct images drawn with the
  generator from the 2k nearest, kept in order of distance. A grey image of another size
  than ``image_size`` gets the stored fields resized to its size (bilinear).

The package also registers a metric, ``chroma_ratio`` (:class:`ChromaRatio`): how
colourful the colorizations are against the true images, a ratio of sums over every
image (a :class:`colorkit.RatioMetric`), scored by ``colorkit bench`` beside the built-in
metrics.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from colorkit import ColorkitError, ComponentConfig, Method, RatioMetric, Stage, StepContext
from colorkit import distributed as D
from pydantic import Field
from torch import Tensor, nn

__all__ = ["ChromaRatio", "ColourBank", "KNNColorizer", "KNNConfig"]
__version__ = "0.1.0"


class KNNConfig(ComponentConfig):
    image_size: int = Field(64, ge=8, description="side of the square training images (the stored ab fields)")
    bank_size: int = Field(1024, ge=1, description="most training images kept (the bank's fixed capacity)")
    thumb_size: int = Field(16, ge=1, description="side of the grey thumbnails compared by L2 distance")
    epochs: int = Field(1, ge=1, description="passes over the training split (each rebuilds the bank)")
    batch_size: int = Field(64, ge=2, description="images appended per step")


KNN_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"bank_size": 12288},  # every LFW training image (13,233 - 1,000 test); ~200 MB
    "small": {"bank_size": 1024},  # the demo set's ~280 training images and more; ~17 MB
    "tiny": {"bank_size": 64, "thumb_size": 8, "batch_size": 8},
}


class ColourBank(nn.Module):
    """Fixed-capacity store of training images (all registered buffers).

    ``thumbs (N, t*t)`` float32 L/100; ``ab (N, 2, S, S)`` float16 ab/128; ``index (N,)``
    rows of the prepared data set (-1 when unknown); ``count``: filled slots; ``seen``:
    images offered since the bank was last emptied; ``epoch``: the epoch that filled it."""

    def __init__(self, capacity: int, thumb_size: int, image_size: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.register_buffer("thumbs", torch.zeros(capacity, thumb_size * thumb_size))
        self.register_buffer("ab", torch.zeros(capacity, 2, image_size, image_size, dtype=torch.float16))
        self.register_buffer("index", torch.full((capacity,), -1, dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("epoch", torch.full((), -1, dtype=torch.long))

    def clear(self, epoch: int) -> None:
        self.count.zero_()
        self.seen.zero_()
        self.index.fill_(-1)
        self.epoch.fill_(epoch)

    @torch.no_grad()
    def add(self, thumbs: Tensor, ab: Tensor, index: Tensor, generator: torch.Generator | None = None) -> None:
        """Append ``thumbs (B, t*t)``, ``ab (B, 2, S, S)``, ``index (B,)``; once full,
        replace at random (reservoir sampling: every image offered is kept with equal
        probability ``capacity / seen``)."""
        n, cap = int(self.count), self.capacity
        free = min(cap - n, thumbs.shape[0])
        slots = list(range(n, n + free))  # the first ``free`` images fill empty slots
        seen = int(self.seen) + free
        for _ in range(free, thumbs.shape[0]):  # the rest: reservoir sampling
            dev = generator.device if generator is not None else "cpu"
            j = int(torch.randint(0, seen + 1, (1,), generator=generator, device=dev))
            slots.append(j if j < cap else -1)
            seen += 1
        last = {slot: i for i, slot in enumerate(slots) if slot >= 0}  # a slot drawn twice: the later wins
        if last:
            dest = torch.tensor(list(last), dtype=torch.long, device=self.thumbs.device)
            keep = torch.tensor(list(last.values()), dtype=torch.long, device=thumbs.device)
            self.thumbs[dest] = thumbs[keep].to(self.thumbs)
            self.ab[dest] = ab[keep].to(self.ab)
            self.index[dest] = index[keep].to(self.index)
        self.count.fill_(n + free)
        self.seen.fill_(seen)


def _gather(t: Tensor) -> Tensor:
    """``t`` from every process, concatenated along dim 0 (``t`` itself on one process)."""
    if not D.is_distributed():
        return t
    parts = [torch.empty_like(t) for _ in range(D.world_size())]
    torch.distributed.all_gather(parts, t.contiguous())
    return torch.cat(parts)


class KNNColorizer(Method):
    """k-nearest-neighbour colour transfer: the ab fields of the training images with the
    closest grey thumbnails."""

    Config: ClassVar[type[ComponentConfig]] = KNNConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = KNN_PRESETS
    sample_modes: ClassVar[tuple[str, ...]] = ("nearest", "random-of-top")

    def __init__(self, config: KNNConfig | dict | None = None, *, stats: Any, **fields: Any) -> None:
        super().__init__(config, stats=stats, **fields)
        c = self.config
        self.bank = ColourBank(c.bank_size, c.thumb_size, c.image_size)

    def thumbnail(self, grey: Tensor) -> Tensor:
        """``grey (B, 1, H, W)`` (L/100) -> ``(B, t*t)`` cell means."""
        return F.adaptive_avg_pool2d(grey.float(), self.config.thumb_size).flatten(1)

    # ------------------------------------------------------------------ training
    def stages(self) -> list[Stage]:
        c = self.config
        return [Stage(name="bank", modules={"bank": self.bank}, make_optimizers=lambda: {}, step=self._step,
                      epochs=c.epochs, batch_size=c.batch_size)]

    @torch.no_grad()
    def _step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        grey, ab = batch["grey"], batch["ab"]  # (B, 1, S, S), (B, 2, S, S)
        s = self.config.image_size
        if tuple(ab.shape[-2:]) != (s, s):
            raise ColorkitError(f"knn was configured for {s}x{s} images (image_size) but the training "
                                f"images are {ab.shape[-2]}x{ab.shape[-1]}")
        index = batch.get("index")
        if index is None:
            index = torch.full((grey.shape[0],), -1, dtype=torch.long, device=grey.device)
        if int(self.bank.epoch) != ctx.epoch:
            self.bank.clear(ctx.epoch)
        thumbs, ab, index = _gather(self.thumbnail(grey)), _gather(ab), _gather(index)
        self.bank.add(thumbs, ab, index, generator=ctx.generator)
        return {"bank_images": self.bank.count.float()}

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, grey: Tensor, k: int, *, mode: str | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """``k`` colorizations of ``grey (B, 1, H, W)`` (L/100) -> ``(B, k, 2, H, W)`` (ab/128)."""
        mode = self.check_mode(mode)
        if grey.dim() != 4 or grey.shape[1] != 1:
            raise ColorkitError(f"sample expects grey of shape (B, 1, H, W); got {tuple(grey.shape)}")
        n = int(self.bank.count)
        if n == 0:
            raise ColorkitError("knn's bank is empty: train it first (colorkit train --method knn)")
        if k > n:
            raise ColorkitError(f"knn cannot give k={k} colorizations: its bank holds {n} training images")
        b, (h, w), s = grey.shape[0], grey.shape[-2:], self.config.image_size
        dist = torch.cdist(self.thumbnail(grey), self.bank.thumbs[:n])  # (B, n)
        if mode == "nearest":
            idx = dist.topk(k, dim=1, largest=False).indices  # (B, k), nearest first
        else:
            top = dist.topk(min(2 * k, n), dim=1, largest=False).indices  # (B, m)
            dev = generator.device if generator is not None else top.device
            r = torch.rand(top.shape, generator=generator, device=dev).to(top.device)
            pick = r.argsort(dim=1)[:, :k].sort(dim=1).values  # k distinct ranks, in order
            idx = top.gather(1, pick)  # (B, k)
        ab = self.bank.ab[idx].float()  # (B, k, 2, S, S)
        if (h, w) != (s, s):
            ab = F.interpolate(ab.flatten(0, 1), size=(h, w), mode="bilinear").unflatten(0, (b, k))
        return ab


class ChromaRatio(RatioMetric):
    """Colourfulness of the colorizations against the truth: the summed chroma sqrt(a^2 + b^2)
    of every pixel of every colorization divided by k times the summed chroma of the true
    pixels. 1: as colourful as the truth; below 1: greyer (desaturated); above: more colourful."""

    units = "ratio (colorization chroma / true chroma)"
    higher_is_better = None  # 1 is best; neither direction is better

    def per_image_parts(self, samples: Tensor, target: Tensor, grey: Tensor) -> tuple[Tensor, Tensor]:
        # samples (B, k, 2, H, W), target (B, 2, H, W), both ab / 128
        k = samples.shape[1]
        num = samples.float().pow(2).sum(2).sqrt().flatten(1).sum(1)  # (B,)
        den = k * target.float().pow(2).sum(1).sqrt().flatten(1).sum(1)  # (B,)
        return num, den
