"""Synthetic archives laid out like the paper's data sets, for tests and benchmarks, and a
loopback HTTP server (127.0.0.1 only) that serves them with Range support and can drop a
connection half-way.

* :func:`lfw_tgz`: ``lfw-deepfunneled/<Person>/<Person>_0001.jpg`` in a gzip tar;
* :func:`lsun_lmdb_zip`: a zip of ``church_outdoor_train_lmdb/{data,lock}.mdb`` whose values
  are WebP images keyed by hex ids;
* :func:`imagenet_tar`: ``ILSVRC2012_val_00000001.JPEG`` ... in a plain tar.

Images are smooth colour fields with a little noise (they pass the greyscale check), made
from a seed, so every archive is reproducible.
"""

from __future__ import annotations

import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image


def colour_image(i: int, size: tuple[int, int] = (96, 80), seed: int = 0) -> np.ndarray:
    """A reproducible colourful ``(h, w, 3)`` uint8 image number ``i``."""
    w, h = size
    rng = np.random.default_rng([seed, i])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    t = (xx / max(w - 1, 1) * rng.uniform(0.2, 1) + yy / max(h - 1, 1) * rng.uniform(0.2, 1))[..., None] / 2
    img = c0 * (1 - t) + c1 * t + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(arr: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, quality=quality)
    return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 0
    tf.addfile(ti, io.BytesIO(data))


def lfw_tgz(path: Path, n_people: int = 8, per_person: int = 3, *, size=(96, 96), seed: int = 0,
            extras: dict[str, bytes] | None = None) -> Path:
    """An LFW-style ``.tgz``; ``extras`` adds members (name -> bytes) such as bad files."""
    with tarfile.open(path, "w:gz") as tf:
        k = 0
        for p in range(n_people):
            person = f"Person_{p:03d}"
            for j in range(per_person):
                _add(
                    tf,
                    f"lfw-deepfunneled/{person}/{person}_{j + 1:04d}.jpg",
                    encode(colour_image(k, size, seed), "JPEG"),
                )
                k += 1
        for name, data in (extras or {}).items():
            _add(tf, name, data)
    return path


def imagenet_tar(path: Path, n: int = 20, *, size=(100, 75), seed: int = 1, fmt: str = "JPEG",
                 quality: int = 90) -> Path:
    """An ImageNet-val-style plain ``.tar`` of ``n`` images (JPEG or WebP)."""
    ext = "JPEG" if fmt == "JPEG" else "webp"
    with tarfile.open(path, "w") as tf:
        for i in range(n):
            _add(tf, f"ILSVRC2012_val_{i + 1:08d}.{ext}", encode(colour_image(i, size, seed), fmt, quality))
    return path


def iter_encoded(n: int, size=(96, 96), seed: int = 2, fmt: str = "WEBP", quality: int = 80) -> Iterator[bytes]:
    for i in range(n):
        yield encode(colour_image(i, size, seed), fmt, quality)


def lsun_lmdb_zip(path: Path, n: int = 20, *, size=(96, 72), seed: int = 2, folder: Path | None = None,
                  quality: int = 80) -> Path:
    """An LSUN-style zip holding an LMDB of WebP images (the LMDB folder is made next to
    ``path`` unless ``folder`` is given, and removed)."""
    import shutil

    import lmdb

    db = folder or path.with_name(path.name + ".build") / "church_outdoor_train_lmdb"
    db.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(db), map_size=max(1 << 26, n * 64 * 1024))
    with env.begin(write=True) as txn:
        for i, data in enumerate(iter_encoded(n, size, seed, "WEBP", quality)):
            key = f"{(i * 2654435761) % (1 << 32):08x}{i:08d}".encode()  # hex ids, not in insertion order
            txn.put(key, data)
    env.sync()
    env.close()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for f in sorted(db.iterdir()):
            zf.write(f, f"church_outdoor_train_lmdb/{f.name}")
    if folder is None:
        shutil.rmtree(db.parent, ignore_errors=True)
    return path


class LoopbackServer:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1 with HTTP Range support.
    ``drop_after[path] = n``: the next plain GET of ``path`` sends the full Content-Length
    but closes the connection after ``n`` bytes (once). ``requests`` logs
    ``(path, Range header or None)``."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.drop_after: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "not found")
                    return
                start = 0
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                cut = server.drop_after.pop(self.path, None) if not rng else None
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
