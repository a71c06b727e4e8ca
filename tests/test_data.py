"""colorkit.data: discovery, conversion, every kind of bad file, cache, split, batches, CLI."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile  # a scikit-image dependency; writes 16-bit RGB TIFF
import torch
from PIL import Image

import colorkit.data.images as images_mod
from colorkit.cli import main
from colorkit.core.plugin_manager import registry
from colorkit.core.registry import ColorkitError, Entry
from colorkit.data import SKIP_REASONS, default_test_size, find_images, load_image, prepare

SIZE = 32
RNG = np.random.default_rng(0)


def _noise(h: int, w: int) -> np.ndarray:
    """A colourful image: smooth random colour blobs plus noise, (h, w, 3) uint8."""
    small = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR), dtype=np.int16)
    return np.clip(base + RNG.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)


def _png16_rgb(path: Path, arr: np.ndarray) -> None:
    """Write a 48-bit (16 bits per channel) RGB PNG by hand; Pillow cannot."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


GOOD = [
    "a/img0.jpg", "a/b/img1.png", "a/b/c/img2.webp", "img3.bmp", "img4.tif", "UPPER5.JPG",
    "img6.jpeg", "img7.tiff", "img8.png", "img9.jpg", "img10.jpg", "img11.png",
]
CONVERTED = [
    "conv/cmyk.jpg", "conv/rgba.png", "conv/palette.png", "conv/rgb48.png", "conv/rgb48.tif", "conv/exif6.jpg",
]
EXPECTED_SKIPS = {
    "bad/corrupt.jpg": "not-an-image",
    "bad/text.png": "not-an-image",
    "bad/empty.png": "empty-file",
    "bad/trunc.jpg": "corrupt-or-truncated",
    "bad/trunc.png": "corrupt-or-truncated",
    "bad/grey_L.png": "greyscale",
    "bad/grey_rgb.png": "greyscale",
    "bad/grey16.png": "greyscale",
    "bad/tiny.png": "too-small",
}
RGB48 = (50000, 10000, 20000)


def make_folder(root: Path) -> Path:
    for i, rel in enumerate(GOOD):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(p.suffix.lower())
        Image.fromarray(_noise(40 + 3 * i, 56 - 2 * i)).save(p, format=fmt)
    conv = root / "conv"
    conv.mkdir()
    Image.fromarray(_noise(48, 40)).convert("CMYK").save(conv / "cmyk.jpg")
    rgba = np.dstack([_noise(40, 40), np.full((40, 40), 255, np.uint8)])
    rgba[:20, :, 3] = 0  # top half fully transparent -> white
    Image.fromarray(rgba, "RGBA").save(conv / "rgba.png")
    Image.fromarray(_noise(40, 44)).convert("P", palette=Image.Palette.ADAPTIVE).save(conv / "palette.png")
    _png16_rgb(conv / "rgb48.png", np.tile(np.array(RGB48, np.uint16), (36, 36, 1)))
    tifffile.imwrite(conv / "rgb48.tif", np.tile(np.array(RGB48, np.uint16), (30, 40, 1)), photometric="rgb")
    lr = np.zeros((32, 64, 3), np.uint8)
    lr[:, :32] = (220, 20, 20)  # red left
    lr[:, 32:] = (20, 20, 220)  # blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: left becomes top
    Image.fromarray(lr).save(conv / "exif6.jpg", exif=exif, quality=95)

    bad = root / "bad"
    bad.mkdir()
    (bad / "corrupt.jpg").write_bytes(RNG.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (bad / "text.png").write_text("this is not a PNG\n")
    (bad / "empty.png").write_bytes(b"")
    Image.fromarray(_noise(64, 64)).save(bad / "full.jpg", quality=95)
    data = (bad / "full.jpg").read_bytes()
    (bad / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (bad / "full.jpg").unlink()
    Image.fromarray(RNG.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(bad / "full.png")
    data = (bad / "full.png").read_bytes()
    (bad / "trunc.png").write_bytes(data[: len(data) // 2])
    (bad / "full.png").unlink()
    grey = RNG.integers(0, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(grey, "L").save(bad / "grey_L.png")
    Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(bad / "grey_rgb.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(bad / "grey16.png")
    Image.fromarray(_noise(8, 8)).save(bad / "tiny.png")
    (root / "notes.txt").write_text("not a candidate: wrong extension")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def ds(folder, cache):
    return prepare(folder, size=SIZE, cache_dir=cache, progress=False)


def test_find_images_recursive_sorted_case_insensitive(folder):
    files = find_images(folder)
    assert files == sorted(files)
    assert "UPPER5.JPG" in files and "a/b/c/img2.webp" in files
    assert "notes.txt" not in files
    assert len(files) == len(GOOD) + len(CONVERTED) + len(EXPECTED_SKIPS)


def test_skip_reasons_exact(ds):
    assert ds.skipped_files == EXPECTED_SKIPS
    expected_counts: dict[str, int] = {}
    for reason in EXPECTED_SKIPS.values():
        expected_counts[reason] = expected_counts.get(reason, 0) + 1
    assert ds.skipped == expected_counts
    assert set(ds.skipped) <= set(SKIP_REASONS)
    assert sorted(ds.files) == sorted(GOOD + CONVERTED)
    assert ds.files == sorted(ds.files)
    index = json.loads((ds.root / "index.json").read_text())
    assert index["skipped_files"] == EXPECTED_SKIPS
    assert index["skipped"] == ds.skipped
    assert index["files"] == ds.files
    assert index["size"] == SIZE and index["crop"] is False and index["hash"] == ds.hash
    assert len(index["kept_indices"]) == ds.n
    assert index["split"]["test"] == ds.test_idx.tolist()


def test_shapes_dtypes_and_conversions(ds):
    imgs = ds.images()
    assert imgs.dtype == np.uint8 and imgs.shape == (ds.n, SIZE, SIZE, 3)
    assert ds.n == len(GOOD) + len(CONVERTED)
    rgba = imgs[ds.files.index("conv/rgba.png")]
    assert (rgba[: SIZE // 2 - 2] == 255).all()  # transparent half composited on white
    for rel in ("conv/rgb48.png", "conv/rgb48.tif"):
        px48 = imgs[ds.files.index(rel)].reshape(-1, 3)
        assert np.abs(px48.astype(int) - np.array(RGB48) / 257).max() <= 1.0, rel  # 16 -> 8 bits
    ex = imgs[ds.files.index("conv/exif6.jpg")].astype(int)
    top, bottom = ex[: SIZE // 2 - 3].reshape(-1, 3).mean(0), ex[SIZE // 2 + 3 :].reshape(-1, 3).mean(0)
    assert top[0] > 150 and top[2] < 80  # red went to the top
    assert bottom[2] > 150 and bottom[0] < 80


def test_split_sizes_and_determinism(folder, cache, ds):
    n = ds.n
    assert ds.test_idx.size == default_test_size(n) == 2  # round(0.1 * 18)
    assert ds.train_idx.size + ds.test_idx.size == n
    assert np.intersect1d(ds.train_idx, ds.test_idx).size == 0
    assert ds.train_idx.dtype == np.int64 and ds.test_idx.dtype == np.int64
    a = prepare(folder, size=SIZE, cache_dir=cache, progress=False, split_seed=3, test_size=6)
    b = prepare(folder, size=SIZE, cache_dir=cache, progress=False, split_seed=3, test_size=6)
    c = prepare(folder, size=SIZE, cache_dir=cache, progress=False, split_seed=4, test_size=6)
    assert a.test_idx.size == 6 and a.root == ds.root
    np.testing.assert_array_equal(a.test_idx, b.test_idx)
    np.testing.assert_array_equal(a.train_idx, b.train_idx)
    assert not np.array_equal(a.test_idx, c.test_idx)
    with pytest.raises(ColorkitError, match=f"test_size {n} does not fit"):
        prepare(folder, size=SIZE, cache_dir=cache, progress=False, test_size=n)


def test_default_test_size_rule():
    assert default_test_size(1) == 0
    assert default_test_size(2) == 1
    assert default_test_size(40) == 4
    assert default_test_size(25) == 2  # Python round: half to even
    assert default_test_size(5000) == 500
    assert default_test_size(100_000) == 1000


def test_batch_matches_getitem(ds):
    train = ds.split("train")
    assert len(train) == ds.train_idx.size
    pos = [3, 0, len(train) - 1, 3]
    b = train.batch(pos)
    assert b["grey"].shape == (4, 1, SIZE, SIZE) and b["ab"].shape == (4, 2, SIZE, SIZE)
    assert b["grey"].dtype == torch.float32 and b["index"].dtype == torch.int64
    for row, p in enumerate(pos):
        item = train[p]
        assert item["index"] == int(ds.train_idx[p]) == int(b["index"][row])
        torch.testing.assert_close(item["grey"], b["grey"][row])
        torch.testing.assert_close(item["ab"], b["ab"][row])
    tb = train.batch(torch.tensor(pos))
    torch.testing.assert_close(tb["ab"], b["ab"])
    raw = train.rgb_uint8(pos)
    assert raw.dtype == np.uint8 and raw.shape == (4, SIZE, SIZE, 3)
    np.testing.assert_array_equal(raw[0], ds.images()[ds.train_idx[3]])
    assert float(b["grey"].min()) >= 0 and float(b["grey"].max()) <= 1
    with pytest.raises(IndexError):
        train.batch([len(train)])
    with pytest.raises(ColorkitError, match="unknown split"):
        ds.split("val")
    info = ds.info()
    assert info["n_train"] + info["n_test"] == info["n_images"] == ds.n
    assert info["skipped"] == ds.skipped and info["cache"] == str(ds.root)


def test_cache_reused_without_reading_images(folder, cache, ds, monkeypatch):
    mtime = (ds.root / "shard-00000.npy").stat().st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("image loader called although the cache is valid")

    monkeypatch.setattr(images_mod, "load_image", boom)
    again = prepare(folder, size=SIZE, cache_dir=cache, progress=False, split_seed=1)
    assert again.root == ds.root and again.files == ds.files and again.skipped == ds.skipped
    assert (ds.root / "shard-00000.npy").stat().st_mtime_ns == mtime


def test_cache_invalidated_when_a_file_is_added(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        Image.fromarray(_noise(30, 30)).save(src / f"{i}.png")
    first = prepare(src, size=16, cache_dir=tmp_path / "c", progress=False)
    calls = []
    real = images_mod.load_image
    monkeypatch.setattr(images_mod, "load_image", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    Image.fromarray(_noise(30, 30)).save(src / "new.png")
    second = prepare(src, size=16, cache_dir=tmp_path / "c", progress=False)
    assert second.hash != first.hash and second.root != first.root
    assert second.n == 5 and len(calls) == 5
    # other settings are other caches too
    cropped = prepare(src, size=16, crop=True, cache_dir=tmp_path / "c", progress=False)
    assert cropped.hash != second.hash and cropped.crop


def test_interrupted_prepare_leaves_no_cache_and_resumes(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        Image.fromarray(_noise(30, 30)).save(src / f"{i}.png")
    real = images_mod.load_image
    seen = []

    def interrupt(*args, **kwargs):
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(images_mod, "load_image", interrupt)
    with pytest.raises(KeyboardInterrupt):
        prepare(src, size=16, cache_dir=tmp_path / "c", progress=False, workers=1, shard_size=2)
    # no cache under a final name; only the locked build folder holding the complete shard
    left = list((tmp_path / "c" / "datasets").iterdir())
    assert [p.name.startswith(".tmp-build-") for p in left] == [True]
    assert sorted(p.name for p in left[0].glob("shard-*.json")) == ["shard-00000.json"]
    monkeypatch.setattr(images_mod, "load_image", lambda *a, **k: seen.append(1) or real(*a, **k))
    seen.clear()
    ok = prepare(src, size=16, cache_dir=tmp_path / "c", progress=False, workers=1, shard_size=2)
    assert ok.n == 6 and len(seen) == 4  # the first shard's two images were not decoded again
    assert [p.name for p in (tmp_path / "c" / "datasets").iterdir()] == [ok.root.name]
    fresh = prepare(src, size=16, cache_dir=tmp_path / "c2", progress=False, workers=1, shard_size=2)
    assert fresh.content_hash == ok.content_hash


def test_load_image_reasons_direct(folder, monkeypatch):
    assert load_image(folder / "bad/empty.png", 16).reason == "empty-file"
    assert load_image(folder / "bad/tiny.png", 16, min_side=4).array is not None
    assert load_image(folder / "bad/tiny.png", 16).reason == "too-small"
    res = load_image(folder / "img3.bmp", 16, crop=True)
    assert res.array is not None and res.array.shape == (16, 16, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40x40 > 2 x limit: a "bomb"
    assert load_image(folder / "img8.png", 16).reason == "too-large"


def test_sources_and_errors(tmp_path, folder, cache, monkeypatch):
    with pytest.raises(
        ColorkitError, match="neither a folder, an archive .* nor a registered data set name; known names: .*demo"
    ):
        prepare(tmp_path / "missing", cache_dir=cache)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ColorkitError, match="no image files"):
        prepare(tmp_path / "empty", cache_dir=cache)
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "x.jpg").write_bytes(b"nope")
    with pytest.raises(ColorkitError, match="no usable images.*not-an-image 1"):
        prepare(only_bad, cache_dir=cache, progress=False)
    # a registered name resolves through the dataset registry
    reg = registry("dataset")
    monkeypatch.setitem(reg.entries, "testset", Entry("dataset", "testset", lambda: folder, "tests", "tests"))
    named = prepare("testset", size=SIZE, cache_dir=cache, progress=False)
    assert named.name == "testset" and named.source == folder.resolve() and named.n == len(GOOD) + len(CONVERTED)


def test_cli_info_json_and_error(folder, cache, ds, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "info", "--dataset", str(folder), "--size", str(SIZE), "--cache-dir", str(cache), "--json"])
    assert exc.value.code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_images"] == ds.n and info["skipped"] == ds.skipped and info["size"] == SIZE

    with pytest.raises(SystemExit) as exc:
        main(["data", "info", "--dataset", str(folder), "--size", str(SIZE), "--cache-dir", str(cache)])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "train" in out and "pixels" in out and "greyscale 3" in out

    missing = str(folder / "does-not-exist")
    with pytest.raises(SystemExit) as exc:
        main(["data", "prepare", "--dataset", missing, "--cache-dir", str(cache)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("colorkit: error:")]
    assert len(errors) == 1 and missing in errors[0]


def test_environment_cache_dir(tmp_path, monkeypatch):
    from colorkit.data import default_cache_dir

    monkeypatch.setenv("COLORKIT_CACHE", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    monkeypatch.delenv("COLORKIT_CACHE")
    assert default_cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "colorkit"
