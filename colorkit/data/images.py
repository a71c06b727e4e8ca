"""Finding image files and loading one image as a small uint8 RGB array.

Every file either yields a ``(size, size, 3)`` uint8 RGB array or a skip reason, never an
exception: a 100,000-image folder always finishes, and every skip is counted.

Skip reasons (:data:`SKIP_REASONS`):

* ``empty-file``: zero bytes;
* ``not-a-regular-file``: a FIFO, a device (``/dev/zero``), a socket or a folder, directly
  or through a link: never opened, so never a hang;
* ``symlink-loop``: a symbolic link that leads back to itself;
* ``not-an-image``: Pillow cannot identify it (random bytes, a text file named ``.png``);
* ``corrupt-or-truncated``: identified but decoding fails (truncated JPEG/PNG, bad data);
* ``too-large``: over Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS`` x 2);
* ``unsupported-mode``: a pixel format that cannot be converted to RGB (e.g. Pillow ``LAB``);
* ``too-small``: shorter side below ``min_side`` pixels (default 16);
* ``greyscale``: a one-channel mode (``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``), or RGB
  whose chroma is ~0 after resizing: mean ``|a| + |b|`` below :data:`GREY_MEAN_AB` or
  maximum ``sqrt(a^2 + b^2)`` below :data:`GREY_MAX_CHROMA` (Lab units).

Converted and kept: CMYK and YCbCr -> RGB; palette -> RGB (RGBA if it has
transparency); alpha (RGBA, PA, premultiplied) composited on white; 16-bit-per-channel
RGB (48-bit PNG, 16-bit TIFF) is decoded to 8 bits by Pillow; EXIF orientation applied
(the same transpositions as ``ImageOps.exif_transpose``). Multi-frame files use frame 0.

Resizing is the paper's straight resize to ``size x size`` (aspect ratio not kept), or
with ``crop=True`` a centre square crop first; Lanczos filter. JPEGs are decoded at a
reduced DCT scale (``Image.draft``) no smaller than twice the target, which is fast and
keeps the Lanczos downscale's quality.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from colorkit.core.regular import NotRegularFile, check_regular, open_regular

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
"""Extensions searched for (case-insensitive)."""

SKIP_REASONS: tuple[str, ...] = (
    "empty-file",
    "not-a-regular-file",
    "symlink-loop",
    "not-an-image",
    "corrupt-or-truncated",
    "too-large",
    "unsupported-mode",
    "too-small",
    "greyscale",
)

GREY_MEAN_AB = 1.0
"""An RGB image whose mean ``|a| + |b|`` is below this (Lab units) counts as greyscale."""
GREY_MAX_CHROMA = 2.0
"""An RGB image whose largest chroma ``sqrt(a^2 + b^2)`` is below this (Lab units) counts
as greyscale."""
MIN_SIDE = 16
"""Default smallest accepted short side, in pixels of the original file."""

WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
"""PIL modes of greyscale images with more than 8 bits (integer or float pixels)."""
GREY_MODES = frozenset({"1", "L", "LA", "La"}) | WIDE_GREY_MODES
"""PIL modes of greyscale images (one channel, with or without alpha)."""
_GREY_MODES = GREY_MODES
_ALPHA_MODES = {"RGBA", "RGBa", "PA"}

# EXIF orientation -> transposition (as in PIL.ImageOps.exif_transpose).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Loaded:
    """The result of :func:`load_image`: ``array`` ``(size, size, 3)`` uint8 RGB, or
    ``None`` with ``reason`` (one of :data:`SKIP_REASONS`) and a short ``detail``."""

    array: np.ndarray | None
    reason: str | None = None
    detail: str = ""


def find_images(root: Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS, *,
                onerror: Callable[[OSError], None] | None = None) -> list[str]:
    """Relative POSIX paths of all files under ``root`` (recursively, symlinked folders not
    followed) whose extension is in ``extensions`` (case-insensitive), sorted. ``onerror``
    receives the error of each folder that cannot be listed (by default it is passed over)."""
    exts = {e.lower() for e in extensions}
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        for name in filenames:
            if os.path.splitext(name)[1].lower() in exts:
                found.append((rel_dir / name).as_posix())
    found.sort()
    return found


def chroma_stats(rgb: np.ndarray) -> tuple[float, float]:
    """``(mean |a| + |b|, max sqrt(a^2 + b^2))`` in Lab units of a uint8 ``(H, W, 3)`` sRGB
    image (D65; the same formulas as :func:`colorkit.core.color.rgb_to_lab`, in numpy so that it
    runs in loader threads without torch)."""
    x = rgb.reshape(-1, 3).astype(np.float32) / 255.0
    lin = np.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    m = np.array(
        [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
        dtype=np.float32,
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(np.maximum(xyz, 0.008856)), 7.787 * xyz + 4.0 / 29.0)
    a = 500.0 * (f[:, 0] - f[:, 1])
    b = 200.0 * (f[:, 1] - f[:, 2])
    return float(np.mean(np.abs(a) + np.abs(b))), float(np.sqrt(a * a + b * b).max())


def to_rgb(img: Image.Image) -> Image.Image | None:
    """Convert any colour mode to RGB (alpha composited on white); ``None`` if impossible."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return img.convert("RGB")  # CMYK, YCbCr, RGBX, 16-bit RGB variants, ...
    except (ValueError, OSError):
        return None


def load_image(
    path: str | os.PathLike[str],
    size: int,
    *,
    crop: bool = False,
    min_side: int = MIN_SIDE,
) -> Loaded:
    """Load ``path`` as a ``(size, size, 3)`` uint8 RGB array, or say why not.

    Never raises for a bad file (see the module docstring for the reasons); raises only
    for programming errors such as a non-positive ``size``.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    try:
        if check_regular(path).st_size == 0:
            return Loaded(None, "empty-file", "0 bytes")
        fh = open_regular(path)
    except NotRegularFile as exc:
        return Loaded(None, exc.reason, f"{exc.kind}; only regular files are read")
    except OSError as exc:
        return Loaded(None, "corrupt-or-truncated", f"cannot stat: {exc}")
    with fh:
        return _load_file(fh, size, crop, min_side)


def _load_file(fh: Any, size: int, crop: bool, min_side: int) -> Loaded:
    try:
        img = Image.open(fh)
    except UnidentifiedImageError:
        return Loaded(None, "not-an-image", "Pillow cannot identify the file")
    except Image.DecompressionBombError as exc:
        return Loaded(None, "too-large", str(exc))
    except Exception as exc:  # noqa: BLE001 - any decoder error is a per-file reason
        return Loaded(None, "corrupt-or-truncated", f"{type(exc).__name__}: {exc}")
    with img:
        return load_opened(img, size, crop, min_side)


def load_opened(img: Image.Image, size: int, crop: bool, min_side: int) -> Loaded:
    w, h = img.size
    if min(w, h) < min_side:
        return Loaded(None, "too-small", f"{w}x{h} px, shorter side below {min_side}")
    if img.mode in _GREY_MODES:
        return Loaded(None, "greyscale", f"mode {img.mode}")
    try:
        orientation = int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block only loses the orientation
        orientation = 1
    try:
        # JPEG: decode at 1/2, 1/4 or 1/8 scale, keeping at least 2 x size on each side
        # (of the crop box when cropping).
        side = min(w, h) if crop else None
        want = (2 * size * w // side, 2 * size * h // side) if side else (2 * size, 2 * size)
        img.draft(None, want)
        img.load()
    except Image.DecompressionBombError as exc:
        return Loaded(None, "too-large", str(exc))
    except Exception as exc:  # noqa: BLE001
        return Loaded(None, "corrupt-or-truncated", f"{type(exc).__name__}: {exc}")
    if img.mode in _GREY_MODES:  # draft may pick L for a greyscale JPEG
        return Loaded(None, "greyscale", f"mode {img.mode}")
    try:
        rgb = to_rgb(img)
    except Exception as exc:  # noqa: BLE001
        return Loaded(None, "corrupt-or-truncated", f"{type(exc).__name__}: {exc}")
    if rgb is None:
        return Loaded(None, "unsupported-mode", f"mode {img.mode} cannot be converted to RGB")
    dw, dh = rgb.size
    if crop:
        s = min(dw, dh)
        left, top = (dw - s) / 2, (dh - s) / 2
        box = (left, top, left + s, top + s)
    else:
        box = (0, 0, dw, dh)
    try:
        small = rgb.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    except Exception as exc:  # noqa: BLE001
        return Loaded(None, "corrupt-or-truncated", f"{type(exc).__name__}: {exc}")
    # Square resize / centre crop commute with the EXIF transpositions, so orient the
    # small result (cheaper than the full image).
    if orientation in _ORIENTATION:
        small = small.transpose(_ORIENTATION[orientation])
    arr = np.asarray(small, dtype=np.uint8)
    if arr.shape != (size, size, 3):  # pragma: no cover - defensive
        return Loaded(None, "unsupported-mode", f"decoded to shape {arr.shape}")
    mean_ab, max_chroma = chroma_stats(arr)
    if mean_ab < GREY_MEAN_AB or max_chroma < GREY_MAX_CHROMA:
        return Loaded(
            None, "greyscale", f"RGB with ~no colour: mean |a|+|b| {mean_ab:.2f}, max chroma {max_chroma:.2f} Lab units"
        )
    return Loaded(np.ascontiguousarray(arr))
