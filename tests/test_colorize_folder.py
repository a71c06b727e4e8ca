"""``colorkit colorize DIR_OR_GLOB --out OUT``: every image at its own size under its
relative path, skipped files per reason, resume after kill -9 without redoing finished
images, settings guarded, batched outputs equal to one-at-a-time outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_line_error, run_cli
from PIL import Image

import colorkit

K = 2


def photo(path: Path, w: int, h: int, seed: int, grey: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.uniform(40, 200, 3)
    arr = np.clip(base + 40 * np.sin(xx[..., None] / (5 + seed) + np.arange(3)) + 30 * (yy[..., None] / h), 0, 255)
    img = Image.fromarray(arr.astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    (img.convert("L") if grey else img).save(path)
    return path


def make_folder(tmp_path: Path) -> Path:
    """The test photos: sizes, formats, a grey one, nested folders, names that differ only in suffix."""
    src = tmp_path / "photos"
    photo(src / "a.jpg", 70, 50, 1)
    photo(src / "b.png", 33, 41, 2, grey=True)  # grey photos are what colorize is for: never skipped
    photo(src / "trip" / "c.jpg", 64, 48, 3)
    photo(src / "trip" / "deep" / "d.webp", 40, 40, 4)
    photo(src / "same.jpg", 30, 20, 5)
    photo(src / "same.png", 20, 30, 6)
    from colorkit.builtin_components import DEMO_DIR

    (src / "old").mkdir()
    with Image.open(sorted(DEMO_DIR.rglob("*.jpg"))[0]) as im:  # a real photo, in grey
        im.convert("L").resize((48, 36)).save(src / "old" / "real.png")
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.png").write_text("not an image at all")
    good = src / "trip" / "cut.jpg"
    photo(good, 60, 60, 7)
    good.write_bytes(good.read_bytes()[:300])  # a truncated JPEG
    (src / "readme.txt").write_text("not looked at (not an image extension)")
    return src


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path)


EXPECTED = {  # output -> size
    "a_1.png": (70, 50), "b_1.png": (33, 41), "trip/c_1.png": (64, 48), "trip/deep/d_1.png": (40, 40),
    "same-jpg_1.png": (30, 20), "same-png_1.png": (20, 30), "old/real_1.png": (48, 36),
}


def outputs(out: Path) -> dict[str, Path]:
    return {p.relative_to(out).as_posix(): p for p in out.rglob("*.png")}


def test_folder_every_image_at_its_size_and_relative_path(folder, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["colorize", str(folder), "--out", str(out), "--k", str(K), "--quiet"], capsys)
    assert code == 0, err
    got = outputs(out)
    want = {n.replace("_1", f"_{i}") for n in EXPECTED for i in range(1, K + 1)}
    assert set(got) == want
    for name, size in EXPECTED.items():
        for i in range(1, K + 1):
            img = Image.open(got[name.replace("_1", f"_{i}")])
            assert img.size == size and img.mode == "RGB"
    assert "colorized 7 images" in stdout
    assert "skipped 3 files (corrupt-or-truncated 1, empty-file 1, not-an-image 1)" in stdout
    record = json.loads((out / "colorize.json").read_text())
    assert record["complete"] and record["colorized"] == 7 and record["settings"]["k"] == K
    assert record["skipped_files"] == {"empty.jpg": "empty-file", "notes.png": "not-an-image",
                                       "trip/cut.jpg": "corrupt-or-truncated"}
    # outputs keep the grey photo's own lightness (Lab L; gamut clipping aside) and add colour
    from colorkit.core.color import rgb_to_lab
    from colorkit.data.imageio import open_image, to_tensor

    lab_out = rgb_to_lab(to_tensor(Image.open(got["old/real_1.png"]).convert("RGB")))[0]
    L_in = rgb_to_lab(to_tensor(open_image(folder / "old" / "real.png")))[0, 0]
    assert float((lab_out[0] - L_in).abs().median()) < 1.0
    assert float(lab_out[1:].abs().mean()) > 2.0

    # A rerun finds everything complete and rewrites nothing.
    stamps = {n: p.stat().st_mtime_ns for n, p in got.items()}
    code, stdout, err = run_cli(["colorize", str(folder), "--out", str(out), "--k", str(K), "--quiet"], capsys)
    assert code == 0 and "colorized 0 images" in stdout and "7 already done" in stdout
    assert {n: p.stat().st_mtime_ns for n, p in outputs(out).items()} == stamps

    # Other settings into the same OUT are refused (no mixing of two models' outputs).
    code, _, err = run_cli(["colorize", str(folder), "--out", str(out), "--k", "3", "--quiet"], capsys)
    one_line_error(code, err, "holds colorizations made with other settings (k 2 -> 3)")


def test_glob_relative_to_its_fixed_folder_and_out_inside_source(folder, capsys):
    out = folder / "colorized"  # inside the folder: never colorized again on a rerun
    code, _, err = run_cli(["colorize", str(folder / "**" / "*.jpg"), "--out", str(out), "--k", "1",
                            "--quiet"], capsys)
    assert code == 0, err
    assert set(outputs(out)) == {"a_1.png", "trip/c_1.png", "same_1.png"}
    code, stdout, err = run_cli(["colorize", str(folder), "--out", str(out), "--k", "1", "--quiet"], capsys)
    assert code == 0 and "colorized 5 images" in stdout  # b, d, real, and the two "same" (now named apart)
    assert not any("colorized/" in n for n in outputs(out))


def test_folder_user_errors(tmp_path, folder, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["colorize", str(tmp_path / "empty"), "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, "no image files in folder")
    code, _, err = run_cli(["colorize", str(tmp_path / "nothing-*.jpg"), "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, "no image files in pattern")
    code, _, err = run_cli(["colorize", str(folder), str(folder / "a.jpg"), "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, "a folder or glob must be the only IMAGES argument")
    code, _, err = run_cli(["colorize", str(folder), "--out", str(folder)], capsys)
    one_line_error(code, err, "is the folder being colorized")
    code, _, err = run_cli(["colorize", str(folder), "--k", "9", "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, "topk sampling gives at most 8 colorizations")
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_batched_outputs_equal_one_at_a_time(folder, tmp_path, capsys):
    """The model colorizes a batch at once; each photo's outputs are those of colorizing it
    alone (topk mode is deterministic; to rounding of the last bit)."""
    out = tmp_path / "out"
    code, _, err = run_cli(["colorize", str(folder), "--out", str(out), "--k", str(K), "--batch-size", "4",
                            "--quiet"], capsys)
    assert code == 0, err
    single = colorkit.load().colorize(folder / "trip" / "c.jpg", k=K)
    for i in range(K):
        a = np.asarray(Image.open(out / "trip" / f"c_{i + 1}.png"), dtype=np.int16)
        assert np.abs(a - np.asarray(single[i], dtype=np.int16)).max() <= 1


_DRIVER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    out = Path(sys.argv[2]).resolve()
    kill_at = int(sys.argv[3])
    real = os.replace
    count = [0]
    def replace(src, dst, *a, **kw):
        if Path(dst).suffix == ".png" and out in Path(dst).resolve().parents:
            count[0] += 1
            if count[0] == kill_at:  # the temporary file is whole; the rename never happens
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *a, **kw)
    os.replace = replace
    from colorkit.cli import main
    main(["colorize", sys.argv[1], "--out", str(out), "--k", "2", "--batch-size", "2", "--quiet"])
""")


def many(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "many"
    for i in range(n):
        photo(src / f"p{i:02d}.png", 96, 64, i)
    return src


def _check_whole(out: Path) -> None:
    for p in out.rglob("*.png"):  # every file under a final name decodes completely
        with Image.open(p) as img:
            img.load()


def test_kill_9_mid_run_then_resume_redoes_only_unfinished(tmp_path, capsys):
    src = many(tmp_path, 6)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(src), str(out), "6"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    done = outputs(out)
    # Writes run in two threads: the kill lands at the 6th rename, so 4 or 5 renames happened.
    assert len(done) in (4, 5), sorted(done)
    assert [n for n in os.listdir(out) if n.endswith(".tmp")]  # a whole file that was never renamed
    _check_whole(out)
    complete = sorted(f"p{i:02d}" for i in range(6) if {f"p{i:02d}_1.png", f"p{i:02d}_2.png"} <= set(done))
    assert len(complete) >= 1
    stamps = {n: p.stat().st_mtime_ns for n, p in done.items()}
    code, stdout, err = run_cli(["colorize", str(src), "--out", str(out), "--k", "2", "--quiet"], capsys)
    assert code == 0, err
    assert f"colorized {6 - len(complete)} images" in stdout and f"{len(complete)} already done" in stdout
    finished = [f"{c}_{i}.png" for c in complete for i in (1, 2)]
    assert {n: done[n].stat().st_mtime_ns for n in finished} == {n: stamps[n] for n in finished}
    assert len(outputs(out)) == 12 and not [n for n in os.listdir(out) if n.endswith(".tmp")]
    _check_whole(out)


@pytest.mark.slow
def test_kill_9_at_a_random_moment_leaves_only_whole_files(tmp_path, capsys):
    src = many(tmp_path, 16)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "colorkit", "colorize", str(src), "--out", str(out), "--k", "2",
                             "--batch-size", "2", "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and len(list(out.rglob("*.png"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    _check_whole(out)
    code, stdout, err = run_cli(["colorize", str(src), "--out", str(out), "--k", "2", "--quiet"], capsys)
    assert code == 0, err
    assert len(outputs(out)) == 32
    _check_whole(out)


def test_single_photo_into_a_folder_runs_output_is_refused(tmp_path, capsys):
    """A single-photo run writing into a folder run's OUT would replace its outputs while
    its record (colorize.json) still described the old ones, so a resume would trust them."""
    src = tmp_path / "p"
    photo(src / "img0.jpg", 40, 30, 1)
    out = tmp_path / "o"
    code, _, err = run_cli(["colorize", str(src), "--out", str(out), "--k", "2", "--quiet"], capsys)
    assert code in (0, None), err
    before = (out / "img0_1.png").read_bytes()
    code, _, err = run_cli(["colorize", str(src / "img0.jpg"), "--out", str(out), "--k", "3", "--seed", "9"], capsys)
    one_line_error(code, err, "holds the outputs of a folder run")
    assert (out / "img0_1.png").read_bytes() == before and not (out / "img0_3.png").exists()


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "abc", "1e308", "11"])
def test_bad_sampling_variance_is_one_line(tmp_path, capsys, value):
    photo(tmp_path / "x.jpg", 40, 30, 2)
    code, _, err = run_cli(["colorize", str(tmp_path / "x.jpg"), "--out", str(tmp_path / "o"), "--mode", "mixture",
                            "--option", f"variance={value}"], capsys)
    one_line_error(code, err, "invalid sampling setting: variance")
    assert "pydantic" not in err and not (tmp_path / "o").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_missing_device_is_one_line(tmp_path, capsys, device):
    photo(tmp_path / "x.jpg", 40, 30, 2)
    code, _, err = run_cli(["colorize", str(tmp_path / "x.jpg"), "--out", str(tmp_path / "o"), "--device", device],
                           capsys)
    one_line_error(code, err, "no CUDA GPU is available")


def test_glob_climbing_out_of_its_folder_writes_only_inside_out(tmp_path, capsys, monkeypatch):
    """``a/*/../../c/*.jpg`` once wrote ``c/x_1.png`` beside the photo (replacing the
    user's file) and, with k=1, counted the photo done without colorizing it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    photo(tmp_path / "c" / "x.jpg", 40, 30, 1)
    (tmp_path / "c" / "x_1.png").write_text("notes")
    for k in ("2", "1"):
        out = tmp_path / f"o{k}"
        code, stdout, err = run_cli(["colorize", "a/*/../../c/*.jpg", "--out", str(out), "--k", k, "--quiet"],
                                    capsys)
        assert code == 0, err
        assert "colorized 1 images" in stdout and "0 already done" in stdout
        assert set(outputs(out)) == {f"c/x_{i}.png" for i in range(1, int(k) + 1)}
    assert (tmp_path / "c" / "x_1.png").read_text() == "notes"
    assert sorted(os.listdir(tmp_path / "c")) == ["x.jpg", "x_1.png"]


def test_output_inside_out_is_checked_after_resolving_links(tmp_path, capsys):
    """A folder inside OUT that is a link to elsewhere: nothing is written through it."""
    photo(tmp_path / "src" / "trip" / "p.jpg", 40, 30, 1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "trip").symlink_to(elsewhere, target_is_directory=True)
    code, _, err = run_cli(["colorize", str(tmp_path / "src"), "--out", str(out), "--k", "1", "--quiet"], capsys)
    one_line_error(code, err, "would lie outside --out")
    assert os.listdir(elsewhere) == []


@pytest.mark.parametrize("files", [["x.jpg", "x.JPG"], ["a.jpg", "a.png", "a-jpg.png", "A.JPG"]])
def test_names_differing_in_case_or_suffix_never_share_an_output(tmp_path, capsys, files):
    src = tmp_path / "src"
    for i, name in enumerate(files):
        photo(src / name, 30 + i, 20, i)
    out = tmp_path / "out"
    code, stdout, err = run_cli(["colorize", str(src), "--out", str(out), "--k", "2", "--quiet"], capsys)
    assert code == 0, err
    assert f"colorized {len(files)} images" in stdout and "named apart" in stdout
    got = outputs(out)
    assert len(got) == 2 * len(files) and len({n.casefold() for n in got}) == len(got)
    # each output has its own photo's size: none was replaced by another photo's
    assert sorted(Image.open(p).size[0] for p in got.values()) == sorted(30 + i for i in range(len(files))
                                                                          for _ in range(2))
    record = json.loads((out / "colorize.json").read_text())
    assert len(record["renamed"]) >= len(files) - 1


def test_another_folders_photo_of_the_same_name_is_not_counted_done(tmp_path, capsys):
    photo(tmp_path / "f1" / "p.jpg", 40, 30, 1)
    photo(tmp_path / "f2" / "p.jpg", 36, 28, 2)
    out = tmp_path / "o"
    assert run_cli(["colorize", str(tmp_path / "f1"), "--out", str(out), "--k", "1", "--quiet"], capsys)[0] == 0
    first = (out / "p_1.png").read_bytes()
    code, stdout, err = run_cli(["colorize", str(tmp_path / "f2"), "--out", str(out), "--k", "1", "--quiet"], capsys)
    assert code == 0, err
    assert "colorized 1 images" in stdout and "0 already done" in stdout
    assert (out / "p_1.png").read_bytes() == first  # f1's output is kept, f2's gets its own name
    assert Image.open(out / "p-2_1.png").size == (36, 28)


def test_a_photo_replaced_since_the_last_run_is_redone(tmp_path, capsys):
    src = tmp_path / "src"
    photo(src / "p.jpg", 40, 30, 1)
    photo(src / "q.jpg", 40, 30, 2)
    out = tmp_path / "o"
    assert run_cli(["colorize", str(src), "--out", str(out), "--k", "1", "--quiet"], capsys)[0] == 0
    q_before = (out / "q_1.png").stat().st_mtime_ns
    photo(src / "p.jpg", 52, 44, 3)  # same name, another photo
    code, stdout, err = run_cli(["colorize", str(src), "--out", str(out), "--k", "1", "--quiet"], capsys)
    assert code == 0, err
    assert "colorized 1 images" in stdout and "1 already done" in stdout
    assert Image.open(out / "p_1.png").size == (52, 44)
    assert (out / "q_1.png").stat().st_mtime_ns == q_before


def test_several_single_photos_sharing_a_name_are_all_kept(tmp_path, capsys):
    """``colorize a.jpg a.png a-2.png`` once ended in a FileNotFoundError traceback after
    overwriting one photo's outputs with another's."""
    paths = [photo(tmp_path / n, 30 + i, 20, i) for i, n in enumerate(["a.jpg", "a.png", "a-2.png", "A.JPG"])]
    out = tmp_path / "o"
    code, stdout, err = run_cli(["colorize", *map(str, paths), "--out", str(out), "--k", "2"], capsys)
    assert code == 0, err
    got = sorted(p.name for p in out.glob("*.png") if p.name != "grid.png")
    assert len(got) == 8 and len({n.casefold() for n in got}) == 8
    assert sorted(Image.open(out / n).size[0] for n in got) == [30, 30, 31, 31, 32, 32, 33, 33]
    assert not [n for n in os.listdir(out) if n.startswith(".")]


def test_symlink_loop_and_unreadable_folder_are_reported_not_fatal(tmp_path, capsys, monkeypatch):
    src = tmp_path / "src"
    photo(src / "ok.jpg", 40, 30, 1)
    (src / "loop.jpg").symlink_to(src / "loop2.jpg")
    (src / "loop2.jpg").symlink_to(src / "loop.jpg")
    (src / "locked").mkdir()
    photo(src / "locked" / "hidden.jpg", 40, 30, 2)
    real_walk = os.walk

    def walk(top, onerror=None, **kw):  # as a chmod 000 folder is for a user who is not root
        for dirpath, dirnames, filenames in real_walk(top, onerror=onerror, **kw):
            if "locked" in dirnames:
                dirnames.remove("locked")
                if onerror is not None:
                    onerror(PermissionError(13, "Permission denied", os.path.join(dirpath, "locked")))
            yield dirpath, dirnames, filenames

    monkeypatch.setattr("colorkit.data.images.os.walk", walk)
    out = tmp_path / "o"
    code, stdout, err = run_cli(["colorize", str(src), "--out", str(out), "--k", "1", "--quiet"], capsys)
    assert code == 0, err
    assert "colorized 1 images" in stdout and "skipped 2 files (symlink-loop 2)" in stdout
    assert "could not read 1 folders" in stdout and "locked (Permission denied)" in stdout
    record = json.loads((out / "colorize.json").read_text())
    assert record["unreadable_folders"] == {"locked": "Permission denied"}


def test_animated_gif_in_a_folder_is_colorized_as_when_given_alone(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    frames = [Image.fromarray(np.full((30, 40, 3), v, np.uint8)) for v in (60, 120, 180)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    code, stdout, err = run_cli(["colorize", str(src), "--out", str(tmp_path / "o"), "--k", "1", "--quiet"], capsys)
    assert code == 0, err
    # Given alone, an animated GIF is a clip (colorized as a video); in a folder of photos it
    # is colorized as its first frame is when that frame is given alone.
    frames[0].save(tmp_path / "anim.png")
    code, _, err = run_cli(["colorize", str(tmp_path / "anim.png"), "--out", str(tmp_path / "alone"), "--k", "1"],
                           capsys)
    assert code == 0, err
    assert (np.asarray(Image.open(tmp_path / "o" / "anim_1.png")) ==
            np.asarray(Image.open(tmp_path / "alone" / "anim_1.png"))).all()


def test_a_folder_inside_out_is_said_to_be_excluded(tmp_path, capsys):
    out = tmp_path / "o"
    photo(out / "in" / "p.jpg", 40, 30, 1)
    code, _, err = run_cli(["colorize", str(out / "in"), "--out", str(out), "--k", "1"], capsys)
    one_line_error(code, err, "lie inside --out")


def test_non_finite_colours_are_an_error_not_black_photos(tmp_path, capsys, monkeypatch):
    import torch

    from colorkit import inference

    real = inference.load

    def load(*a, **k):
        c = real(*a, **k)
        c.method.sample = lambda grey, k, **kw: torch.full((grey.shape[0], k, 2, grey.shape[-2], grey.shape[-1]),
                                                           float("nan"))
        return c

    monkeypatch.setattr(inference, "load", load)
    photo(tmp_path / "x.jpg", 40, 30, 2)
    code, _, err = run_cli(["colorize", str(tmp_path / "x.jpg"), "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, "produced NaN or infinite colours")
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.png"))
