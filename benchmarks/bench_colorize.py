"""Full-resolution colorize latency: a 1024x768 photo into k = 5 colorizations with a
loaded run (prediction at the model size, ab upsampled and joined with the photo's own L).

    python benchmarks/bench_colorize.py --run runs/mdn [--image photo.jpg] [--repeats 7]

Without --image a 1024x768 photo is made by upscaling a shipped demo photo. Prints the
median and spread; appends a row to benchmarks/results/colorize.csv. Target: < 2 s on CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _results import append_rows
from PIL import Image

import colorkit
from colorkit.builtin_components import DEMO_DIR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--image", default=None)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    if args.image:
        img = Image.open(args.image).convert("RGB")
    else:
        src = sorted(DEMO_DIR.rglob("*.jpg"))[0]
        img = Image.open(src).convert("RGB").resize((1024, 768), Image.Resampling.BICUBIC)
    c = colorkit.load(args.run, device="cpu")
    c.colorize(img, k=args.k)  # warm-up
    times = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        out = c.colorize(img, k=args.k, seed=i)
        times.append(time.perf_counter() - t0)
    assert len(out) == args.k and out[0].size == img.size
    med = statistics.median(times)
    print(
        f"colorize {img.size[0]}x{img.size[1]} into {args.k} with {c.name}: median {med:.3f} s "
        f"(min {min(times):.3f}, max {max(times):.3f}) over {args.repeats} runs, "
        f"torch threads {torch.get_num_threads()}"
    )
    append_rows("colorize", ["method", "width", "height", "k", "median_s", "min_s", "max_s", "repeats", "torch"],
                [[c.name, img.size[0], img.size[1], args.k, f"{med:.4f}", f"{min(times):.4f}", f"{max(times):.4f}",
                  args.repeats, torch.__version__]])

if __name__ == "__main__":
    main()
