"""Training a backbone on its pretext task once per data set, shared by the methods that
use it (``mdn``, ``mdn-skip`` and the ``colornet`` reference).

:class:`PretextConfig` holds the pretext schedule and cache settings, written once and
inherited by those methods' configs. :class:`PretextBackbone` is a mixin for a
:class:`colorkit.core.interfaces.Method` with a ``backbone`` and such a config:
:meth:`~PretextBackbone._pretext_stage` wraps the backbone's own pretext stage with two
lifecycle hooks: ``skip`` loads a cached copy trained with the same schedule on the same
training split (the stage then does not run), ``on_end`` stores the backbone once the stage
has run its full schedule (a shortened smoke run is never cached).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from colorkit.core.interfaces import ComponentConfig, Stage, StageEnd

from . import backbone_cache


class PretextConfig(ComponentConfig):
    """The pretext schedule of the method's backbone and where trained backbones are cached."""

    image_size: int = Field(64, ge=16)
    """Side of the (square) images the method is trained on (power of two >= 16)."""
    pretext_epochs: int = Field(10, ge=0)
    """Epochs of the backbone's pretext stage (a backbone without one ignores the schedule)."""
    pretext_batch_size: int = Field(32, ge=1)
    pretext_lr: float = Field(3e-4, gt=0)
    cache_dir: str | None = None
    """Where trained backbones are cached; default ``<prepared data set>/backbones``."""
    use_cache: bool = True


class PretextBackbone:
    """Mixin: the cached pretext stage of ``self.backbone`` (see the module docstring)."""

    def _pretext_stage(self) -> Stage | None:
        c = self.config
        stage = self.backbone.pretrain_stage(self.stats, epochs=c.pretext_epochs, batch_size=c.pretext_batch_size,
                                             lr=c.pretext_lr)
        if stage is None:
            return None
        target: list[Path | None] = [None]

        def skip(train_split: Any) -> bool:
            """A cached backbone for this schedule and split: load it, skip the stage."""
            target[0] = self._cache_path(train_split)
            return target[0] is not None and backbone_cache.load_into(self.backbone, target[0])

        def on_end(train_split: Any, end: StageEnd) -> None:
            """Store the backbone when it ran its full schedule (rank 0 writes)."""
            from colorkit.core import distributed as D

            path = target[0] if target[0] is not None else self._cache_path(train_split)
            if path is not None and end.complete and D.rank() == 0:
                backbone_cache.save(self.backbone, path)

        stage.skip, stage.on_end = skip, on_end
        return stage

    def _cache_path(self, train_split: Any) -> Path | None:
        c = self.config
        if not c.use_cache:
            return None
        base = Path(c.cache_dir) if c.cache_dir else backbone_cache.dataset_dir(train_split)
        if base is None:
            return None
        if not c.cache_dir:
            base = base / "backbones"
        schedule = {"epochs": c.pretext_epochs, "batch_size": c.pretext_batch_size, "lr": c.pretext_lr,
                    "image_size": c.image_size}
        return backbone_cache.cache_path(base, self.backbone, schedule, self.stats, train_split)
