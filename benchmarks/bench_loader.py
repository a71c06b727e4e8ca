"""The training loader against what the small-preset VAE step consumes, on this machine.

Prepares a generated set of ``--n`` images (64 x 64), then measures in one process:

* loader: images/s of ``colorkit.data.batch_loader`` over shuffled batches of the VAE
  stage's batch size, including the uint8 -> Lab conversion the engine does
  (``to_model_batch``), with ``--workers`` loader processes (0 = in the training process,
  the CPU default);
* VAE step: images/s of the small preset's VAE stage step (encode, decode, decoder loss +
  KL, backward, Adam) on batches already converted, as the engine runs it;
* RSS of the process before and after reading every image once through the loader.

Target: loader >= 5x the step. Appends a row to ``benchmarks/results/loader.csv``.

    python benchmarks/bench_loader.py [--n 20000] [--steps 30] [--workers 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from _results import append_rows
from _synthetic import synthetic_dataset

from colorkit.core.interfaces import StepContext
from colorkit.core.stats import load_or_compute_stats
from colorkit.data.loader import batch_loader, to_model_batch
from colorkit.train.runs import build_method


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=30, help="VAE steps timed")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--note", default="")
    ap.add_argument("--no-csv", action="store_true")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-loader-") as cache:
        t0 = time.perf_counter()
        ds = synthetic_dataset(args.n, cache)
        print(f"prepared {ds.n} generated images in {time.perf_counter() - t0:.1f} s ({len(ds.shards)} shards)")
        split = ds.split("train")
        stats = load_or_compute_stats(ds)
        method = build_method("mdn", stats, preset="small", options={}, dataset=ds)
        stage = next(s for s in method.stages() if s.name == "vae")
        bsz = stage.batch_size
        order = np.random.default_rng(0).permutation(len(split))
        batches = [order[i:i + bsz].tolist() for i in range(0, len(order) - bsz + 1, bsz)]
        dev = torch.device("cpu")

        # loader: every training image once
        rss0 = rss_mb()
        t0 = time.perf_counter()
        seen = 0
        for rgb, rows in batch_loader(split, batches, device=dev, workers=args.workers):
            b = to_model_batch(rgb, rows, dev)
            seen += b["ab"].shape[0]
        loader_ips = seen / (time.perf_counter() - t0)
        rss1 = rss_mb()

        # the VAE step, as the engine runs it
        method.eval()
        method.requires_grad_(False)
        for mod in stage.modules.values():
            mod.train()
            mod.requires_grad_(True)
        opts = stage.make_optimizers()

        def optimize(name, loss):
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()

        pre = [
            to_model_batch(*next(iter(batch_loader(split, [bt], workers=0))), dev) for bt in batches[: args.steps + 3]
        ]
        for i, b in enumerate(pre[:3]):  # warm-up
            stage.step(b, StepContext(optimizers=opts, optimize=optimize, epoch=0, step=i))
        t0 = time.perf_counter()
        for i, b in enumerate(pre[3:]):
            stage.step(b, StepContext(optimizers=opts, optimize=optimize, epoch=0, step=i))
        step_ips = bsz * len(pre[3:]) / (time.perf_counter() - t0)
    ratio = loader_ips / step_ips
    print(f"loader ({args.workers} workers): {loader_ips:.0f} img/s over {seen} images; "
          f"RSS {rss0:.0f} MB before, {rss1:.0f} MB after")
    print(f"small-preset VAE step (batch {bsz}): {step_ips:.1f} img/s over {args.steps} steps")
    print(f"loader / step = {ratio:.1f}x (target >= 5x)")
    if not args.no_csv:
        out = append_rows("loader", ["n_images", "workers", "loader_img_per_s", "vae_step_img_per_s", "ratio",
                                     "rss_before_mb", "rss_after_mb", "note"],
                          [[ds.n, args.workers, f"{loader_ips:.1f}", f"{step_ips:.1f}", f"{ratio:.1f}",
                            f"{rss0:.0f}", f"{rss1:.0f}", args.note]])
        print(f"appended to {out}")


if __name__ == "__main__":
    main()
