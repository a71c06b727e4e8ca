"""Training a backbone on its pretext task once per data set, shared by the methods that
use it (``mdn``, ``mdn-skip`` and the ``colornet`` reference).

:class:`PretextBackbone` is a mixin for a :class:`colorkit.interfaces.Method` with a
``backbone`` and config fields ``pretext_epochs``, ``pretext_batch_size``, ``pretext_lr``,
``image_size``, ``cache_dir`` and ``use_cache``. :meth:`~PretextBackbone._pretext_stage`
wraps the backbone's own pretext stage: its ``setup`` loads a cached copy trained with
the same schedule on the same training split (then the stage has no epochs);
:meth:`~PretextBackbone._flush_backbone_cache` stores the backbone once its full schedule
has run (a shortened smoke run is never cached).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from torch import Tensor

from colorkit.interfaces import Stage, StepContext

from . import backbone_cache


class PretextBackbone:
    """Mixin: the cached pretext stage of ``self.backbone`` (see the module docstring)."""

    def _init_pretext(self) -> None:
        self._pretext_cached = False  # cached backbone loaded: the pretext stage does nothing
        self._pretext_images = 0  # images the pretext stage trained on in this run
        self._cache_target: Path | None = None

    def _pretext_stage(self) -> Stage | None:
        c = self.config
        kwargs = {"epochs": c.pretext_epochs, "batch_size": c.pretext_batch_size, "lr": c.pretext_lr}
        params = inspect.signature(self.backbone.pretrain_stage).parameters
        stage = self.backbone.pretrain_stage(self.stats, **{k: v for k, v in kwargs.items() if k in params})
        if stage is None:
            return None
        stage.epochs, stage.batch_size = c.pretext_epochs, c.pretext_batch_size
        inner = stage.step

        def setup(train_split: Any) -> None:
            self._cache_target = self._cache_path(train_split)
            if self._cache_target is not None and backbone_cache.load_into(self.backbone, self._cache_target):
                self._pretext_cached = True
                stage.epochs = 0  # an engine reading epochs after setup skips the stage entirely

        def step(batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
            if self._pretext_cached:
                return {}
            self._pretext_images += batch["grey"].shape[0] * ctx.world_size
            return inner(batch, ctx)

        stage.setup, stage.step = setup, step
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

    def _flush_backbone_cache(self, train_split: Any) -> None:
        """After the pretext stage: store the backbone if it finished its full schedule
        (not a shortened smoke run) and nothing was cached yet."""
        from colorkit import distributed as D

        target, self._cache_target = self._cache_target, None
        full = self._pretext_images >= 0.9 * self.config.pretext_epochs * len(train_split)
        if target is not None and not self._pretext_cached and full and D.rank() == 0:
            backbone_cache.save(self.backbone, target)
