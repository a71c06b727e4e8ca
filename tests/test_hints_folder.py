"""Colour hints in folder runs: ``NAME.hints.json`` beside ``NAME.jpg`` gives that photo's
hints (the command line and :func:`colorkit.apps.folder.colorize_folder` alike); hints
files are not photos; a bad one skips its photo only, with the reason ``bad-hints``; the
resume record keeps each photo's hints, so changing them colorizes the photo again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from PIL import Image

import colorkit
from colorkit.apps.folder import JOURNAL, MANIFEST, colorize_folder

RED = "#c03020"


def photo(path: Path, w: int = 48, h: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal(120, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def hints_file(path: Path, hints: list[dict]) -> Path:
    path.write_text(json.dumps(hints))
    return path


def folder_with_hints(tmp_path: Path) -> Path:
    src = tmp_path / "photos"
    photo(src / "a.jpg", seed=1)
    hints_file(src / "a.hints.json", [{"x": 10, "y": 10, "color": RED, "radius": 4}])
    photo(src / "b.png", seed=2)
    photo(src / "trip" / "c.jpg", seed=3)
    hints_file(src / "trip" / "c.hints.json", [{"x": 40, "y": 5, "color": "#2040c0"}])
    return src


def run(src, out, capsys, *extra):
    code, stdout, err = run_cli(["colorize", str(src), "--out", str(out), "--k", "2", "--quiet", *extra], capsys)
    assert code == 0, err
    return stdout, json.loads((out / MANIFEST).read_text())


def outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png"))}


@pytest.mark.parametrize("as_glob", [False, True])
def test_hints_files_give_their_photos_hints_and_are_not_photos(tmp_path, capsys, as_glob):
    src = folder_with_hints(tmp_path)
    plain_src = tmp_path / "plain"  # the same photos without hints files
    for p in src.rglob("*"):
        if p.is_file() and not p.name.endswith(".hints.json"):
            (plain_src / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (plain_src / p.relative_to(src)).write_bytes(p.read_bytes())
    arg = str(src / "**" / "*") if as_glob else str(src)
    out, plain_out = tmp_path / "out", tmp_path / "plain-out"
    stdout, record = run(arg, out, capsys, "--batch-size", "1")
    run(str(plain_src / "**" / "*") if as_glob else str(plain_src), plain_out, capsys, "--batch-size", "1")
    assert record["found"] == 3 and record["colorized"] == 3 and record["skipped"] == {}
    assert "skipped 0 files" in stdout and "2 photos colorized with the colour hints" in stdout
    assert record["hints"] == {
        "a.jpg": {"file": str(src / "a.hints.json"), "hints": [{"x": 10.0, "y": 10.0, "color": RED, "radius": 4.0}]},
        "trip/c.jpg": {"file": str(src / "trip" / "c.hints.json"),
                       "hints": [{"x": 40.0, "y": 5.0, "color": "#2040c0"}]},
    }
    got, plain = outputs(out), outputs(plain_out)
    assert sorted(got) == sorted(plain) == ["a_1.png", "a_2.png", "b_1.png", "b_2.png", "trip/c_1.png", "trip/c_2.png"]
    assert got["b_1.png"] == plain["b_1.png"] and got["b_2.png"] == plain["b_2.png"]  # no hints: as before
    assert got["a_1.png"] != plain["a_1.png"] and got["trip/c_2.png"] != plain["trip/c_2.png"]
    journal = [json.loads(line) for line in (out / JOURNAL).read_text().splitlines()]
    by_source = {Path(e["source"]).name: e.get("hints") for e in journal if e["done"]}
    assert by_source == {"a.jpg": record["hints"]["a.jpg"]["hints"], "b.png": None,
                         "c.jpg": record["hints"]["trip/c.jpg"]["hints"]}


def test_a_bad_hints_file_skips_its_photo_only(tmp_path, capsys):
    src = folder_with_hints(tmp_path)
    (src / "a.hints.json").write_text('[{"x": 10, "y": 10, "color": "#c03020"')  # cut short
    hints_file(src / "trip" / "c.hints.json", [{"x": 400, "y": 5, "color": RED}])  # outside the 48x32 photo
    photo(src / "d.jpg", seed=4)
    hints_file(src / "d.hints.json", [{"x": 1, "y": 1, "color": "red"}])
    photo(src / "e.jpg", seed=5)
    (src / "e.hints.json").mkdir()  # not a file
    out = tmp_path / "out"
    stdout, record = run(src, out, capsys)
    assert record["colorized"] == 1 and record["skipped"] == {"bad-hints": 4}
    assert record["skipped_files"] == dict.fromkeys(["a.jpg", "d.jpg", "e.jpg", "trip/c.jpg"], "bad-hints")
    errors = record["hint_errors"]
    assert "not valid JSON" in errors["a.jpg"]
    assert f"hint 400,5,{RED} lies outside the 48x32 photo" in errors["trip/c.jpg"]
    assert "'red' is not an sRGB hex colour" in errors["d.jpg"] and "not a regular file" in errors["e.jpg"]
    assert "skipped 4 files (bad-hints 4)" in stdout
    assert "not colorized for bad hints (4): a.jpg: hints file" in stdout and "and 1 more" in stdout
    assert sorted(outputs(out)) == ["b_1.png", "b_2.png"]
    # fixed, the photos are colorized on the next run; the one done is not made again
    hints_file(src / "a.hints.json", [{"x": 10, "y": 10, "color": RED}])
    (src / "d.hints.json").unlink()
    stdout, record = run(src, out, capsys)
    assert record["colorized"] == 2 and record["already_done"] == 1 and record["skipped"] == {"bad-hints": 2}


def test_changing_a_photos_hints_colorizes_it_again(tmp_path, capsys):
    src = folder_with_hints(tmp_path)
    out = tmp_path / "out"
    _, record = run(src, out, capsys)
    assert record["colorized"] == 3
    first = outputs(out)
    _, record = run(src, out, capsys)  # unchanged: all done
    assert record["colorized"] == 0 and record["already_done"] == 3
    (src / "a.hints.json").write_text(' [ {"color": "#c03020", "y": 10, "x": 10.0, "radius": 4} ] ')  # same hints
    _, record = run(src, out, capsys)
    assert record["colorized"] == 0 and record["already_done"] == 3
    hints_file(src / "a.hints.json", [{"x": 30, "y": 20, "color": RED, "radius": 4}])  # moved
    _, record = run(src, out, capsys)
    assert record["colorized"] == 1 and record["already_done"] == 2
    moved = outputs(out)
    assert moved["a_1.png"] != first["a_1.png"] and moved["b_1.png"] == first["b_1.png"]
    hints_file(src / "b.hints.json", [{"x": 3, "y": 3, "color": RED}])  # new
    (src / "trip" / "c.hints.json").unlink()  # removed
    _, record = run(src, out, capsys)
    assert record["colorized"] == 2 and record["already_done"] == 1
    assert sorted(record["hints"]) == ["a.jpg", "b.png"]
    _, record = run(src, out, capsys)
    assert record["colorized"] == 0 and record["already_done"] == 3


def test_library_colorize_folder_takes_hints_files(tmp_path):
    src = tmp_path / "photos"
    photo(src / "x.jpg", 40, 40, seed=6)
    hints_file(src / "x.hints.json", [{"x": 5, "y": 5, "color": RED}, {"x": 35, "y": 35, "color": "#2040c0"}])
    photo(src / "y.jpg", 40, 40, seed=7)
    hints_file(src / "y.hints.json", [{"x": 50, "y": 5, "color": RED}])
    lines = []
    record = colorize_folder(colorkit.load(device="cpu"), str(src), tmp_path / "out", k=1, progress=False,
                             echo=lines.append)
    assert record["colorized"] == 1 and record["skipped_files"] == {"y.jpg": "bad-hints"}
    assert [h["color"] for h in record["hints"]["x.jpg"]["hints"]] == [RED, "#2040c0"]
    assert "hint 50,5,#c03020 lies outside the 40x40 photo" in record["hint_errors"]["y.jpg"]
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["hints"] == record["hints"]
