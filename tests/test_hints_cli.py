"""Colour hints of one photo: ``colorkit colorize photo.jpg --hint X,Y,#RRGGBB --hints FILE``
and ``colorkit.load().colorize(photo, k, hints=...)``: the hints are in the photo's pixels as
it is shown (EXIF orientation applied), take their colour where they are, are recorded
beside the outputs, and bad ones are one-line errors before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import one_line_error, run_cli
from PIL import Image

import colorkit
from colorkit.core.color import rgb_to_lab
from colorkit.core.registry import ColorkitError

RED, BLUE = "#c03020", "#2040c0"


def rotated_photo(path: Path) -> Path:
    """A flat grey photo stored 80x40 whose EXIF says to show it turned a quarter (40x80)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    Image.fromarray(np.full((40, 80, 3), 128, np.uint8)).save(path, exif=exif, quality=95)
    return path


def lab_at(img: Image.Image, x: int, y: int) -> np.ndarray:
    """Mean Lab of the 5x5 patch around ``(x, y)``."""
    rgb = torch.from_numpy(np.asarray(img.convert("RGB"), np.float32) / 255).permute(2, 0, 1)
    return rgb_to_lab(rgb[:, y - 2:y + 3, x - 2:x + 3]).mean((1, 2)).numpy()


def test_hints_take_their_colour_where_the_photo_shows_them(tmp_path, capsys):
    src = rotated_photo(tmp_path / "photo.jpg")
    hints_file = tmp_path / "more.json"
    hints_file.write_text(json.dumps([{"x": 20, "y": 10, "color": BLUE, "radius": 3}]))
    out = tmp_path / "out"
    # (20, 70) lies inside the photo as shown (40x80), not inside the stored pixels (80x40)
    code, stdout, err = run_cli(["colorize", str(src), "--k", "2", "--out", str(out), "--hint", f"20,70,{RED},3",
                                 "--hints", str(hints_file)], capsys)
    assert code == 0, err
    assert "2 colour hints" in stdout
    record = json.loads((out / "photo_hints.json").read_text())
    assert record == [{"x": 20.0, "y": 70.0, "color": RED, "radius": 3.0},
                      {"x": 20.0, "y": 10.0, "color": BLUE, "radius": 3.0}]
    for i in (1, 2):
        with Image.open(out / f"photo_{i}.png") as img:
            assert img.size == (40, 80)
            red, blue = lab_at(img, 20, 70), lab_at(img, 20, 10)
        assert red[1] - blue[1] > 10 and red[2] - blue[2] > 30, (red, blue)  # a: red > blue; b: yellow-red >> blue
    # the record is the --hints form: the same run again from it gives the same outputs
    again = tmp_path / "again"
    code, _, err = run_cli(["colorize", str(src), "--k", "2", "--out", str(again), "--hints",
                            str(out / "photo_hints.json")], capsys)
    assert code == 0, err
    for i in (1, 2):
        assert (again / f"photo_{i}.png").read_bytes() == (out / f"photo_{i}.png").read_bytes()


def test_a_rerun_without_hints_drops_the_old_record(tmp_path, capsys):
    src = rotated_photo(tmp_path / "photo.jpg")
    out = tmp_path / "out"
    assert run_cli(["colorize", str(src), "--k", "1", "--out", str(out), "--hint", f"5,5,{RED}"], capsys)[0] == 0
    assert (out / "photo_hints.json").is_file()
    code, stdout, err = run_cli(["colorize", str(src), "--k", "1", "--out", str(out)], capsys)
    assert code == 0, err
    assert "colour hints" not in stdout and not (out / "photo_hints.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["colorize-photos.json", "grid.png", "photo_1.png"]


def many_hints_file(path: Path, n: int) -> str:
    path.write_text(json.dumps([{"x": 1, "y": 1, "color": RED}] * n))
    return str(path)


@pytest.mark.parametrize("args, needle", [
    (["--hint", f"500,10,{RED}"], f"hint 500,10,{RED} lies outside the 40x80 photo"),
    (["--hint", f"70,20,{RED}"], f"hint 70,20,{RED} lies outside the 40x80 photo"),  # inside the stored 80x40
    (["--hint", "10,10,#12345g"], "'#12345g' is not an sRGB hex colour"),
    (["--hint", f"nan,10,{RED}"], "x must be a finite number, got nan"),
    (["--hint", f"10,inf,{RED}"], "y must be a finite number, got inf"),
    (["--hint", "10,10"], "expected X,Y,#RRGGBB"),
    (["--hint", f"10,10,{RED},-2"], "radius must be from 0"),
    (["--hint", f"1,1,{RED}"] * 1001, "1001 hints; at most 1000"),
    (["--hints", "MANY"], "10000 hints; at most 1000"),
    (["--hints", "NAN"], "not valid JSON (NaN is not a number)"),
    (["--hints", "MISSING"], "cannot read it"),
])
def test_bad_hints_are_one_line_errors_and_nothing_is_written(tmp_path, capsys, args, needle):
    src = rotated_photo(tmp_path / "photo.jpg")
    files = {"MANY": many_hints_file(tmp_path / "many.json", 10_000), "MISSING": str(tmp_path / "none.json")}
    (tmp_path / "nan.json").write_text('[{"x": NaN, "y": 1, "color": "#c03020"}]')
    files["NAN"] = str(tmp_path / "nan.json")
    args = [files.get(a, a) for a in args]
    out = tmp_path / "out"
    out.mkdir()
    (out / "photo_1.png").write_bytes(b"an earlier output")
    code, stdout, err = run_cli(["colorize", str(src), "--k", "1", "--out", str(out), *args], capsys)
    one_line_error(code, err, needle)
    assert sorted(p.name for p in out.iterdir()) == ["photo_1.png"]
    assert (out / "photo_1.png").read_bytes() == b"an earlier output"
    fresh = tmp_path / "fresh"
    code, _, err = run_cli(["colorize", str(src), "--k", "1", "--out", str(fresh), *args], capsys)
    one_line_error(code, err, needle)
    assert not fresh.exists()


def test_hints_on_the_command_line_are_for_one_photo(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    a, b = rotated_photo(folder / "a.jpg"), rotated_photo(folder / "b.jpg")
    (tmp_path / "clip.mp4").write_bytes(b"not looked at")
    out = tmp_path / "out"
    hint = ["--hint", f"5,5,{RED}"]
    for args, needle in [
        ([str(folder), *hint], "put each photo's hints in NAME.hints.json beside NAME.jpg"),
        ([str(folder / "*.jpg"), "--hints", str(tmp_path / "h.json")], "not a folder or glob"),
        ([str(a), str(b), *hint], "are for one photo (their points are its pixels), not 2"),
        ([str(tmp_path / "clip.mp4"), *hint], "are for photos; " + str(tmp_path / "clip.mp4") + " is a clip"),
        ([str(folder), "--frames", *hint], "is a clip"),
    ]:
        code, _, err = run_cli(["colorize", *args, "--out", str(out)], capsys)
        one_line_error(code, err, needle)
        assert not out.exists()


@pytest.fixture(scope="module")
def demo():
    return colorkit.load(device="cpu")


def test_library_colorize_takes_hints_in_the_shown_pixels(demo, tmp_path):
    src = rotated_photo(tmp_path / "photo.jpg")
    hints = [colorkit.Hint(20, 70, RED, radius=3), colorkit.Hint(20, 10, BLUE, radius=3)]
    plain = demo.colorize(src, k=2)
    hinted = demo.colorize(src, k=2, hints=hints)
    as_json = demo.colorize(src, k=2, hints=[h.to_json() for h in hints])
    for p, h, j in zip(plain, hinted, as_json):
        assert h.size == (40, 80)
        assert np.array_equal(np.asarray(h), np.asarray(j))
        assert not np.array_equal(np.asarray(h), np.asarray(p))
        red, blue = lab_at(h, 20, 70), lab_at(h, 20, 10)
        assert red[1] - blue[1] > 10 and red[2] - blue[2] > 30, (red, blue)
    assert [np.asarray(im).tolist() for im in demo.iter_colorize(src, k=2, hints=hints)] == \
        [np.asarray(im).tolist() for im in hinted]
    with pytest.raises(ColorkitError, match="lies outside the 40x80 photo"):
        demo.colorize(src, k=1, hints=[colorkit.Hint(70, 20, RED)])
