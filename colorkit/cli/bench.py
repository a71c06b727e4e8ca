"""``colorkit bench``: diversity against error-of-best for several methods."""

from __future__ import annotations

import time

import click

from colorkit.cli.options import (
    data_options,
    field_option,
    option_pairs,
    parse_options,
    progress_option,
    sections,
    stats_options,
    train_options,
)
from colorkit.eval.config import BenchConfig
from colorkit.train.config import DataConfig, StatsConfig
from colorkit.train.engine import TrainConfig


@click.command("bench")
@field_option(BenchConfig, "methods", default="mdn,cvae,cgan", show_default=True,
              help="Comma-separated registered methods (third-party ones too).")
@data_options(min_size=16)
@stats_options
@field_option(BenchConfig, "preset")
@train_options("epochs")
@field_option(BenchConfig, "k")
@train_options("seed", seed={"help": "First training seed (and the bootstrap's); the split has its own, "
                                     "--split-seed."})
@field_option(BenchConfig, "seeds")
@field_option(BenchConfig, "references")
@field_option(BenchConfig, "test_dataset")
@field_option(BenchConfig, "hints", type=str, metavar="N,N,...")
@field_option(BenchConfig, "threads", type=str, metavar="N|auto")
@field_option(BenchConfig, "runs", multiple=True, type=click.Path(file_okay=False), default=(), show_default=False)
@field_option(BenchConfig, "out", type=click.Path(file_okay=False))
@train_options("device")
@click.option("--ablation", type=click.Choice(["decoder-loss"]), default=None,
              help="Instead: the paper's Tables 1-2 (VAE trained with l2, mah, full loss).")
@option_pairs(help="[METHOD:]KEY=VALUE (repeatable): a method config field for training (e.g. "
                   "mdn:decoder_loss=l2) or a sampling setting for scoring (mode=mixture, colornet:temperature=0.5); "
                   "without METHOD: every method that has KEY.")
@progress_option
def bench(methods, ablation, options, quiet, **fields) -> None:
    """Train (or reuse) each method, score all and the reference methods on the same test
    images with every registered metric, write the tables.

    \b
    Writes OUT/results.json, results.csv, results.md (paper Table 3 layout with 95%
    bootstrap intervals, realism measures, training budgets, mixture usage and one verdict
    per learned method against the references), scatter.png (variance vs error-of-best)
    and samples.png; prints the table and the elapsed time. With --hints also one table
    per hint count (errors at the pixels without a hint) and hints.png.

    \b
    Examples:
      colorkit bench --methods mdn,cvae,cgan
      colorkit bench --methods mdn,cvae,cgan --seeds 3
      colorkit bench --methods mdn,colornet --option colornet:temperature=0.2 --weighting inverse
      colorkit bench --methods mdn --runs runs/mdn --test-dataset ~/old-photos
      colorkit bench --methods mdn,mdn-skip --hints 0,1,2,5,10,20
      colorkit bench --methods mdn,cgan --runs runs/mdn --out bench-lfw --dataset ~/lfw
      colorkit bench --ablation decoder-loss
    """
    t0 = time.perf_counter()
    progress = not quiet
    given = sections(fields, data=DataConfig, stats=StatsConfig, train=TrainConfig)
    train = {**given["train"], "progress": progress}
    if ablation:
        from colorkit.eval.ablation import run_ablation

        text = run_ablation(preset=fields["preset"], epochs=train["epochs"], seed=train["seed"], out=fields["out"],
                            device=train["device"], progress=progress, data=DataConfig(**given["data"]),
                            stats_config=StatsConfig(**given["stats"]))
    else:
        from colorkit.eval.bench import parse_bench_options, run_bench, table_markdown

        cfg = BenchConfig(methods=[m.strip() for m in methods.split(",") if m.strip()], data=given["data"],
                          stats=given["stats"], train=train, options=parse_bench_options(parse_options(options)),
                          **{**fields, "runs": list(fields["runs"])})
        results = run_bench(cfg)
        text = table_markdown(results)
    click.echo(text)
    click.echo(f"outputs in {fields['out']}/; total elapsed {time.perf_counter() - t0:.1f} s")
