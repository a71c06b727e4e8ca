"""``colorkit train``: the whole pipeline for one method into a run directory."""

from __future__ import annotations

import json
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
from colorkit.train.config import DataConfig, MethodSpec, StatsConfig
from colorkit.train.engine import TrainConfig


@click.command("train")
@field_option(MethodSpec, "name", "--method", param="method", required=True)
@data_options(min_size=16)
@stats_options
@field_option(MethodSpec, "preset")
@train_options("epochs")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory [default: runs/METHOD].")
@train_options("seed", "device", "precision", "compile", "loader_workers")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@option_pairs(help="Method config field (repeatable), e.g. decoder_loss=l2.")
@progress_option
def train(method, preset, out, resume, options, quiet, **fields) -> None:
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
    from colorkit.train.config import RunConfig
    from colorkit.train.runs import run_dir_for, train_config

    registry("method").get(method)  # fail fast, listing known methods
    t0 = time.perf_counter()
    was_complete = resume and (run_dir_for(method, out) / "run.json").is_file()
    given = sections(fields, data=DataConfig, stats=StatsConfig, train=TrainConfig)
    cfg = RunConfig(data=given["data"], stats=given["stats"],
                    method=MethodSpec(name=method, preset=preset, options=parse_options(options)),
                    train={**given["train"], "progress": not quiet})
    run = train_config(cfg, out=out, resume=resume)
    from colorkit.core import distributed as D

    if D.launch_rank() == 0 and not was_complete:  # a finished run: train already said so, nothing was trained
        info = json.loads((run / "run.json").read_text())
        click.echo(f"trained {method} ({preset}) in {info['train_seconds']:.1f} s of training, "
                   f"{time.perf_counter() - t0:.1f} s wall; run directory: {run}")
