"""Cache of pretext-trained backbones (the paper's fixed colorization CNN, section 6.2).

A ``colornet`` is trained once per data set and reused by every later run on it: it is
stored as a component checkpoint under ``<prepared data set>/backbones/<name>-<key>``
where ``key`` hashes everything that determines the trained weights (backbone config,
pretext schedule, image size, colour statistics, the training split). Its ``model.json``
records a digest of the weights under the folder's name (:mod:`colorkit.core.cachefile`);
every read checks it, and a cached backbone that does not match (edited weights, a
folder copied under another key, a damaged file) is trained again, with one line saying so.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colorkit.core import cachefile
from colorkit.core.checkpoint import load_component, read_meta, resolve_dir, save_component
from colorkit.core.registry import ColorkitError


def _digest(*arrays: Any) -> str:
    """Short sha256 of tensors / numpy arrays (``None`` skipped)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            continue
        if isinstance(a, torch.Tensor):
            a = a.detach().to("cpu").contiguous().numpy()
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def dataset_dir(train_split: Any) -> Path | None:
    """The prepared data set's folder of a split (``SplitData.images_path.parent``), if known."""
    for attr in ("root", "dataset_root"):
        root = getattr(train_split, attr, None)
        if root is not None:
            return Path(root)
    images = getattr(train_split, "images_path", None)
    return Path(images).parent if images is not None else None


def cache_path(base: Path, backbone: nn.Module, schedule: dict[str, Any], stats: Any, train_split: Any) -> Path:
    """``base / f"{name}-{key}"`` for this backbone trained with ``schedule`` on this data."""
    name = getattr(backbone, "registry_name", "") or type(backbone).__name__.lower()
    spec = {
        "name": name,
        "config": backbone.config.model_dump(mode="json"),
        "schedule": schedule,
        "stats": _digest(getattr(stats, "bin_weights", None), getattr(stats, "in_gamut", None)),
        "split": _digest(getattr(train_split, "indices", None))
        if hasattr(train_split, "indices")
        else len(train_split),
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return base / f"{name.replace(':', '_')}-{key}"


def load_into(backbone: nn.Module, path: Path) -> bool:
    """Load a cached backbone's weights into ``backbone`` after verifying them; False when
    there is none or it does not verify (then one line says why)."""
    try:
        directory = resolve_dir(path)
    except ColorkitError:
        return False
    try:
        recorded = read_meta(directory).get(cachefile.DIGEST_KEY)
        state = load_component(path, kind="backbone").state_dict()
        why = cachefile.mismatch(state, path.name, recorded)
        if not why:
            backbone.load_state_dict(state, strict=True)
            return True
    except (ColorkitError, RuntimeError) as exc:
        why = " ".join(str(exc).split())
    cachefile.say_rebuilding("backbone", path, why, "training a new one")
    return False


def save(backbone: nn.Module, path: Path) -> None:
    """Store ``backbone`` at ``path`` (atomic) with its digest; a failure to write only warns."""
    try:
        save_component(backbone, path, extra={cachefile.DIGEST_KEY: cachefile.tensor_digest(backbone.state_dict(),
                                                                                          path.name)})
    except OSError as exc:
        warnings.warn(f"could not cache the trained backbone at {path} ({exc})", UserWarning, stacklevel=2)
