"""Time of colour hints: one 1024x768 photo into k = 5 colorizations with 10 hints
against the same without hints, in one process on one machine.

    python benchmarks/bench_hints_time.py [--run RUN] [--image photo.jpg] [--k 5] [--hints 10] [--repeats 7]

Without --run the bundled demo model is used; without --image a shipped demo photo is
enlarged to 1024x768. The hints are 10 seeded random points of the photo with the photo's
own colour there. Each repetition times the file-writing path of ``colorkit colorize
photo.jpg`` (:func:`colorkit.inference.photo.colorize_photo` with a PNG
:class:`~colorkit.inference.output.Writer` into a temporary folder, until every file is
written) once without and once with the hints, alternating so that both see the same
load; it also times the model's sampling alone (where hints cost anything). Prints the
median and minimum of each and the ratios with/without, and appends a row to
benchmarks/results/hints_time.csv with the processor's name (lscpu), the load average
at the start and the end, and the torch threads. Target: ratio of the medians <= 1.5.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _results import append_rows
from PIL import Image

import colorkit
from colorkit.builtin_components import DEMO_DIR
from colorkit.data.imageio import model_grey
from colorkit.eval.machine import cpu_name
from colorkit.inference.output import OutputFormat, Writer
from colorkit.inference.photo import colorize_photo, photo_hint_map


def lscpu_name() -> str:
    """The processor's model name as ``lscpu`` gives it (else from /proc/cpuinfo)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return cpu_name()
    for line in text.splitlines():
        if line.strip().startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return cpu_name()


def make_hints(img: Image.Image, n: int, seed: int = 0) -> list[colorkit.Hint]:
    """``n`` points of ``img`` (seeded), each with the photo's colour there."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(img.convert("RGB"))
    hints = []
    for _ in range(n):
        x, y = int(rng.integers(0, img.width)), int(rng.integers(0, img.height))
        hints.append(colorkit.Hint(x + 0.5, y + 0.5, "#{:02x}{:02x}{:02x}".format(*arr[y, x])))
    return hints


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default=None, help="run directory [default: the bundled demo model]")
    ap.add_argument("--image", default=None)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--hints", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    load0 = os.getloadavg()
    if args.image:
        img = Image.open(args.image).convert("RGB")
    else:
        src = sorted(DEMO_DIR.rglob("*.jpg"))[0]
        img = Image.open(src).convert("RGB").resize((1024, 768), Image.Resampling.BICUBIC)
    hints = make_hints(img, args.hints)
    c = colorkit.load(args.run, device="cpu")
    grey = model_grey(img, c.size)
    hmap = photo_hint_map(hints, img, c.size)
    times: dict[str, list[float]] = {"plain": [], "hints": [], "sample_plain": [], "sample_hints": []}
    with tempfile.TemporaryDirectory() as tmp, Writer(OutputFormat()) as writer:
        paths = [Path(tmp) / f"photo_{i + 1}.png" for i in range(args.k)]

        def write(i: int, with_hints: bool) -> float:
            t0 = time.perf_counter()
            colorize_photo(c, img, writer, paths, k=args.k, seed=i, hints=hints if with_hints else None)
            writer.flush()
            return time.perf_counter() - t0

        write(0, False)  # warm-up (first calls of torch, scipy and the encoders)
        write(0, True)
        for i in range(args.repeats):
            for with_hints in (False, True) if i % 2 == 0 else (True, False):
                times["hints" if with_hints else "plain"].append(write(i, with_hints))
        for i in range(args.repeats):
            for key, m in (("sample_plain", None), ("sample_hints", hmap)):
                t0 = time.perf_counter()
                c.sample(grey, args.k, seed=i, hints=m)
                times[key].append(time.perf_counter() - t0)
    load1 = os.getloadavg()
    med = {key: statistics.median(v) for key, v in times.items()}
    low = {key: min(v) for key, v in times.items()}
    ratio = med["hints"] / med["plain"]
    ratio_min = low["hints"] / low["plain"]
    cpu = lscpu_name()
    print(f"{img.width}x{img.height}, k={args.k}, {c.label}, {cpu} ({os.cpu_count()} cpus, torch threads "
          f"{torch.get_num_threads()}); load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end")
    for key in times:
        print(f"  {key:13s} median {med[key]:.3f} s, min {low[key]:.3f} s over {args.repeats} runs")
    print(f"  with {args.hints} hints / without: {ratio:.3f} (medians), {ratio_min:.3f} (minima); sampling alone "
          f"{med['sample_hints'] / med['sample_plain']:.3f} (medians), "
          f"+{(med['sample_hints'] - med['sample_plain']) * 1000:.1f} ms")
    append_rows("hints_time", ["method", "width", "height", "k", "hints", "repeats", "plain_median_s", "plain_min_s",
                               "hints_median_s", "hints_min_s", "ratio_median", "ratio_min", "sample_plain_median_s",
                               "sample_hints_median_s", "cpu", "cpus", "torch_threads", "load_start", "load_end"],
                [[c.name, img.width, img.height, args.k, args.hints, args.repeats, f"{med['plain']:.4f}",
                  f"{low['plain']:.4f}", f"{med['hints']:.4f}", f"{low['hints']:.4f}", f"{ratio:.3f}",
                  f"{ratio_min:.3f}", f"{med['sample_plain']:.4f}", f"{med['sample_hints']:.4f}", cpu,
                  os.cpu_count(), torch.get_num_threads(), f"{load0[0]:.2f}", f"{load1[0]:.2f}"]])


if __name__ == "__main__":
    main()
