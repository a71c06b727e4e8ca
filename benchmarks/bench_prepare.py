"""Benchmark :func:`colorkit.data.prepare`: cold (no cache) throughput, peak memory, warm time.

Writes ``--n`` synthetic JPEGs of random sizes (200-640 px a side, smooth colour fields
plus noise, like photographs in size and compressibility) to a temporary folder, then runs
``prepare`` in a fresh child process twice: cold (empty cache) and warm (cache reused).
The child reports its peak resident memory (``ru_maxrss``), its resident memory after
imports (the baseline: Python, torch, Pillow) and the wall time. One row is appended to
``benchmarks/results/prepare.csv``.

    python benchmarks/bench_prepare.py --n 2000
    python benchmarks/bench_prepare.py --n 500 --keep /tmp/bench-imgs   # reuse the images
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "prepare.csv"
COLUMNS = ["date", "host_cpu_count", "n_images", "images_per_s", "peak_rss_mb", "warm_seconds", "colorkit_version"]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_images(folder: Path, n: int, seed: int = 0) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        w, h = (int(v) for v in rng.integers(200, 641, 2))
        small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.integers(-12, 13, (h, w, 3)), 0, 255).astype(np.uint8)
        sub = folder / f"{i % 16:02d}"
        sub.mkdir(exist_ok=True)
        Image.fromarray(img).save(sub / f"{i:06d}.jpg", quality=90)


def child(folder: str, cache: str, size: int) -> None:
    """Run prepare once in this process and print a JSON line with its measurements."""
    import colorkit
    from colorkit.data import prepare

    baseline = _rss_mb()
    t0 = time.perf_counter()
    ds = prepare(folder, size=size, cache_dir=cache, progress=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({
        "seconds": seconds, "peak_rss_mb": peak, "baseline_rss_mb": baseline, "n_kept": ds.n,
        "skipped": ds.skipped, "version": colorkit.__version__,
    }))


def run_child(folder: Path, cache: Path, size: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(folder), str(cache), "--size", str(size)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="number of synthetic JPEGs")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--keep", type=Path, default=None, help="folder for the images (kept, reused if complete)")
    ap.add_argument("--no-csv", action="store_true", help="do not append to results/prepare.csv")
    ap.add_argument("--child", nargs=2, metavar=("FOLDER", "CACHE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.size)
        return

    work = Path(tempfile.mkdtemp(prefix="colorkit-bench-"))
    try:
        folder = args.keep or work / "images"
        if not (folder.is_dir() and sum(1 for _ in folder.rglob("*.jpg")) == args.n):
            shutil.rmtree(folder, ignore_errors=True)
            t0 = time.perf_counter()
            write_images(folder, args.n)
            print(f"wrote {args.n} JPEGs in {time.perf_counter() - t0:.1f} s")
        cache = work / "cache"
        cold = run_child(folder, cache, args.size)
        warm = run_child(folder, cache, args.size)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ips = args.n / cold["seconds"]
    print(f"cold : {cold['seconds']:.2f} s for {args.n} images = {ips:.1f} images/s "
          f"({cold['n_kept']} kept, skipped {cold['skipped'] or 'none'})")
    print(f"peak : {cold['peak_rss_mb']:.0f} MB RSS (after imports {cold['baseline_rss_mb']:.0f} MB; "
          f"prepare added {cold['peak_rss_mb'] - cold['baseline_rss_mb']:.0f} MB)")
    print(f"warm : {warm['seconds']:.3f} s (cache reused), peak {warm['peak_rss_mb']:.0f} MB RSS")
    if not args.no_csv:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        new = not RESULTS.exists()
        with open(RESULTS, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(COLUMNS)
            w.writerow([
                time.strftime("%Y-%m-%dT%H:%M:%S"), os.cpu_count(), args.n, f"{ips:.1f}",
                f"{cold['peak_rss_mb']:.1f}", f"{warm['seconds']:.3f}", cold["version"],
            ])
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
