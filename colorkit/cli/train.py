"""``colorkit train``: the whole pipeline for one method into a run directory."""

from __future__ import annotations

import json
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


@click.command("train")
@click.option("--method", required=True, help="A registered conditional model (see `colorkit plugins`).")
@data_options(seed=False, min_size=16)
@stats_options
@click.option(
    "--preset", default="small", show_default=True, help="Model sizes: small (CPU), paper (exact), tiny (tests)."
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Epochs for every stage (default: the preset's)."
)
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory [default: runs/METHOD].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train/test split and of training.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 autocast on CUDA, fp32 elsewhere.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model's sub-modules (GPU runs).")
@click.option("--loader-workers", type=click.IntRange(min=0), default=None,
              help="DataLoader processes [default: 0 on CPU, up to 4 on CUDA].")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@option_pairs(help="Method config field (repeatable), e.g. decoder_loss=l2.")
@progress_option
def train(method, dataset, size, crop, test_size, cache_dir, weighting, preset, epochs, out, seed, device, precision,
          compile_, loader_workers, resume, options, quiet, quiet_alias) -> None:
    """Train METHOD (statistics, then each stage) and leave a run directory.

    \b
    Examples:
      colorkit train --method mdn
      colorkit train --method cvae --dataset ~/photos --preset paper --epochs 10 --out runs/cvae
      colorkit train --method mdn --weighting inverse --option decoder_loss=l2 --out runs/mdn-l2
      torchrun --nproc_per_node 2 -m colorkit train --method mdn --out runs/mdn-ddp
      torchrun --nproc_per_node 8 -m colorkit train --method mdn --dataset lsun-church --preset paper \\
        --device cuda --compile
    """
    from colorkit.core.plugin_manager import registry
    from colorkit.train.config import DataConfig, StatsConfig
    from colorkit.train.runs import run_dir_for
    from colorkit.train.runs import train as run_train

    registry("conditional_model").get(method)  # fail fast, listing known methods
    t0 = time.perf_counter()
    was_complete = resume and (run_dir_for(method, out) / "run.json").is_file()
    data = DataConfig(dataset=dataset, size=size, crop=crop, seed=seed, test_size=test_size,
                      cache_dir=None if cache_dir is None else str(cache_dir))
    run = run_train(method, data=data, stats_config=StatsConfig(weighting=weighting), out=out, preset=preset,
                    epochs=epochs, seed=seed, device=device, resume=resume, progress=not is_quiet(quiet, quiet_alias),
                    options=parse_options(options),
                    engine={"precision": precision, "compile": compile_, "loader_workers": loader_workers})
    from colorkit.core import distributed as D

    if D.launch_rank() == 0 and not was_complete:  # a finished run: train already said so, nothing was trained
        info = json.loads((run / "run.json").read_text())
        click.echo(f"trained {method} ({preset}) in {info['train_seconds']:.1f} s of training, "
                   f"{time.perf_counter() - t0:.1f} s wall; run directory: {run}")
