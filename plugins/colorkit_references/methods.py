"""Reference methods: what a benchmark must beat before a method can claim anything.

Each is a registered method with ``role = "reference"``: ``colorkit bench``
scores them beside the learned methods (unless ``--no-references``) and states, for every
learned method, which of them it beats with a paired bootstrap interval. All but ``grey``
look at the training split once (in the ``setup`` of a stage with no epochs) and never at
the grey input they are asked to colour; so a learned method that does not beat them has
not shown that it uses its input.

* ``grey``: ab = 0 everywhere (the grey image itself). Its error-of-best is the mean |ab|
  of the test colour fields.
* ``mean-field``: the per-pixel mean ab field of the training split, repeated k times.
* ``prior-samples``: k distinct colour fields of random training images per test image
  (drawn with the bench's generator): diversity that ignores the input.
* ``prior-kmeans``: the k k-means centres of the training colour fields, largest cluster
  first: the best k input-agnostic guesses under error-of-best.
* ``levin``: the grey image coloured by propagating the colour hints along it (Levin et
  al., SIGGRAPH 2004, :func:`colorkit.core.propagate.propagate`), k times; no learning.
  Without hints it is ``grey``, so it is scored only in benches with hints
  (``hints_only``). Every other reference takes hints through the generic fallback of
  :func:`colorkit.core.hints.sample_with_hints` (``prior-kmeans`` + propagation).

``prior-samples`` and ``prior-kmeans`` keep a uniform random subset of at most
``max_fields`` training colour fields (float16, about 16 KB each at 64 x 64), so a
checkpoint has a fixed size however large the training set; the subset is drawn with
``seed``. Shapes and units: ``sample(grey (B,1,H,W)) -> (B, k, 2, H, W)`` in ab / 128; a
grey image of another size gets the fields resized to its size (bilinear).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from colorkit.core.interfaces import ComponentConfig, Method, Stage
from colorkit.core.registry import ColorkitError


class ReferenceConfig(ComponentConfig):
    image_size: int = Field(64, ge=8, description="side of the square training images")
    max_fields: int = Field(512, ge=1, description="most training colour fields kept (prior-samples, prior-kmeans)")
    seed: int = Field(0, description="seed of the random subset of kept fields and of k-means")
    batch_size: int = Field(256, ge=1, description="images read per batch while fitting")


REFERENCE_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"max_fields": 2048},
    "small": {"max_fields": 512},
    "tiny": {"max_fields": 64, "batch_size": 16},
}


def _batches(train_split: Any, positions: Tensor, batch_size: int):
    for start in range(0, positions.numel(), batch_size):
        yield train_split.batch(positions[start : start + batch_size])


def _check_grey(grey: Tensor) -> None:
    if grey.dim() != 4 or grey.shape[1] != 1:
        raise ColorkitError(f"sample expects grey of shape (B, 1, H, W); got {tuple(grey.shape)}")


def _resize(fields: Tensor, hw: tuple[int, int]) -> Tensor:
    """``(..., 2, S, S)`` -> ``(..., 2, H, W)`` (bilinear) when the sizes differ."""
    if tuple(fields.shape[-2:]) == tuple(hw):
        return fields
    lead = fields.shape[:-3]
    out = F.interpolate(fields.reshape(-1, 2, *fields.shape[-2:]), size=hw, mode="bilinear")
    return out.reshape(*lead, 2, *hw)


class Reference(Method):
    """Base of the references: ``role = "reference"``, one ``fit`` stage without epochs."""

    Config: ClassVar[type[ComponentConfig]] = ReferenceConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = REFERENCE_PRESETS
    role: ClassVar[str] = "reference"

    def stages(self) -> list[Stage]:
        return [Stage(name="fit", modules={}, make_optimizers=dict, step=self._no_step, epochs=0,
                      batch_size=self.config.batch_size, on_start=self.fit)]

    @staticmethod
    def _no_step(batch: dict[str, Tensor], ctx: Any) -> dict[str, Tensor]:  # pragma: no cover - epochs=0
        raise ColorkitError("reference methods are fitted in setup and take no training steps")

    def fit(self, train_split: Any) -> None:
        """Compute what the reference needs from the training split."""

    def _out(self, fields: Tensor, grey: Tensor) -> Tensor:
        return _resize(fields.to(grey.device, torch.float32), tuple(grey.shape[-2:]))


class GreyReference(Reference):
    """ab = 0 everywhere: the grey input returned k times."""

    def sample(self, grey: Tensor, k: int, *, mode: str | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        self.check_mode(mode)
        _check_grey(grey)
        b, _, h, w = grey.shape
        return grey.new_zeros(b, k, 2, h, w)


class LevinReference(Reference):
    """The hints propagated along the grey image (Levin et al. 2004), k times: where an
    image has no hint, ab = 0 (the grey image)."""

    takes_hints: ClassVar[bool] = True
    hints_only: ClassVar[bool] = True

    def sample(self, grey: Tensor, k: int, *, mode: str | None = None,
               generator: torch.Generator | None = None, hints: Tensor | None = None) -> Tensor:
        self.check_mode(mode)
        _check_grey(grey)
        b, _, h, w = grey.shape
        if hints is None:
            return grey.new_zeros(b, k, 2, h, w)
        from colorkit.core.hints import check_hint_map
        from colorkit.core.propagate import propagate

        check_hint_map(hints, grey, who="levin.sample")
        field = propagate(grey, hints[:, :1], hints[:, 1:].float()).to(grey.device, torch.float32)
        return field.unsqueeze(1).expand(b, k, 2, h, w).clone()


class MeanFieldReference(Reference):
    """The training split's per-pixel mean colour field, k times."""

    def __init__(self, config: ReferenceConfig | dict | None = None, *, stats: Any, **fields: Any) -> None:
        super().__init__(config, stats=stats, **fields)
        s = self.config.image_size
        self.register_buffer("mean_field", torch.zeros(2, s, s))

    def fit(self, train_split: Any) -> None:
        total = torch.zeros(2, self.config.image_size, self.config.image_size, dtype=torch.float64)
        n = len(train_split)
        for b in _batches(train_split, torch.arange(n), self.config.batch_size):
            total += b["ab"].double().sum(0).cpu()
        self.mean_field.copy_((total / max(n, 1)).float())

    def sample(self, grey: Tensor, k: int, *, mode: str | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        self.check_mode(mode)
        _check_grey(grey)
        field = self._out(self.mean_field, grey)
        return field.expand(grey.shape[0], k, *field.shape).clone()


class _FieldBank(Reference):
    """A fixed-capacity random subset of the training colour fields (float16 buffers)."""

    def __init__(self, config: ReferenceConfig | dict | None = None, *, stats: Any, **fields: Any) -> None:
        super().__init__(config, stats=stats, **fields)
        c = self.config
        self.register_buffer("fields", torch.zeros(c.max_fields, 2, c.image_size, c.image_size, dtype=torch.float16))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def fit(self, train_split: Any) -> None:
        n = len(train_split)
        gen = torch.Generator().manual_seed(self.config.seed)
        keep = torch.randperm(n, generator=gen)[: self.config.max_fields].sort().values
        self.fields.zero_()
        filled = 0
        for b in _batches(train_split, keep, self.config.batch_size):
            m = b["ab"].shape[0]
            self.fields[filled : filled + m] = b["ab"].to(self.fields.device, torch.float16)
            filled += m
        self.count.fill_(filled)

    def _stored(self) -> Tensor:
        n = int(self.count)
        if n == 0:
            raise ColorkitError(f"{type(self).__name__} holds no training colour fields: train it first")
        return self.fields[:n].float()


class PriorSamplesReference(_FieldBank):
    """k distinct random training colour fields per image (input-agnostic diversity)."""

    def sample(self, grey: Tensor, k: int, *, mode: str | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        self.check_mode(mode)
        _check_grey(grey)
        bank = self._stored()
        n = bank.shape[0]
        b = grey.shape[0]
        gen_device = generator.device if generator is not None else torch.device("cpu")
        keys = torch.rand(b, n, generator=generator, device=gen_device)
        if k <= n:
            picks = keys.argsort(dim=1)[:, :k]  # k distinct fields per image
        else:  # more outputs than stored fields: every field, then repeats
            picks = torch.arange(k, device=gen_device).remainder(n).expand(b, k)
        picks = picks.to(bank.device)
        return self._out(bank[picks.reshape(-1)].reshape(b, k, *bank.shape[1:]), grey)


class PriorKMeansReference(_FieldBank):
    """The k k-means centres of the kept training colour fields, largest cluster first
    (computed at the first request for a given k, then reused)."""

    def __init__(self, config: ReferenceConfig | dict | None = None, *, stats: Any, **fields: Any) -> None:
        super().__init__(config, stats=stats, **fields)
        self._centres: dict[int, Tensor] = {}

    def fit(self, train_split: Any) -> None:
        super().fit(train_split)
        self._centres.clear()

    def centres(self, k: int) -> Tensor:
        """``(k, 2, S, S)`` ab / 128 centres, largest cluster first."""
        if k not in self._centres:
            from colorkit.core.cluster import diverse_from_samples

            bank = self._stored()
            if k > bank.shape[0]:
                raise ColorkitError(
                    f"prior-kmeans holds {bank.shape[0]} training fields; it cannot give k = {k} centres"
                )
            gen = torch.Generator(device=bank.device).manual_seed(self.config.seed)
            self._centres[k] = diverse_from_samples(bank.unsqueeze(0), k, generator=gen)[0]
        return self._centres[k]

    def sample(self, grey: Tensor, k: int, *, mode: str | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        self.check_mode(mode)
        _check_grey(grey)
        c = self._out(self.centres(k), grey)
        return c.expand(grey.shape[0], *c.shape).clone()
