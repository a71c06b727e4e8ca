"""Colour statistics of a training set: the PCA of colour fields and colourfulness weights.

Deshpande et al. (CVPR 2017), section 3.1: the VAE decoder loss uses

* ``L_mah`` (section 3.1, unnumbered): a Mahalanobis distance in the basis of the top-k principal components
  of the flattened ab fields (k = 20; ``sigma_k^2`` = explained variance of component k);
* ``L_hist`` (eq. 2): a per-pixel weight that up-weights rare (colourful) ab values.

Both come from the training split only (:func:`compute_stats`) and are stored with every
checkpoint as a safetensors file (:meth:`ColorStats.save`). See docs/decisions.md.

Units: ab fields are Lab (a, b) / 128; PCA variances are in (ab/128)^2. The ab grid, the
gamut rules and the colourfulness weights are in :mod:`colorkit.core.ab_grid`; the PCA
solvers in :mod:`colorkit.core.pca`. This module holds :class:`ColorStats` (the tensors,
their lookups, safetensors I/O), :class:`StatsConfig` and the cached computation.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from pydantic import BaseModel, ConfigDict, field_validator
from torch import Tensor

from colorkit.core.ab_grid import (  # noqa: F401 - the grid's names, importable from here as before
    BIN_MIN,
    BIN_STEP,
    GAMUT_RULES,
    WEIGHTINGS,
    G,
    ab_to_bin,
    ab_to_bin_index,
    bin_centers,
    colourfulness_weights,
    in_gamut_cells,
    nearest_in_gamut,
)
from colorkit.core.color import AB_SCALE
from colorkit.core.environment import __version__
from colorkit.core.pca import flip_signs, pca_in_memory, top_eigh
from colorkit.core.registry import ColorkitError
from colorkit.core.tensorfile import save_tensors

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


class PreparedDataset(Protocol):
    """What the statistics read of a prepared data set (:class:`colorkit.data.PreparedDataset`
    is one): its training split, sizes, split rule, content hash and cache folder."""

    source: Any
    root: Any
    n: int
    size: int
    hash: str
    seed: int
    test_size: int
    train_idx: np.ndarray

    def split(self, name: str) -> Any: ...

FORMAT = "colorkit-stats-v1"
UNITS = "ab/128; variances in (ab/128)^2"

_TENSOR_KEYS = (
    "pca_components",
    "pca_variances",
    "pca_mean",
    "bin_prob",
    "bin_prob_smoothed",
    "bin_weights",
    "in_gamut",
)
# Exact SVD of the centred data up to this many elements (N_train * 2HW); beyond, a
# streaming float64 covariance and eigh (memory independent of N).
_SVD_MAX_ELEMENTS = 1 << 25


# ----------------------------------------------------------------------------- ColorStats
@dataclass
class ColorStats:
    """Colour statistics of a training split (see the module docstring).

    ``pca_components`` ``(K, 2*H*W)`` float32, orthonormal rows, flattening
    ``ab.reshape(B, -1)`` of ``(B, 2, H, W)`` (a-plane then b-plane, row-major);
    ``pca_variances`` ``(K,)`` descending, in (ab/128)^2; ``pca_mean`` ``(2*H*W,)``;
    ``bin_prob`` / ``bin_prob_smoothed`` ``(G, G)`` cell probabilities (zero outside gamut);
    ``bin_weights`` ``(G, G)`` float32 colourfulness weight per cell, out-of-gamut cells
    already holding their nearest in-gamut cell's weight; ``in_gamut`` ``(G, G)`` bool.
    """

    image_size: int
    pca_components: Tensor
    pca_variances: Tensor
    pca_mean: Tensor
    bin_prob: Tensor
    bin_prob_smoothed: Tensor
    bin_weights: Tensor
    in_gamut: Tensor
    meta: dict[str, str] = field(default_factory=dict)

    # -- PCA
    @property
    def k(self) -> int:
        """Number of principal components."""
        return int(self.pca_components.shape[0])

    @property
    def device(self) -> torch.device:
        return self.pca_components.device

    # -- bins
    def weight_of(self, ab: Tensor) -> Tensor:
        """Colourfulness weight of every pixel of ``ab`` ``(B, 2, H, W)`` (ab/128), looked
        up from its grid cell: ``(B, H, W)`` in ``ab``'s float dtype, on ``ab``'s device."""
        flat = ab_to_bin_index(ab)
        table = self.bin_weights.reshape(-1).to(ab.device)
        out = torch.gather(table, 0, flat.reshape(-1)).view(flat.shape)
        return out.to(ab.dtype) if ab.is_floating_point() else out

    @property
    def num_classes(self) -> int:
        """Q, the number of in-gamut cells (classes for a Zhang et al. style pretext)."""
        return int(self.in_gamut.sum())

    def _class_table(self) -> Tensor:
        ok = self.in_gamut.reshape(-1).cpu()
        cls_of_cell = torch.cumsum(ok.long(), 0) - 1  # class of each in-gamut cell
        return cls_of_cell[nearest_in_gamut(ok)]  # (G*G,) out-of-gamut -> nearest class

    def ab_to_class(self, ab: Tensor) -> Tensor:
        """Class in [0, Q) of every pixel (its in-gamut cell, in flat-cell order):
        ``(B, H, W)`` int64."""
        table = self._class_table().to(ab.device)
        flat = ab_to_bin_index(ab)
        return torch.gather(table, 0, flat.reshape(-1)).view(flat.shape)

    def class_centers(self) -> Tensor:
        """``(Q, 2)`` float32 ab/128 centres of the in-gamut cells, in class order."""
        c = bin_centers()
        A, B = torch.meshgrid(c, c, indexing="ij")
        ok = self.in_gamut.reshape(-1).cpu()
        return (torch.stack([A.reshape(-1), B.reshape(-1)], 1)[ok] / AB_SCALE).to(self.device)

    def class_weights(self) -> Tensor:
        """``(Q,)`` float32 weights of the in-gamut cells, in class order."""
        ok = self.in_gamut.reshape(-1)
        return self.bin_weights.reshape(-1)[ok]

    # -- persistence
    def to(self, device: torch.device | str) -> ColorStats:
        """A copy with every tensor on ``device``."""
        moved = {key: value.to(device) for key, value in self._tensor_fields().items()}
        return replace(self, **moved, meta=dict(self.meta))

    def _tensor_fields(self) -> dict[str, Tensor]:
        """Every tensor field by name (:data:`_TENSOR_KEYS`), as it is."""
        return {"pca_components": self.pca_components, "pca_variances": self.pca_variances,
                "pca_mean": self.pca_mean, "bin_prob": self.bin_prob, "bin_prob_smoothed": self.bin_prob_smoothed,
                "bin_weights": self.bin_weights, "in_gamut": self.in_gamut}

    def tensors(self) -> dict[str, Tensor]:
        return {key: value.detach().cpu().contiguous() for key, value in self._tensor_fields().items()}

    def save(self, path: str | os.PathLike[str], extra: dict[str, str] | None = None) -> Path:
        """Write a safetensors file (tensors + string metadata, plus ``extra``), atomically
        and byte-reproducibly (see :func:`colorkit.core.tensorfile.save_tensors`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {str(k): str(v) for k, v in self.meta.items()}
        meta.update({"format": FORMAT, "units": UNITS, "image_size": str(self.image_size), **(extra or {})})
        save_tensors(path, self.tensors(), meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: torch.device | str = "cpu") -> ColorStats:
        """Read a file written by :meth:`save`; :class:`ColorkitError` if it is missing, not
        safetensors, or not colorkit statistics."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ColorkitError(f"colour statistics file {path} does not exist")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = dict(f.metadata() or {})
                keys = set(f.keys())
                tensors = {k: f.get_tensor(k) for k in _TENSOR_KEYS if k in keys}
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types
            raise ColorkitError(
                f"{path} is not a valid safetensors file ({type(exc).__name__}: {exc}); "
                f"expected colorkit colour statistics ({FORMAT})"
            ) from None
        if meta.get("format") != FORMAT:
            raise ColorkitError(
                f"{path} is a safetensors file but not colorkit colour statistics: format "
                f"{meta.get('format')!r}, expected {FORMAT!r}"
            )
        missing = [k for k in _TENSOR_KEYS if k not in tensors]
        if missing or "image_size" not in meta:
            raise ColorkitError(f"{path} lacks {', '.join(missing or ['image_size metadata'])}; expected {FORMAT}")
        size = int(meta["image_size"])
        d = 2 * size * size
        comps = tensors["pca_components"]
        if (comps.dim() != 2 or comps.shape[1] != d or tensors["pca_mean"].shape != (d,)
                or tensors["pca_variances"].shape != (comps.shape[0],)
                or any(tensors[k].shape != (G, G) for k in _TENSOR_KEYS[3:])):
            raise ColorkitError(f"{path} has tensors of inconsistent shapes for {size}x{size} images")
        return cls(image_size=size, meta=meta, **tensors).to(device)

    def summary(self) -> dict[str, Any]:
        """Headline numbers (units in the key names or in ``units``)."""
        var = self.pca_variances.double().cpu()
        ok = self.in_gamut.reshape(-1).cpu()
        w = self.bin_weights.reshape(-1).double().cpu()[ok]
        return {
            "n_train_images": int(self.meta.get("n_train_images", "0")),
            "k": self.k,
            "explained_variance_ratio": float(self.meta.get("explained_variance_ratio", "nan")),
            "sigma2_first": float(var[0]) if var.numel() else math.nan,
            "sigma2_last": float(var[-1]) if var.numel() else math.nan,
            "variance_units": "(ab/128)^2",
            "n_in_gamut": int(ok.sum()),
            "weighting": self.meta.get("weighting", ""),
            "weight_min": float(w.min()),
            "weight_median": float(w.median()),
            "weight_max": float(w.max()),
        }


# ----------------------------------------------------------------------------- computing
def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


class StatsConfig(BaseModel):
    """The options of the colour statistics, in one place: :func:`compute_stats`,
    :func:`stats_cache_path` and :func:`load_or_compute_stats` all take one (or its fields
    as keywords); the ``stats`` section of a run's configuration (``colorkit.train.config``)."""

    model_config = ConfigDict(extra="forbid")
    components: int = 20
    """Principal components kept (the specificity loss uses 20)."""
    weighting: str = "rebalanced"
    """Colourfulness weights: ``rebalanced`` (Zhang et al.) or ``inverse`` (the raw 1/p)."""
    lam: float = 0.5
    """Mixing weight of the uniform distribution in ``rebalanced``."""
    sigma: float = 5.0
    """Smoothing of the bin histogram, in Lab units."""
    gamut: str = "reachable"
    """Which ab cells count as in gamut: ``reachable`` or ``centre``."""

    @field_validator("weighting")
    @classmethod
    def _weighting(cls, v: str) -> str:
        if v not in WEIGHTINGS:
            raise ColorkitError(f"unknown weighting {v!r}; expected one of {', '.join(WEIGHTINGS)}")
        return v

    @field_validator("components")
    @classmethod
    def _components(cls, v: int) -> int:
        if v < 1:
            raise ColorkitError(f"components {v!r}: expected at least 1 principal component")
        return v

    @field_validator("gamut")
    @classmethod
    def _gamut(cls, v: str) -> str:
        if v not in GAMUT_RULES:
            raise ColorkitError(f"unknown gamut rule {v!r}; expected one of {', '.join(GAMUT_RULES)}")
        return v


def _options(config: StatsConfig | None, options: dict[str, Any]) -> StatsConfig:
    """``config`` with keyword ``options`` (components=, weighting=, ...) applied."""
    base = (config or StatsConfig()).model_dump()
    unknown = sorted(set(options) - set(base))
    if unknown:
        raise TypeError(f"unknown colour-statistics option(s): {', '.join(unknown)}")
    return StatsConfig(**{**base, **options})


def compute_stats(
    dataset: PreparedDataset,
    config: StatsConfig | None = None,
    *,
    batch_size: int = 256,
    progress: bool = False,
    **options: Any,
) -> ColorStats:
    """PCA and colourfulness weights of ``dataset``'s training split.

    PCA is exact: an SVD of the centred ``(N, 2*H*W)`` float64 data when
    ``N * 2*H*W <= 2**25`` (4096 images at 64x64), else a streaming float64 covariance
    (``batch_size`` images at a time, memory independent of N; O(N D^2): ~1.2 s per 256
    images at 64x64 on 2 CPU cores) and its top-k eigenvectors (:func:`colorkit.core.pca.top_eigh`). Raises
    :class:`ColorkitError` if the training split has ``k`` images or fewer. The options are
    ``config`` (a :class:`StatsConfig`) or its fields as keywords (``k=``, ``weighting=``, ...).
    """
    cfg = _options(config, options)
    k, weighting, lam, sigma, gamut = cfg.components, cfg.weighting, cfg.lam, cfg.sigma, cfg.gamut
    train = dataset.split("train")
    n = len(train)
    if n <= k:
        raise ColorkitError(
            f"PCA with k={k} components needs at least {k + 1} training images; the training split "
            f"of {dataset.source} has {n} (of {dataset.n} usable images; lower the test size or add images)"
        )
    size = dataset.size
    d = 2 * size * size
    in_gamut = in_gamut_cells(gamut)
    nearest = nearest_in_gamut(in_gamut)
    counts = torch.zeros(G * G, dtype=torch.int64)
    exact = n * d <= _SVD_MAX_ELEMENTS
    data = torch.empty((n, d), dtype=torch.float64) if exact else None
    sum_x = torch.zeros(d, dtype=torch.float64)
    sum_xx = None if exact else torch.zeros((d, d), dtype=torch.float64)

    from tqdm.auto import tqdm

    for rows in tqdm(
        list(_chunks(n, batch_size)), desc="colour statistics", unit="batch", disable=None if progress else True
    ):
        ab = train.batch(rows)["ab"]  # (b, 2, H, W)
        counts += torch.bincount(nearest[ab_to_bin_index(ab).reshape(-1)], minlength=G * G)
        x = ab.reshape(ab.shape[0], -1).to(torch.float64)  # (b, D): a-plane then b-plane
        if data is not None:
            data[rows.start:rows.stop] = x
        else:
            sum_x += x.sum(0)
            sum_xx.addmm_(x.T, x)

    if data is not None:
        mean = data.mean(0)
        data -= mean
        total_var = float((data**2).sum() / (n - 1))
        var, comps, method = pca_in_memory(data, k)
        del data
    else:
        mean = sum_x / n
        cov = (sum_xx - n * torch.outer(mean, mean)) / (n - 1)
        del sum_xx
        total_var = float(torch.diagonal(cov).sum())
        evals, evecs = top_eigh(cov, k)
        var, comps = evals, evecs.T
        del cov
        method = "covariance-eigh"
    var = var.clamp(min=0.0)
    comps = flip_signs(comps)
    explained = float(var.sum()) / total_var if total_var > 0 else math.nan

    p = counts.to(torch.float64) / counts.sum()
    p = p.view(G, G)
    p_s, w = colourfulness_weights(p, in_gamut, weighting=weighting, lam=lam, sigma=sigma)
    meta = {
        "format": FORMAT,
        "units": UNITS,
        "image_size": str(size),
        "k": str(k),
        "weighting": weighting,
        "lambda": repr(float(lam)),
        "sigma": repr(float(sigma)),
        "sigma_units": "Lab units",
        "gamut": gamut,
        "n_in_gamut": str(int(in_gamut.sum())),
        "grid": f"{G}x{G} centres {BIN_MIN:g}..{BIN_MIN + (G - 1) * BIN_STEP:g} step {BIN_STEP:g} Lab units; "
                "a rows, b columns; halves round up",
        "n_train_images": str(n),
        "n_pixels": str(int(counts.sum())),
        "dataset_hash": dataset.hash,
        "dataset_seed": str(dataset.seed),
        "dataset_test_size": str(dataset.test_size),
        "explained_variance_ratio": repr(explained),
        "pca_method": method,
        "colorkit_version": __version__,
    }
    return ColorStats(
        image_size=size,
        pca_components=comps.to(torch.float32).contiguous(),
        pca_variances=var.to(torch.float32).contiguous(),
        pca_mean=mean.to(torch.float32).contiguous(),
        bin_prob=p.to(torch.float32),
        bin_prob_smoothed=p_s.to(torch.float32),
        bin_weights=w.to(torch.float32),
        in_gamut=in_gamut.clone(),
        meta=meta,
    )


def stats_cache_path(dataset: PreparedDataset, config: StatsConfig | None = None, **options: Any) -> Path:
    """Where :func:`load_or_compute_stats` keeps the statistics for these options: the
    dataset's cache folder, ``stats-<hash of (dataset, training split, options)>.safetensors``."""
    cfg = _options(config, options)
    opts = {"k": cfg.components, "weighting": cfg.weighting, "lam": float(cfg.lam), "sigma": float(cfg.sigma),
            "gamut": cfg.gamut}
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "dataset": dataset.hash, **opts}, sort_keys=True, default=str).encode())
    h.update(dataset.train_idx.astype("<i8").tobytes())
    return Path(dataset.root) / f"stats-{h.hexdigest()[:16]}.safetensors"


def load_or_compute_stats(
    dataset: PreparedDataset, config: StatsConfig | None = None, *, progress: bool = False, **options: Any
) -> ColorStats:
    """:func:`compute_stats`, cached next to the prepared data (atomic write; every read
    verifies the file's digest, :mod:`colorkit.core.cachefile`: one that does not verify is
    recomputed with one line saying so; one that cannot be written is skipped)."""
    from colorkit.core import cachefile

    opts = _options(config, options)
    path = stats_cache_path(dataset, opts)
    if path.exists() or path.is_symlink():
        try:
            stats = ColorStats.load(path)
            why = cachefile.mismatch(stats.tensors(), path.name, stats.meta.pop(cachefile.DIGEST_KEY, None))
        except ColorkitError as exc:
            why = " ".join(str(exc).split())
        if not why:
            return stats
        cachefile.say_rebuilding("colour statistics", path, why, "computing them again")
    stats = compute_stats(dataset, opts, progress=progress)
    try:
        stats.save(path, {cachefile.DIGEST_KEY: cachefile.tensor_digest(stats.tensors(), path.name)})
    except (OSError, ColorkitError):
        pass
    return stats
