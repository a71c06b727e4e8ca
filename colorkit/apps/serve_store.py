"""Where ``colorkit serve`` keeps its results: one temporary folder, bounded in count."""

from __future__ import annotations

import re
import shutil
import threading
import uuid
from pathlib import Path

KEEP = 16
"""Finished results kept in the temporary folder; older finished ones are deleted."""

_ID = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^(grey|[0-9]{1,2})\.png$")


class ResultStore:
    """Results in one temporary folder: ``root/<32 hex>/{upload,grey.png,1.png,...}``.
    Only names matching a strict pattern are ever served or written. A result is in flight
    from its upload until it is finished or dropped; only finished results are served, and
    only finished ones are evicted (the oldest beyond the newest ``keep``), so a photo
    being uploaded or colorized is never removed under the request."""

    def __init__(self, root: Path, keep: int = KEEP) -> None:
        self.root = root
        self.keep = max(1, keep)
        self._finished: list[str] = []
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def new(self) -> tuple[str, Path]:
        rid = uuid.uuid4().hex
        folder = self.root / rid
        folder.mkdir()
        with self._lock:
            self._in_flight.add(rid)
        return rid, folder

    def finish(self, rid: str) -> None:
        with self._lock:
            self._in_flight.discard(rid)
            self._finished.append(rid)
            old = self._finished[: -self.keep]
            self._finished = self._finished[-self.keep :]
        for o in old:
            shutil.rmtree(self.root / o, ignore_errors=True)

    def drop(self, rid: str) -> None:
        with self._lock:
            self._in_flight.discard(rid)
            if rid in self._finished:
                self._finished.remove(rid)
        shutil.rmtree(self.root / rid, ignore_errors=True)

    def path(self, rid: str, name: str) -> Path | None:
        if not _ID.match(rid) or not _NAME.match(name):
            return None
        with self._lock:
            if rid not in self._finished:
                return None
        p = self.root / rid / name
        return p if p.is_file() else None
