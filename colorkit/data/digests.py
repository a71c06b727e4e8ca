"""Content digests of source files, remembered between runs in ``<cache>/fingerprints.json``
(a source's fingerprint, part of the prepared cache's key, is built from them)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from colorkit.core import fs
from colorkit.core.regular import check_regular, open_regular

_memo_lock = threading.Lock()


def _memo_path(cache_dir: Path | None) -> Path | None:
    return None if cache_dir is None else cache_dir / "fingerprints.json"


def _stat_key(st: os.stat_result) -> list[int]:
    # ctime cannot be set back by a user (unlike mtime), so any rewrite shows here.
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class DigestMemo:
    """Content digests of files, remembered against their full stat (size, mtime, ctime,
    inode, device) so an unchanged file is not read again; any rewrite of a file changes
    its ctime and makes it read again."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.path = _memo_path(cache_dir)
        self.data: dict[str, list[Any]] = {}
        self.dirty = False
        if self.path is not None:
            try:
                raw = json.loads(self.path.read_text())
                if isinstance(raw, dict):
                    self.data = {k: v for k, v in raw.items() if isinstance(v, list) and len(v) == 6}
            except (OSError, ValueError):
                self.data = {}

    def digest(self, path: Path) -> str:
        """The file's content digest; only a regular file is read (a FIFO, a device such as
        ``/dev/zero`` or a loop of links raises :class:`~colorkit.core.regular.NotRegularFile`,
        an ``OSError``, without being opened)."""
        st = check_regular(path)
        key = str(path)
        sk = _stat_key(st)
        old = self.data.get(key)
        if old is not None and old[:5] == sk:
            return str(old[5])
        h = hashlib.blake2b(digest_size=16)
        with open_regular(path) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        d = h.hexdigest()
        self.data[key] = [*sk, d]
        self.dirty = True
        return d

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        with _memo_lock:
            try:
                fs.atomic_write_text(self.path, json.dumps(self.data))
            except OSError:
                pass  # the memo only saves time


__all__ = ["DigestMemo"]
