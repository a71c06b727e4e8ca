"""The ``oracle`` reference: knows each synth image's true conditional distribution.

Its k colorizations are the image's possible themes rendered exactly on the image's
regions (each region filled with the theme's colour), most probable first, without
repeats; an image with more possible themes than k gets k of them drawn by probability
without replacement (then ordered by probability); one with fewer than k repeats the
list from the most probable. So ``mode_recall``, ``mode_precision`` and ``coherence`` have
a known ceiling. It learns nothing: its one stage has no epochs, and it reads the truth
from the metadata the bench passes to ``sample(..., meta=...)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from colorkit.core.interfaces import ComponentConfig, Method, Stage, StepContext
from colorkit.core.registry import ColorkitError

from .modes import check_record, labels_at


class OracleConfig(ComponentConfig):
    pass


class Oracle(Method):
    """Reference that renders each synth image's true themes (needs the data set's metadata)."""

    Config: ClassVar[type[ComponentConfig]] = OracleConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "small": {}, "tiny": {}}
    sample_modes: ClassVar[tuple[str, ...]] = ("themes",)
    role: ClassVar[str] = "reference"
    uses_meta: ClassVar[bool] = True
    contract_dataset: ClassVar[str] = "synth:n=24,size=32"

    def stages(self) -> list[Stage]:
        return [Stage(name="oracle", modules={}, make_optimizers=dict, step=self._step, epochs=0)]

    def _step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:  # pragma: no cover
        raise AssertionError("the oracle stage has no epochs")

    @torch.no_grad()
    def sample(self, grey: Tensor, k: int, *, mode: str | None = None, generator: torch.Generator | None = None,
               meta: list[dict[str, Any]] | None = None) -> Tensor:
        """``(B, k, 2, H, W)`` ab/128: the image's themes from ``meta`` (one record per image)."""
        self.check_mode(mode)
        if meta is None:
            raise ColorkitError("the oracle needs each image's metadata (meta=...): use it through `colorkit bench` "
                                "on a data set with per-image themes, such as synth")
        if grey.dim() != 4 or grey.shape[1] != 1 or len(meta) != grey.shape[0]:
            raise ColorkitError(f"oracle.sample expects grey (B, 1, H, W) and B metadata records; got "
                                f"{tuple(grey.shape)} and {len(meta)} records")
        if k < 1:
            raise ColorkitError(f"k must be at least 1, got {k}")
        b, _, h, w = grey.shape
        out = torch.zeros(b, k, 2, h, w)
        dev = generator.device if generator is not None else torch.device("cpu")
        for i, rec in enumerate(meta):
            check_record(rec)
            groups = rec["themes"]
            labels = labels_at(rec["labels"], h, w)
            p = torch.tensor([float(g["p"]) for g in groups], dtype=torch.float64)
            if len(groups) <= k:
                order = [j % len(groups) for j in range(k)]
            else:
                drawn = torch.multinomial(p.to(dev), k, replacement=False, generator=generator).cpu().tolist()
                order = sorted(drawn, key=lambda j: (-float(p[j]), j))
            for j, g in enumerate(order):
                colours = torch.tensor(groups[g]["ab"], dtype=torch.float32)  # (R, 2)
                if labels.max() >= colours.shape[0]:
                    raise ColorkitError(
                        f"label map has {int(labels.max()) + 1} regions, theme lists {colours.shape[0]}"
                    )
                out[i, j] = colours[labels].permute(2, 0, 1)
        return out.to(grey.device)
