"""``colorkit train``: the whole pipeline for one method into a run directory."""

from __future__ import annotations

import json
import time

import click

from colorkit.registry import ColorkitError


def parse_options(pairs: tuple[str, ...]) -> dict:
    """``--option key=value`` (value parsed as JSON when it parses, else a string)."""
    out = {}
    for p in pairs:
        if "=" not in p:
            raise ColorkitError(f"--option expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


@click.command("train")
@click.option("--method", required=True, help="A registered conditional model (see `colorkit plugins`).")
@click.option("--dataset", default="demo", show_default=True, help="Registered data set name or image folder.")
@click.option("--preset", default="small", show_default=True, help="Model sizes: small (CPU), paper (exact), tiny (tests).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs for every stage (default: the preset's).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory [default: runs/METHOD].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=click.IntRange(min=16), default=64, show_default=True, help="Image size the model works at.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 autocast on CUDA, fp32 elsewhere.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model's sub-modules (GPU runs).")
@click.option("--loader-workers", type=click.IntRange(min=0), default=None,
              help="DataLoader processes [default: 0 on CPU, up to 4 on CUDA].")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Method config field (repeatable).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def train(method, dataset, preset, epochs, out, seed, size, device, precision, compile_, loader_workers, resume,
          options, no_progress) -> None:
    """Train METHOD (statistics, then each stage) and leave a run directory.

    \b
    Examples:
      colorkit train --method mdn
      colorkit train --method cvae --dataset ~/photos --preset paper --epochs 10 --out runs/cvae
      torchrun --nproc_per_node 2 -m colorkit train --method mdn --out runs/mdn-ddp
      torchrun --nproc_per_node 8 -m colorkit train --method mdn --dataset lsun-church --preset paper --device cuda --compile
    """
    from colorkit.plugins import registry
    from colorkit.runs import run_dir_for
    from colorkit.runs import train as run_train

    registry("conditional_model").get(method)  # fail fast, listing known methods
    t0 = time.perf_counter()
    was_complete = resume and (run_dir_for(method, out) / "run.json").is_file()
    run = run_train(method, dataset=dataset, out=out, preset=preset, epochs=epochs, seed=seed, size=size,
                    device=device, resume=resume, progress=not no_progress, options=parse_options(options),
                    engine={"precision": precision, "compile": compile_, "loader_workers": loader_workers})
    from colorkit import distributed as D

    if D.rank() == 0 and not was_complete:  # a finished run: train already said so, nothing was trained
        info = json.loads((run / "run.json").read_text())
        click.echo(f"trained {method} ({preset}) in {info['train_seconds']:.1f} s of training, "
                   f"{time.perf_counter() - t0:.1f} s wall; run directory: {run}")
    D.shutdown()
