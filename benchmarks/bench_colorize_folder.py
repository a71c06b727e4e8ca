"""Folder colorize throughput: ``colorkit colorize DIR --out OUT --k 5`` on a folder of
200 synthetic 1024x768 JPEGs, on the CPU.

    python benchmarks/bench_colorize_folder.py [--run RUN] [--n 200] [--k 5] [--batch-size 8]
        [--format png|jpg|webp] [--quality Q] [--workers W] [--png-levels 0,1,2,3,6,9]

Without --run the bundled demo model is used. The JPEGs are demo photos enlarged to
1024x768 with a different crop each (made in a temporary folder, not timed). Prints
images per second of the whole folder run in the chosen output format (decode, model,
full-resolution composition, encoding, atomic writes: decoding and encoding run in
threads beside the model and composition, as in ``colorkit colorize``) and the bytes it
wrote per image; then, to show where the time goes, the parts one after another on one
thread on the first images: decoding, the model (batched), composing the k
full-resolution colorizations, and encoding them in each format (png, jpg, webp, at the
default qualities) with the bytes per image of each. The sum of the parts over the whole
run's time per image is how much the threads overlap.

Also prints the process's peak resident memory after the folder run (before the parts
are timed), to check that it depends neither on k nor on the number of photos. Appends a
row to benchmarks/results/colorize_folder.csv with the load average at the start and
end. ``--png-levels`` also times PNG encoding at each zlib level (and strategy,
``1:rle``) on the same outputs and on colorizations of scikit-image's bundled photographs
(time and bytes per megapixel) and appends them to benchmarks/results/png_levels.csv.
"""

from __future__ import annotations

import argparse
import os
import resource
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
from colorkit.data.imageio import model_grey, read_photo
from colorkit.inference.output import FORMATS, default_workers, output_format
from colorkit.inference.photo import compose_colorizations


def make_folder(root: Path, n: int) -> None:
    srcs = sorted(DEMO_DIR.rglob("*.jpg"))
    for i in range(n):
        with Image.open(srcs[i % len(srcs)]) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = 0.8 + 0.2 * ((i * 37) % 10) / 10  # a different crop per copy
            box = (0, 0, max(8, int(w * s)), max(8, int(h * s)))
            im.crop(box).resize((1024, 768), Image.Resampling.BICUBIC).save(root / f"img_{i:03d}.jpg", quality=90)


def parts(c, files: list[Path], k: int, batch_size: int) -> tuple[dict[str, float], dict[str, float], list]:
    """Seconds per image of each part, one after another on one thread, and bytes per
    image of each format; also the composed outputs of the first two images."""
    n = len(files)
    t = time.perf_counter()
    imgs = [read_photo(f).image for f in files]
    sec = {"decode": (time.perf_counter() - t) / n}
    grey = torch.cat([model_grey(im, c.size) for im in imgs])
    t = time.perf_counter()
    for i in range(0, n, batch_size):
        c.sample(grey[i : i + batch_size], k, seed=0)
    sec["model"] = (time.perf_counter() - t) / n
    ab = c.sample(grey, k, seed=0).float().cpu()
    sec["compose"] = 0.0
    size = {f: 0.0 for f in FORMATS}
    sec.update({f: 0.0 for f in FORMATS})
    fmts = {f: output_format(f) for f in FORMATS}
    sample = []
    for j, im in enumerate(imgs):
        t = time.perf_counter()
        outs = list(compose_colorizations(im, ab[j]))
        sec["compose"] += (time.perf_counter() - t) / n
        for name, fmt in fmts.items():
            t = time.perf_counter()
            size[name] += sum(len(fmt.encode(o)) for o in outs) / n
            sec[name] += (time.perf_counter() - t) / n
        if j < 2:
            sample += outs
    return sec, size, sample


STRATEGIES = {"default": 0, "filtered": 1, "huffman": 2, "rle": 3, "fixed": 4}
"""zlib strategies (Pillow's ``compress_type``)."""


REAL_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
               "hubble_deep_field.jpg", "retina.jpg")
"""Photographs bundled with scikit-image (a test dependency), at their own sizes."""


def real_photo_outputs() -> list:
    """One colorization of each of :data:`REAL_PHOTOS` (a seeded random colour field joined
    with the photo's own lightness): PNG's cost on real photographs' detail and noise,
    which the enlarged demo photos lack. Empty without scikit-image."""
    try:
        import skimage
    except ImportError:
        return []
    folder = Path(skimage.__file__).parent / "data"
    gen = torch.Generator().manual_seed(0)
    outs = []
    for name in REAL_PHOTOS:
        with Image.open(folder / name) as im:
            outs += list(compose_colorizations(im.convert("RGB"), 0.3 * torch.randn(1, 2, 64, 64, generator=gen)))
    return outs


def png_levels(outputs: list, settings: list[str], repeats: int = 1) -> list[tuple[str, float, float]]:
    """(setting, seconds, bytes) per megapixel for PNG encoding at each setting: a zlib
    level, or ``level:strategy`` with a strategy of :data:`STRATEGIES`."""
    rows = []
    mpx = sum(o.width * o.height for o in outputs) / 1e6
    for setting in settings:
        level, _, strategy = setting.partition(":")
        t = time.perf_counter()
        total = 0
        for _ in range(repeats):
            for o in outputs:
                buf = BytesIO()
                o.save(buf, format="PNG", compress_level=int(level), compress_type=STRATEGIES[strategy or "default"])
                total += buf.tell()
        rows.append((setting, (time.perf_counter() - t) / (mpx * repeats), total / (mpx * repeats)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default=None)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--format", default="png", choices=FORMATS)
    ap.add_argument("--quality", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="Decoding and encoding threads [default: per core].")
    ap.add_argument("--parts", type=int, default=16, help="Images timed part by part.")
    ap.add_argument("--png-levels", default="",
                    help="Comma-separated zlib levels (or level:strategy, e.g. 1:rle) to time on the parts' outputs.")
    args = ap.parse_args()
    fmt = output_format(args.format, args.quality)
    workers = args.workers or default_workers()
    c = colorkit.load(args.run, device="cpu")
    work = Path(tempfile.mkdtemp(prefix="colorkit-bench-folder-"))
    try:
        src, out = work / "src", work / "out"
        src.mkdir()
        make_folder(src, args.n)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        rec = colorize_folder(c, str(src), out, k=args.k, batch_size=args.batch_size, fmt=fmt, workers=workers,
                              progress=False, echo=lambda m: None)
        total = time.perf_counter() - t0
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
        assert rec["colorized"] == args.n and not rec["skipped"]
        assert Image.open(out / f"img_000_1{fmt.suffix}").size == (1024, 768)
        load1 = os.getloadavg()
        out_bytes = sum(p.stat().st_size for p in out.rglob(f"*{fmt.suffix}")) / args.n
        sec, size, sample = parts(c, sorted(src.iterdir())[: args.parts], args.k, args.batch_size)
        settings = [v.strip() for v in args.png_levels.split(",") if v.strip()]
        levels = png_levels(sample, settings)
        real = png_levels(real_photo_outputs(), settings, repeats=2) if settings else []
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ips = args.n / total
    print(f"colorize folder: {args.n} JPEGs 1024x768, k={args.k}, batch {args.batch_size}, {fmt.describe()}, "
          f"{workers} threads, {c.label}: {total:.1f} s, {ips:.2f} images/s, {out_bytes / 1e6:.2f} MB written per "
          f"image; peak RSS {peak_mib:.0f} MiB; torch threads {torch.get_num_threads()}; load average "
          f"{load0[0]:.2f} at start, {load1[0]:.2f} at end")
    serial = sec["decode"] + sec["model"] + sec["compose"] + sec[fmt.name]
    print("per image, part by part on one thread (s): " + ", ".join(f"{p} {sec[p]:.4f}" for p in
                                                                     ("decode", "model", "compose")))
    print("encoding per image (s, MB): " + ", ".join(f"{f} {sec[f]:.4f} s {size[f] / 1e6:.2f} MB" for f in FORMATS))
    print(f"the parts of this run add up to {serial:.4f} s per image on one thread; the run took {total / args.n:.4f} "
          f"s per image ({serial / (total / args.n):.2f}x overlap)")
    for what, rows in (("enlarged demo photos", levels), ("scikit-image's photographs", real)):
        for level, s, b in rows:
            print(f"png {level} on {what}: {s:.4f} s, {b / 1e6:.3f} MB per megapixel")
    append_rows("colorize_folder",
                ["model", "n", "width", "height", "k", "batch_size", "seconds", "images_per_s", "decode_s",
                 "model_s", "compose_s", "png_s", "load1_start", "load1_end", "threads", "torch", "format", "quality",
                 "workers", "out_bytes", "jpg_s", "webp_s", "png_bytes", "jpg_bytes", "webp_bytes", "peak_rss_mib"],
                [[c.label, args.n, 1024, 768, args.k, args.batch_size, f"{total:.2f}", f"{ips:.3f}",
                  f"{sec['decode']:.4f}", f"{sec['model']:.4f}", f"{sec['compose']:.4f}", f"{sec['png']:.4f}",
                  f"{load0[0]:.2f}", f"{load1[0]:.2f}", torch.get_num_threads(), torch.__version__, fmt.name,
                  fmt.quality or "", workers, round(out_bytes), f"{sec['jpg']:.4f}", f"{sec['webp']:.4f}",
                  round(size["png"]), round(size["jpg"]), round(size["webp"]), f"{peak_mib:.0f}"]])
    if levels:
        append_rows("png_levels", ["width", "height", "outputs", "compress_level", "seconds", "bytes", "load1",
                                   "photos", "per"],
                    [[1024, 768, len(sample), level, f"{s:.4f}", round(b), f"{os.getloadavg()[0]:.2f}", what,
                      "megapixel"] for what, rows in (("enlarged-demo", levels), ("skimage", real))
                     for level, s, b in rows])


if __name__ == "__main__":
    main()
