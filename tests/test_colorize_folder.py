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


@pytest.fixture
def folder(tmp_path):
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


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "abc"])
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
