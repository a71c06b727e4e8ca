"""Grids of colorizations: a row per photo (grey input, its colorizations, optionally the
ground truth), rows stacked; ``OUT/grid.png`` of ``colorkit colorize``, the contact sheet of
a clip and the figures of the benchmarks."""

from __future__ import annotations

from PIL import Image, ImageDraw


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
