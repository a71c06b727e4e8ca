"""Peak memory of ``colorkit colorize`` on large photos: one process per (photo, k), its
peak resident set size read from the kernel (``os.wait4``'s ``ru_maxrss``).

    python benchmarks/bench_colorize_memory.py --run runs/mdn [--sizes 4000x4000,6000x4000] [--ks 5,8]

Photos are JPEGs made by upscaling a shipped demo photo (bicubic) to each size. Prints one
line per case and appends rows to benchmarks/results/colorize_memory.csv. Target: every
case under 2 GB (2048 MiB), whatever k.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _results import append_rows
from PIL import Image

from colorkit.builtin_components import DEMO_DIR

LIMIT_MIB = 2048


def peak_rss_mib(cmd: list[str]) -> tuple[float, float, int]:
    """Run ``cmd``; its peak RSS in MiB, wall seconds and exit status."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        print(err, file=sys.stderr)
    return usage.ru_maxrss / 1024.0, time.perf_counter() - t0, proc.returncode  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--sizes", default="4000x4000,6000x4000")
    ap.add_argument("--ks", default="5,8")
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    ks = [int(k) for k in args.ks.split(",")]
    src = Image.open(sorted(DEMO_DIR.rglob("*.jpg"))[0]).convert("RGB")
    rows, worst = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in sizes:
            photo = Path(tmp) / f"photo_{w}x{h}.jpg"
            src.resize((w, h), Image.Resampling.BICUBIC).save(photo, quality=90)
            for k in ks:
                out = Path(tmp) / f"out_{w}x{h}_{k}"
                cmd = [sys.executable, "-m", "colorkit", "colorize", str(photo), "--run", args.run, "--k", str(k),
                       "--out", str(out), "--device", "cpu"]
                mib, secs, rc = peak_rss_mib(cmd)
                worst = max(worst, mib)
                ok = rc == 0 and mib < LIMIT_MIB
                print(f"colorize {w}x{h} k={k}: peak RSS {mib:.0f} MiB, {secs:.1f} s wall, exit {rc} "
                      f"({'under' if ok else 'NOT under'} {LIMIT_MIB} MiB)")
                rows.append([w, h, k, f"{mib:.1f}", f"{secs:.2f}", rc, torch.__version__])
    append_rows("colorize_memory", ["width", "height", "k", "peak_rss_mib", "wall_s", "exit", "torch"], rows)
    print(f"worst peak RSS {worst:.0f} MiB (target < {LIMIT_MIB} MiB)")


if __name__ == "__main__":
    main()
