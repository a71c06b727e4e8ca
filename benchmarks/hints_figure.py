"""The picture of docs/hints.md: one photo, its hints, and k colorizations without and with them.

    python benchmarks/hints_figure.py PHOTO --run RUN [--hints 10] [--k 5] [--seed 0] --out docs/hints.png

The hints are drawn as a person would place them: ``--hints`` points at random places of
the photo (seeded), each with the photo's own colour there (a 5x5 pixel mean), given to
``colorize`` as :class:`colorkit.Hint` objects in the photo's pixels. Rows: the colour
photo | the grey photo with the hint points marked | k colorizations without hints; and
the same grey | k colorizations with the hints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import colorkit
from colorkit.inference.grid import grid_row, stack_rows


def photo_hints(img: Image.Image, n: int, seed: int) -> list[colorkit.Hint]:
    rng = np.random.default_rng(seed)
    arr = np.asarray(img.convert("RGB"), dtype=np.float64)
    h, w = arr.shape[:2]
    out = []
    for _ in range(n):
        x, y = int(rng.integers(2, w - 2)), int(rng.integers(2, h - 2))
        r, g, b = arr[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).mean(0).round().astype(int)
        out.append(colorkit.Hint(x + 0.5, y + 0.5, f"#{r:02x}{g:02x}{b:02x}"))
    return out


def marked(grey: Image.Image, hints: list[colorkit.Hint]) -> Image.Image:
    img = grey.convert("L").convert("RGB")
    d = ImageDraw.Draw(img)
    r = max(3, round(min(img.size) / 24))
    for h in hints:
        d.ellipse([h.x - r, h.y - r, h.x + r, h.y + r], fill=h.color, outline=(255, 255, 255), width=max(1, r // 3))
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photo")
    ap.add_argument("--run", default=None, help="run directory (default: the bundled demo model)")
    ap.add_argument("--hints", type=int, default=10)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--height", type=int, default=160)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    img = Image.open(a.photo).convert("RGB")
    model = colorkit.load(a.run)
    hints = photo_hints(img, a.hints, a.seed)
    plain = model.colorize(img, k=a.k, seed=a.seed)
    with_hints = model.colorize(img, k=a.k, seed=a.seed, hints=hints)
    grey = img.convert("L").convert("RGB")
    top = grid_row(grey, plain, height=a.height, truth=img,
                   labels=["grey", *[f"no hints {i + 1}" for i in range(a.k)], "photo"])
    bottom = grid_row(grey, with_hints, height=a.height,
                      labels=[f"{len(hints)} hints", *[f"with hints {i + 1}" for i in range(a.k)]])
    tile = marked(grey, hints)  # grid_row shows its first tile in grey: paste the marked one over it
    tile = tile.resize((max(1, round(tile.width * a.height / tile.height)), a.height), Image.Resampling.LANCZOS)
    bottom.paste(tile, (0, 14))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    stack_rows([top, bottom]).save(a.out)
    print(json.dumps({"out": a.out, "model": model.label, "hints": [h.to_json() for h in hints]}))


if __name__ == "__main__":
    main()
