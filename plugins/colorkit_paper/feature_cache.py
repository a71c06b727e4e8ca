"""Features of a frozen backbone, computed once per training split.

The MDN stage reads the backbone's features of every training image in every epoch; a
frozen backbone gives the same features each time, so they are computed once (with the
horizontally flipped image too when the method flips) and looked up by the image's row.
For an ImageNet network at 224 x 224 this is most of the stage's time.

The table lives in memory while the stage runs and, when the split belongs to a prepared
data set, in ``<prepared data set>/features/<key>.safetensors``, where ``key`` hashes
what determines the features: the backbone's registered name, config and weights (a
sha256 of its tensors, so a colornet retrained on other data never matches), the image
size, the training split's rows and the flip setting. A table larger than the budget
(``feature_cache_mb``) is not built: the stage then computes features per batch, as
before. Cached or not, training sees the same numbers (a test checks this).

Every read verifies the file (:mod:`colorkit.core.cachefile`): its tensors must match the
digest recorded under the full key and the data set folder's name when it was written, and be float32 tables of the
backbone's feature shape with one row per training image (and a mirrored table exactly
when the method flips). A table that does not (truncated, edited, replaced by another
tensor of the same shape, of another dtype or row count) is computed again and replaced,
with one line saying so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from colorkit.core import cachefile
from colorkit.core.registry import ColorkitError

from . import backbone_cache
from .effnet import tensor_digest


class FeatureTable:
    """Features of the training images by prepared-set row: ``plain (N, C, h, w)`` and,
    with flips, ``flipped`` (features of the mirrored image)."""

    def __init__(self, rows: np.ndarray, plain: Tensor, flipped: Tensor | None) -> None:
        self.plain, self.flipped = plain, flipped
        pos = torch.full((int(rows.max()) + 1 if rows.size else 0,), -1, dtype=torch.long)
        pos[torch.from_numpy(rows)] = torch.arange(rows.size)
        self._pos = pos

    def lookup(self, index: Tensor, flip: Tensor | None = None) -> Tensor:
        """Features of the images whose rows are ``index (B,)``; ``flip (B,)`` bool picks
        the mirrored image's features."""
        pos = self._pos[index.cpu()]
        if bool((pos < 0).any()):
            raise KeyError("an image outside the cached training split")
        out = self.plain[pos]
        if flip is not None and self.flipped is not None:
            out = torch.where(flip.cpu()[:, None, None, None], self.flipped[pos], out)
        return out


def feature_shape(backbone: nn.Module, image_size: int) -> tuple[int, ...]:
    """``(C, h, w)`` of the backbone's features of one image (from one blank image)."""
    was, dev = backbone.training, next(backbone.parameters()).device
    backbone.eval()
    with torch.no_grad():
        shape = backbone(torch.zeros(1, 1, image_size, image_size, device=dev)).shape[1:]
    backbone.train(was)
    return tuple(int(d) for d in shape)


def table_bytes(backbone: nn.Module, image_size: int, n: int, flip: bool) -> int:
    """Bytes of a float32 table for ``n`` images (the shape from one blank image)."""
    return int(np.prod(feature_shape(backbone, image_size))) * 4 * n * (2 if flip else 1)


def _key(backbone: nn.Module, image_size: int, rows: np.ndarray, flip: bool) -> str:
    """The table's full key (sha256 hex); its first 16 digits name the file."""
    spec = {
        "name": getattr(backbone, "registry_name", "") or type(backbone).__name__,
        "config": backbone.config.model_dump(mode="json"),
        "weights": tensor_digest(backbone.state_dict()),
        "image_size": image_size,
        "rows": hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest(),
        "flip": flip,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _table_mismatch(saved: dict[str, Tensor], shape: tuple[int, ...], flip: bool) -> str:
    """Why a verified file still cannot serve as this table (``""`` when it can)."""
    expected = {"plain", "flipped"} if flip else {"plain"}
    if set(saved) != expected:
        return f"it holds {sorted(saved)}, expected {sorted(expected)}"
    for name, t in saved.items():
        if t.dtype != torch.float32:
            return f"its {name} table is {str(t.dtype).removeprefix('torch.')}, expected float32"
        if tuple(t.shape) != shape:
            return f"its {name} table has shape {tuple(t.shape)}, expected {shape}"
    return ""


def _read_table(path: Path, key: str, rows: np.ndarray, shape: tuple[int, ...], flip: bool) -> FeatureTable | None:
    """The cached table at ``path`` if it verifies, else ``None`` (after one line saying why)."""
    saved, _, why = cachefile.read_cached(path, key)
    if saved is not None:
        why = _table_mismatch(saved, (int(rows.size), *shape), flip)
        if not why:
            return FeatureTable(rows, saved["plain"], saved.get("flipped"))
    cachefile.say_rebuilding("backbone features", path, why, "computing them again")
    return None


@torch.no_grad()
def build_table(backbone: nn.Module, split: Any, *, image_size: int, flip: bool, budget_mb: float,
                batch_size: int = 64, use_disk: bool = True,
                resize: Callable[[Tensor], Tensor] | None = None) -> FeatureTable | None:
    """The split's feature table (from the disk cache when there), or ``None`` when it
    would exceed ``budget_mb``. ``resize`` brings a batch of grey images to ``image_size``
    as the training step does. The backbone must be frozen (it is put in eval mode)."""
    from colorkit.core.layers import grey_at_size

    resize = resize or (lambda g: grey_at_size(g, image_size))
    n = len(split)
    shape = feature_shape(backbone, image_size) if n else ()
    if n == 0 or int(np.prod(shape)) * 4 * n * (2 if flip else 1) > budget_mb * 2**20:
        return None
    rows = np.asarray(split.indices, dtype=np.int64)
    base = backbone_cache.dataset_dir(split) if use_disk else None
    key = _key(backbone, image_size, rows, flip)
    path = base / "features" / f"{key[:16]}.safetensors" if base else None
    key = f"{base.name if base else ''}/{key}"  # a table copied from another data set's folder does not verify
    if path is not None and (path.exists() or path.is_symlink()):
        table = _read_table(path, key, rows, shape, flip)
        if table is not None:
            return table
    backbone.eval()
    dev = next(backbone.parameters()).device
    plain, flipped = [], []
    for start in range(0, n, batch_size):
        grey = resize(split.batch(list(range(start, min(n, start + batch_size))))["grey"]).to(dev)
        plain.append(backbone(grey).float().cpu())
        if flip:
            flipped.append(backbone(grey.flip(-1)).float().cpu())
    table = FeatureTable(rows, torch.cat(plain), torch.cat(flipped) if flip else None)
    if path is not None:
        _store(path, key, table)
    return table


def _store(path: Path, key: str, table: FeatureTable) -> None:
    from colorkit.core import distributed as D

    if D.rank() != 0:
        return
    tensors = {"plain": table.plain, **({"flipped": table.flipped} if table.flipped is not None else {})}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cachefile.write_cached(path, tensors, key, metadata={"units": "backbone features (float32)"})
    except (OSError, ColorkitError):  # a read-only data set: the table still serves this run from memory
        pass
