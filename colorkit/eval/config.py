"""What ``colorkit bench`` does: :class:`BenchConfig`, built from the sections of the run
configuration (:mod:`colorkit.train.config`: ``data``, ``stats``, ``train`` and the
method's ``preset``) plus the bench's own fields; written whole into ``results.json``
(``"config"``). The ``bench`` command's options are generated from these fields."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from colorkit.core.interfaces import Method, declared, validation_detail
from colorkit.metrics.bootstrap import RESAMPLES
from colorkit.train.config import DataConfig, MethodPreset, StatsConfig, TrainConfig

# flat keyword -> the section it belongs to (``BenchConfig(dataset="demo", seed=1)`` works)
FLAT_FIELDS = {**{f: "data" for f in DataConfig.model_fields}, "seed": "train", "epochs": "train",
               "device": "train", "progress": "train"}


class BenchConfig(MethodPreset):
    """What ``colorkit bench`` does. ``data``, ``stats`` and ``train`` are the sections of a
    run's configuration; the training seeds are ``train.seed`` ... ``train.seed + seeds - 1``,
    every one on the split of ``data.split_seed``. Given flat, ``dataset``, ``size``, ``crop``,
    ``split_seed``, ``test_size`` and ``cache_dir`` go into ``data`` and ``seed``, ``epochs``,
    ``device`` and ``progress`` into ``train``."""

    methods: list[str]
    """Registered methods to train (or reuse) and score (third-party ones too)."""
    data: DataConfig = Field(default_factory=DataConfig)
    stats: StatsConfig = Field(default_factory=StatsConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    k: int = Field(5, ge=1, le=64)
    """Colorizations per image."""
    seeds: int = Field(1, ge=1)
    """Train and evaluate every method with seeds SEED ... SEED+N-1; report mean and spread."""
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per method (``"*"``: every method that has the field): config fields for training,
    or sampling settings (``mode`` and the method's ``sample_options``) for scoring."""
    runs: list[str] = Field(default_factory=list)
    """Reuse these run directories (repeatable)."""
    out: str = "bench-out"
    """Output folder: results, figures and the trained runs (OUT/runs)."""
    batch_size: int = 16
    """Test images per batch when scoring."""
    sample_images: int = 3
    """Test images shown in samples.png."""
    extra_modes: bool = True
    """Also score every extra sampling mode (e.g. mdn's mixture)."""
    references: bool = True
    """Score the reference methods (grey, mean-field, prior-samples, prior-kmeans, colornet; levin with --hints)."""
    test_dataset: str | None = None
    """Score on every usable image of this folder or data set instead of the test split."""
    threads: int | Literal["auto"] | None = None
    """torch CPU threads [default: every core, fewer while other processes hold the cores];
    ``auto``: the cores not already busy at the start, then likewise; a number: that many
    whatever the load (another thread count changes the results, by up to seed-to-seed noise)."""

    @field_validator("threads", mode="before")
    @classmethod
    def _threads(cls, value: Any) -> Any:
        from colorkit.core.threads import resolve_threads

        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return None if value is None else "auto"
        return resolve_threads(value)  # a number >= 1, else a one-line user error
    resamples: int = RESAMPLES
    """Bootstrap resamples of each interval."""
    hints: list[int] | None = None
    """Also score with colour hints: these numbers of hint points per test image (e.g.
    0,1,2,5,10,20), the same seeded points, with the true colour, for every method; errors at
    the pixels without a hint (results.json by_hints, results.md, hints.png)."""

    @field_validator("hints", mode="before")
    @classmethod
    def _hints(cls, value: Any) -> Any:
        return None if value is None else parse_hint_counts(value)

    @model_validator(mode="before")
    @classmethod
    def _flat_fields(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        for section in ("data", "train"):
            flat = {k: values.pop(k) for k in [k for k, s in FLAT_FIELDS.items() if s == section] if k in values}
            if flat:
                given = values.get(section)
                given = given.model_dump() if isinstance(given, BaseModel) else dict(given or {})
                values[section] = {**given, **flat}
        return values

    @model_validator(mode="after")
    def _seeds_in_range(self) -> BenchConfig:
        from colorkit.core.registry import ColorkitError
        from colorkit.core.stages import MAX_SEED

        if self.train.seed + self.seeds - 1 > MAX_SEED:
            raise ColorkitError(f"--seed {self.train.seed} with --seeds {self.seeds} reaches seed "
                                f"{self.train.seed + self.seeds - 1}; seeds are 0 to {MAX_SEED}")
        return self

    @property
    def dataset(self) -> str:
        return self.data.dataset

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def seed(self) -> int:
        """The first training seed, also the seed of the bootstrap."""
        return self.train.seed

    @property
    def epochs(self) -> int | None:
        return self.train.epochs

    @property
    def device(self) -> str:
        return self.train.device

    @property
    def progress(self) -> bool:
        return self.train.progress

    def method_options(self, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(training options, sampling options)`` of ``method`` from :attr:`options`."""
        from colorkit.core.plugin_manager import registry

        factory = declared(registry("method").get(method).factory, Method)
        fields = set(factory.Config.model_fields)
        sampling_keys = set(factory.sample_options) | {"mode"}
        train_opts: dict[str, Any] = {}
        sample_opts: dict[str, Any] = {}
        for scope in ("*", method):
            for key, value in self.options.get(scope, {}).items():
                if key in sampling_keys:
                    sample_opts[key] = value
                elif key in fields or scope == method:
                    train_opts[key] = value
        return train_opts, sample_opts


MAX_BENCH_HINTS = 256
"""The most hint points per test image a bench scores (``--hints``)."""


def parse_hint_counts(value: Any) -> list[int]:
    """``"0,1,2,5,10,20"`` (or a list) -> ``[0, 1, 2, 5, 10, 20]``: whole numbers from 0 to
    :data:`MAX_BENCH_HINTS`, none twice, sorted; anything else is a one-line user error."""
    from colorkit.core.registry import ColorkitError

    expected = f"whole numbers from 0 to {MAX_BENCH_HINTS}, comma-separated, none twice (e.g. 0,1,2,5,10,20)"
    items = [p.strip() for p in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ColorkitError(f"--hints {value!r}: expected {expected}")
    counts = []
    for item in items:
        if isinstance(item, str) and re.fullmatch(r"[+-]?[0-9]+", item):
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int):
            raise ColorkitError(f"--hints {value!r}: {item!r} is not a whole number; expected {expected}")
        n = int(item)
        if not 0 <= n <= MAX_BENCH_HINTS:
            raise ColorkitError(f"--hints {value!r}: {n} is out of range; expected {expected}")
        counts.append(n)
    if len(set(counts)) != len(counts):
        raise ColorkitError(f"--hints {value!r}: a count is given twice; expected {expected}")
    return sorted(counts)


def check_sampling(cfg: BenchConfig, method: str) -> None:
    """Refuse ``method``'s sampling settings in ``cfg`` (``--option mode=...`` and the
    method's ``sample_options``) that cannot work, before any training."""
    from colorkit.core.plugin_manager import registry
    from colorkit.core.registry import ColorkitError

    factory = declared(registry("method").get(method).factory, Method)
    train_opts, sample_opts = cfg.method_options(method)
    opts = dict(sample_opts)
    mode = opts.pop("mode", None)
    modes = factory.sample_modes
    if mode is not None and str(mode) not in modes:
        scope = "" if method in cfg.options and "mode" in cfg.options[method] else f"; scope it as METHOD:mode={mode}"
        raise ColorkitError(f"--option mode={mode}: method {method!r} has no sampling mode {str(mode)!r} (its modes: "
                            f"{', '.join(modes)}){scope}")
    if not opts or factory is Method:  # a factory that is not a Method class declares no config to check
        return
    try:
        factory.make_config(None, preset=cfg.preset, **{**train_opts, **opts})
    except ColorkitError:
        raise
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        detail = validation_detail(exc) if isinstance(exc, ValueError) else " ".join(str(exc).split())
        raise ColorkitError(f"invalid sampling setting of method {method!r}: {detail}") from None


def parse_bench_options(pairs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"[METHOD:]KEY": value}`` (``--option``) -> ``{METHOD or "*": {KEY: value}}``. A
    key that starts with the name of a registered family (a name ending in ``:``, e.g. a
    backbone family) is a whole key, not ``METHOD:KEY``."""
    from colorkit.core.plugin_manager import is_family_name

    out: dict[str, dict[str, Any]] = {}
    for key, value in pairs.items():
        method, _, field = key.rpartition(":") if ":" in key and not is_family_name(key) else ("", "", key)
        out.setdefault(method or "*", {})[field] = value
    return out
