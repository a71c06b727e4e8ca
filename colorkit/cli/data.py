"""``colorkit data prepare`` / ``colorkit data info``: prepare a folder of images once and
show what was kept, skipped and split (see :mod:`colorkit.data`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from colorkit.data import PreparedDataset, prepare


def dataset_options(fn):
    """The options that pick and prepare a data set (shared with ``colorkit stats``)."""
    options = [
        click.option("--dataset", default="demo", show_default=True,
                     help="Folder of images, or a registered data set name (see `colorkit plugins`)."),
        click.option("--size", default=64, show_default=True, type=click.IntRange(min=8),
                     help="Side of the square images, in pixels."),
        click.option("--crop/--no-crop", default=False, show_default=True,
                     help="Centre-crop to a square before resizing (default: the paper's straight resize)."),
        click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random train/test split."),
        click.option("--test-size", default=None, type=click.IntRange(min=0),
                     help="Test images [default: min(1000, max(1, round(0.1 N)), N - 1)]."),
        click.option("--cache-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
                     help="Cache folder [default: $COLORKIT_CACHE or ~/.cache/colorkit]."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def prepare_from_options(dataset: str, size: int, crop: bool, seed: int, test_size: int | None,
                         cache_dir: Path | None, progress: bool = True) -> PreparedDataset:
    return prepare(dataset, size=size, crop=crop, seed=seed, test_size=test_size,
                   cache_dir=cache_dir, progress=progress)


def format_info(info: dict[str, Any]) -> str:
    """Human-readable lines for :meth:`PreparedDataset.info`."""
    skipped = info["skipped"]
    skip_text = ", ".join(f"{reason} {count}" for reason, count in skipped.items()) or "none"
    resize = "centre crop + resize" if info["crop"] else "straight resize"
    return "\n".join([
        f"data set : {info['name']} ({info['source']})",
        f"images   : {info['n_images']} kept of {info['n_files']} image files, "
        f"{info['size']}x{info['size']} pixels ({resize})",
        f"split    : train {info['n_train']}, test {info['n_test']} images (seed {info['seed']})",
        f"skipped  : {info['n_skipped']} files ({skip_text})",
        f"cache    : {info['cache']}",
        f"hash     : {info['hash'][:16]}",
    ])


@click.group("data")
def data() -> None:
    """Prepare image folders for training and inspect them.

    \b
    Examples:
      colorkit data prepare --dataset ~/photos --size 64
      colorkit data info --dataset demo --json
    """


@data.command("prepare")
@dataset_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def prepare_cmd(dataset: str, size: int, crop: bool, seed: int, test_size: int | None,
                cache_dir: Path | None, quiet: bool) -> None:
    """Resize, convert and cache every image once (reused while the folder is unchanged)."""
    ds = prepare_from_options(dataset, size, crop, seed, test_size, cache_dir, progress=not quiet)
    click.echo(format_info(ds.info()))


@data.command("info")
@dataset_options
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
@click.option("--files", "show_files", is_flag=True, help="Also list each skipped file with its reason.")
def info_cmd(dataset: str, size: int, crop: bool, seed: int, test_size: int | None,
             cache_dir: Path | None, as_json: bool, show_files: bool) -> None:
    """Counts per split and per skip reason, size and cache path (prepares if needed)."""
    ds = prepare_from_options(dataset, size, crop, seed, test_size, cache_dir, progress=not as_json)
    info = ds.info()
    if show_files:
        info["skipped_files"] = ds.skipped_files
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(format_info(info))
    if show_files:
        for rel, reason in sorted(ds.skipped_files.items()):
            click.echo(f"  {reason:22s} {rel}")
