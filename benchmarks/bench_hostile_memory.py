"""Peak memory under hostile input: ``colorkit serve`` with concurrent 6-megapixel uploads,
and ``prepare`` on a zip bomb with 2 and 8 decoder workers.

``serve``: for each concurrency (default 1, 10, 20) a fresh ``colorkit serve`` process
(demo model, CPU) receives that many uploads of the same 3000 x 2000 PNG at once (k=2); its
peak resident memory (VmHWM) is read from ``/proc`` after every answer has come back, with
its RSS before the first upload (Python + torch + the model: the baseline) and the answers'
status codes.

``zip``: a 2.8 MB zip of 12 members of 240 MB of zeros (each compressed about 1000:1) is
prepared in a fresh child process with ``workers`` 2 and 8, which reports its RSS after
importing Python + torch + colorkit (the baseline) and its peak (VmHWM). ``--no-ratio-check``
turns off the compression-ratio refusal, so that every member is read and what bounds memory
is the limit on encoded bytes waiting to be decoded.

    python benchmarks/bench_hostile_memory.py serve
    python benchmarks/bench_hostile_memory.py zip --workers 2 8
    python benchmarks/bench_hostile_memory.py zip --workers 2 8 --no-ratio-check --keep /tmp/ck-bomb

One JSON line per measurement is printed. The load average is printed too: on a shared
machine a busy CPU slows every figure but the memory ones little.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _png(w: int, h: int) -> bytes:
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (w + h) + 64)], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, data: bytes) -> int:
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=1800) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def bench_serve(concurrency: list[int], width: int, height: int) -> None:
    photo = _png(width, height)
    for n in concurrency:
        port = _free_port()
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.Popen([sys.executable, "-m", "colorkit", "serve", "--port", str(port), "--device", "cpu",
                                     "--queue", str(max(32, n))], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": tmp})
            try:
                url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 300
                while True:
                    try:
                        urllib.request.urlopen(url + "/", timeout=2).read()
                        break
                    except OSError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise SystemExit("the server did not start") from None
                        time.sleep(0.3)
                base = _kib(proc.pid, "VmRSS")
                t0 = time.perf_counter()
                with ThreadPoolExecutor(n) as pool:
                    codes = list(pool.map(_post, [f"{url}/api/colorize?k=2"] * n, [photo] * n))
                seconds = time.perf_counter() - t0
                peak = _kib(proc.pid, "VmHWM")
            finally:
                proc.terminate()
                proc.wait(timeout=60)
        print(json.dumps({"bench": "serve", "uploads": n, "megapixels": width * height / 1e6,
                          "upload_mb": round(len(photo) / 2**20, 1), "baseline_mb": round(base / 1024),
                          "peak_mb": round(peak / 1024), "status": {str(c): codes.count(c) for c in sorted(set(codes))},
                          "seconds": round(seconds, 1), "loadavg": os.getloadavg()[0]}), flush=True)


_CHILD = textwrap.dedent("""
    import json, sys
    import torch  # noqa: F401 - the baseline holds Python + torch + colorkit
    import importlib
    P = importlib.import_module("colorkit.data.prepare")
    from colorkit.data import records
    from colorkit.core.registry import ColorkitError

    def kib(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    if sys.argv[4] == "off":
        records.MAX_COMPRESSION_RATIO = float("inf")
    base = kib("VmRSS")
    try:
        P.prepare(sys.argv[1], size=32, cache_dir=sys.argv[2], workers=int(sys.argv[3]), progress=False)
        outcome = "prepared"
    except ColorkitError as exc:
        outcome = str(exc)[:120]
    print(json.dumps({"baseline_kib": base, "peak_kib": kib("VmHWM"), "outcome": outcome}))
""")


def bench_zip(workers: list[int], ratio_check: bool, members: int, member_mb: int, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bomb = (keep or Path(tmp)) / f"bomb-{members}x{member_mb}.zip"
        if not bomb.is_file():
            bomb.parent.mkdir(parents=True, exist_ok=True)
            zeros = b"\0" * (member_mb << 20)
            with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for i in range(members):
                    zf.writestr(f"z{i:02d}.png", zeros)
            del zeros
        for w in workers:
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _CHILD, str(bomb), str(Path(tmp) / f"cache{w}"), str(w),
                                  "on" if ratio_check else "off"], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps({"bench": "zip-bomb", "workers": w, "ratio_check": ratio_check,
                              "zip_mb": round(bomb.stat().st_size / 2**20, 1), "members": members,
                              "member_mb": member_mb, "baseline_mb": round(r["baseline_kib"] / 1024),
                              "peak_mb": round(r["peak_kib"] / 1024),
                              "over_baseline_mb": round((r["peak_kib"] - r["baseline_kib"]) / 1024),
                              "outcome": r["outcome"], "seconds": round(time.perf_counter() - t0, 1),
                              "loadavg": os.getloadavg()[0]}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 20])
    s.add_argument("--size", type=int, nargs=2, default=[3000, 2000], metavar=("W", "H"))
    z = sub.add_parser("zip")
    z.add_argument("--workers", type=int, nargs="+", default=[2, 8])
    z.add_argument("--no-ratio-check", action="store_true")
    z.add_argument("--members", type=int, default=12)
    z.add_argument("--member-mb", type=int, default=240)
    z.add_argument("--keep", type=Path, default=None, help="folder to keep the zip in (reused when there)")
    args = ap.parse_args()
    if args.what == "serve":
        bench_serve(args.concurrency, *args.size)
    else:
        bench_zip(args.workers, not args.no_ratio_check, args.members, args.member_mb, args.keep)


if __name__ == "__main__":
    main()
