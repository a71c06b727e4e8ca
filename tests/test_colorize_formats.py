"""``colorkit colorize --format png|jpg|webp --quality Q``: what each output says it is,
lossless PNG at any compression level, and the writer's bound on pixels in flight."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from cli_helpers import one_line_error, run_cli
from PIL import Image
from test_colorize_folder import EXPECTED, K, make_folder, photo

import colorkit


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path)




@pytest.mark.parametrize("args,needle", [
    (["--format", "gif"], "--format"),
    (["--format", "jpg", "--quality", "0"], "--quality"),
    (["--format", "webp", "--quality", "101"], "--quality"),
    (["--quality", "abc"], "--quality"),
    (["--quality", "90"], "--quality 90 is for jpg and webp; png is lossless"),
    (["--format", "png", "--quality", "80"], "png is lossless"),
])
def test_bad_format_or_quality_is_one_line(tmp_path, folder, capsys, args, needle):
    for target in (folder, folder / "a.jpg"):
        code, _, err = run_cli(["colorize", str(target), "--out", str(tmp_path / "o"), "--k", "1", *args], capsys)
        one_line_error(code, err, needle)
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_format_is_refused_for_a_clip(tmp_path, capsys):
    frames = tmp_path / "frames"
    for i in range(2):
        photo(frames / f"frame_{i:04d}.png", 16, 12, i)
    code, _, err = run_cli(["colorize", str(frames), "--frames", "--format", "jpg", "--out", str(tmp_path / "o")],
                           capsys)
    one_line_error(code, err, "--format and --quality are for photos")


def test_folder_in_jpg_and_webp_says_what_each_output_is(folder, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["colorize", str(folder), "--out", str(out), "--k", str(K), "--format", "jpg",
                                 "--quality", "90", "--quiet"], capsys)
    assert code == 0, err
    got = {p.relative_to(out).as_posix() for p in out.rglob("*.jpg")}
    assert got == {n.replace(".png", ".jpg").replace("_1.", f"_{i}.") for n in EXPECTED for i in range(1, K + 1)}
    assert not list(out.rglob("*.png")) and "JPEGs at each photo's own size" in stdout
    for n in got:
        with Image.open(out / n) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
    record = json.loads((out / "colorize.json").read_text())
    assert record["settings"]["format"] == "jpg" and record["settings"]["quality"] == 90
    assert record["outputs"].startswith("<relative folder>/<stem>_<i>.jpg, RGB JPEG at quality 90 (lossy)")
    journal = [json.loads(line) for line in (out / "colorize-inputs.jsonl").read_text().splitlines()]
    assert all(o.endswith(".jpg") for e in journal for o in e["outputs"])
    # Another format into the same OUT is refused: nothing written is replaced or mixed.
    stamps = {n: (out / n).stat().st_mtime_ns for n in got}
    code, _, err = run_cli(["colorize", str(folder), "--out", str(out), "--k", str(K), "--quiet"], capsys)
    one_line_error(code, err, "format 'jpg' -> None")
    code, _, err = run_cli(["colorize", str(folder), "--out", str(out), "--k", str(K), "--format", "jpg",
                            "--quiet"], capsys)
    one_line_error(code, err, "quality 90 -> 95")
    assert {n: (out / n).stat().st_mtime_ns for n in got} == stamps and not list(out.rglob("*.png"))
    # The same settings resume: everything is already done.
    code, stdout, err = run_cli(["colorize", str(folder), "--out", str(out), "--k", str(K), "--format", "jpg",
                                 "--quality", "90", "--quiet"], capsys)
    assert code == 0 and "colorized 0 images" in stdout, err

    webp = tmp_path / "webp"
    code, _, err = run_cli(["colorize", str(folder / "trip"), "--out", str(webp), "--k", "1", "--format", "webp",
                            "--quiet"], capsys)
    assert code == 0, err
    with Image.open(webp / "c_1.webp") as im:
        assert im.format == "WEBP" and im.size == (64, 48)


def test_png_outputs_are_lossless_whatever_the_compression_level(folder, tmp_path, capsys):
    """Folder and single-photo PNGs hold exactly the pixels of ``colorize`` (same model,
    same seed): the compression level changes the bytes, never a pixel."""
    out = tmp_path / "out"
    code, _, err = run_cli(["colorize", str(folder / "trip" / "c.jpg"), "--out", str(out), "--k", str(K)], capsys)
    assert code == 0, err
    want = colorkit.load().colorize(folder / "trip" / "c.jpg", k=K)
    for i in range(K):
        assert np.array_equal(np.asarray(Image.open(out / f"c_{i + 1}.png")), np.asarray(want[i]))
    grid = Image.open(out / "grid.png")
    assert grid.height == 160 + 14 and grid.width > 160 * (K + 1)


def test_single_photo_in_webp_with_its_grid(folder, tmp_path, capsys):
    out = tmp_path / "o"
    code, stdout, err = run_cli(["colorize", str(folder / "a.jpg"), str(folder / "b.png"), "--out", str(out),
                                 "--k", "2", "--format", "webp", "--quality", "80"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a_1.webp", "a_2.webp", "b_1.webp", "b_2.webp",
                                                   "colorize-photos.json", "grid.png"]
    assert "RGB WebP at quality 80" in stdout
    with Image.open(out / "b_2.webp") as im:
        assert im.format == "WEBP" and im.size == (33, 41)


def test_writer_never_holds_more_than_its_pixel_bound(tmp_path, monkeypatch):
    """However many images are submitted (and however slowly they are written), at most
    ``max_pixels`` pixels of them wait at once; a failed write is raised, and the files
    written are whole."""
    import threading

    from colorkit.inference import output as inference

    real = inference.atomic_write_bytes
    written = [0]
    lock = threading.Lock()

    def slow(path, data):
        time.sleep(0.01)
        real(path, data)
        with lock:
            written[0] += 1

    monkeypatch.setattr(inference, "atomic_write_bytes", slow)
    img = Image.new("RGB", (40, 25), (10, 200, 30))
    with inference.Writer(inference.output_format("png"), workers=4, max_pixels=3 * 40 * 25) as writer:
        for i in range(20):
            writer.submit(img, tmp_path / f"{i}.png")
            with lock:
                assert (i + 1) - written[0] <= 3
    assert written[0] == 20 and writer.files == 20
    assert all(np.asarray(Image.open(tmp_path / f"{i}.png")).tolist() == np.asarray(img).tolist() for i in range(20))

    def full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(inference, "atomic_write_bytes", full)
    with pytest.raises(OSError, match="No space"), inference.Writer(workers=2) as writer:
        writer.submit(img, tmp_path / "x.png")
        writer.flush()
    assert not (tmp_path / "x.png").exists()
