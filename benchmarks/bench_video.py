"""Speed and peak memory of ``colorkit colorize CLIP.mp4 --k 5`` on 720p clips.

    python benchmarks/bench_video.py [--seconds 5,60] [--k 5] [--width 1280 --height 720]

For each length a grey H.264 clip at 24 fps is made (a gradient with a moving disc and
grain, made by the benchmark) and colorized with the bundled demo model in its own
process; the peak resident set size comes from the kernel (``os.wait4``'s
``ru_maxrss``), the wall and CPU seconds per stage from the run's record (decode: both
decoding passes and resizing to the model size; model: the sequence sampler; compose:
full-resolution frames; encode: the k encoders). On a machine shared with other work the
CPU seconds say what each stage takes on an idle core. Prints one line per clip with the load average before
and after, and appends rows to benchmarks/results/video.csv. Targets: model + composition
at least 5 frames/s at 720p and k = 5; peak RSS at most 1.5 GB for a 1-minute clip.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import append_rows, record_machine

LIMIT_MIB = 1536


def make_clip(path: Path, seconds: float, width: int, height: int, fps: int = 24) -> int:
    from colorkit.data.video import VideoWriter

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 50 + 140 * yy / height + rng.normal(0, 3, (height, width))
    frames = int(seconds * fps)
    with VideoWriter(path, width=width, height=height, fps=fps) as w:
        for t in range(frames):
            img = base.copy()
            cx = (width * 0.1 + 9 * t) % width
            img[(xx - cx) ** 2 + (yy - height / 2) ** 2 < (height / 5) ** 2] = 215
            w.write(np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", default="5,60")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    record_machine("bench_video")  # before the work, at the clips' thread count
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (float(s) for s in args.seconds.split(",")):
            clip = Path(tmp) / f"clip_{seconds:g}s.mp4"
            frames = make_clip(clip, seconds, args.width, args.height)
            out = Path(tmp) / f"out_{seconds:g}"
            cmd = [sys.executable, "-m", "colorkit", "colorize", str(clip), "--k", str(args.k), "--out", str(out),
                   "--device", "cpu", "-q"]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            load0 = os.getloadavg()
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            load1 = os.getloadavg()
            rc = os.waitstatus_to_exitcode(status)
            if rc != 0:
                print(proc.stderr.read().decode() if proc.stderr else "", file=sys.stderr)
                continue
            mib = usage.ru_maxrss / 1024.0
            rec = json.loads((out / f"{clip.stem}_colorize.json").read_text())
            st, cpu = rec["stage_seconds"], rec["stage_cpu_seconds"]
            fps = {k: rec["frames"] / v for k, v in st.items() if v > 0}
            mc = rec["frames"] / (st["model"] + st["compose"])
            per_frame_cpu = {k: v / rec["frames"] for k, v in cpu.items()}
            print(f"{args.width}x{args.height} {seconds:g} s ({frames} frames) k={args.k}: peak RSS {mib:.0f} MiB "
                  f"({'within' if mib <= LIMIT_MIB else 'OVER'} {LIMIT_MIB}); wall {wall:.1f} s = "
                  f"{rec['frames'] / wall:.2f} frames/s; " + ", ".join(f"{k} {v:.1f}" for k, v in fps.items())
                  + f" frames/s; model+compose {mc:.2f} frames/s; CPU seconds per frame: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in per_frame_cpu.items())
                  + f"; load average {load0[0]:.2f} before, {load1[0]:.2f} after")
            rows.append([args.width, args.height, seconds, rec["frames"], args.k, f"{mib:.1f}", f"{wall:.2f}",
                         *(f"{st[s]:.3f}" for s in ("decode", "model", "compose", "encode")),
                         *(f"{cpu[s]:.3f}" for s in ("decode", "model", "compose", "encode")), f"{mc:.3f}",
                         f"{load0[0]:.2f}", f"{load1[0]:.2f}", args.threads])
    append_rows("video", ["width", "height", "seconds", "frames", "k", "peak_rss_mib", "wall_s", "decode_s",
                          "model_s", "compose_s", "encode_s", "decode_cpu_s", "model_cpu_s", "compose_cpu_s",
                          "encode_cpu_s", "model_compose_fps", "load_before", "load_after",
                          "threads"], rows)


if __name__ == "__main__":
    main()
