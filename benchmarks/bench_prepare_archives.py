"""Benchmark preparation of the paper's archive layouts at scale: throughput and memory.

Builds two synthetic archives of ``--n`` images (default 20,000):

* ``jpeg``: an ImageNet-val-style plain ``.tar`` of JPEGs, 250 x 250 like LFW's faces;
* ``webp``: an LSUN-style ``.zip`` holding an LMDB whose values are WebP images of
  256 x 192 (LSUN's short side is 256).

Encoding 20,000 distinct images would take longer than preparing them, so ``--unique``
(default 1,000) distinct colour images are encoded and repeated under distinct names:
every record is still read, decoded, resized and checked in full (preparation does not
deduplicate). Then ``prepare`` runs cold (empty cache) in a fresh child process with a
progress callback that samples the child's resident memory (VmRSS) every 500 images. The
child reports: RSS after importing Python + torch + colorkit (the baseline), RSS at 5,000
and at the last image, peak RSS (VmHWM), wall time and CPU time (user + system, all
threads). On a shared machine wall-clock throughput understates what the code does;
images per CPU-second, times the free cores, bounds it from above. One row per archive is appended to
``benchmarks/results/prepare_archives.csv``.

    python benchmarks/bench_prepare_archives.py                     # 20,000 images, both formats
    python benchmarks/bench_prepare_archives.py --n 5000 --formats jpeg --keep /tmp/ck-archives
    taskset -c 0,1 python benchmarks/bench_prepare_archives.py      # pin to 2 cores

Targets: >= 1,000 images/s on 2 cores; peak RSS within 300 MB of the baseline.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from _results import append_rows


def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build_jpeg_tar(path: Path, n: int, unique: int) -> None:
    from colorkit.testing.archives import colour_image, encode

    blobs = [encode(colour_image(i, (250, 250), 11), "JPEG", 90) for i in range(unique)]
    with tarfile.open(path, "w") as tf:
        for i in range(n):
            data = blobs[i % unique]
            ti = tarfile.TarInfo(f"ILSVRC2012_val_{i + 1:08d}.JPEG")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))


def build_webp_lmdb_zip(path: Path, n: int, unique: int) -> None:
    import lmdb

    from colorkit.testing.archives import colour_image, encode

    blobs = [encode(colour_image(i, (256, 192), 12), "WEBP", 80) for i in range(unique)]
    db = path.with_name("lmdb-build") / "church_outdoor_train_lmdb"
    db.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(db), map_size=n * 40_000 + (1 << 26))
    with env.begin(write=True) as txn:
        for i in range(n):
            txn.put(f"{(i * 2654435761) % (1 << 32):08x}{i:08d}".encode(), blobs[i % unique])
    env.close()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for f in sorted(db.iterdir()):
            zf.write(f, f"church_outdoor_train_lmdb/{f.name}")
    shutil.rmtree(db.parent, ignore_errors=True)


def child(archive: str, cache: str, size: int, workers: int | None) -> None:
    import torch  # noqa: F401 - the baseline includes torch, as every colorkit command has it

    import colorkit
    from colorkit.data import prepare

    baseline = _status("VmRSS")
    samples: dict[int, float] = {}

    def progress(done: int, total: int | None) -> None:
        if done % 500 == 0:
            samples[done] = _status("VmRSS")

    import resource

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    ds = prepare(archive, size=size, cache_dir=cache, progress=progress, workers=workers)
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    samples[ds.n_candidates] = _status("VmRSS")
    print(json.dumps({
        "seconds": seconds, "cpu_seconds": cpu, "baseline_rss_mb": baseline, "peak_rss_mb": _status("VmHWM"),
        "rss_mb": samples, "n": ds.n_candidates, "n_kept": ds.n, "skipped": ds.skipped,
        "shards": len(ds.shards), "version": colorkit.__version__,
    }))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--unique", type=int, default=1000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--formats", default="jpeg,webp")
    ap.add_argument("--workers", type=int, default=None, help="decoder threads (default: prepare's)")
    ap.add_argument("--keep", type=Path, default=None, help="folder for the archives (kept, reused)")
    ap.add_argument("--note", default="", help="free text stored with the row (e.g. machine load)")
    ap.add_argument("--no-csv", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("ARCHIVE", "CACHE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.size, args.workers)
        return
    work = Path(tempfile.mkdtemp(prefix="colorkit-bench-archives-"))
    folder = args.keep or work
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for fmt in args.formats.split(","):
            name = {"jpeg": f"val-{args.n}.tar", "webp": f"church-{args.n}_lmdb.zip"}[fmt]
            archive = folder / name
            if not archive.exists():
                t0 = time.perf_counter()
                (build_jpeg_tar if fmt == "jpeg" else build_webp_lmdb_zip)(
                    archive.with_suffix(".part" + archive.suffix), args.n, args.unique
                )
                archive.with_suffix(".part" + archive.suffix).rename(archive)
                print(
                    f"built {archive.name} ({archive.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s"
                )
            cache = work / f"cache-{fmt}"
            cmd = [sys.executable, __file__, "--child", str(archive), str(cache), "--size", str(args.size)]
            if args.workers is not None:
                cmd += ["--workers", str(args.workers)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rss = {int(k): v for k, v in r["rss_mb"].items()}
            at5k = rss.get(5000, float("nan"))
            last = rss[max(rss)]
            ips = r["n"] / r["seconds"]
            per_cpu = r["n"] / r["cpu_seconds"]
            print(f"{fmt}: {r['n']} images in {r['seconds']:.1f} s = {ips:.0f} images/s; CPU time "
                  f"{r['cpu_seconds']:.1f} s = {per_cpu:.0f} images per CPU-second ({r['n_kept']} kept, "
                  f"{r['shards']} shards); RSS baseline {r['baseline_rss_mb']:.0f} MB, at 5k {at5k:.0f} MB, "
                  f"at {max(rss)} {last:.0f} MB, peak {r['peak_rss_mb']:.0f} MB "
                  f"(+{r['peak_rss_mb'] - r['baseline_rss_mb']:.0f} MB over the baseline)")
            rows.append([fmt, r["n"], f"{r['seconds']:.2f}", f"{ips:.1f}", f"{r['cpu_seconds']:.1f}",
                         f"{per_cpu:.1f}", f"{r['baseline_rss_mb']:.0f}",
                         f"{at5k:.0f}", f"{last:.0f}", f"{r['peak_rss_mb']:.0f}", os.cpu_count(),
                         args.workers or "default", r["version"], args.note])
    finally:
        shutil.rmtree(work, ignore_errors=True)  # caches (and the archives unless --keep)
    if not args.no_csv and rows:
        out = append_rows("prepare_archives", ["format", "n_images", "seconds", "images_per_s", "cpu_seconds",
                                               "images_per_cpu_second", "baseline_rss_mb",
                                               "rss_at_5000_mb", "rss_at_end_mb", "peak_rss_mb", "cpu_count",
                                               "workers", "colorkit_version", "note"], rows)
        print(f"appended to {out}")


if __name__ == "__main__":
    main()
