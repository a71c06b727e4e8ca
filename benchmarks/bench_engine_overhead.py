"""Engine overhead: VAE training throughput through ``colorkit``'s engine against a bare
forward/backward/step loop of the same model, in the same process.

The bare loop holds pre-converted batches in memory and does only encode -> decode ->
decoder loss + KL -> backward -> Adam step. The engine adds what a real run needs: data
conversion (uint8 RGB -> Lab), shuffling/sharding, the stage machinery, progress and JSONL
logging, and the per-epoch atomic checkpoint. Target: engine within 10% of the bare loop.

    python benchmarks/bench_engine_overhead.py [--preset small] [--epochs 2] [--repeats 2]

Appends a row to benchmarks/results/engine_overhead.csv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from _results import append_rows
from colorkit_paper.losses import decoder_loss

import colorkit
from colorkit.core.stats import load_or_compute_stats
from colorkit.data import prepare
from colorkit.train.engine import TrainConfig, Trainer
from colorkit.train.runs import build_method


def vae_only(method):
    stage = [s for s in method.stages() if s.name == "vae"]
    method.stages = lambda: stage
    return method, stage[0]


def bare_loop(method, split, epochs: int, batch: int, seed: int) -> float:
    """Images per second of the bare loop over the same number of images."""
    vae, c = method.embedder, method.config
    n = len(split)
    g = torch.Generator().manual_seed(seed)
    orders = [torch.randperm(n, generator=g).tolist() for _ in range(epochs)]
    batches = [split.batch(o[i : i + batch]) for o in orders for i in range(0, n, batch) if len(o[i : i + batch]) >= 2]
    opt = torch.optim.Adam(vae.parameters(), lr=c.vae_lr)
    vae.train()
    seen = 0
    t0 = time.perf_counter()
    for b in batches:
        post = vae.encode(b["ab"])
        rec = vae.decode(post.sample())
        loss = (decoder_loss(rec, b["ab"], method.stats, weights=dict(c.decoder_loss), impl="torch")
                + c.kl_weight * post.kl()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += b["ab"].shape[0]
    return seen / (time.perf_counter() - t0)


def engine_loop(method, split, epochs: int, batch: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as td:
        summary = Trainer(TrainConfig(seed=seed, epochs=epochs, batch_size=batch, progress=True)).fit(method, split, td)
    n = len(split)
    per_epoch = sum(len(range(i, min(n, i + batch))) for i in range(0, n, batch) if min(n, i + batch) - i >= 2)
    return per_epoch * epochs / summary["stage_seconds"]["vae"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ds = prepare(args.dataset, progress=False)
    stats = load_or_compute_stats(ds)
    split = ds.split("train")
    bare, eng = [], []
    for r in range(args.repeats):
        for kind in ("bare", "engine"):
            torch.manual_seed(args.seed)
            m = build_method("mdn", stats, preset=args.preset, options=None, dataset=None)
            m.registry_name = "mdn"
            m, stage = vae_only(m)
            if kind == "bare":
                bare.append(bare_loop(m, split, args.epochs, stage.batch_size, args.seed))
            else:
                eng.append(engine_loop(m, split, args.epochs, stage.batch_size, args.seed))
            print(f"repeat {r + 1} {kind:6s}: {(bare if kind == 'bare' else eng)[-1]:.1f} images/s", flush=True)
    b, e = statistics.median(bare), statistics.median(eng)
    overhead = (b - e) / b * 100
    print(f"VAE ({args.preset}) training throughput: bare loop {b:.1f} img/s, engine {e:.1f} img/s, "
          f"engine overhead {overhead:+.1f}% (target <= 10%)")
    append_rows("engine_overhead", ["cpus", "torch_threads", "preset", "epochs", "repeats", "bare_img_s",
                                     "engine_img_s", "overhead_percent", "colorkit", "torch"],
                [[os.cpu_count(), torch.get_num_threads(), args.preset, args.epochs, args.repeats, f"{b:.2f}",
                  f"{e:.2f}", f"{overhead:.2f}", colorkit.__version__, torch.__version__]])

if __name__ == "__main__":
    main()
