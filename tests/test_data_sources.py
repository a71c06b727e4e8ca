"""The paper's data sets at small scale: recipes fetched from a loopback server (resumed,
verified, refused), archives of each layout prepared streaming into shards, resumed after
kill -9, trained and benchmarked; cache identity and temporary-folder clean-up."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from PIL import Image

from colorkit.core.fs import FileLock
from colorkit.core.plugin_manager import registry
from colorkit.core.registry import ColorkitError, Entry
from colorkit.data import Record, Source, prepare
from colorkit.data.build import clean_dead_tmp
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


# ------------------------------------------------------------------ kill -9, temp folders
KILL_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from colorkit.data import prepare
    src, cache, shard = sys.argv[1], sys.argv[2], int(sys.argv[3])
    prepare(src, size=16, cache_dir=cache, progress=False, workers=1, shard_size=shard)
""")


def _start_and_kill(src: Path, cache: Path, shard: int, wait_for: str, tmp_path: Path) -> None:
    """Run prepare in a child, kill -9 it once ``wait_for`` exists under the cache."""
    script = tmp_path / "kill_prepare.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(src), str(cache), str(shard)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if list((cache / "datasets").glob(wait_for)):
                break
            if proc.poll() is not None:
                pytest.fail(f"prepare finished before it could be killed: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.01)
        else:
            pytest.fail("prepare never reached the point to kill it")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_kill9_during_prepare_then_rerun_gives_the_same_cache(tmp_path):
    src = imagenet_tar(tmp_path / "val.tar", n=240, size=(64, 48), seed=5)
    cache = tmp_path / "c"
    _start_and_kill(src, cache, 40, ".tmp-build-*/shard-00001.json", tmp_path)
    build = next((cache / "datasets").glob(".tmp-build-*"))
    # finished shards: those with their manifest (a kill between a shard's .npy and its .json
    # leaves a shard that the resumed run redoes)
    kept = {p.name: p.stat().st_mtime_ns for p in build.glob("shard-*.npy") if p.with_suffix(".json").is_file()}
    assert not list((cache / "datasets").glob("[!.]*"))  # no cache under a final name
    resumed = prepare(src, size=16, cache_dir=cache, progress=False, workers=1, shard_size=40)
    for name, mtime in kept.items():  # the shards finished before the kill were kept as they were
        assert (resumed.root / name).stat().st_mtime_ns == mtime
    clean = prepare(src, size=16, cache_dir=tmp_path / "fresh", progress=False, workers=2, shard_size=40)
    assert resumed.hash == clean.hash and resumed.content_hash == clean.content_hash and resumed.n == 240
    for (fa, _), (fb, _) in zip(resumed.shards, clean.shards):
        assert (resumed.root / fa).read_bytes() == (clean.root / fb).read_bytes()
    assert [p.name for p in (cache / "datasets").iterdir()] == [resumed.root.name]


def test_dead_processes_temp_folders_are_removed_on_the_next_run(tmp_path):
    a = imagenet_tar(tmp_path / "a.tar", n=200, size=(64, 48), seed=6)
    b = imagenet_tar(tmp_path / "b.tar", n=5, size=(64, 48), seed=7)
    cache = tmp_path / "c"
    _start_and_kill(a, cache, 20, ".tmp-build-*/shard-00000.json", tmp_path)
    datasets = cache / "datasets"
    assert list(datasets.glob(".tmp-*"))  # the killed build left its folder
    # a live process's temp folder and a legacy folder of a dead pid
    live = datasets / ".tmp-build-live"
    live.mkdir()
    lock = FileLock(live / "lock")
    assert lock.acquire(blocking=False)
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    legacy = datasets / ".tmp-0123456789abcdef-xyz"
    legacy.mkdir()
    (legacy / "owner.json").write_text(json.dumps({"pid": dead_pid.pid}))
    try:
        prepare(b, size=16, cache_dir=cache, progress=False)
        left = sorted(p.name for p in datasets.glob(".tmp-*"))
        assert left == [".tmp-build-live"]  # the dead build and the dead legacy folder are gone
    finally:
        lock.release()
    assert clean_dead_tmp(datasets) == [live]


# ------------------------------------------------------------------ train and bench on a recipe
def test_train_and_bench_tiny_on_a_fetched_recipe(fetched, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLORKIT_CACHE", str(fetched))
    code, out, err = run_cli(["train", "--method", "mdn", "--dataset", "imagenet-val", *TINY,
                              "--out", str(tmp_path / "run"), "--no-progress"], capsys)
    assert code == 0, err
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["dataset"]["n_train"] == 27 and info["dataset"]["n_test"] == 3
    code, out, err = run_cli(["bench", "--methods", "mdn", "--dataset", "lsun-church", *TINY,
                              "--out", str(tmp_path / "bench"), "--no-progress"], capsys)
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


# ------------------------------------------------------------------ bombs, duplicates, damage
def _zeros_members(n: int, mib: int):
    return [(f"bomb/z{i:02d}.png", b"\0" * (mib << 20)) for i in range(n)]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_compression_bombs_are_skipped_without_being_kept_in_memory(tmp_path, kind):
    """Members of zeros compress about 1000:1: each is refused from its declared (zip) or
    observed (tar.gz) ratio, and the photos beside them are kept."""
    photos = [(f"ok/p{i}.jpg", encode(colour_image(i), "JPEG")) for i in range(4)]
    members = photos + _zeros_members(3, 8)
    path = tmp_path / f"bomb.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                zf.writestr(name, data)
    else:
        import io

        with tarfile.open(path, "w:gz") as tf:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    ds = prepare(path, size=32, test_size=1, cache_dir=tmp_path / "c", progress=False)
    info = ds.info()
    assert info["n_images"] == 4 and info["skipped"] == {"too-large": 3}


def test_encoded_bytes_in_flight_are_bounded_whatever_the_workers():
    from colorkit.data import build as B
    from colorkit.data.images import Loaded

    live = [0, 0]  # bytes of records read and not yet handed on; the most seen
    mib = 1 << 20

    def records():
        for i in range(40):
            live[0] += 10 * mib
            live[1] = max(live[1], live[0])
            yield Record(f"r{i}", data=b"x" * (10 * mib))

    def decode(rec):
        time.sleep(0.002)
        return Loaded(None, "not-an-image", "")

    for workers in (2, 8):
        live[:] = [0, 0]
        for _rec, _res in B.iter_decoded(records(), decode, workers):
            live[0] -= 10 * mib
        assert live[1] <= B.IN_FLIGHT_BYTES + 10 * mib, (workers, live[1] / mib)


def test_duplicate_member_names_are_counted_and_named(tmp_path, capsys):
    import io

    path = tmp_path / "dups.tar"
    with tarfile.open(path, "w") as tf:
        for i, name in enumerate(["a.jpg", "b.jpg", "a.jpg", "c.jpg", "a.jpg"]):
            data = encode(colour_image(i), "JPEG")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    ds = prepare(path, size=32, test_size=1, cache_dir=tmp_path / "c", progress=False)
    info = ds.info()
    assert info["n_files"] == 5 and info["n_images"] == 3 and info["skipped"] == {"duplicate-name": 2}
    assert info["n_images"] + info["n_skipped"] == info["n_files"]
    assert set(ds.skipped_files) == {"a.jpg (duplicate 2)", "a.jpg (duplicate 3)"}
    code, out, err = run_cli(["data", "info", "--dataset", str(path), "--size", "32", "--test-size", "1",
                              "--cache-dir", str(tmp_path / "c")], capsys)
    assert code in (0, None), err
    assert "3 kept of 5 image files" in out and "skipped  : 2 files (duplicate-name 2)" in out


def test_a_damaged_lmdb_is_a_one_line_error(tmp_path, capsys):
    from cli_helpers import one_line_error

    zipped = lsun_lmdb_zip(tmp_path / "church.zip", n=40, folder=tmp_path / "db")
    zipped.unlink()
    mdb = tmp_path / "db" / "data.mdb"
    raw = bytearray(mdb.read_bytes())
    page = 4096
    for off in range(2 * page, len(raw), page):  # every page after the two meta pages: garbage headers
        raw[off:off + 16] = b"\xa5" * 16
    mdb.write_bytes(bytes(raw))
    code, _, err = run_cli(["data", "prepare", "--dataset", str(tmp_path / "db"), "--size", "32",
                            "--cache-dir", str(tmp_path / "c"), "-q"], capsys)
    one_line_error(code, err, "cannot read the LMDB database")


def test_running_out_of_memory_while_writing_weights_is_memory_error(tmp_path, monkeypatch):
    import torch

    from colorkit.core import tensorfile as ck

    class PanicException(BaseException):  # what safetensors' Rust code raises on a failed allocation
        pass

    def panic(*a, **k):
        raise PanicException("memory allocation of 8589934592 bytes failed")

    monkeypatch.setattr(ck, "save_bytes", panic)
    with pytest.raises(MemoryError, match="memory allocation"):
        ck.save_tensors(tmp_path / "w.safetensors", {"w": torch.zeros(3)})
    assert list(tmp_path.iterdir()) == []
