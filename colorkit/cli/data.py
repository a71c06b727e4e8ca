"""``colorkit data fetch`` / ``prepare`` / ``info``: get a published data set's archive,
prepare a data set once and show what was kept, skipped and split (see
:mod:`colorkit.data`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from colorkit.cli.options import data_options, progress_option
from colorkit.data import PreparedDataset, prepare
from colorkit.data.transfer import MIN_RATE, STALL_TIMEOUT


def dataset_options(fn):
    """The options that pick and prepare a data set (see :func:`colorkit.cli.options.data_options`)."""
    return data_options(fn)


def prepare_from_options(dataset: str, size: int, crop: bool, split_seed: int, test_size: int | None,
                         cache_dir: Path | None, progress: bool = True) -> PreparedDataset:
    return prepare(dataset, size=size, crop=crop, split_seed=split_seed, test_size=test_size,
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
        f"split    : train {info['n_train']}, test {info['n_test']} images (split seed {info['seed']})",
        f"skipped  : {info['n_skipped']} files ({skip_text})",
        f"cache    : {info['cache']} ({info.get('shards', 1)} shard(s))",
        f"hash     : {info['hash'][:16]} (key), {info.get('content_hash', '')[:16]} (content)",
    ] + ([f"rule     : {info['split_rule'].get('rule', info['split_rule'])}"] if info.get("split_rule") else []))


@click.group("data")
def data() -> None:
    """Fetch the paper's data sets, prepare data sets for training and inspect them.

    \b
    Examples:
      colorkit data fetch lfw
      colorkit data fetch imagenet-val --from ~/Downloads/ILSVRC2012_img_val.tar
      colorkit data prepare lfw
      colorkit data prepare --dataset ~/photos.tar.gz --size 64
      colorkit data info --dataset demo --json
    """


@data.command("fetch")
@click.argument("name")
@click.option("--url", default=None, help="Download from this address instead of the recipe's.")
@click.option("--from", "from_file", default=None, type=click.Path(dir_okay=False),
              help="Use this local copy of the archive (verified, used in place, not copied).")
@click.option("--sha256", default=None, metavar="HEX",
              help="Expected sha256 of the archive (for mirrors and other files; default: the published checksum).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Cache folder [default: $COLORKIT_CACHE or ~/.cache/colorkit].")
@click.option("--max-bytes", type=click.IntRange(min=1), default=None, metavar="N",
              help="Largest download accepted [default: the recipe's known size with a quarter's margin].")
@click.option("--stall-timeout", type=click.FloatRange(min=0, min_open=True, max=86400), default=STALL_TIMEOUT,
              show_default=True, metavar="SECONDS",
              help="A request that receives nothing for this long (no answer, or a body that stopped) is retried "
                   "from where it stopped (3 times).")
@click.option("--min-rate", type=click.FloatRange(min=0, max=1e12), default=MIN_RATE, show_default=True,
              metavar="BYTES",
              help="Bytes a second a download must average over every span of --stall-timeout seconds; a slower one "
                   "stops (the partial file is kept: run the same fetch again to resume). 0: no minimum.")
@progress_option
def fetch_cmd(name: str, url: str | None, from_file: str | None, sha256: str | None, cache_dir: Path | None,
              max_bytes: int | None, stall_timeout: float, min_rate: float, quiet: bool) -> None:
    """Download (resuming an interrupted download) and verify data set NAME's archive.

    NAME is a recipe: lfw, lsun-church or imagenet-val (see `colorkit plugins`). Afterwards
    `--dataset NAME` works in every command."""
    from colorkit.data.recipes import fetch

    path = fetch(name, url=url, from_file=from_file, sha256=sha256, cache_dir=cache_dir,
                 progress=not quiet, max_bytes=max_bytes, stall_timeout=stall_timeout,
                 min_rate=min_rate)
    click.echo(f"{name}: {path} ({path.stat().st_size} bytes, verified); next: colorkit data prepare {name}")


@data.command("prepare")
@click.argument("name", required=False)
@dataset_options
@progress_option
def prepare_cmd(name: str | None, dataset: str, size: int, crop: bool, split_seed: int, test_size: int | None,
                cache_dir: Path | None, quiet: bool) -> None:
    """Stream, resize, convert and cache every image once, in shards (reused while the source
    is unchanged; an interrupted preparation resumes). NAME is the same as --dataset NAME."""
    ds = prepare_from_options(name or dataset, size, crop, split_seed, test_size, cache_dir,
                              progress=not quiet)
    click.echo(format_info(ds.info()))


@data.command("info")
@dataset_options
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
@click.option("--files", "show_files", is_flag=True, help="Also list each skipped file with its reason.")
def info_cmd(dataset: str, size: int, crop: bool, split_seed: int, test_size: int | None,
             cache_dir: Path | None, as_json: bool, show_files: bool) -> None:
    """Counts per split and per skip reason, size and cache path (prepares if needed)."""
    ds = prepare_from_options(dataset, size, crop, split_seed, test_size, cache_dir, progress=not as_json)
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
