"""``OUT/colorize-inputs.jsonl``, the record of a folder run (:mod:`colorkit.apps.folder`):
which photo (resolved path, content sha256, file status) wrote or was writing which
outputs. Read line by line (a line longer than :data:`MAX_JOURNAL_LINE` is passed over,
the whole at most :data:`MAX_JOURNAL_BYTES`), rewritten without its superseded lines when
they are most of it, and appended to without ever following a symbolic link; a FIFO or a
device under its name is a one-line error, never read."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from colorkit.core.fs import atomic_write_text, open_write
from colorkit.core.registry import ColorkitError
from colorkit.core.regular import NotRegularFile, open_regular

JOURNAL = "colorize-inputs.jsonl"
MAX_JOURNAL_BYTES = 256 << 20
"""Largest ``colorize-inputs.jsonl`` read (about half a million photos at k=5); a larger one
is refused with one line."""
MAX_JOURNAL_LINE = 1 << 20
"""Longest line of the journal that is parsed; longer ones are passed over."""


def stat_key(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a file's bytes, or ``None`` when it cannot be read."""
    h = hashlib.sha256()
    try:
        with open_regular(path) as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


class Journal:
    """``OUT/colorize-inputs.jsonl``: one line per photo when its outputs are about to be
    written (``"done": false``) and one when all are written (``"done": true``), each with
    the photo's resolved path, sha256 and file status. An output belongs to the input whose
    line names it; a photo is done when its last line says so, its outputs exist and its
    content is the one recorded."""

    def __init__(self, out: Path) -> None:
        self.path = out / JOURNAL
        self.last: dict[str, dict[str, Any]] = {}  # source -> its last entry
        self.owner: dict[str, str] = {}  # output -> source that wrote (or was writing) it
        self._lock = threading.Lock()
        self._fh: Any = None
        if os.path.islink(self.path):
            raise ColorkitError(f"refusing to use {self.path}: it is a symbolic link; colorkit never writes through "
                                "a link (remove it or choose another --out)")
        try:
            fh = open_regular(self.path)
        except FileNotFoundError:
            return
        except NotRegularFile as exc:
            raise ColorkitError(f"{self.path} is {exc.kind}, not a regular file; colorkit keeps its record of a folder "
                                "run there (remove it or choose another --out)") from None
        except OSError as exc:
            raise ColorkitError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        with fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_JOURNAL_BYTES:
                raise ColorkitError(f"{self.path} is {size:,} bytes; at most {MAX_JOURNAL_BYTES:,} are read (about "
                                    "half a million photos): colorize into another --out")
            lines = sum(self._read(line) for line in _lines(fh))
        if lines > 2 * len(self.last) + 100:  # mostly superseded lines: keep it small
            self._rewrite()

    def _read(self, line: bytes) -> int:
        try:
            e = json.loads(line.decode("utf-8", errors="replace"))
            src, outs = e["source"], e["outputs"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return 1  # a line cut short by a kill
        if not isinstance(src, str) or not isinstance(outs, list):
            return 1
        outs = [o for o in outs if isinstance(o, str)]
        self.last[src] = {**{k: e[k] for k in ("sha256", "stat", "done", "hints") if k in e}, "source": src,
                          "outputs": outs}
        for o in outs:
            self.owner[o] = src
        return 1

    def _rewrite(self) -> None:
        """The journal again with one line per photo (and one for outputs a photo had
        claimed before its last line), atomically."""
        claimed: dict[str, list[str]] = {}
        for o, src in self.owner.items():
            claimed.setdefault(src, []).append(o)
        text = []
        for src, e in self.last.items():
            mine = set(e["outputs"])
            orphans = [o for o in claimed.get(src, []) if o not in mine]
            if orphans:
                text.append(json.dumps({"source": src, "outputs": orphans, "done": False}, sort_keys=True) + "\n")
            text.append(json.dumps(e, sort_keys=True) + "\n")
        atomic_write_text(self.path, "".join(text))

    def done(self, source: str, outputs: list[str], out: Path, path: Path,
             hints: list[dict[str, Any]] | None = None) -> bool:
        e = self.last.get(source)
        if not e or not e.get("done") or e.get("outputs") != outputs or e.get("hints") != hints:
            return False
        if not all((out / n).is_file() for n in outputs):
            return False
        if e.get("stat") == stat_key(path):
            return True
        return e.get("sha256") is not None and file_sha256(path) == e.get("sha256")

    def free(self, source: str, outputs: list[str], out: Path) -> bool:
        """Whether ``source`` may write ``outputs``: each is absent or its own."""
        for o in outputs:
            owner = self.owner.get(o)
            if owner is not None and owner != source:
                return False
            if owner is None and os.path.lexists(out / o):
                return False  # a file this OUT's record does not account for: never replaced
        return True

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            if self._fh is None:
                self._fh = open_write(self.path, "a", encoding="utf-8")  # closed in close()
            self._fh.write(json.dumps(entry, sort_keys=True) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            for o in entry["outputs"]:
                self.owner[o] = entry["source"]

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def _lines(fh: Any) -> Iterator[bytes]:
    """The lines of ``fh``, one at a time; a line longer than :data:`MAX_JOURNAL_LINE` is
    passed over without being kept."""
    while line := fh.readline(MAX_JOURNAL_LINE + 1):
        if len(line) > MAX_JOURNAL_LINE and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = fh.readline(MAX_JOURNAL_LINE + 1)
            continue
        yield line
