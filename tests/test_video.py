"""Colorizing clips: `colorkit colorize clip.mp4`, the library call, bad input, resume.

Every clip is made here, a few frames of 48x32 (see video_helpers.py), and colorized with
the bundled demo model."""

from __future__ import annotations

import json
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from cli_helpers import one_line_error, run_cli
from PIL import Image
from video_helpers import frame, make_clip, read_clip

import colorkit
from colorkit.data.video import VideoWriter, probe


def _grey_l(rgb):
    from colorkit.data.compose import frame_lightness

    return frame_lightness(rgb).numpy()


def _colorize(src, out, capsys, *extra):
    return run_cli(["colorize", str(src), "--k", "2", "--out", str(out), "-q", *extra], capsys)


def test_clip_gives_k_versions_at_its_own_size_timing_and_audio(tmp_path, capsys):
    src = make_clip(tmp_path / "clip.mp4", frames=6, audio=True)
    code, out, err = _colorize(src, tmp_path / "OUT", capsys)
    assert code == 0, err
    frames_in, times_in, _ = read_clip(src)
    outs = []
    for j in (1, 2):
        frames, times, types = read_clip(tmp_path / "OUT" / f"clip_{j}.mp4")
        assert len(frames) == 6 and frames[0].shape == (32, 48, 3)
        assert times == pytest.approx(times_in)
        assert types == ["video", "audio"]
        # the clip's own lightness (mean grey within a few levels, after two lossy encodings)
        assert np.abs(_grey_l(frames[3]) - _grey_l(frames_in[3])).mean() < 3
        outs.append(np.stack(frames).astype(int))
    assert np.abs(outs[0] - outs[1]).mean() > 0.5  # two different versions
    record = json.loads((tmp_path / "OUT" / "clip_colorize.json").read_text())
    assert record["complete"] and record["frames"] == 6 and record["made"] == ["clip_1.mp4", "clip_2.mp4"]
    sheet = np.asarray(Image.open(tmp_path / "OUT" / "clip_sheet.png").convert("RGB")).astype(int)
    assert sheet.shape[0] > 3 * 96  # grey row + 2 versions
    row_h = sheet.shape[0] // 3
    chroma = [np.abs(sheet[r * row_h:(r + 1) * row_h, :96] - sheet[r * row_h:(r + 1) * row_h, :96].mean(-1,
              keepdims=True)).mean() for r in range(3)]
    assert chroma[0] < 1 and chroma[1] > 2 and chroma[2] > 2  # first frame: grey, then in colour in each version
    assert "wrote 2 versions of 6 frames" in out
    assert not [p for p in (tmp_path / "OUT").iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]


@pytest.mark.parametrize("name,made", [("c.mkv", "c_1.mkv"), ("c.webm", "c_1.webm"), ("c.avi", "c_1.avi"),
                                       ("c.mov", "c_1.mov"), ("c.gif", "c_1.mp4")])
def test_containers(name, made, tmp_path, capsys):
    src = make_clip(tmp_path / name, frames=4)
    code, _, err = _colorize(src, tmp_path / "OUT", capsys)
    assert code == 0, err
    frames, _, _ = read_clip(tmp_path / "OUT" / made)
    assert len(frames) == 4 and frames[0].shape == (32, 48, 3)


def test_folder_of_numbered_frames(tmp_path, capsys):
    folder = tmp_path / "reel"
    folder.mkdir()
    for i in (1, 2, 10):  # numeric order, not name order
        Image.fromarray(frame(i, 40, 24)).save(folder / f"f_{i}.png")
    code, _, err = _colorize(folder, tmp_path / "OUT", capsys, "--frames", "--fps", "12")
    assert code == 0, err
    for j in (1, 2):
        names = sorted(p.name for p in (tmp_path / "OUT" / f"reel_{j}").iterdir())
        assert names == ["f_1.png", "f_10.png", "f_2.png"]
        assert Image.open(tmp_path / "OUT" / f"reel_{j}" / "f_10.png").size == (40, 24)
    code, _, err = run_cli(["colorize", str(folder / "f_1.png"), "--fps", "12", "--out", str(tmp_path / "x")], capsys)
    one_line_error(code, err, "--fps is for a folder of frames")


def test_library_iterates_frames_of_every_version(tmp_path):
    src = make_clip(tmp_path / "clip.mp4", frames=5)
    clip = colorkit.load().colorize_video(src, k=3)
    frames = list(clip)
    assert [f.index for f in frames] == list(range(5))
    assert all(len(f.versions) == 3 and f.versions[2].shape == (32, 48, 3) for f in frames)
    assert clip.timings.frames == 5
    again = [f.versions[1] for f in clip]  # iterating again gives the same clip
    assert all(np.array_equal(a, f.versions[1]) for a, f in zip(again, frames))
    with VideoWriter(tmp_path / "v2.mp4", width=48, height=32, fps=clip.info.fps, time_base=clip.info.time_base) as w:
        for f in frames:
            w.write(f.versions[1], f.pts)
    assert len(read_clip(tmp_path / "v2.mp4")[0]) == 5


def _no_outputs(out):
    return not out.exists() or not [p for p in out.iterdir() if p.name.startswith("bad_")]


@pytest.mark.parametrize("kind,needle", [
    ("not-a-video", "not a video file, or a damaged one"),
    ("empty", "the file is empty"),
    ("no-video-track", "it has no video track"),
    ("zero-frames", "it has no video track (or only an empty one)"),  # FFmpeg drops a track without samples
    ("zero-frames-mkv", "not a video file, or a damaged one"),
    ("truncated-mp4", "not a video file, or a damaged one"),
])
def test_bad_clip_is_a_one_line_error(kind, needle, tmp_path, capsys):
    src = tmp_path / "bad_clip.mp4"
    if kind == "not-a-video":
        src.write_text("this is not a video\n" * 50)
    elif kind == "empty":
        src.write_bytes(b"")
    elif kind == "no-video-track":
        make_clip(src, video=False, audio=True)
    elif kind == "zero-frames":
        make_clip(src, frames=0)
    elif kind == "zero-frames-mkv":
        src = make_clip(tmp_path / "bad_clip.mkv", frames=0)
    else:  # an mp4 cut short loses its index (written at the end)
        make_clip(tmp_path / "whole.mp4", frames=12)
        data = (tmp_path / "whole.mp4").read_bytes()
        src.write_bytes(data[: len(data) // 2])
    code, _, err = _colorize(src, tmp_path / "OUT", capsys)
    one_line_error(code, err, needle)
    assert _no_outputs(tmp_path / "OUT")


def test_truncated_stream_gives_the_frames_it_has(tmp_path, capsys):
    make_clip(tmp_path / "whole.mkv", frames=150, width=64, height=48)  # more than one Matroska cluster
    data = (tmp_path / "whole.mkv").read_bytes()
    src = tmp_path / "cut.mkv"
    src.write_bytes(data[: int(len(data) * 0.6)])
    code, out, err = _colorize(src, tmp_path / "OUT", capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "OUT" / "cut_colorize.json").read_text())
    frames, _, _ = read_clip(tmp_path / "OUT" / "cut_1.mkv")
    assert 40 < len(frames) == record["frames"] < 150


def test_rotation_odd_size_ten_bit_and_variable_rate(tmp_path, capsys):
    rot = make_clip(tmp_path / "rot.mp4", width=48, height=32, rotation=-90)  # shown turned a quarter clockwise
    odd = make_clip(tmp_path / "odd.mp4", width=33, height=21, pix_fmt="yuv444p")
    deep = make_clip(tmp_path / "deep.mp4", pix_fmt="yuv420p10le")
    vfr = make_clip(tmp_path / "vfr.mkv", frames=6, time_base=Fraction(1, 1000), pts=[0, 40, 100, 120, 200, 330])
    for src in (rot, odd, deep, vfr):
        code, _, err = _colorize(src, tmp_path / "OUT", capsys)
        assert code == 0, err
    frames, _, _ = read_clip(tmp_path / "OUT" / "rot_1.mp4")
    assert frames[0].shape == (48, 32, 3) and probe(tmp_path / "OUT" / "rot_1.mp4").rotation == 0
    # the moving square starts at the top left, so it is at the top right once turned clockwise
    rows, cols = np.nonzero(_grey_l(frames[0]) > 80)  # the square (L about 88; the gradient stays below 70)
    assert rows.size > 30 and rows.mean() < 12 and cols.mean() > 20
    assert read_clip(tmp_path / "OUT" / "odd_1.mp4")[0][0].shape == (21, 33, 3)
    assert read_clip(tmp_path / "OUT" / "deep_1.mp4")[0][0].shape == (32, 48, 3)
    assert read_clip(tmp_path / "OUT" / "vfr_1.mkv")[1] == pytest.approx([0, 0.04, 0.1, 0.12, 0.2, 0.33])


def test_interrupted_run_leaves_no_partial_file_and_rerun_makes_only_what_is_missing(tmp_path, capsys, monkeypatch):
    src = make_clip(tmp_path / "clip.mp4", frames=6)
    out = tmp_path / "OUT"
    real_write, calls = VideoWriter.write, []

    def failing_write(self, rgb, pts=None):
        calls.append(pts)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_write(self, rgb, pts)

    monkeypatch.setattr(VideoWriter, "write", failing_write)
    code, _, _ = _colorize(src, out, capsys)
    assert code == 130
    assert sorted(p.name for p in out.iterdir()) == [".lock", "clip_colorize.json"]
    monkeypatch.setattr(VideoWriter, "write", real_write)
    code, _, err = _colorize(src, out, capsys)
    assert code == 0, err
    first = (out / "clip_1.mp4").stat().st_mtime_ns
    (out / "clip_2.mp4").unlink()
    code, _, err = _colorize(src, out, capsys)
    assert code == 0, err
    record = json.loads((out / "clip_colorize.json").read_text())
    assert record["made"] == ["clip_2.mp4"] and (out / "clip_1.mp4").stat().st_mtime_ns == first
    code, _, err = _colorize(src, out, capsys, "--seed", "1")
    one_line_error(code, err, "made with other settings (seed 0 -> 1)")


def test_without_pyav_the_error_names_the_extra(tmp_path, capsys, monkeypatch):
    src = make_clip(tmp_path / "clip.mp4", frames=2)
    monkeypatch.setitem(sys.modules, "av", None)
    code, _, err = _colorize(src, tmp_path / "OUT", capsys)
    one_line_error(code, err, "pip install 'colorkit[video]'")


def test_fast_composition_matches_the_image_path():
    from colorkit.data.compose import compose_frame, frame_lightness
    from colorkit.inference.photo import compose_colorizations

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    ab = 0.4 * torch.randn(3, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = [np.asarray(o).astype(int) for o in compose_colorizations(Image.fromarray(rgb), ab)]
    fast = compose_frame(frame_lightness(rgb), ab)
    assert max(int(np.abs(a - b).max()) for a, b in zip(ref, fast)) <= 1
    assert [np.array_equal(a, b) for a, b in zip(compose_frame(frame_lightness(rgb), ab, [2]), fast[2:])] == [True]
