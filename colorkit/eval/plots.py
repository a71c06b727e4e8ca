"""The bench's figures: ``scatter.png`` (variance against error-of-best, references
marked), ``samples.png`` (grey | k colorizations | ground truth, one row per method) and,
with colour hints, ``hints.png`` (error-of-best at the pixels without a hint against the
number of hints)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from colorkit.core.images import atomic_write_png
from colorkit.eval.evaluate import PRIMARY


def scatter_plot(results: dict[str, Any], path: Path) -> None:
    """Variance (x, symmetric-log so that 0 is drawn at 0) against error-of-best (y, with
    its interval); references as grey crosses, learned methods as coloured dots. Each
    point carries a number, placed where it overlaps no other number or point and stays
    inside the plot; the legend beside the plot names them. A row identical to another
    (``same_as``) is not drawn again: the legend says "same as ..."."""
    atomic_write_png(path, scatter_figure(results), dpi=110)


def scatter_figure(results: dict[str, Any]) -> Any:
    """The matplotlib figure of :func:`scatter_plot`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8.4, 4.6), layout="constrained")
    rows = {n: r for n, r in results["methods"].items() if not r.get("same_as")}
    shown = {n: r for n, r in rows.items() if math.isfinite(r.get("variance", math.nan))
             and math.isfinite(r.get(PRIMARY, math.nan))}
    pos = [r["variance"] for r in shown.values() if r["variance"] > 0]
    linthresh = min(pos) / 2 if pos else 1e-6
    handles, points = [], []
    colours = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 8)
    for i, (name, r) in enumerate(shown.items(), start=1):
        x, y = r["variance"], r[PRIMARY]
        ci = r.get(f"{PRIMARY}_ci")
        ref = r["kind"] == "reference"
        colour = "0.45" if ref else next(colours)
        yerr = [[y - ci[0]], [ci[1] - y]] if ci else None
        ax.errorbar(x, y, yerr=yerr, fmt="x" if ref else "o", color=colour, ms=7 if ref else 6, capsize=2, lw=1)
        handles.append(Line2D([], [], marker="x" if ref else "o", ls="none", color=colour, label=f"{i}  {name}"))
        points.append((x, y, str(i)))
    for name in [n for n in rows if n not in shown]:
        handles.append(Line2D([], [], ls="none", label=f"   {name}: no value, not drawn"))
    for name, r in results["methods"].items():
        if r.get("same_as"):
            handles.append(Line2D([], [], ls="none", label=f"   {name}: same as {r['same_as']}"))
    ax.set_xscale("symlog", linthresh=linthresh)
    if pos:  # 0, then decades from a few linthresh up (a decade next to 0 would overprint it)
        lo, hi = math.ceil(math.log10(linthresh * 1.5)), math.floor(math.log10(max(pos)))
        ax.set_xticks([0.0] + [10.0 ** e for e in range(lo, hi + 1)])
    ax.margins(x=0.08, y=0.1)
    ax.set_xlabel("variance across the k colorizations [(ab/128)^2], symlog\n(diversity: higher is more diverse)")
    ax.set_ylabel("error-of-best [ab/128] (lower is better)")
    ax.set_title(f"{results['test_set']['name']}: {results['split']['test']} test images, k = {results['k']}; "
                 "x = reference, bars = 95% CI", fontsize=8)
    ax.grid(alpha=0.3)
    fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False, handlelength=1.0)
    _number_points(fig, ax, points)
    return fig


_RADII = (7, 12, 18, 26, 36, 50)
_ANGLES = (45, 135, -45, -135, 0, 180, 90, -90, 22, 158, -22, -158, 68, 112, -68, -112)


def _number_points(fig: Any, ax: Any, points: list[tuple[float, float, str]]) -> None:
    """Write each point's number near it: the first place (nearest first, around it) where
    the number overlaps no other number and no point and lies inside the axes; a thin line
    joins a number placed further out to its point."""
    from matplotlib.transforms import Bbox

    fig.canvas.draw()  # fixes the layout and the axes' limits: display positions are final
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    xy = [ax.transData.transform((x, y)) for x, y, _ in points]
    taken = [Bbox.from_bounds(px - 4, py - 4, 8, 8) for px, py in xy]  # the markers
    for (x, y, label) in points:
        t = ax.annotate(label, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=7, ha="center",
                        va="center", arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.55", "shrinkA": 0,
                                                 "shrinkB": 4})
        best, best_clash = None, None
        for r in _RADII:
            for a in _ANGLES:
                t.set_position((r * math.cos(math.radians(a)), r * math.sin(math.radians(a))))
                box = t.get_window_extent(renderer).padded(1)
                if not (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1):
                    continue
                clash = sum(box.overlaps(b) for b in taken)
                if best_clash is None or clash < best_clash:
                    best, best_clash = t.get_position(), clash
                if clash == 0:
                    break
            if best_clash == 0:
                break
        t.set_position(best if best is not None else (_RADII[0], 0))
        taken.append(t.get_window_extent(renderer).padded(1))


def hints_plot(results: dict[str, Any], path: Path) -> None:
    """Error-of-best at the pixels without a hint (y, with its 95% interval as a band)
    against the number of hints per image (x, symmetric-log so that 0 is drawn); one line
    per row, references dashed, the names in a legend beside the axes (no label overprints
    another)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    by = results["by_hints"]
    counts = sorted(int(c) for c in by)
    same = {n: r["same_as"] for n, r in results["methods"].items() if r.get("same_as")}  # drawn once
    names = [n for n in by[str(counts[0])]["methods"] if n not in same]
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
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], ls="none", label=f"   {n}: same as {o}") for n, o in same.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
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
