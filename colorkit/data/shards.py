"""The prepared cache's files: fixed-size ``.npy`` shards, their manifests and the index.

``shard-NNNNN.npy``
    uint8 ``(n, size, size, 3)`` sRGB, :data:`SHARD_SIZE` images each (the last one
    fewer), streamed into ``shard-NNNNN.npy.part`` and renamed when complete; read back per
    batch (``pread`` of the rows asked for, :mod:`colorkit.data.dataset`).
``shard-NNNNN.json``
    the shard's source positions, kept keys, skipped keys with reason and detail,
    per-image metadata and the sha256 of its pixels, written after the shard: the shard's
    completion marker (:func:`complete_shards` resumes from the last one).
``index.json``
    everything joined (written by :mod:`colorkit.data.build`); :func:`read_index` accepts
    a folder only when the index and every shard it names are whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from colorkit.core import fs

FORMAT = "colorkit-dataset-v2"
SHARD_SIZE = 1024
"""Images per shard (12 MiB at 64x64)."""


def npy_header(n: int, size: int) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|u1", "fortran_order": False, "shape": (n, size, size, 3)}
    )
    return buf.getvalue()


def read_npy_shape(path: Path) -> tuple[int, ...] | None:
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version != (1, 0):
                return None
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            if fortran or dtype != np.uint8:
                return None
            expected = f.tell() + int(np.prod(shape))
        if os.path.getsize(path) != expected:
            return None
        return tuple(shape)
    except (OSError, ValueError):
        return None


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as compact JSON, atomically (``<name>.part``, fsync, rename: only the
    process that holds the folder's lock writes here)."""
    fs.atomic_write_text(path, json.dumps(obj, indent=None, separators=(",", ":")), part=True)


class ShardWriter:
    """Writes one shard: rows streamed to ``shard-N.npy.part``, then header fixed, file
    renamed, and its manifest written last (the completion marker)."""

    def __init__(self, folder: Path, number: int, start: int, size: int, capacity: int) -> None:
        self.folder, self.number, self.start, self.end = folder, number, start, start
        self.size, self.capacity = size, capacity
        self.name = f"shard-{number:05d}"
        self.files: list[str] = []
        self.positions: list[int] = []
        self.meta: list[Any] = []
        self.skipped: dict[str, str] = {}
        self.details: dict[str, str] = {}
        self.digest = hashlib.sha256()
        self.header = npy_header(capacity, size)
        self.out = fs.AtomicFile(folder / f"{self.name}.npy", part=True)
        self.fh = self.out.open("wb")  # closed by close() or abort()
        self.fh.write(self.header)

    @property
    def full(self) -> bool:
        return len(self.files) >= self.capacity

    def add(self, pos: int, key: str, arr: np.ndarray, meta: Any) -> None:
        b = arr.tobytes()
        self.fh.write(b)
        self.digest.update(b)
        self.files.append(key)
        self.positions.append(pos)
        self.meta.append(meta)
        self.end = pos + 1

    def skip(self, pos: int, key: str, reason: str, detail: str) -> None:
        self.skipped[key] = reason
        self.details[key] = detail
        self.end = pos + 1

    def close(self) -> dict[str, Any] | None:
        """Finish the shard; ``None`` (and nothing written) if it saw no record."""
        n = len(self.files)
        if self.end == self.start:
            self.fh.close()
            self.out.abort()
            return None
        new_header = npy_header(n, self.size)
        if len(new_header) != len(self.header):  # pragma: no cover - numpy pads for growth
            raise RuntimeError("npy header length changed")
        self.fh.seek(0)
        self.fh.write(new_header)
        self.fh.close()
        self.out.commit()  # fsync, rename
        manifest = {
            "format": FORMAT, "shard": self.number, "file": f"{self.name}.npy", "n": n,
            "start": self.start, "end": self.end, "files": self.files, "positions": self.positions,
            "meta": self.meta if any(m is not None for m in self.meta) else None,
            "skipped_files": self.skipped, "skip_details": self.details,
            "sha256": self.digest.hexdigest(),
        }
        write_json(self.folder / f"{self.name}.json", manifest)
        return manifest

    def abort(self) -> None:
        """Stop (the ``.part`` file stays: a resumed preparation writes it again)."""
        try:
            self.fh.close()
        except OSError:  # pragma: no cover
            pass


def complete_shards(folder: Path, size: int) -> list[dict[str, Any]]:
    """The manifests of the contiguous run of complete, valid shards in ``folder``."""
    out: list[dict[str, Any]] = []
    pos = 0
    while True:
        name = f"shard-{len(out):05d}"
        try:
            m = json.loads((folder / f"{name}.json").read_text())
        except (OSError, ValueError):
            return out
        if not isinstance(m, dict) or m.get("format") != FORMAT or m.get("start") != pos:
            return out
        if read_npy_shape(folder / f"{name}.npy") != (m.get("n"), size, size, 3):
            return out
        out.append(m)
        pos = int(m["end"])


def read_index(folder: Path, digest: str) -> dict[str, Any] | None:
    """The cached index if ``folder`` holds a complete, matching cache, else ``None``."""
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("hash") != digest:
        return None
    size = index.get("size")
    shards = index.get("shards")
    if not isinstance(shards, list) or sum(int(s.get("n", -1)) for s in shards) != len(index.get("files", [])):
        return None
    for s in shards:
        if read_npy_shape(folder / str(s.get("file"))) != (s.get("n"), size, size, 3):
            return None
    return index


__all__ = ["FORMAT", "SHARD_SIZE", "ShardWriter", "complete_shards", "npy_header", "read_index", "read_npy_shape",
           "write_json"]
