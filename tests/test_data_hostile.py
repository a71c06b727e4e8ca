"""Hostile data: compression bombs skipped without being held in memory, encoded bytes in
flight bounded, duplicate member names counted, a damaged LMDB and running out of memory
while writing weights as one-line errors."""

from __future__ import annotations

import tarfile
import time
import zipfile

import pytest
from cli_helpers import run_cli

from colorkit.data import Record, prepare
from colorkit.testing.archives import (
    colour_image,
    encode,
    lsun_lmdb_zip,
)

TINY = ["--preset", "tiny", "--epochs", "1", "--size", "32"]


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

    monkeypatch.setattr(ck, "save_file", panic)
    with pytest.raises(MemoryError, match="memory allocation"):
        ck.save_tensors(tmp_path / "w.safetensors", {"w": torch.zeros(3)})
    assert list(tmp_path.iterdir()) == []
