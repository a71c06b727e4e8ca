"""Colorizations into files: what an output file is and the threads that write them.

- :func:`output_format` / :class:`OutputFormat`: what an output file is: ``png``
  (lossless, the default), or ``jpg`` / ``webp`` at a quality, and how it is encoded.
- :class:`Writer`: composes, encodes and writes outputs in a pool of threads (PyTorch,
  zlib, libjpeg and libwebp release the GIL, so this runs beside decoding and the model;
  composition keeps to the calling thread, see :mod:`colorkit.data.compose`), each file
  atomically through :mod:`colorkit.core.fs` (a temporary file beside it, then a
  rename: a file under its final name is always whole). At most ``max_pixels`` pixels of
  outputs wait to be written at once, so memory depends neither on k nor on how many
  photos there are.

``colorkit colorize photo.jpg``, the folder run (:mod:`colorkit.apps.folder`) and the web
page (:mod:`colorkit.apps.serve`) all write through them (see
:func:`colorkit.inference.photo.write_colorizations`).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image

from colorkit.core.fs import atomic_write_bytes
from colorkit.core.registry import ColorkitError

FORMATS = ("png", "jpg", "webp")
"""Output formats: PNG is lossless; JPEG and WebP are lossy, at a quality from 1 to 100."""
DEFAULT_QUALITY = {"jpg": 95, "webp": 90}
"""Quality of lossy outputs when none is given."""
PNG_COMPRESS_LEVEL = 1
PNG_STRATEGY = 3
"""zlib level and strategy (3: run-length, ``Z_RLE``) of PNG outputs, chosen by measurement
on colorizations of 1024x768 and of real photos (the "PNG compression" table of
docs/results.md): faster than level 1's default strategy and smaller than even Pillow's
default level 6, on PNG's filtered rows; every setting is lossless."""
WRITE_PIXELS = 32_000_000
"""Default bound on the pixels of the outputs waiting to be encoded and written (about
3 bytes each, plus the encoded file)."""
_MEDIA = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class OutputFormat:
    """An output file format: ``name`` (one of :data:`FORMATS`) and, for jpg and webp,
    ``quality`` (1-100)."""

    name: str = "png"
    quality: int | None = None

    @property
    def suffix(self) -> str:
        return f".{self.name}"

    @property
    def media_type(self) -> str:
        return _MEDIA[self.name]

    def describe(self) -> str:
        """What a file of this format is, for the records that say what each output is."""
        if self.name == "png":
            return "RGB PNG (lossless)"
        return f"RGB {'JPEG' if self.name == 'jpg' else 'WebP'} at quality {self.quality} (lossy)"

    def settings(self) -> dict[str, Any]:
        """The format as a setting of a folder run: nothing for PNG (as before there was a
        choice, so that a folder made then still resumes), else the format and quality."""
        return {} if self.name == "png" else {"format": self.name, "quality": self.quality}

    def encode(self, img: Image.Image) -> bytes:
        buf = BytesIO()
        if self.name == "png":
            img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, compress_type=PNG_STRATEGY)
        elif self.name == "jpg":
            img.save(buf, format="JPEG", quality=self.quality)
        else:
            img.save(buf, format="WEBP", quality=self.quality)
        return buf.getvalue()


def output_format(name: str = "png", quality: int | None = None) -> OutputFormat:
    """The :class:`OutputFormat` for ``--format`` and ``--quality``; a one-line error for a
    format colorkit does not write, a quality outside 1-100, or a quality given for PNG."""
    key = str(name).lower()
    key = "jpg" if key == "jpeg" else key
    if key not in FORMATS:
        raise ColorkitError(f"--format must be one of {', '.join(FORMATS)}, not {name!r}")
    if key == "png":
        if quality is not None:
            raise ColorkitError(f"--quality {quality} is for jpg and webp; png is lossless (leave --quality out)")
        return OutputFormat("png")
    q = DEFAULT_QUALITY[key] if quality is None else quality
    if not isinstance(q, int) or isinstance(q, bool) or not 1 <= q <= 100:
        raise ColorkitError(f"--quality must be a whole number from 1 to 100, not {q!r}")
    return OutputFormat(key, q)


def default_workers() -> int:
    """Encoding threads: one per CPU core, at least 2 and at most 8."""
    return max(2, min(8, os.cpu_count() or 2))


class Writer:
    """Encodes images and writes each atomically, in a pool of ``workers`` threads.

    :meth:`submit` (from one thread) returns at once unless more than ``max_pixels``
    pixels of images already wait, in which case it first waits for the oldest. A failed
    write (a full disk) is raised by a later :meth:`submit`, :meth:`flush` or the end of
    the ``with`` block. Leaving the block on an error cancels the writes not yet started
    and lets the started ones finish (each is atomic)."""

    def __init__(self, fmt: OutputFormat | None = None, *, workers: int | None = None,
                 max_pixels: int = WRITE_PIXELS) -> None:
        if max_pixels < 1 or (workers is not None and workers < 1):
            raise ColorkitError("workers and max_pixels must be at least 1")
        self.format = fmt or OutputFormat()
        self.max_pixels = max_pixels
        self._pool = ThreadPoolExecutor(max_workers=workers or default_workers(), thread_name_prefix="colorkit-write")
        self._pending: deque[tuple[Future, int]] = deque()
        self._pixels = 0
        self._lock = threading.Lock()
        self.files = 0
        self.bytes = 0

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(cancel=exc_type is not None)

    def submit(self, img: Image.Image | Callable[[], Image.Image], path: str | Path, *,
               pixels: int | None = None) -> Future:
        """Encode ``img`` in the writer's format and write it to ``path`` (atomically).
        ``img`` may be a function that makes the image (called in a writer thread, e.g.
        the composition of one colorization); ``pixels`` is then its size."""
        if callable(img):
            if pixels is None:
                raise ValueError("pixels= is needed with a function that makes the image")
            n = pixels
        else:
            n = img.width * img.height
        self._wait(max(0, self.max_pixels - n))
        fut = self._pool.submit(self._write, img, Path(path))
        self._pending.append((fut, n))
        self._pixels += n
        return fut

    def _write(self, img: Image.Image | Callable[[], Image.Image], path: Path) -> None:
        data = self.format.encode(img() if callable(img) else img)
        atomic_write_bytes(path, data)
        with self._lock:
            self.files += 1
            self.bytes += len(data)

    def _wait(self, limit: int) -> None:
        while self._pending and self._pixels > limit:
            fut, n = self._pending.popleft()
            self._pixels -= n
            fut.result()

    def flush(self) -> None:
        """Wait until every write submitted has ended, then raise the first failure."""
        first: BaseException | None = None
        while self._pending:
            fut, n = self._pending.popleft()
            self._pixels -= n
            try:
                fut.result()
            except BaseException as exc:  # noqa: BLE001 - raised below, once nothing is being written
                first = first or exc
        if first is not None:
            raise first

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for fut, _ in self._pending:
                fut.cancel()
            self._pool.shutdown(wait=True)
            return
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True)


def when_written(futures: list[Future], callback: Callable[[], None]) -> None:
    """Call ``callback()`` once every one of ``futures`` has written its file (never when
    one of them failed or was cancelled)."""
    left = [len(futures)]
    lock = threading.Lock()

    def one(fut: Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            callback()

    for fut in futures:
        fut.add_done_callback(one)
