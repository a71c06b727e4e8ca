"""Diverse inference throughput: k = 5 colorizations per image for each trained run, same
batch of test images, same process. mdn: the top-5 mixture means decoded; cvae and cgan:
256 samples each clustered to 5 with k-means (the paper's protocol).

    python benchmarks/bench_inference.py --runs bench-out/runs/mdn bench-out/runs/cvae bench-out/runs/cgan

Appends rows to benchmarks/results/inference.csv.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _results import append_rows, record_machine

import colorkit
from colorkit.data import prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", required=True)
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    record_machine("bench_inference")  # before the work, at the run's thread count
    ds = prepare(args.dataset, progress=False)
    grey = ds.split("test").batch(list(range(args.batch)))["grey"]
    rows = []
    for run in args.runs:
        c = colorkit.load(run, device=args.device)
        g = grey.to(c.device)
        c.sample(g[:2], args.k)  # warm-up
        times = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            out = c.sample(g, args.k, seed=r)
            if out.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        rows.append((c.name, args.batch / med, med))
        print(f"{c.name:6s}: {args.batch / med:8.2f} images/s  ({med:.3f} s per batch of {args.batch}, k={args.k}, "
              f"modes {getattr(c.method, 'sample_modes', ())[0]})", flush=True)
    append_rows(
        "inference",
        ["device", "method", "batch", "k", "images_per_s", "batch_seconds", "torch_threads", "torch"],
        [
            [
                args.device,
                name,
                args.batch,
                args.k,
                f"{ips:.3f}",
                f"{med:.4f}",
                torch.get_num_threads(),
                torch.__version__,
            ]
            for name, ips, med in rows
        ],
    )

if __name__ == "__main__":
    main()
