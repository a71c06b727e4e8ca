"""Command-line options shared by several commands, each mapping onto a field of the
configuration tree (:mod:`colorkit.train.config`), so ``train``, ``bench``, ``data``, ``stats``
and ``colorize`` spell and document them the same way."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from colorkit.core.registry import ColorkitError


def _apply(fn: Callable, options: list[Callable]) -> Callable:
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def data_options(fn: Callable | None = None, *, seed: bool = True, min_size: int = 8) -> Callable:
    """``--dataset --size --crop/--no-crop [--seed] --test-size --cache-dir``
    (:class:`colorkit.train.config.DataConfig`). ``seed=False`` for commands whose ``--seed``
    means more than the split (they declare their own)."""

    def deco(f: Callable) -> Callable:
        options = [
            click.option("--dataset", default="demo", show_default=True,
                         help="Folder of images, .tar, .tar.gz or .zip archive, LMDB directory, or a registered "
                              "data set name (see `colorkit plugins`)."),
            click.option("--size", default=64, show_default=True, type=click.IntRange(min=min_size),
                         help="Side of the square images, in pixels."),
            click.option("--crop/--no-crop", default=False, show_default=True,
                         help="Centre-crop to a square before resizing (default: the paper's straight resize)."),
        ]
        if seed:
            options.append(click.option("--seed", default=0, show_default=True, type=int,
                                        help="Seed of the random train/test split."))
        options += [
            click.option("--test-size", default=None, type=click.IntRange(min=0),
                         help="Test images [default: min(1000, max(1, round(0.1 N)), N - 1)]."),
            click.option("--cache-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
                         help="Cache folder [default: $COLORKIT_CACHE or ~/.cache/colorkit]."),
        ]
        return _apply(f, options)

    return deco(fn) if fn is not None else deco


def stats_options(fn: Callable) -> Callable:
    """``--weighting`` (:class:`colorkit.train.config.StatsConfig`): the colour statistics a
    method trains with and ``colorkit stats`` computes."""
    from colorkit.core.stats import WEIGHTINGS

    return click.option("--weighting", type=click.Choice(WEIGHTINGS), default="rebalanced", show_default=True,
                        help="Colourfulness weights: rebalanced (Zhang et al.: lambda 0.5, sigma 5 Lab units, "
                             "mean 1) or inverse (the raw 1/p).")(fn)


def progress_option(fn: Callable) -> Callable:
    """``--quiet/-q`` (no progress bars); ``--no-progress`` is kept as a hidden alias."""
    fn = click.option("--no-progress", "quiet_alias", is_flag=True, hidden=True,
                      help="Former name of --quiet.")(fn)
    return click.option("--quiet", "-q", is_flag=True, help="No progress bars.")(fn)


def is_quiet(quiet: bool, quiet_alias: bool) -> bool:
    return bool(quiet or quiet_alias)


def option_pairs(fn: Callable | None = None, *, help: str) -> Callable:  # noqa: A002 - click's name
    """``--option KEY=VALUE`` (repeatable)."""

    def deco(f: Callable) -> Callable:
        return click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help=help)(f)

    return deco(fn) if fn is not None else deco


def parse_options(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``--option key=value`` (value parsed as JSON when it parses, else a string)."""
    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise ColorkitError(f"--option expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        if not k.strip():
            raise ColorkitError(f"--option expects key=value, got {p!r}")
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out
