"""Clips and frame folders given as a careless or hostile user would: two clips of one
name, the user's own files in OUT, a changed clip, frames sharing a name, a clip too large
for --max-pixels, a run killed with kill -9, --fps nan, odd sizes and --container, a
folder of frames colorized into itself.

Every clip is made here, a few frames of 48x32 (see video_helpers.py), and colorized with
the bundled demo model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_line_error, run_cli
from PIL import Image
from video_helpers import frame, make_clip, read_clip

from colorkit.core.registry import ColorkitError

TMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.\w+)?$|\.tmp-[a-z0-9_]{8}$")


def _colorize(src, out, capsys, *extra):
    return run_cli(["colorize", str(src), "--k", "2", "--out", str(out), "-q", *extra], capsys)


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != ".lock"}


def test_clips_of_one_name_and_the_users_files_are_never_replaced(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    mp4 = make_clip(src / "clip.mp4", frames=4)
    mkv = make_clip(src / "clip.mkv", frames=5, width=40)
    out = tmp_path / "OUT"
    code, _, err = _colorize(mp4, out, capsys)
    assert code == 0, err
    before = _bytes(out)
    # clip.mkv after clip.mp4: its own sheet and record, nothing of clip.mp4's replaced
    code, outs, err = _colorize(mkv, out, capsys)
    assert code == 0, err
    assert {n: b for n, b in _bytes(out).items() if n in before} == before
    assert "clip-mkv_1.mkv" in outs and "which are never replaced; writing clip-mkv_<j>.mkv" in err
    assert len(read_clip(out / "clip-mkv_2.mkv")[0]) == 5 and (out / "clip-mkv_sheet.png").is_file()
    assert json.loads((out / "clip-mkv_colorize.json").read_text())["source"] == str(mkv)
    # the user's own clip_sheet.png, and a text file named like version 1: kept, not counted
    for name, data in (("clip_sheet.png", None), ("clip_1.mp4", b"my notes, not a video\n")):
        user = tmp_path / f"OUT-{name}"
        user.mkdir()
        if data is None:
            Image.new("RGB", (8, 8), "red").save(user / name)
            data = (user / name).read_bytes()
        else:
            (user / name).write_bytes(data)
        code, outs, err = _colorize(mp4, user, capsys)
        assert code == 0, err
        assert (user / name).read_bytes() == data
        assert [len(read_clip(user / f"clip-mp4_{j}.mp4")[0]) for j in (1, 2)] == [4, 4]
        assert "wrote 2 versions" in outs
    # a version replaced by the user after a run is not a done version, and is kept
    (out / "clip_1.mp4").write_bytes(b"not a video\n")
    code, _, err = _colorize(mp4, out, capsys)
    one_line_error(code, err, "clip_1.mp4 is not the file colorkit made there for this clip")
    assert (out / "clip_1.mp4").read_bytes() == b"not a video\n"


def test_clip_resume_is_keyed_on_content(tmp_path, capsys):
    a, b, c = (tmp_path / d for d in "abc")
    for d in (a, b, c):
        d.mkdir()
    make_clip(a / "clip.mp4", frames=4)
    make_clip(b / "clip.mp4", frames=6)  # another clip of the same name
    (c / "clip.mp4").write_bytes((a / "clip.mp4").read_bytes())  # the same clip elsewhere
    out = tmp_path / "OUT"
    assert _colorize(a / "clip.mp4", out, capsys)[0] == 0
    a_files = _bytes(out)
    code, outs, err = _colorize(b / "clip.mp4", out, capsys)
    assert code == 0, err
    assert "versions are already" not in err and {n: v for n, v in _bytes(out).items() if n in a_files} == a_files
    assert [len(read_clip(out / f"clip-mp4_{j}.mp4")[0]) for j in (1, 2)] == [6, 6]
    # one version of a's deleted: b's rerun does not fill it in; a's makes only it, from a
    (out / "clip_2.mp4").unlink()
    code, _, err = _colorize(b / "clip.mp4", out, capsys)
    assert code == 0 and "all 2 versions are already in" in err and not (out / "clip_2.mp4").exists()
    code, _, err = _colorize(c / "clip.mp4", out, capsys)  # same content: a's record
    assert code == 0, err
    record = json.loads((out / "clip_colorize.json").read_text())
    assert record["made"] == ["clip_2.mp4"] and len(read_clip(out / "clip_2.mp4")[0]) == 4
    assert (out / "clip_1.mp4").read_bytes() == a_files["clip_1.mp4"]


def test_frames_whose_names_differ_only_in_extension_are_all_written(tmp_path, capsys):
    folder = tmp_path / "reel"
    folder.mkdir()
    Image.fromarray(frame(0, 40, 24)).save(folder / "f_1.jpg")
    for i in range(1, 7):
        Image.fromarray(frame(i, 40, 24)).save(folder / f"f_{i}.png")
    code, outs, err = _colorize(folder, tmp_path / "OUT", capsys, "--frames")
    assert code == 0, err
    assert "of 7 frames" in outs
    for j in (1, 2):
        names = sorted(p.name for p in (tmp_path / "OUT" / f"reel_{j}").iterdir())
        assert names == ["f_1-jpg.png", "f_1-png.png", "f_2.png", "f_3.png", "f_4.png", "f_5.png", "f_6.png"]


def test_max_pixels_is_checked_from_the_header_before_any_frame_is_decoded(tmp_path, capsys, monkeypatch):
    import av

    from colorkit.data.video import probe

    src = make_clip(tmp_path / "clip.mp4", frames=3)  # 48x32 = 1,536 pixels
    decoded = []
    real_open = av.open

    class Spy:
        def __init__(self, c):
            self.c = c

        def __getattr__(self, name):
            return getattr(self.c, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.c.__exit__(*exc)

        def decode(self, *a, **kw):
            for f in self.c.decode(*a, **kw):
                decoded.append(f)
                yield f

    monkeypatch.setattr(av, "open", lambda *a, **kw: Spy(real_open(*a, **kw)))
    code, _, err = _colorize(src, tmp_path / "OUT", capsys, "--max-pixels", "1000")
    one_line_error(code, err, "48x32 = 1,536 pixels per frame; the limit is 1,000")
    assert decoded == [] and not (tmp_path / "OUT").exists()
    with pytest.raises(ColorkitError, match="pixels per frame"):
        probe(src, max_pixels=1000)
    assert decoded == []
    assert probe(src, max_pixels=1536).width == 48 and len(decoded) == 1  # within the limit: decoded


KILLER = """
import os, signal, sys
from colorkit.data.video import VideoWriter
real, calls = VideoWriter.write, []
def write(self, rgb, pts=None):
    calls.append(1)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, rgb, pts)
VideoWriter.write = write
from colorkit.cli import main
main(sys.argv[1:])
"""


def test_temporaries_of_a_run_killed_with_kill_9_are_removed_by_the_next(tmp_path, capsys):
    src = make_clip(tmp_path / "clip.mp4", frames=6)
    out = tmp_path / "OUT"
    proc = subprocess.run([sys.executable, "-c", KILLER, "colorize", str(src), "--k", "2", "--out", str(out), "-q"],
                          capture_output=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -9
    left = sorted(p.name for p in out.iterdir() if TMP_RE.search(p.name))
    assert len(left) == 2 and all(n.startswith(".clip_") and n.endswith(".tmp.mp4") for n in left), left
    users = [".clip_1.mp4.my-notes.tmp.mp4", ".clip_1.mp4.abcd1234.tmp.mp4.keep", ".other.png.abcd1234.tmp"]
    for name in users:  # the user's files, near colorkit's pattern: kept
        (out / name).write_text("mine\n")
    code, _, err = _colorize(src, out, capsys)
    assert code == 0, err
    assert not [n for n in left if (out / n).exists()]
    assert all((out / n).read_text() == "mine\n" for n in users)
    # a folder of frames: the temporary folder of a killed run
    folder = tmp_path / "reel"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(frame(i, 40, 24)).save(folder / f"f_{i}.png")
    out2 = tmp_path / "OUT2"
    (out2 / "reel_1.tmp-abcd1234").mkdir(parents=True)
    (out2 / "reel_1.tmp-abcd1234" / "f_0.png").write_bytes(b"half")
    code, _, err = _colorize(folder, out2, capsys, "--frames")
    assert code == 0, err
    assert sorted(p.name for p in out2.iterdir()) == [".lock", "reel_1", "reel_2", "reel_colorize.json",
                                                       "reel_sheet.png"]


@pytest.mark.parametrize("fps", ["nan", "inf", "-inf", "0", "1e9"])
def test_fps_must_be_a_finite_rate(fps, tmp_path, capsys):
    folder = tmp_path / "reel"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(frame(i, 40, 24)).save(folder / f"f_{i}.png")
    code, _, err = _colorize(folder, tmp_path / "OUT", capsys, "--frames", "--fps", fps)
    one_line_error(code, err, "--fps must be a number above 0 and at most 1000")
    assert not (tmp_path / "OUT").exists()


def test_odd_sizes_in_every_container_and_a_chosen_container(tmp_path, capsys):
    for name in ("odd.webm", "odd.avi"):
        src = make_clip(tmp_path / name, frames=4, width=33, height=21)
        code, _, err = _colorize(src, tmp_path / name.replace(".", "-"), capsys)
        assert code == 0, err
        frames, _, _ = read_clip(tmp_path / name.replace(".", "-") / f"odd_1{src.suffix}")
        assert len(frames) == 4 and frames[0].shape == (21, 33, 3)
        rgb = frames[2].astype(int)
        assert np.abs(rgb - rgb.mean(-1, keepdims=True)).mean() > 2  # in colour
    src = make_clip(tmp_path / "clip.webm", frames=3)
    code, _, err = _colorize(src, tmp_path / "OUT", capsys, "--container", "mkv")
    assert code == 0, err
    assert len(read_clip(tmp_path / "OUT" / "clip_1.mkv")[0]) == 3
    folder = tmp_path / "reel"  # a folder of frames into a video file, at --fps
    folder.mkdir()
    for i in range(3):
        Image.fromarray(frame(i, 33, 21)).save(folder / f"f_{i}.png")
    code, _, err = _colorize(folder, tmp_path / "OUT", capsys, "--frames", "--fps", "12", "--container", "mp4")
    assert code == 0, err
    frames, times, _ = read_clip(tmp_path / "OUT" / "reel_1.mp4")
    assert len(frames) == 3 and frames[0].shape == (21, 33, 3) and times == pytest.approx([0, 1 / 12, 2 / 12])
    # a container that cannot hold the clip's audio: one line before anything is written
    src = make_clip(tmp_path / "sound.mp4", frames=3, audio=True)  # AAC, which WebM does not take
    code, _, err = _colorize(src, tmp_path / "OUT2", capsys, "--container", "webm")
    one_line_error(code, err, "(aac) cannot be copied into a .webm file; choose another --container")
    assert not (tmp_path / "OUT2").exists()
    code, _, err = run_cli(["colorize", str(tmp_path / "x.png"), "--container", "mp4"], capsys)
    one_line_error(code, err, "--container is for clips")


def test_a_folder_of_frames_is_not_colorized_into_itself(tmp_path, capsys):
    folder = tmp_path / "reel1"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(frame(i, 40, 24)).save(folder / f"f_{i}.png")
    listing = sorted(p.name for p in folder.iterdir())
    code, _, err = _colorize(folder, folder, capsys, "--frames")
    one_line_error(code, err, "is the folder of frames being colorized; choose another folder")
    assert sorted(p.name for p in folder.iterdir()) == listing
    code, _, err = _colorize(folder, folder / "colorized", capsys, "--frames")  # inside it: fine
    assert code == 0, err
    code, _, err = _colorize(folder, folder / "colorized", capsys, "--frames")
    assert code == 0 and "all 2 versions are already in" in err
