"""The paper's data sets at small scale: recipes fetched from a loopback server (resumed,
verified, refused), archives of each layout prepared streaming into shards, resumed after
kill -9, trained and benchmarked; cache identity and temporary-folder clean-up."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from PIL import Image

from colorkit.core.plugin_manager import registry
from colorkit.core.registry import ColorkitError, Entry
from colorkit.data import Record, Source, prepare
from colorkit.data.recipes import RECIPES, fetch
from colorkit.testing.archives import (
    LoopbackServer,
    colour_image,
    encode,
    imagenet_tar,
    lfw_tgz,
    lsun_lmdb_zip,
)

TINY = ["--preset", "tiny", "--epochs", "1", "--size", "32"]


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    d = tmp_path_factory.mktemp("archives")
    grey = encode(np.full((40, 40, 3), 128, np.uint8), "JPEG")
    lfw = lfw_tgz(d / "lfw-deepfunneled.tgz", n_people=8, per_person=4,
                  extras={"lfw-deepfunneled/Zed/Zed_0001.jpg": b"not a jpeg",
                          "lfw-deepfunneled/Zed/Zed_0002.jpg": grey,
                          "lfw-deepfunneled/README.txt": b"text is ignored"})
    church = lsun_lmdb_zip(d / "church_outdoor_train_lmdb.zip", n=30)
    inet = imagenet_tar(d / "ILSVRC2012_img_val.tar", n=30)
    return {"lfw": lfw, "lsun-church": church, "imagenet-val": inet}


@pytest.fixture(scope="module")
def server(archives):
    files = {f"/{p.name}": p.read_bytes() for p in archives.values()}
    with LoopbackServer(files) as srv:
        yield srv


def test_recipes_registered_and_unfetched_is_a_one_line_error(tmp_path, capsys):
    names = registry("dataset").names()
    assert {"demo", "lfw", "lsun-church", "imagenet-val"} <= set(names)
    assert RECIPES["lfw"].n_images == 13233 and RECIPES["lsun-church"].n_images == 126227
    assert RECIPES["imagenet-val"].n_images == 50000 and RECIPES["imagenet-val"].split_rule["test_size"] == 1000
    code, _, err = run_cli(["data", "prepare", "lfw", "--cache-dir", str(tmp_path)], capsys)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "not fetched yet" in lines[0] and "colorkit data fetch lfw" in lines[0]
    code, _, err = run_cli(["data", "fetch", "imagenet-val", "--cache-dir", str(tmp_path)], capsys)
    assert code == 2 and "--url URL or --from FILE" in err and "Traceback" not in err


def test_fetch_interrupted_download_resumes_with_range(archives, server, tmp_path, capsys):
    data = archives["lfw"].read_bytes()
    path = f"/{archives['lfw'].name}"
    cache = tmp_path / "c"
    # 1) the connection drops half-way and fetch is not allowed to retry: the partial
    #    file stays as .part, nothing under the final name
    server.drop_after[path] = len(data) // 2
    with pytest.raises(ColorkitError, match="partial file kept"):
        fetch("lfw", url=server.url + path, sha256=sha(data), cache_dir=cache, progress=False, retries=0)
    part = cache / "downloads" / "lfw-deepfunneled.tgz.part"
    assert part.stat().st_size == len(data) // 2 and not (cache / "downloads" / "lfw-deepfunneled.tgz").exists()
    # 2) the same fetch again resumes with a Range request from where it stopped
    server.requests.clear()
    code, out, err = run_cli(["data", "fetch", "lfw", "--url", server.url + path, "--sha256", sha(data),
                              "--cache-dir", str(cache), "-q"], capsys)
    assert code == 0, err
    assert server.requests == [(path, f"bytes={len(data) // 2}-")]
    final = cache / "downloads" / "lfw-deepfunneled.tgz"
    assert final.read_bytes() == data and not part.exists()
    rec = json.loads((cache / "downloads" / "lfw.json").read_text())
    assert rec["sha256"] == sha(data) and rec["verified_by"] == "sha256"
    # 3) a drop inside one fetch call is retried from where it stopped
    cache2 = tmp_path / "c2"
    server.drop_after[path] = 1000
    server.requests.clear()
    fetch("lfw", url=server.url + path, sha256=sha(data), cache_dir=cache2, progress=False)
    assert server.requests == [(path, None), (path, "bytes=1000-")]
    assert (cache2 / "downloads" / "lfw-deepfunneled.tgz").read_bytes() == data


def test_fetch_wrong_checksum_refused_one_line(archives, server, tmp_path, capsys):
    path = f"/{archives['imagenet-val'].name}"
    cache = tmp_path / "c"
    code, _, err = run_cli(["data", "fetch", "imagenet-val", "--url", server.url + path, "--sha256", "0" * 64,
                            "--cache-dir", str(cache), "-q"], capsys)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "checksum mismatch" in lines[0] and "0" * 64 in lines[0]
    assert list((cache / "downloads").iterdir()) == []  # neither a .part nor a final file
    # the published md5 is checked when no sha256 is given: a test archive is not LFW
    code, _, err = run_cli(["data", "fetch", "lfw", "--from", str(archives["lfw"]), "--cache-dir", str(cache)], capsys)
    assert code == 2 and "published" in err and len([x for x in err.splitlines() if x.strip()]) == 1
    code, _, err = run_cli(["data", "fetch", "lfw", "--sha256", "xyz", "--cache-dir", str(cache)], capsys)
    assert code == 2 and "64 hexadecimal digits" in err


@pytest.fixture(scope="module")
def fetched(archives, server, tmp_path_factory):
    cache = tmp_path_factory.mktemp("fetched-cache")
    for name, p in archives.items():
        fetch(name, url=f"{server.url}/{p.name}", sha256=sha(p.read_bytes()), cache_dir=cache, progress=False)
    return cache


@pytest.mark.parametrize("name,n_kept,skipped", [
    ("lfw", 32, {"not-an-image": 1, "greyscale": 1}),
    ("lsun-church", 30, {}),
    ("imagenet-val", 30, {}),
])
def test_prepare_each_recipe(name, n_kept, skipped, fetched, capsys):
    code, out, err = run_cli(["data", "prepare", name, "--size", "32", "--cache-dir", str(fetched), "-q"], capsys)
    assert code == 0, err
    ds = prepare(name, size=32, cache_dir=fetched, progress=False)
    assert ds.n == n_kept and ds.skipped == skipped and ds.name == name
    assert ds.split_rule["test_size"] == 1000  # the paper's rule, recorded ...
    assert ds.test_idx.size == 3  # ... and scaled down, as it does not fit 30 images
    assert f"{ds.n} kept" in out and "1000 random test images" in out
    imgs = ds.images()
    assert imgs.shape == (n_kept, 32, 32, 3) and imgs.dtype == np.uint8 and imgs.std() > 5
    if name == "imagenet-val":
        assert ds.files[0] == "ILSVRC2012_val_00000001.JPEG"
    assert not (fetched / "scratch").exists() or not any((fetched / "scratch").iterdir())  # LMDB scratch removed


def test_generic_sources_give_the_same_pixels(tmp_path):
    """One set of images as a folder, .tar, .tar.gz, .zip and LMDB directory: same pixels."""
    import lmdb

    folder = tmp_path / "imgs"
    folder.mkdir()
    blobs = {f"{i:03d}.png": encode(colour_image(i, (50, 40)), "PNG") for i in range(12)}
    for k, b in blobs.items():
        (folder / k).write_bytes(b)
    for mode, name in (("w", "a.tar"), ("w:gz", "a.tar.gz")):
        with tarfile.open(tmp_path / name, mode) as tf:
            for k in sorted(blobs):
                tf.add(folder / k, arcname=k)
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        for k in sorted(blobs):
            zf.write(folder / k, k)
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, b in blobs.items():
            txn.put(k.encode(), b)
    env.close()
    cache = tmp_path / "c"
    ref = prepare(folder, size=16, cache_dir=cache, progress=False)
    for src in ("a.tar", "a.tar.gz", "a.zip", "db"):
        ds = prepare(tmp_path / src, size=16, cache_dir=cache, progress=False, shard_size=5)
        assert ds.files == ref.files and len(ds.shards) == 3, src
        np.testing.assert_array_equal(ds.images(), ref.images())
        np.testing.assert_array_equal(ds.test_idx, ref.test_idx)
    (tmp_path / "x.rar").write_bytes(b"rar")
    with pytest.raises(ColorkitError, match="unsupported kind.*tar.*zip"):
        prepare(tmp_path / "x.rar", cache_dir=cache)
    (tmp_path / "broken.tar").write_bytes(b"\0" * 10 + b"junk" * 300)
    with pytest.raises(ColorkitError, match="broken.tar"):
        prepare(tmp_path / "broken.tar", cache_dir=cache, progress=False)


def test_shards_read_lazily_match_batches(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(23):
        Image.fromarray(colour_image(i, (30, 30))).save(folder / f"{i:02d}.png")
    one = prepare(folder, size=16, cache_dir=tmp_path / "c1", progress=False)
    many = prepare(folder, size=16, cache_dir=tmp_path / "c2", progress=False, shard_size=4)
    assert len(one.shards) == 1 and len(many.shards) == 6 and one.content_hash != many.content_hash
    a, b = one.split("train"), many.split("train")
    pos = [5, 0, len(a) - 1, 7, 7]
    for k in ("grey", "ab", "index"):
        np.testing.assert_array_equal(a.batch(pos)[k].numpy(), b.batch(pos)[k].numpy())
    from colorkit.data.loader import batch_loader, to_model_batch

    batches = [[0, 1, 2], [len(b) - 1, 3]]
    import torch

    for idx, (rgb, rows) in zip(batches, batch_loader(b, batches, workers=2)):
        got = to_model_batch(rgb, rows, torch.device("cpu"))
        ref = a.batch(idx)
        for k in ("grey", "ab", "index"):
            np.testing.assert_array_equal(got[k].numpy(), ref[k].numpy())


class GenSource(Source):
    """A generated data set through the plugin API: images and metadata from a spec."""

    def __init__(self, variant: str = "seed=0,n=9") -> None:
        self.spec = dict(kv.split("=") for kv in variant.split(","))
        self.n, self.seed = int(self.spec["n"]), int(self.spec["seed"])
        self.name, self.location = f"gen:{variant}", f"gen:{variant}"

    def fingerprint(self) -> str:
        return f"gen-v1:{self.seed}:{self.n}"

    def size_hint(self) -> int:
        return self.n

    def records(self, start: int = 0):
        for i in range(start, self.n):
            yield Record(f"{i:04d}", image=colour_image(i, (24, 24), self.seed), meta={"i": i, "seed": self.seed})


GenSource.example_variant = "seed=1,n=5"


def test_generated_source_plugs_into_prepare(tmp_path, monkeypatch):
    from colorkit.testing.contract import check_component

    reg = registry("dataset")
    monkeypatch.setitem(
        reg.entries, "gen:", Entry("dataset", "gen:", GenSource, "tests", "tests", "generated test set")
    )
    ds = prepare("gen:seed=3,n=9", size=16, cache_dir=tmp_path, progress=False, shard_size=4)
    assert ds.n == 9 and ds.name == "gen:seed=3,n=9" and ds.meta(4) == {"i": 4, "seed": 3}
    assert ds.source == "gen:seed=3,n=9"
    again = prepare("gen:seed=3,n=9", size=16, cache_dir=tmp_path, progress=False, shard_size=4)
    assert again.root == ds.root
    other = prepare("gen:seed=4,n=9", size=16, cache_dir=tmp_path, progress=False, shard_size=4)
    assert other.root != ds.root and not np.array_equal(other.images(), ds.images())
    check_component("gen:", "dataset")
    for name in ("demo", "lfw", "lsun-church", "imagenet-val"):
        check_component(name, "dataset")


# ------------------------------------------------------------------ cache identity
def _bmp_folder(root: Path, seed: int) -> Path:
    root.mkdir(parents=True)
    for i in range(6):
        Image.fromarray(colour_image(i, (32, 32), seed)).save(root / f"{i}.bmp")  # BMP: size fixed by dims
        os.utime(root / f"{i}.bmp", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    return root


def test_two_folders_with_same_names_sizes_and_mtimes_never_share_a_cache(tmp_path):
    a = _bmp_folder(tmp_path / "one" / "photos", seed=1)
    b = _bmp_folder(tmp_path / "two" / "photos", seed=2)
    assert [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(a.iterdir())] == \
           [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(b.iterdir())]
    da = prepare(a, size=16, cache_dir=tmp_path / "c", progress=False)
    db = prepare(b, size=16, cache_dir=tmp_path / "c", progress=False)
    assert da.root != db.root and da.hash != db.hash
    assert not np.array_equal(da.images(), db.images())
    # the same pixels in another folder are still another cache (the key holds the path)
    shutil.copytree(a, tmp_path / "three" / "photos")
    dc = prepare(tmp_path / "three" / "photos", size=16, cache_dir=tmp_path / "c", progress=False)
    assert dc.root != da.root and dc.content_hash == da.content_hash


def test_a_file_rewritten_with_its_old_size_and_mtime_invalidates(tmp_path):
    a = _bmp_folder(tmp_path / "photos", seed=1)
    first = prepare(a, size=16, cache_dir=tmp_path / "c", progress=False)
    f = a / "3.bmp"
    st = f.stat()
    Image.fromarray(colour_image(99, (32, 32), 7)).save(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    second = prepare(a, size=16, cache_dir=tmp_path / "c", progress=False)
    assert second.hash != first.hash
    row = second.files.index("3.bmp")
    assert not np.array_equal(second.images()[row], first.images()[row])


# ------------------------------------------------------------------ train and bench on a recipe
def test_train_and_bench_tiny_on_a_fetched_recipe(fetched, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLORKIT_CACHE", str(fetched))
    code, out, err = run_cli(["train", "--method", "mdn", "--dataset", "imagenet-val", *TINY,
                              "--out", str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 0, err
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["dataset"]["n_train"] == 27 and info["dataset"]["n_test"] == 3
    code, out, err = run_cli(["bench", "--methods", "mdn", "--dataset", "lsun-church", *TINY,
                              "--out", str(tmp_path / "bench"), "--quiet"], capsys)
    assert code == 0, err
    res = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert "mdn" in res["methods"] and np.isfinite(res["methods"]["mdn"]["error_of_best"])


class _Hostile:
    """A loopback server that answers ``/endless`` with a body of unannounced length (no
    Content-Length; 64 MiB) and ``/to-ftp`` with a redirect to an ftp:// address."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.requests.append(self.path)
                if self.path == "/to-ftp":
                    self.send_response(302)
                    self.send_header("Location", "ftp://127.0.0.1/lfw-deepfunneled.tgz")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.end_headers()
                block = b"\0" * (1 << 16)
                try:
                    for _ in range(1024):  # 64 MiB, far beyond every bound below (so a test cannot fill a disk)
                        self.wfile.write(block)
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_mistyped_sha256_never_removes_the_verified_archive(archives, server, tmp_path, capsys):
    data = archives["lfw"].read_bytes()
    cache = tmp_path / "c"
    good = fetch("lfw", url=f"{server.url}/{archives['lfw'].name}", sha256=sha(data), cache_dir=cache, progress=False)
    record = (cache / "downloads" / "lfw.json").read_text()
    code, _, err = run_cli(["data", "fetch", "lfw", "--url", f"{server.url}/missing.tgz", "--sha256", "1" * 64,
                            "--cache-dir", str(cache), "-q"], capsys)
    assert code == 2 and "HTTP 404" in err and "Traceback" not in err
    assert good.read_bytes() == data and (cache / "downloads" / "lfw.json").read_text() == record
    # a replacement that fails its check leaves the verified archive too
    other = archives["imagenet-val"]
    code, _, err = run_cli(["data", "fetch", "lfw", "--url", f"{server.url}/{other.name}", "--sha256", "1" * 64,
                            "--cache-dir", str(cache), "-q"], capsys)
    assert code == 2 and "checksum mismatch" in err
    assert good.read_bytes() == data and not (cache / "downloads" / "lfw-deepfunneled.tgz.part").exists()
    # and a verified replacement does take its place
    code, _, err = run_cli(["data", "fetch", "lfw", "--url", f"{server.url}/{other.name}", "--sha256",
                            sha(other.read_bytes()), "--cache-dir", str(cache), "-q"], capsys)
    assert code == 0, err
    assert good.read_bytes() == other.read_bytes()


def test_fetch_stops_at_a_size_bound_and_refuses_other_schemes(archives, server, tmp_path, capsys, monkeypatch):
    cache = tmp_path / "c"
    part = cache / "downloads" / "lfw-deepfunneled.tgz.part"
    monkeypatch.setattr(RECIPES["lfw"], "approx_bytes", 200_000)  # the bound: a quarter more, plus 16 MiB
    with _Hostile() as hostile:
        t0 = time.monotonic()
        code, _, err = run_cli(["data", "fetch", "lfw", "--url", f"{hostile.url}/endless", "--cache-dir", str(cache),
                                "-q"], capsys)
        assert code == 2 and "larger than 17,027,216 bytes" in err and len(err.strip().splitlines()) == 1, err
        assert time.monotonic() - t0 < 60 and not part.exists()
        code, _, err = run_cli(["data", "fetch", "lfw", "--url", f"{hostile.url}/endless", "--max-bytes", "100000",
                                "--cache-dir", str(cache), "-q"], capsys)
        assert code == 2 and "larger than 100,000 bytes" in err and not part.exists()
        hostile.requests.clear()
        code, _, err = run_cli(["data", "fetch", "lfw", "--url", f"{hostile.url}/to-ftp", "--cache-dir", str(cache),
                                "-q"], capsys)
        assert code == 2 and "redirects to 'ftp://" in err and len(err.strip().splitlines()) == 1, err
        assert hostile.requests == ["/to-ftp"]  # not followed, not retried
    # an announced length over the bound is refused before reading the body
    code, _, err = run_cli(["data", "fetch", "lfw", "--url", f"{server.url}/{archives['lfw'].name}", "--max-bytes",
                            "1000", "--cache-dir", str(cache), "-q"], capsys)
    assert code == 2 and "announced" in err and not part.exists()


def test_fetch_address_errors_are_one_line_and_honest(tmp_path, capsys):
    from cli_helpers import one_line_error

    code, _, err = run_cli(["data", "fetch", "lfw", "--url", "http://[::1", "--cache-dir", str(tmp_path), "-q"], capsys)
    one_line_error(code, err, "not a valid address")
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ColorkitError) as exc:
        fetch("lfw", url=f"http://127.0.0.1:{port}/x.tgz", cache_dir=tmp_path, progress=False, retries=0)
    assert "partial file" not in str(exc.value) and "nothing was received" in str(exc.value)
