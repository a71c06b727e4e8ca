"""The records a data set source yields, and how one record becomes an image.

The protocol (what a data set plugin returns) is documented in :mod:`colorkit.data.sources`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from colorkit.data import images

#: Largest encoded image read from an archive or LMDB (a member claiming more is skipped
#: as ``too-large`` without being read).
MAX_RECORD_BYTES = 256 * 1024 * 1024

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")

#: Largest compression ratio accepted for an archive member above :data:`RATIO_MIN_BYTES`
#: (declared by a zip's directory or observed while reading a compressed tar); photos
#: compress little, a member of zeros about 1000:1. Such a member is skipped as ``too-large``.
MAX_COMPRESSION_RATIO = 100
RATIO_MIN_BYTES = 1 << 20


@dataclass
class Record:
    """One candidate image: ``key`` (a unique name: relative path, member name or LMDB
    key), and either ``data`` (encoded bytes) or ``image`` (PIL image or uint8 HxWx3
    array); ``meta``: JSON-able per-image metadata; ``reason``/``detail``: a skip already
    decided by the source (e.g. an over-large member)."""

    key: str
    data: bytes | None = None
    image: Any = None
    meta: dict[str, Any] | None = None
    path: str | None = None
    reason: str | None = None
    detail: str = ""


class Source:
    """Base class of image sources (see the module docstring for the protocol)."""

    name: str = "source"
    """A short name for messages and the cache folder."""
    location: str = ""
    """Where the images come from, as the user would name it (folder, archive, URL)."""
    split_rule: dict[str, Any] | None = None
    """A fixed train/test rule the data set publishes (``None``: a seeded random split)."""
    expected_images: int | None = None
    """How many images the published data set holds; preparation notes a different count."""
    root: Any = None
    """The folder a folder source reads (``None`` for others); a prepared data set's ``source``."""
    path: Any = None
    """The archive or database file a source reads (``None`` for others)."""

    def cleanup(self) -> None:
        """Called once the images are in the cache: remove any scratch copy (default: nothing)."""

    def fingerprint(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def records(self, start: int = 0) -> Iterator[Record]:  # pragma: no cover - abstract
        raise NotImplementedError

    def size_hint(self) -> int | None:
        return None


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in images.IMAGE_EXTENSIONS


# ----------------------------------------------------------------------------- decoding
def decode_record(rec: Record, size: int, crop: bool, min_side: int) -> images.Loaded:
    """Resize and check one record like a file in a folder; never raises for bad data."""
    import io

    from PIL import Image, UnidentifiedImageError

    if rec.reason is not None:
        return images.Loaded(None, rec.reason, rec.detail)
    try:
        if rec.path is not None:
            return images.load_image(rec.path, size, crop=crop, min_side=min_side)
        if rec.image is not None:
            img = rec.image
            if isinstance(img, np.ndarray):
                if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                    return images.Loaded(
                        None, "unsupported-mode", f"array {img.dtype} {img.shape}; expected uint8 (H, W, 3)"
                    )
                img = Image.fromarray(img, "RGB")
            return images.load_opened(img, size, crop, min_side)
        data = rec.data or b""
        if not data:
            return images.Loaded(None, "empty-file", "0 bytes")
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            return images.Loaded(None, "not-an-image", "Pillow cannot identify the file")
        except Image.DecompressionBombError as exc:
            return images.Loaded(None, "too-large", str(exc))
        with img:
            return images.load_opened(img, size, crop, min_side)
    except Exception as exc:  # noqa: BLE001 - any decoder error is a per-file reason
        return images.Loaded(None, "corrupt-or-truncated", f"{type(exc).__name__}: {exc}")


__all__ = ["ARCHIVE_SUFFIXES", "MAX_COMPRESSION_RATIO", "MAX_RECORD_BYTES", "RATIO_MIN_BYTES", "Record", "Source",
           "decode_record", "is_image_name"]
