"""Reading user images: photos in (paths, PIL images, arrays) and the model's input.

:func:`open_image` and :func:`read_photo` give an RGB image at full resolution (EXIF
orientation applied); :func:`model_grey` is the model's input, the image resized straight
to the model's square and its L / 100. Photos above :data:`MAX_PIXELS` pixels are refused
with a one-line error (or, for :func:`read_photo`, a reason) unless a higher
``max_pixels`` is given, from the file's header before anything is decoded. Colorizing
them is :mod:`colorkit.inference.photo`'s.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from colorkit.core.color import L_SCALE, rgb_to_lab
from colorkit.core.registry import ColorkitError
from colorkit.core.regular import NotRegularFile, check_regular, open_regular
from colorkit.data.images import GREY_MODES, WIDE_GREY_MODES, to_rgb

MAX_PIXELS = 50_000_000
"""Default limit on the pixels of a photo to colorize (50 megapixels, e.g. 8660x5773)."""
def _check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > limit:
        raise ColorkitError(f"{what} is {width}x{height} = {width * height:,} pixels; the limit is {limit:,} "
                            "(raise it with --max-pixels / max_pixels=, at about 20 bytes of memory per pixel)")


def _path_check(path: Path) -> None:
    try:
        check_regular(path)
    except FileNotFoundError:
        raise ColorkitError(f"cannot read image {path}: no such file") from None
    except NotRegularFile as exc:
        raise ColorkitError(f"cannot read image {path}: it is {exc.kind}, not a regular file (expected an image "
                            "file)") from None
    except OSError as exc:
        raise ColorkitError(f"cannot read image {path}: {exc.strerror or exc}") from None


def image_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """Width and height of an image file from its header (nothing decoded); a missing,
    unreadable or too large image is a one-line error."""
    path = Path(path)
    _path_check(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_regular(path) as fh, _no_bomb_limit(), Image.open(fh) as img:
                size = img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise ColorkitError(f"cannot read image {path}: {exc}") from None
    _check_pixels(size[0], size[1], max_pixels, f"image {path}")
    return size


_bomb_lock = threading.Lock()


@contextlib.contextmanager
def _no_bomb_limit():
    """Pillow's own size limit off while a header is read: colorkit's (``max_pixels``) is
    checked before any pixel is decoded."""
    with _bomb_lock:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def open_image(image: Any, max_pixels: int | None = None) -> Image.Image:
    """A path, PIL image or uint8 array (HxW grey, HxWx3 RGB, HxWx4 RGBA) as an RGB PIL
    image (grey inputs are replicated to three channels; EXIF orientation applied).
    More than ``max_pixels`` (default :data:`MAX_PIXELS`) pixels is a one-line error,
    raised from the file's header before anything is decoded."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        image_size(path, max_pixels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with open_regular(path) as fh, _no_bomb_limit(), Image.open(fh) as img:
                    img.load()
                    image = ImageOps.exif_transpose(img)
        except (UnidentifiedImageError, OSError) as exc:
            raise ColorkitError(f"cannot read image {path}: {exc}") from None
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ColorkitError(f"expected a uint8 array of shape HxW, HxWx3 or HxWx4; got {image.dtype} {image.shape}")
        _check_pixels(image.shape[1], image.shape[0], max_pixels, "the image")
        image = Image.fromarray(image)
    elif not isinstance(image, Image.Image):
        raise ColorkitError(f"expected an image path, PIL image or uint8 array; got {type(image).__name__}")
    else:
        _check_pixels(image.width, image.height, max_pixels, "the image")
    return _as_rgb(image)


def _as_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as RGB: grey modes replicated, alpha composited on white; a mode
    that cannot be converted is a one-line error."""
    if image.mode in GREY_MODES:
        if image.mode in WIDE_GREY_MODES:
            grey = _wide_to_l(image)
        else:  # Pillow converts premultiplied La only to LA
            grey = (image.convert("LA") if image.mode == "La" else image).convert("L")
        return grey.convert("RGB")
    rgb = to_rgb(image)
    if rgb is None:
        raise ColorkitError(f"cannot convert an image of mode {image.mode} to RGB")
    return rgb


@dataclass(frozen=True)
class Photo:
    """The result of :func:`read_photo`: ``image`` (RGB, EXIF orientation applied, full
    resolution), or ``None`` with ``reason`` (one of
    :data:`colorkit.data.images.SKIP_REASONS`) and a short ``detail``."""

    image: Image.Image | None
    reason: str | None = None
    detail: str = ""


def photo_header(path: str | Path, max_pixels: int | None = None) -> Photo | tuple[int, int]:
    """Width and height from ``path``'s header (nothing decoded), or a :class:`Photo`
    saying why it will not be read (the same reasons as ``colorkit data info``: empty,
    not an image, corrupt, more than ``max_pixels`` pixels). Never raises for a bad file."""
    path = Path(path)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        if check_regular(path).st_size == 0:
            return Photo(None, "empty-file", "0 bytes")
    except NotRegularFile as exc:
        return Photo(None, exc.reason, f"{exc.kind}; only regular files are read")
    except OSError as exc:
        return Photo(None, "corrupt-or-truncated", f"cannot stat: {exc.strerror or exc}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_regular(path) as fh, _no_bomb_limit(), Image.open(fh) as img:
                size = img.size
    except NotRegularFile as exc:
        return Photo(None, exc.reason, f"{exc.kind}; only regular files are read")
    except UnidentifiedImageError:
        return Photo(None, "not-an-image", "Pillow cannot identify the file")
    except Exception as exc:  # noqa: BLE001 - any decoder error is a per-file reason
        return Photo(None, "corrupt-or-truncated", f"{type(exc).__name__}: {exc}")
    if size[0] * size[1] > limit:
        return Photo(None, "too-large", f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels; the limit is {limit:,} "
                                        "(--max-pixels)")
    return size


def read_photo(path: str | Path, max_pixels: int | None = None) -> Photo:
    """Decode ``path`` at full resolution as RGB, or say why not (see :func:`photo_header`;
    also ``corrupt-or-truncated`` when decoding fails and ``unsupported-mode``). Never
    raises for a bad file: a folder of 10,000 photos always finishes."""
    head = photo_header(path, max_pixels)
    if isinstance(head, Photo):
        return head
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_regular(path) as fh:
                with _no_bomb_limit():
                    img = Image.open(fh)  # the header again (its size was checked): cheap
                with img:
                    img.load()
                    oriented = ImageOps.exif_transpose(img)
    except NotRegularFile as exc:
        return Photo(None, exc.reason, f"{exc.kind}; only regular files are read")
    except Exception as exc:  # noqa: BLE001 - any decoder error is a per-file reason
        return Photo(None, "corrupt-or-truncated", f"{type(exc).__name__}: {exc}")
    try:
        return Photo(_as_rgb(oriented))
    except ColorkitError as exc:
        return Photo(None, "unsupported-mode", str(exc))
    except Exception as exc:  # noqa: BLE001
        return Photo(None, "corrupt-or-truncated", f"{type(exc).__name__}: {exc}")


def has_colour(img: Image.Image) -> bool:
    """Whether an RGB image has colour (the greyscale rule of ``colorkit data info``,
    applied to a 64x64 copy)."""
    from colorkit.data.images import GREY_MAX_CHROMA, GREY_MEAN_AB, chroma_stats

    small = np.asarray(img.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR), dtype=np.uint8)
    mean_ab, max_chroma = chroma_stats(small)
    return not (mean_ab < GREY_MEAN_AB or max_chroma < GREY_MAX_CHROMA)


def _wide_to_l(img: Image.Image) -> Image.Image:
    arr = np.asarray(img, dtype=np.float64)
    hi = 65535.0 if arr.max() > 255 else 255.0
    return Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8))


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)[None].float() / 255.0


def to_pil(rgb: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] -> PIL RGB."""
    arr = (rgb.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def model_grey(img: Image.Image, size: int) -> torch.Tensor:
    """The model's input: the image resized straight to size x size (as in data
    preparation), its L / 100, ``(1, 1, size, size)``."""
    small = img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return rgb_to_lab(to_tensor(small))[:, :1] / L_SCALE
