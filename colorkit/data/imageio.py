"""Reading user images and writing colorizations: full-resolution output and grids.

``colorize`` predicts ab at the model size (64x64 by default), upsamples it bilinearly to
the input's own resolution and joins it with the input's own L channel, as the paper's
release did with its 256x256 L.

Memory: :func:`iter_colorizations` converts one colorization at a time, in bands of rows,
so what a photo costs does not grow with k (about 20 bytes per pixel of the photo beyond
the loaded model). Photos above :data:`MAX_PIXELS` pixels are refused with a one-line
error unless a higher ``max_pixels`` is given; ``k`` is at most :data:`MAX_K`.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from colorkit.core.color import L_SCALE, rgb_to_lab
from colorkit.core.registry import ColorkitError
from colorkit.core.regular import NotRegularFile, check_regular, open_regular
from colorkit.data.compose import Lightness, compose_image
from colorkit.data.images import GREY_MODES, WIDE_GREY_MODES, to_rgb

MAX_PIXELS = 50_000_000
"""Default limit on the pixels of a photo to colorize (50 megapixels, e.g. 8660x5773)."""
MAX_K = 64
"""Most colorizations per image."""


def _check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > limit:
        raise ColorkitError(f"{what} is {width}x{height} = {width * height:,} pixels; the limit is {limit:,} "
                            "(raise it with --max-pixels / max_pixels=, at about 20 bytes of memory per pixel)")


def check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise ColorkitError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")


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


@torch.no_grad()
def colorize_full_resolution(colorizer: Any, image: Any, *, k: int, mode: str | None, seed: int,
                             output: str = "images", max_pixels: int | None = None, hints: Any = None) -> Any:
    if output not in {"images", "tensors"}:
        raise ColorkitError(f"output must be 'images' or 'tensors', got {output!r}")
    outs = iter_colorizations(colorizer, image, k=k, mode=mode, seed=seed, max_pixels=max_pixels, hints=hints)
    if output == "tensors":
        return torch.stack([to_tensor(o)[0] for o in outs])
    return list(outs)


@torch.no_grad()
def iter_colorizations(colorizer: Any, image: Any, *, k: int, mode: str | None = None, seed: int = 0,
                       max_pixels: int | None = None, hints: Any = None) -> Iterator[Image.Image]:
    """The ``k`` colorizations of ``image`` at its own resolution, one PIL image at a time.

    The k colour fields are predicted at the model size (a few KB); each output is then
    made band by band: ab upsampled bilinearly (as ``F.interpolate(..., "bilinear",
    align_corners=False)``, done separably) and joined with the input's own L. Memory: the
    input, its L channel (float32) and one output, whatever k."""
    check_k(k)
    img = open_image(image, max_pixels)
    ab = colorizer.sample(model_grey(img, colorizer.size), k, mode=mode, seed=seed,
                          hints=photo_hint_map(hints, img, colorizer.size))[0]  # (k, 2, s, s)
    yield from compose_colorizations(img, ab)


def photo_hint_map(hints: Any, img: Image.Image, size: int) -> torch.Tensor | None:
    """The hint map ``(1, 3, size, size)`` of ``hints`` (a list of :class:`colorkit.Hint`,
    or their JSON form) given in RGB ``img``'s pixels; ``None`` for ``None`` or no hints."""
    from colorkit.core.hints import Hint, hint_map, hints_from_json

    if hints is None:
        return None
    if not isinstance(hints, (list, tuple)):
        raise ColorkitError(f"hints must be a list of colorkit.Hint or of {{\"x\", \"y\", \"color\"}} objects, "
                            f"got {type(hints).__name__}")
    if not hints:
        return None
    if not all(isinstance(h, Hint) for h in hints):
        hints = hints_from_json(list(hints))
    return hint_map(list(hints), img.width, img.height, size)


@torch.no_grad()
def compose_colorizations(img: Image.Image, ab: torch.Tensor) -> Iterator[Image.Image]:
    """Each of the colour fields ``ab`` ``(k, 2, s, s)`` (ab/128, at the model size) joined
    with RGB ``img``'s own L at ``img``'s resolution, one PIL image at a time (see
    :mod:`colorkit.data.compose`)."""
    light = Lightness.of(img)
    for i in range(ab.shape[0]):
        yield compose_image(light, ab[i])


def grid_row(grey: Image.Image, outputs: list[Image.Image], *, height: int = 160,
             labels: list[str] | None = None, truth: Image.Image | None = None) -> Image.Image:
    """One row: grey input | k colorizations [| ground truth], each scaled to ``height``."""
    tiles = [grey.convert("L").convert("RGB"), *outputs] + ([truth] if truth is not None else [])
    scaled = [t.resize((max(1, round(t.width * height / t.height)), height), Image.Resampling.LANCZOS) for t in tiles]
    pad = 4
    row = Image.new(
        "RGB", (sum(t.width for t in scaled) + pad * (len(scaled) - 1), height + (14 if labels else 0)), "white"
    )
    x = 0
    draw = ImageDraw.Draw(row)
    for i, t in enumerate(scaled):
        row.paste(t, (x, 14 if labels else 0))
        if labels and i < len(labels):
            draw.text((x + 2, 1), labels[i], fill=(0, 0, 0))
        x += t.width + pad
    return row


def stack_rows(rows: list[Image.Image], pad: int = 6) -> Image.Image:
    width = max(r.width for r in rows)
    out = Image.new("RGB", (width, sum(r.height for r in rows) + pad * (len(rows) - 1)), "white")
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height + pad
    return out
