"""``colorkit bench``: diversity against error-of-best for several methods."""

from __future__ import annotations

import time

import click

from colorkit.cli.options import (
    data_options,
    is_quiet,
    option_pairs,
    parse_options,
    progress_option,
    stats_options,
)


@click.command("bench")
@click.option("--methods", default="mdn,cvae,cgan", show_default=True,
              help="Comma-separated registered conditional models (third-party ones too).")
@data_options(seed=False, min_size=16)
@stats_options
@click.option("--preset", default="small", show_default=True, help="small (CPU), paper (exact sizes) or tiny.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs for every stage (default: preset's).")
@click.option("--k", type=click.IntRange(min=1, max=64), default=5, show_default=True, help="Colorizations per image.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the train/test split, of the first training run and of the bootstrap.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train and evaluate every method with seeds SEED ... SEED+N-1; report mean and spread.")
@click.option("--no-references", is_flag=True,
              help="Do not score the reference methods (grey, mean-field, prior-samples, prior-kmeans, colornet).")
@click.option("--test-dataset", default=None,
              help="Score on every usable image of this folder or data set instead of the test split.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (results are reproducible for a fixed machine and thread count).")
@click.option(
    "--runs", multiple=True, type=click.Path(file_okay=False), help="Reuse these run directories (repeatable)."
)
@click.option("--out", default="bench-out", show_default=True, type=click.Path(file_okay=False))
@click.option("--device", default="auto", show_default=True)
@click.option("--ablation", type=click.Choice(["decoder-loss"]), default=None,
              help="Instead: the paper's Tables 1-2 (VAE trained with l2, mah, full loss).")
@option_pairs(help="[METHOD:]KEY=VALUE (repeatable): a method config field for training (e.g. "
                   "mdn:decoder_loss=l2) or a sampling setting for scoring (mode=mixture, colornet:temperature=0.5); "
                   "without METHOD: every method that has KEY.")
@progress_option
def bench(methods, dataset, size, crop, test_size, cache_dir, weighting, preset, epochs, k, seed, seeds,
          no_references, test_dataset, threads, runs, out, device, ablation, options, quiet, quiet_alias) -> None:
    """Train (or reuse) each method, score all and the reference methods on the same test
    images with every registered metric, write the tables.

    \b
    Writes OUT/results.json, results.csv, results.md (paper Table 3 layout with 95%
    bootstrap intervals, realism measures, training budgets, mixture usage and one verdict
    per learned method against the references), scatter.png (variance vs error-of-best)
    and samples.png; prints the table and the elapsed time.

    \b
    Examples:
      colorkit bench --methods mdn,cvae,cgan
      colorkit bench --methods mdn,cvae,cgan --seeds 3
      colorkit bench --methods mdn,colornet --option colornet:temperature=0.2 --weighting inverse
      colorkit bench --methods mdn --runs runs/mdn --test-dataset ~/old-photos
      colorkit bench --methods mdn,cgan --runs runs/mdn --out bench-lfw --dataset ~/lfw
      colorkit bench --ablation decoder-loss
    """
    t0 = time.perf_counter()
    progress = not is_quiet(quiet, quiet_alias)
    if ablation:
        from colorkit.eval.ablation import run_ablation
        from colorkit.train.config import DataConfig, StatsConfig

        data = DataConfig(dataset=dataset, size=size, crop=crop, seed=seed, test_size=test_size,
                          cache_dir=None if cache_dir is None else str(cache_dir))
        text = run_ablation(preset=preset, epochs=epochs, seed=seed, out=out, device=device, progress=progress,
                            data=data, stats_config=StatsConfig(weighting=weighting))
    else:
        from colorkit.eval.bench import BenchConfig, parse_bench_options, run_bench, table_markdown

        cfg = BenchConfig(methods=[m.strip() for m in methods.split(",") if m.strip()], dataset=dataset,
                          preset=preset, epochs=epochs, k=k, seed=seed, seeds=seeds, runs=list(runs), out=out,
                          size=size, crop=crop, test_size=test_size,
                          cache_dir=None if cache_dir is None else str(cache_dir), stats={"weighting": weighting},
                          options=parse_bench_options(parse_options(options)), device=device, progress=progress,
                          references=not no_references, test_dataset=test_dataset, threads=threads)
        results = run_bench(cfg)
        text = table_markdown(results)
    click.echo(text)
    click.echo(f"outputs in {out}/; total elapsed {time.perf_counter() - t0:.1f} s")
