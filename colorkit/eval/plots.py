"""The bench's figures: ``scatter.png`` (variance against error-of-best, references
marked), ``samples.png`` (grey | k colorizations | ground truth, one row per method) and,
with colour hints, ``hints.png`` (error-of-best at the pixels without a hint against the
number of hints)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from colorkit.core.fs import atomic_write_png
from colorkit.eval.evaluate import PRIMARY


def scatter_plot(results: dict[str, Any], path: Path) -> None:
    """Variance (x, symmetric-log so that 0 is drawn at 0) against error-of-best (y, with
    its interval); references as grey crosses, learned methods as coloured dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    rows = results["methods"]
    pos = [r["variance"] for r in rows.values() if r.get("variance", 0) > 0]
    linthresh = min(pos) / 2 if pos else 1e-6
    for name, r in rows.items():
        x, y = r.get("variance", math.nan), r.get(PRIMARY, math.nan)
        ci = r.get(f"{PRIMARY}_ci")
        ref = r["kind"] == "reference"
        yerr = [[y - ci[0]], [ci[1] - y]] if ci else None
        ax.errorbar(x, y, yerr=yerr, fmt="x" if ref else "o", color="0.45" if ref else None, ms=7 if ref else 6,
                    capsize=2, lw=1)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7,
                    color="0.35" if ref else "black")
    ax.set_xscale("symlog", linthresh=linthresh)
    if pos:  # 0, then decades from a few linthresh up (a decade next to 0 would overprint it)
        lo, hi = math.ceil(math.log10(linthresh * 1.5)), math.floor(math.log10(max(pos)))
        ax.set_xticks([0.0] + [10.0 ** e for e in range(lo, hi + 1)])
    ax.set_xlabel("variance across the k colorizations [(ab/128)^2], symlog\n(diversity: higher is more diverse)")
    ax.set_ylabel("error-of-best [ab/128] (lower is better)")
    ax.set_title(f"{results['test_set']['name']}: {results['split']['test']} test images, k = {results['k']}; "
                 "x = reference, bars = 95% CI", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write_png(path, fig, dpi=110, bbox_inches="tight")


def hints_plot(results: dict[str, Any], path: Path) -> None:
    """Error-of-best at the pixels without a hint (y, with its 95% interval as a band)
    against the number of hints per image (x, symmetric-log so that 0 is drawn); one line
    per row, references dashed, the names in a legend beside the axes (no label overprints
    another)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = results["by_hints"]
    counts = sorted(int(c) for c in by)
    names = list(by[str(counts[0])]["methods"])
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    colours = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    for i, name in enumerate(names):
        rows = [by[str(c)]["methods"][name] for c in counts]
        ref = rows[0]["kind"] == "reference"
        y = [r.get(PRIMARY, math.nan) for r in rows]
        ci = [r.get(f"{PRIMARY}_ci") or [v, v] for r, v in zip(rows, y)]
        colour = colours(i % colours.N)
        ax.plot(counts, y, ls="--" if ref else "-", marker="x" if ref else "o", ms=4, lw=1.2 if ref else 1.6,
                color=colour, label=f"{name} (ref.)" if ref else name)
        ax.fill_between(counts, [c[0] for c in ci], [c[1] for c in ci], color=colour, alpha=0.12 if ref else 0.2,
                        lw=0)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(counts)
    ax.set_xticklabels([str(c) for c in counts])
    if len(counts) > 1:
        ax.set_xlim(counts[0], counts[-1])
    ax.set_xlabel("colour hints per image (symlog)")
    ax.set_ylabel("error-of-best at pixels without a hint [ab/128]")
    ax.set_title(f"{results['test_set']['name']}: {results['split']['test']} test images, k = {results['k']}; "
                 "bands = 95% CI, dashed = reference", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    fig.tight_layout()
    atomic_write_png(path, fig, dpi=110, bbox_inches="tight")


def sample_sheet(sheet: dict[str, torch.Tensor], test: Any, path: Path, *, k: int, tile: int = 64,
                 kinds: dict[str, str] | None = None) -> None:
    """For each of the first few test images a block: one row per method and mode
    (label | grey | k colorizations | ground truth)."""
    from PIL import Image, ImageDraw

    from colorkit.core.color import model_to_rgb
    from colorkit.data.imageio import to_pil

    n = min(len(v) for v in sheet.values())
    b = test.batch(list(range(n)))
    label_w, pad = 150, 3
    cols = k + 2
    rows_per_block = len(sheet)
    block_h = 16 + rows_per_block * (tile + pad)
    img = Image.new("RGB", (label_w + cols * (tile + pad), n * (block_h + 8)), "white")
    draw = ImageDraw.Draw(img)
    for i in range(n):
        y0 = i * (block_h + 8)
        grey = b["grey"][i : i + 1]
        grey_img = to_pil(model_to_rgb(grey, torch.zeros_like(b["ab"][i : i + 1]))[0]).resize((tile, tile))
        truth = to_pil(model_to_rgb(grey, b["ab"][i : i + 1])[0]).resize((tile, tile))
        draw.text((2, y0 + 2), f"test image {i + 1}: grey | {k} colorizations | ground truth", fill=(0, 0, 0))
        for j, (name, samples) in enumerate(sheet.items()):
            y = y0 + 16 + j * (tile + pad)
            kind = (kinds or {}).get(name, "")
            draw.text((2, y + tile // 2 - 6), f"{name}{' (ref.)' if kind == 'reference' else ''}",
                      fill=(90, 90, 90) if kind == "reference" else (0, 0, 0))
            rgb = model_to_rgb(grey.expand(samples.shape[1], -1, -1, -1), samples[i])
            tiles = [grey_img] + [to_pil(x).resize((tile, tile)) for x in rgb] + [truth]
            for c, t in enumerate(tiles):
                img.paste(t, (label_w + c * (tile + pad), y))
    atomic_write_png(path, img)
