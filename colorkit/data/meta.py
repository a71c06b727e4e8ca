"""Per-image metadata of a data set (ground truth beyond the colours), for methods and
metrics that declare ``uses_meta = True``.

A data set folder may hold two files beside its images:

``colorkit-meta.json``
    ``{"format": "colorkit-meta-v1", "images": {<file relative to the folder>: {...}}, ...}``:
    one JSON record per image (any JSON values; the data set documents their meaning).
``colorkit-meta.safetensors`` (optional)
    arrays with one row per image; a record's ``"row"`` gives its row. Every array is
    attached to the record under its own name (e.g. ``labels`` -> ``record["labels"]``).

:func:`load_meta` finds them for a prepared data set (``PreparedDataset.source``) and
:meth:`DatasetMeta.batch` gives the records of a batch's rows (the ``"index"`` a split's
``batch`` returns), in the batch's order: ``meta`` is a list of dicts, one per image.
Reading never runs code (JSON and safetensors only) and the JSON file is bounded in size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colorkit.core.registry import ColorkitError

META_JSON = "colorkit-meta.json"
META_ARRAYS = "colorkit-meta.safetensors"
META_FORMAT = "colorkit-meta-v1"
MAX_JSON_BYTES = 1 << 30  # 1 GiB: refuse larger metadata files rather than read them


class DatasetMeta:
    """The metadata of one data set folder: ``records[file]`` and row-aligned ``arrays``."""

    def __init__(self, folder: Path, info: dict[str, Any], arrays: dict[str, torch.Tensor]) -> None:
        self.folder = folder
        self.info = info
        self.records: dict[str, dict[str, Any]] = info["images"]
        self.arrays = arrays

    def record(self, file: str) -> dict[str, Any]:
        """The record of one image (relative file name), with its array rows attached."""
        try:
            rec = dict(self.records[file])
        except KeyError:
            raise ColorkitError(f"{self.folder / META_JSON} has no record for image {file!r}") from None
        row = rec.get("row")
        for name, arr in self.arrays.items():
            if not isinstance(row, int) or not 0 <= row < arr.shape[0]:
                raise ColorkitError(f"{self.folder / META_JSON}: record of {file!r} has row {row!r}, outside "
                                    f"the {arr.shape[0]} rows of array {name!r}")
            rec[name] = arr[row]
        return rec

    def batch(self, files: Sequence[str], index: torch.Tensor | np.ndarray | Sequence[int]) -> list[dict[str, Any]]:
        """Records of the images at rows ``index`` of a prepared set whose kept files are
        ``files`` (``PreparedDataset.files``)."""
        rows = index.tolist() if hasattr(index, "tolist") else list(index)
        return [self.record(files[int(r)]) for r in rows]


def read_meta_folder(folder: str | Path) -> DatasetMeta | None:
    """The metadata in ``folder``, or ``None`` when it has no ``colorkit-meta.json``."""
    folder = Path(folder)
    path = folder / META_JSON
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ColorkitError(f"{path} is larger than {MAX_JSON_BYTES} bytes; refusing to read it")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ColorkitError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != META_FORMAT or not isinstance(info.get("images"), dict):
        raise ColorkitError(f"{path}: expected a {META_FORMAT!r} object with an 'images' mapping")
    arrays: dict[str, torch.Tensor] = {}
    if (folder / META_ARRAYS).is_file():
        from colorkit.core.checkpoint import load_tensors

        arrays = load_tensors(folder / META_ARRAYS)
    return DatasetMeta(folder, info, arrays)


class BatchMeta:
    """A prepared data set's metadata bound to its file list: ``bm(index) -> list of records``."""

    def __init__(self, meta: DatasetMeta, files: Sequence[str]) -> None:
        self.meta, self.files = meta, list(files)

    def __call__(self, index: torch.Tensor | np.ndarray | Sequence[int]) -> list[dict[str, Any]]:
        return self.meta.batch(self.files, index)


def load_meta(dataset: Any) -> BatchMeta | None:
    """Metadata of a prepared data set (read from its source folder), or ``None`` if it has
    none. ``load_meta(ds)(batch["index"])`` gives the batch's records."""
    source = getattr(dataset, "source", None)
    if source is None:
        return None
    meta = read_meta_folder(source)
    return None if meta is None else BatchMeta(meta, dataset.files)
