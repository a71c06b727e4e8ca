"""``colorkit colorize``: k colorizations of each image at its own resolution."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("colorize")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--run", "run_dir", required=True, type=click.Path(), help="Run directory from `colorkit train`.")
@click.option("--k", type=click.IntRange(min=1), default=5, show_default=True, help="Colorizations per image.")
@click.option("--out", type=click.Path(file_okay=False), default="colorized", show_default=True)
@click.option("--mode", default=None, help="Sampling mode of the method (e.g. topk or mixture for mdn).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
def colorize(images, run_dir, k, out, mode, seed, device) -> None:
    """Write K colorizations of each IMAGE (colour or grey) plus one grid PNG.

    Outputs OUT/<stem>_<i>.png at the input's resolution (predicted ab upsampled and
    joined with the input's L) and OUT/grid.png (grey | K colorizations per row).

    \b
    Example:
      colorkit colorize photo.jpg old.png --run runs/mdn --k 5 --out colorized/
    """
    from colorkit.imageio import grid_row, open_image, stack_rows
    from colorkit.runs import load

    colorizer = load(run_dir, device=device)
    inputs = [open_image(p) for p in images]  # fail before writing anything
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    stems: dict[str, int] = {}
    for path, img in zip(images, inputs):
        outs = colorizer.colorize(img, k=k, mode=mode, seed=seed)
        stem = Path(path).stem
        stems[stem] = stems.get(stem, 0) + 1
        if stems[stem] > 1:
            stem = f"{stem}-{stems[stem]}"
        for i, o in enumerate(outs):
            o.save(out_dir / f"{stem}_{i + 1}.png")
        rows.append(grid_row(img, outs, labels=["grey"] + [f"{colorizer.name} #{i + 1}" for i in range(len(outs))]))
    stack_rows(rows).save(out_dir / "grid.png")
    click.echo(f"wrote {len(images) * k} colorizations and {out_dir / 'grid.png'} ({colorizer.name}, k={k})")
