"""One configuration tree for a run: what data, which colour statistics, which method, how
to train it (and, for ``colorkit bench``, how to score it).

Every section is a pydantic model with unknown fields refused. ``colorkit train`` writes the
whole tree (:class:`RunConfig`) into ``run.json`` under ``"config"``; ``colorkit bench``
writes its :class:`colorkit.eval.bench.BenchConfig` into ``results.json``. The command-line
options of every command map onto these fields (see ``docs/cli.md``).

.. code-block:: python

    from colorkit.train.config import DataConfig, MethodSpec, RunConfig, StatsConfig
    from colorkit.train.engine import TrainConfig
from colorkit.core.stats import StatsConfig

__all__ = ["DataConfig", "StatsConfig", "MethodSpec", "SampleConfig", "RunConfig", "TrainConfig"]

    cfg = RunConfig(data=DataConfig(dataset="demo", size=64),
                    stats=StatsConfig(weighting="inverse"),
                    method=MethodSpec(name="mdn", preset="small", options={"decoder_loss": "l2"}),
                    train=TrainConfig(seed=0))
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from colorkit.core.stats import StatsConfig
from colorkit.train.engine import TrainConfig

__all__ = ["DataConfig", "StatsConfig", "MethodSpec", "SampleConfig", "RunConfig", "TrainConfig"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    """Which images, at what size, split how (see :func:`colorkit.data.prepare`)."""

    dataset: str = "demo"
    """A folder of images, an archive, an LMDB directory or a registered data set name."""
    size: int = Field(64, ge=8)
    """Side of the square images, in pixels."""
    crop: bool = False
    """Centre-crop to a square before resizing (default: the paper's straight resize)."""
    seed: int = 0
    """Seed of the random train/test split."""
    test_size: int | None = Field(None, ge=0)
    """Test images; default ``min(1000, max(1, round(0.1 N)), N - 1)``."""
    cache_dir: str | None = None
    """Cache folder; default ``$COLORKIT_CACHE`` or ``~/.cache/colorkit``."""

    def prepare(self, progress: bool = True) -> Any:
        """The prepared data set (cached; see :func:`colorkit.data.prepare`)."""
        from colorkit.data import prepare

        return prepare(self.dataset, size=self.size, crop=self.crop, seed=self.seed, test_size=self.test_size,
                       cache_dir=self.cache_dir, progress=progress)


class MethodSpec(_Section):
    """A registered method, its preset and its config fields (``--option key=value``)."""

    name: str
    preset: str = "small"
    options: dict[str, Any] = Field(default_factory=dict)


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
