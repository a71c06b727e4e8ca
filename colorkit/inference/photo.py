"""Colorizing photos at their own resolution: the one path that ``colorkit colorize
photo.jpg``, :meth:`colorkit.inference.Colorizer.colorize`, the folder run
(:mod:`colorkit.apps.folder`) and the web page (:mod:`colorkit.apps.serve`) share.

The model predicts ab at its size (64x64 by default); it is upsampled bilinearly to the
photo's own resolution and joined with the photo's own L channel, as the paper's release
did with its 256x256 L (:mod:`colorkit.data.compose`).

- :func:`iter_colorizations` / :func:`colorize_full_resolution`: the k colorizations of one
  image, converted one at a time, in bands of rows, so that what a photo costs does not
  grow with k (about 20 bytes per pixel of the photo beyond the loaded model); ``k`` is at
  most :data:`MAX_K`.
- :func:`write_colorizations`: the k colour fields of one photo handed to a
  :class:`~colorkit.inference.output.Writer`, which composes each at the photo's own
  resolution from the photo's lightness; on request also small versions for a grid,
  composed from the downscaled photo rather than downscaled from full-size outputs.
- :func:`colorize_photo`: the model, then :func:`write_colorizations`, for one photo.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from colorkit.core import loadwatch
from colorkit.core.registry import ColorkitError
from colorkit.data.compose import Lightness, compose_image
from colorkit.data.imageio import model_grey, open_image, to_tensor
from colorkit.inference.output import Writer

if TYPE_CHECKING:
    from colorkit.inference.protocol import LoadedModel

MAX_K = 64
"""Most colorizations per image."""
THUMB_HEIGHT = 160
"""Height of the small versions in a grid."""


def check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise ColorkitError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")


@torch.no_grad()
def colorize_full_resolution(colorizer: LoadedModel, image: Any, *, k: int, mode: str | None, seed: int,
                             output: str = "images", max_pixels: int | None = None, hints: Any = None) -> Any:
    if output not in {"images", "tensors"}:
        raise ColorkitError(f"output must be 'images' or 'tensors', got {output!r}")
    outs = iter_colorizations(colorizer, image, k=k, mode=mode, seed=seed, max_pixels=max_pixels, hints=hints)
    if output == "tensors":
        return torch.stack([to_tensor(o)[0] for o in outs])
    return list(outs)


@torch.no_grad()
def iter_colorizations(colorizer: LoadedModel, image: Any, *, k: int, mode: str | None = None, seed: int = 0,
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


def thumbnail(img: Image.Image, height: int = THUMB_HEIGHT) -> Image.Image:
    """``img`` scaled to ``height`` rows, keeping its aspect."""
    return img.resize((max(1, round(img.width * height / img.height)), height), Image.Resampling.LANCZOS,
                      reducing_gap=3.0)


@torch.no_grad()
def write_colorizations(img: Image.Image | Lightness, ab: torch.Tensor, writer: Writer, paths: list[Path],
                        *, thumb_height: int | None = None) -> tuple[list[Future], list[Image.Image]]:
    """Each colour field of ``ab`` ``(k, 2, s, s)`` joined with RGB ``img``'s own lightness
    at its resolution (or with a :class:`~colorkit.data.compose.Lightness` computed
    before), composed and written by ``writer``'s threads as ``paths[i]``. Returns the
    writes, and (with ``thumb_height``, for an image) the k colorizations of the photo
    scaled to that height, for a grid."""
    if len(paths) != ab.shape[0]:
        raise ValueError(f"{len(paths)} output paths for {ab.shape[0]} colour fields")
    light = img if isinstance(img, Lightness) else Lightness.of(img)
    w, h = light.size
    ab = ab.float().cpu()
    futures = [writer.submit(partial(compose_image, light, ab[i]), path, pixels=w * h)
               for i, path in enumerate(paths)]
    thumbs = []
    if thumb_height:
        if isinstance(img, Lightness):
            raise ValueError("thumbnails need the image, not its lightness")
        thumbs = list(compose_colorizations(thumbnail(img, thumb_height), ab))
    return futures, thumbs


@torch.no_grad()
def colorize_photo(colorizer: LoadedModel, img: Image.Image, writer: Writer, paths: list[Path], *, k: int,
                   mode: str | None = None, seed: int = 0, thumb_height: int | None = None,
                   hints: Any = None) -> tuple[list[Future], list[Image.Image]]:
    """The ``k`` colorizations of RGB ``img`` (those of ``colorizer.colorize``), written by
    ``writer`` as ``paths``; see :func:`write_colorizations`. ``hints``: a list of
    :class:`colorkit.Hint` in ``img``'s pixels (or ``None``)."""
    check_k(k)
    loadwatch.checkpoint()  # fewer threads while other jobs hold the cores (a no-op without a watch)
    ab = colorizer.sample(model_grey(img, colorizer.size), k, mode=mode, seed=seed,
                          hints=photo_hint_map(hints, img, colorizer.size))[0]
    return write_colorizations(img, ab, writer, paths, thumb_height=thumb_height)
