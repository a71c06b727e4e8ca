"""Folder colorize throughput: ``colorkit colorize DIR --out OUT --k 5`` on a folder of
200 synthetic 1024x768 JPEGs, on the CPU.

    python benchmarks/bench_colorize_folder.py [--run RUN] [--n 200] [--k 5] [--batch-size 8]

Without --run the bundled demo model is used. The JPEGs are demo photos enlarged to
1024x768 with a different crop each (made in a temporary folder, not timed). Prints
images per second of the whole folder run (decode, model, full-resolution composition,
PNG encoding, atomic writes), and, to show where the time goes, the same work split into
its parts on the first images: the model alone (batched), composing the k full-resolution
colorizations, and encoding them as PNG. Appends a row to
benchmarks/results/colorize_folder.csv with the load average at the start and end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from io import BytesIO
from pathlib import Path

import torch
from _results import append_rows
from PIL import Image

import colorkit
from colorkit.apps.folder import colorize_folder
from colorkit.builtin_components import DEMO_DIR
from colorkit.data.imageio import compose_colorizations, model_grey, read_photo


def make_folder(root: Path, n: int) -> None:
    srcs = sorted(DEMO_DIR.rglob("*.jpg"))
    for i in range(n):
        with Image.open(srcs[i % len(srcs)]) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = 0.8 + 0.2 * ((i * 37) % 10) / 10  # a different crop per copy
            box = (0, 0, max(8, int(w * s)), max(8, int(h * s)))
            im.crop(box).resize((1024, 768), Image.Resampling.BICUBIC).save(root / f"img_{i:03d}.jpg", quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default=None)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--parts", type=int, default=16, help="Images timed part by part.")
    args = ap.parse_args()
    c = colorkit.load(args.run, device="cpu")
    work = Path(tempfile.mkdtemp(prefix="colorkit-bench-folder-"))
    try:
        src, out = work / "src", work / "out"
        src.mkdir()
        make_folder(src, args.n)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        rec = colorize_folder(c, str(src), out, k=args.k, batch_size=args.batch_size, progress=False,
                              echo=lambda m: None)
        total = time.perf_counter() - t0
        assert rec["colorized"] == args.n and not rec["skipped"]
        assert Image.open(out / "img_000_1.png").size == (1024, 768)
        load1 = os.getloadavg()

        # Where the time goes, on the first images, part by part (single thread of Python).
        files = sorted(src.iterdir())[: args.parts]
        t = time.perf_counter()
        imgs = [read_photo(f).image for f in files]
        t_decode = time.perf_counter() - t
        grey = torch.cat([model_grey(im, c.size) for im in imgs])
        t = time.perf_counter()
        for i in range(0, len(imgs), args.batch_size):
            ab = c.sample(grey[i : i + args.batch_size], args.k, seed=0)
        t_model = time.perf_counter() - t
        ab = c.sample(grey, args.k, seed=0)
        t_compose = t_encode = 0.0
        for j, im in enumerate(imgs):
            t = time.perf_counter()
            outs = list(compose_colorizations(im, ab[j]))
            t_compose += time.perf_counter() - t
            t = time.perf_counter()
            for o in outs:
                o.save(BytesIO(), format="PNG")
            t_encode += time.perf_counter() - t
        n = len(imgs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ips = args.n / total
    per = {"decode": t_decode / n, "model": t_model / n, "compose": t_compose / n, "png": t_encode / n}
    print(f"colorize folder: {args.n} JPEGs 1024x768, k={args.k}, batch {args.batch_size}, {c.label}: "
          f"{total:.1f} s, {ips:.2f} images/s; torch threads {torch.get_num_threads()}; "
          f"load average {load0[0]:.2f} at start, {load1[0]:.2f} at end")
    print("per image, part by part (s): " + ", ".join(f"{k} {v:.4f}" for k, v in per.items()))
    append_rows("colorize_folder",
                ["model", "n", "width", "height", "k", "batch_size", "seconds", "images_per_s", "decode_s",
                 "model_s", "compose_s", "png_s", "load1_start", "load1_end", "threads", "torch"],
                [[c.label, args.n, 1024, 768, args.k, args.batch_size, f"{total:.2f}", f"{ips:.3f}",
                  f"{per['decode']:.4f}", f"{per['model']:.4f}", f"{per['compose']:.4f}", f"{per['png']:.4f}",
                  f"{load0[0]:.2f}", f"{load1[0]:.2f}", torch.get_num_threads(), torch.__version__]])


if __name__ == "__main__":
    main()
