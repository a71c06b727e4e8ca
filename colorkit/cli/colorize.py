"""``colorkit colorize``: k colorizations of each image at its own resolution."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import click

from colorkit.cli.options import option_pairs, parse_options
from colorkit.imageio import MAX_K, MAX_PIXELS


@click.command("colorize")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--run", "run_dir", required=True, type=click.Path(), help="Run directory from `colorkit train`.")
@click.option("--k", type=click.IntRange(min=1, max=MAX_K), default=5, show_default=True,
              help="Colorizations per image.")
@click.option("--out", type=click.Path(file_okay=False), default="colorized", show_default=True)
@click.option("--mode", default=None, help="Sampling mode of the method (e.g. topk or mixture for mdn).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--max-pixels", type=click.IntRange(min=1), default=MAX_PIXELS, show_default=True,
              help="Largest photo accepted, in pixels (memory is about 20 bytes per pixel).")
@option_pairs(help="Sampling setting of the method (repeatable), e.g. temperature=0.5 for colornet; mode=... "
                   "as --mode.")
def colorize(images, run_dir, k, out, mode, seed, device, max_pixels, options) -> None:
    """Write K colorizations of each IMAGE (colour or grey) plus one grid PNG.

    Outputs OUT/<stem>_<i>.png at the input's resolution (predicted ab upsampled and
    joined with the input's L) and OUT/grid.png (grey | K colorizations per row).
    Colorizations are made and written one at a time; all outputs appear together at
    the end, so a failure (a full disk) leaves none of them.

    \b
    Example:
      colorkit colorize photo.jpg old.png --run runs/mdn --k 5 --out colorized/
    """
    from colorkit.checkpoint import ensure_writable_dir
    from colorkit.imageio import grid_row, image_size, open_image, stack_rows
    from colorkit.runs import load

    colorizer = load(run_dir, device=device, options=parse_options(options))
    for p in images:  # fail before writing anything: every header, every size
        image_size(p, max_pixels)
    out_dir = Path(out)
    created = not out_dir.exists()
    ensure_writable_dir(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=".colorize-tmp-", dir=out_dir))
    try:
        rows, names = [], []
        stems: dict[str, int] = {}
        for path in images:
            img = open_image(path, max_pixels)
            stem = Path(path).stem
            stems[stem] = stems.get(stem, 0) + 1
            if stems[stem] > 1:
                stem = f"{stem}-{stems[stem]}"
            thumbs = []
            for i, o in enumerate(colorizer.iter_colorize(img, k=k, mode=mode, seed=seed, max_pixels=max_pixels)):
                o.save(staging / f"{stem}_{i + 1}.png")
                names.append(f"{stem}_{i + 1}.png")
                thumbs.append(_thumb(o))
                del o
            rows.append(grid_row(_thumb(img), thumbs, labels=["grey"] + [f"{colorizer.name} #{i + 1}"
                                                                       for i in range(len(thumbs))]))
            del img
        stack_rows(rows).save(staging / "grid.png")
        for name in [*names, "grid.png"]:  # renames need no space: all or (on a crash) most
            os.replace(staging / name, out_dir / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only when empty
        raise
    shutil.rmtree(staging, ignore_errors=True)
    click.echo(f"wrote {len(images) * k} colorizations and {out_dir / 'grid.png'} ({colorizer.name}, k={k})")


def _thumb(img, height: int = 160):
    from PIL import Image

    return img.resize((max(1, round(img.width * height / img.height)), height), Image.Resampling.LANCZOS,
                      reducing_gap=3.0)
