"""One configuration tree for a run: what data, which colour statistics, which method, how
to train it (and, for ``colorkit bench``, how to score it).

Every section is a pydantic model with unknown fields refused. ``colorkit train`` writes the
whole tree (:class:`RunConfig`) into ``run.json`` under ``"config"``; ``colorkit bench``
writes its :class:`colorkit.eval.config.BenchConfig`, built from the same sections, into
``results.json``. The command-line options of ``train`` and ``bench`` are generated from
these fields (name, default, help: :mod:`colorkit.cli.options`).

.. code-block:: python

    from colorkit.train.config import DataConfig, MethodSpec, RunConfig, StatsConfig
    from colorkit.train.engine import TrainConfig

    cfg = RunConfig(data=DataConfig(dataset="demo", size=64),
                    stats=StatsConfig(weighting="inverse"),
                    method=MethodSpec(name="mdn", preset="small", options={"decoder_loss": "l2"}),
                    train=TrainConfig(seed=0))

Environment variables that change what a run does (:data:`ENVIRONMENT_VARIABLES`) are not
fields; :func:`environment` lists those that are set, and ``run.json`` and ``results.json``
record them under ``"environment"``.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from colorkit.core.stats import StatsConfig
from colorkit.train.engine import MAX_SEED, TrainConfig

__all__ = ["DataConfig", "StatsConfig", "MethodSpec", "MethodPreset", "SampleConfig", "RunConfig", "TrainConfig",
           "ENVIRONMENT_VARIABLES", "environment"]

ENVIRONMENT_VARIABLES = ("COLORKIT_LOSS_IMPL", "COLORKIT_FUSED_CONFIG", "COLORKIT_CACHE", "COLORKIT_LOAD_PLUGINS",
                         "COLORKIT_BLOCK_PLUGINS", "COLORKIT_THREADS_FIXED", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                         "GOMP_SPINCOUNT")
"""Environment variables that override a setting: the decoder loss's implementation and its
kernel configuration, the cache folder, which plugins load, and the OpenMP threads (their
count, whether it may follow the load, how idle ones wait)."""


def environment() -> dict[str, str]:
    """``{name: value}`` of every :data:`ENVIRONMENT_VARIABLES` entry that is set (an empty
    value counts: ``COLORKIT_LOAD_PLUGINS=""`` loads no plugin)."""
    return {name: os.environ[name] for name in ENVIRONMENT_VARIABLES if name in os.environ}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class DataConfig(_Section):
    """Which images, at what size, split how (see :func:`colorkit.data.prepare`)."""

    dataset: str = "demo"
    """Folder of images, .tar, .tar.gz or .zip archive, LMDB directory or registered data set name."""
    size: int = Field(64, ge=8)
    """Side of the square images, in pixels."""
    crop: bool = False
    """Centre-crop to a square before resizing (default: the paper's straight resize)."""
    split_seed: int = Field(0, ge=0, le=MAX_SEED)
    """Seed of the random train/test split (not of training: every training seed shares one test set)."""
    test_size: int | None = Field(None, ge=0)
    """Test images [default: min(1000, max(1, round(0.1 N)), N - 1)]."""
    cache_dir: str | None = None
    """Cache folder [default: $COLORKIT_CACHE or ~/.cache/colorkit]."""

    def prepare(self, progress: bool = True) -> Any:
        """The prepared data set (cached; see :func:`colorkit.data.prepare`)."""
        from colorkit.data import prepare

        return prepare(self.dataset, size=self.size, crop=self.crop, split_seed=self.split_seed,
                       test_size=self.test_size, cache_dir=self.cache_dir, progress=progress)


class MethodPreset(_Section):
    """The preset field shared by :class:`MethodSpec` and the bench's configuration."""

    preset: str = "small"
    """Model sizes: small (CPU), paper (the paper's exact sizes), tiny (tests)."""


class MethodSpec(MethodPreset):
    """A registered method, its preset and its config fields (``--option key=value``)."""

    name: str
    """A registered method (see `colorkit plugins`)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The method's config fields (``--option KEY=VALUE``)."""


class SampleConfig(_Section):
    """How a trained method samples at bench or colorize time: ``mode`` (one of the
    method's ``sample_modes``) and ``options``, config fields the method lists in
    ``sample_options`` (e.g. ``temperature`` of ``colornet``)."""

    mode: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SampleConfig:
        """``--option`` pairs of a sampling command: ``mode`` is the mode, the rest options."""
        opts = dict(options)
        mode = opts.pop("mode", None)
        return cls(mode=None if mode is None else str(mode), options=opts)


class RunConfig(_Section):
    """Everything ``colorkit train`` was asked, written whole into ``run.json``."""

    data: DataConfig = Field(default_factory=DataConfig)
    stats: StatsConfig = Field(default_factory=StatsConfig)
    method: MethodSpec
    train: TrainConfig = Field(default_factory=TrainConfig)
