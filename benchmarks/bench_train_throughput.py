"""Training throughput per stage at the ``paper`` preset, and the fraction of the card's
bf16 peak it reaches.

For each stage of ``--method`` (mdn: colornet pretext, VAE, MDN), on batches of the
stage's batch size (``--batch`` overrides) from a generated data set, set up as the engine
does (only the stage's modules train; bf16 autocast, channels-last and ``torch.compile``
as ``--precision``, ``--channels-last``, ``--compile`` say; defaults follow the engine:
bf16 + channels-last on CUDA, fp32 on CPU):

* FLOPs per image of one optimisation step (forward + backward), counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matrix multiplications and convolutions;
  elementwise work is not counted, so the fraction of peak is a lower bound on how busy
  the tensor cores are);
* images/s over ``--steps`` timed steps after ``--warmup`` steps (CUDA synchronised);
* achieved FLOP/s and its fraction of the card's dense bf16 peak (a table of known cards,
  or ``--peak-tflops``).

Then it prints, per data set of the paper, the time of 10 epochs per stage at the measured
rate, and (always labelled as an estimate) at an assumed fraction of the peak of an A100
and an H100. Appends rows to ``benchmarks/results/train_throughput.csv``.

    python benchmarks/bench_train_throughput.py --device cuda                 # a GPU
    python benchmarks/bench_train_throughput.py --device cpu --steps 2 --batch 8
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time

import torch
from _results import append_rows, record_machine
from _synthetic import synthetic_dataset
from torch.utils.flop_counter import FlopCounterMode

from colorkit.core.interfaces import StepContext
from colorkit.core.stats import load_or_compute_stats
from colorkit.data.loader import batch_loader, to_model_batch
from colorkit.train.engine import TrainConfig, Trainer, autocast_dtype, compile_modules, use_channels_last
from colorkit.train.runs import build_method

#: Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) from the vendors' data sheets.
PEAK_BF16_TFLOPS = {
    "H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 756.0, "A100": 312.0, "L40S": 362.0,
    "L4": 121.0, "A10": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0,
}
DATASETS = {"lfw": 13233 - 1000, "lsun-church": 126227 - 1000, "imagenet-val": 50000 - 1000}  # training images


def card_peak(name: str) -> float | None:
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key.lower() in name.lower():
            return PEAK_BF16_TFLOPS[key] * 1e12
    return None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="mdn")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: each stage's)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    ap.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak")
    ap.add_argument("--assumed-mfu", default="0.1,0.3",
                    help="fractions of peak assumed for the A100/H100 estimates (comma-separated)")
    ap.add_argument("--note", default="")
    ap.add_argument("--no-csv", action="store_true")
    args = ap.parse_args(argv)

    dev = torch.device(args.device)
    cfg = TrainConfig(precision=args.precision, compile=args.compile,
                      channels_last=None if args.channels_last == "auto" else args.channels_last == "on")
    amp, cl = autocast_dtype(cfg, dev), use_channels_last(cfg, dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (card_peak(name) if dev.type == "cuda" else None)
    record_machine("bench_train_throughput", csv=not args.no_csv)  # the host CPU's speed, before the work
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-train-") as cache:
        ds = synthetic_dataset(600, cache)
        stats = load_or_compute_stats(ds)
        method = build_method(args.method, stats, preset=args.preset, options={"use_cache": False}
                              if args.method == "mdn" else {}, dataset=ds)
        method.to(dev)
        if hasattr(method.stats, "to"):
            method.stats = method.stats.to(dev)
        if cl:
            method.to(memory_format=torch.channels_last)
        if args.compile:
            compile_modules(method, cfg.compile_backend)
        split = ds.split("train")
        print(f"{args.method} ({args.preset}) on {name}: precision {'bf16 autocast' if amp else 'fp32'}, "
              f"channels-last {cl}, compile {args.compile}")
        for stage in method.stages():
            bsz = args.batch or stage.batch_size
            Trainer._train_only(method, stage)  # as the engine does: only the stage's modules learn
            opts = stage.make_optimizers()

            def optimize(n, loss, opts=opts):
                opts[n].zero_grad(set_to_none=True)
                loss.backward()
                opts[n].step()

            idx = [list(range(i * bsz % (len(split) - bsz), i * bsz % (len(split) - bsz) + bsz))
                   for i in range(args.warmup + args.steps + 1)]
            batches = []
            for rgb, rows_ in batch_loader(split, idx, device=dev, workers=0):
                b = to_model_batch(rgb, rows_, dev)
                if cl:
                    b = {
                        k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in b.items()
                    }
                batches.append(b)

            def run(b, i, opts=opts, optimize=optimize, stage=stage):
                ctx = StepContext(optimizers=opts, optimize=optimize, epoch=0, step=i)
                with torch.autocast(dev.type, dtype=amp) if amp else contextlib.nullcontext():
                    return stage.step(b, ctx)

            flop_mode = FlopCounterMode(display=False)
            with flop_mode:
                run(batches[0], 0)
            flops_img = flop_mode.get_total_flops() / bsz
            for i in range(args.warmup):
                run(batches[1 + i], i)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            for i in range(args.steps):
                run(batches[1 + args.warmup + i], i)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            ips = bsz * args.steps / (time.perf_counter() - t0)
            achieved = ips * flops_img
            frac = achieved / peak if peak else None
            print(f"  stage {stage.name:8s} batch {bsz:4d}: {ips:9.1f} img/s, {flops_img / 1e9:7.2f} GFLOP/img "
                  f"(fwd+bwd), {achieved / 1e12:7.3f} TFLOP/s" + (f" = {100 * frac:.1f}% of bf16 peak" if frac else ""))
            rows.append([args.method, args.preset, name, stage.name, bsz, "bf16" if amp else "fp32", cl, args.compile,
                         f"{ips:.2f}", f"{flops_img:.4g}", f"{achieved:.4g}", f"{frac:.4f}" if frac else "", args.note])
    print("\n10 epochs per stage (training images = the paper's set minus 1,000 test images):")
    mfus = [float(x) for x in args.assumed_mfu.split(",")]
    for dname, n in DATASETS.items():
        meas = sum(10 * n / float(r[8]) for r in rows)
        flops = sum(10 * n * float(r[9]) for r in rows)
        print(f"  {dname:13s} ({n} images, {flops / 1e15:.1f} PFLOP counted): at the rate measured here "
              f"{meas / 3600:.2f} h")
        for card in ("A100", "H100 SXM"):
            span = " to ".join(
                f"{flops / (PEAK_BF16_TFLOPS[card] * 1e12 * m) / 60:.1f}" for m in sorted(mfus, reverse=True)
            )
            print(
                f"      ESTIMATE {card}: {span} min at "
                f"{' to '.join(f'{100 * m:.0f}%' for m in sorted(mfus, reverse=True))} "
                "of its bf16 peak (not measured)"
            )
    for r in rows:
        need = {card: PEAK_BF16_TFLOPS[card] * 1e12 * max(mfus) / float(r[9]) for card in ("A100", "H100 SXM")}
        print(f"  stage {r[3]}: the loader must feed " + ", ".join(f"{v:,.0f} img/s on an {k}" for k, v in need.items())
              + f" at {100 * max(mfus):.0f}% of peak (ESTIMATE)")
    if not args.no_csv:
        out = append_rows("train_throughput", ["method", "preset", "device", "stage", "batch", "precision",
                                               "channels_last", "compiled", "img_per_s", "flops_per_img",
                                               "flops_per_s", "fraction_of_bf16_peak", "note"], rows)
        print(f"appended to {out}")


if __name__ == "__main__":
    main()
