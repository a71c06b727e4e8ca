"""``colorkit stats``: PCA and colourfulness weights of a data set's training split
(see :mod:`colorkit.core.stats`)."""

from __future__ import annotations

from pathlib import Path

import click

from colorkit.cli.data import prepare_from_options
from colorkit.cli.options import data_options, field_option, progress_option, stats_options
from colorkit.core.stats import StatsConfig, load_or_compute_stats, stats_cache_path


@click.command("stats")
@data_options
@stats_options
@field_option(StatsConfig, "components", type=click.IntRange(min=1))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also copy the statistics (safetensors) here.")
@progress_option
def stats(dataset: str, size: int, crop: bool, split_seed: int, test_size: int | None,
          cache_dir: str | None, weighting: str, components: int, out: Path | None,
          quiet: bool) -> None:
    """Compute (or reuse) the colour statistics of the training split.

    \b
    Examples:
      colorkit stats --dataset demo
      colorkit stats --dataset ~/photos --weighting inverse --out stats.safetensors
      colorkit stats --components 10
    """
    ds = prepare_from_options(dataset, size, crop, split_seed, test_size, cache_dir, progress=not quiet)
    cfg = StatsConfig(components=components, weighting=weighting)
    st = load_or_compute_stats(ds, cfg, progress=not quiet)
    path = stats_cache_path(ds, cfg)
    s = st.summary()
    click.echo(f"training images : {s['n_train_images']} ({ds.name}, split seed {split_seed}, {size}x{size} pixels)")
    click.echo(
        f"PCA             : top {s['k']} components explain {100 * s['explained_variance_ratio']:.1f}% "
        f"of the ab variance; sigma_1^2 = {s['sigma2_first']:.3e}, sigma_{s['k']}^2 = "
        f"{s['sigma2_last']:.3e} (ab/128)^2"
    )
    click.echo(f"ab bins         : {s['n_in_gamut']} in gamut of 23x23 (grid step 10 Lab units)")
    click.echo(
        f"weights         : {s['weighting']}, per in-gamut bin min {s['weight_min']:.3g}, "
        f"median {s['weight_median']:.3g}, max {s['weight_max']:.3g} (mean over training pixels "
        f"{'1' if s['weighting'] == 'rebalanced' else 'not normalised'})"
    )
    click.echo(f"cache           : {path}")
    if out is not None:
        st.save(out)
        click.echo(f"saved           : {out}")
