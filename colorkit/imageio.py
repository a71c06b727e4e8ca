"""Reading user images and writing colorizations: full-resolution output and grids.

``colorize`` predicts ab at the model size (64x64 by default), upsamples it bilinearly to
the input's own resolution and joins it with the input's own L channel, as the paper's
release did with its 256x256 L.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from colorkit.color import AB_SCALE, L_SCALE, lab_to_rgb, rgb_to_lab
from colorkit.data.images import _to_rgb
from colorkit.registry import ColorkitError


def open_image(image: Any) -> Image.Image:
    """A path, PIL image or uint8 array (HxW grey, HxWx3 RGB, HxWx4 RGBA) as an RGB PIL
    image (grey inputs are replicated to three channels; EXIF orientation applied)."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise ColorkitError(f"cannot read image {path}: no such file")
        try:
            with Image.open(path) as img:
                img.load()
                image = ImageOps.exif_transpose(img)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise ColorkitError(f"cannot read image {path}: {exc}") from None
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ColorkitError(f"expected a uint8 array of shape HxW, HxWx3 or HxWx4; got {image.dtype} {image.shape}")
        image = Image.fromarray(image)
    elif not isinstance(image, Image.Image):
        raise ColorkitError(f"expected an image path, PIL image or uint8 array; got {type(image).__name__}")
    if image.mode in {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"}:
        grey = image.convert("L") if image.mode not in {"I", "I;16", "I;16L", "I;16B", "F"} else _wide_to_l(image)
        return grey.convert("RGB")
    rgb = _to_rgb(image)
    if rgb is None:
        raise ColorkitError(f"cannot convert an image of mode {image.mode} to RGB")
    return rgb


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
                             output: str = "images") -> Any:
    if output not in {"images", "tensors"}:
        raise ColorkitError(f"output must be 'images' or 'tensors', got {output!r}")
    img = open_image(image)
    ab = colorizer.sample(model_grey(img, colorizer.size), k, mode=mode, seed=seed)[0].float().cpu()  # (k, 2, s, s)
    L_full = rgb_to_lab(to_tensor(img))[:, :1]  # (1, 1, H, W), 0..100
    H, W = L_full.shape[-2:]
    ab_full = F.interpolate(ab, size=(H, W), mode="bilinear", align_corners=False) * AB_SCALE  # (k, 2, H, W)
    rgb = lab_to_rgb(torch.cat([L_full.expand(ab_full.shape[0], 1, H, W), ab_full], dim=1))  # (k, 3, H, W)
    if output == "tensors":
        return rgb
    return [to_pil(x) for x in rgb]


def grid_row(grey: Image.Image, outputs: list[Image.Image], *, height: int = 160,
             labels: list[str] | None = None, truth: Image.Image | None = None) -> Image.Image:
    """One row: grey input | k colorizations [| ground truth], each scaled to ``height``."""
    tiles = [grey.convert("L").convert("RGB"), *outputs] + ([truth] if truth is not None else [])
    scaled = [t.resize((max(1, round(t.width * height / t.height)), height), Image.Resampling.LANCZOS) for t in tiles]
    pad = 4
    row = Image.new("RGB", (sum(t.width for t in scaled) + pad * (len(scaled) - 1), height + (14 if labels else 0)), "white")
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
