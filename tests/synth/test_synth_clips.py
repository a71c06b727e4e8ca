"""Synthetic clips with a known answer: the generator, the clip metrics and `colorkit bench-video`."""

from __future__ import annotations

import json

import torch
from cli_helpers import run_cli
from colorkit_synth.clips import clip_scores, make_clips

from colorkit.core.sequence import SceneDetector


def _theme_field(clip, g):
    """The clip's frames painted with possible theme ``g`` (its colour on every region)."""
    out = torch.zeros_like(clip.ab)
    colours = torch.tensor(clip.themes[g]["ab"])
    for r in range(colours.shape[0]):
        out += (clip.labels == r)[:, None] * colours[r][None, :, None, None]
    return out


def test_clips_move_pan_and_keep_one_theme():
    clips = make_clips("synth:size=32", 4, 6, seed=1)
    again = make_clips("synth:size=32", 4, 6, seed=1)
    assert all(torch.equal(a.grey, b.grey) for a, b in zip(clips, again))
    for c in clips:
        assert c.grey.shape == (6, 1, 32, 32) and c.ab.shape == (6, 2, 32, 32) and c.labels.shape == (6, 32, 32)
        assert not torch.equal(c.labels[0], c.labels[-1])  # objects move
        bg = (c.labels[0] == 0) & (c.labels[-1] == 0)
        assert (c.grey[0, 0][bg] - c.grey[-1, 0][bg]).abs().mean() > 0.002  # the camera pans
        assert len(SceneDetector().update(c.grey).unique()) == 1  # one shot: no scene cut
        assert c.theme in c.themes[0]["ids"] + sum((g["ids"] for g in c.themes[1:]), [])


def test_clip_metrics_have_known_values():
    clip = make_clips("synth:size=32", 1, 8, seed=0)[0]
    k = len(clip.themes)
    every_theme = torch.stack([_theme_field(clip, g) for g in range(k)], 1)  # (T, k, 2, H, W)
    s = clip_scores(every_theme, clip)
    assert s["theme_consistency"] == 1.0 and s["clip_recall"] == 1.0 and s["flicker"] < 0.01
    # version j switches theme half-way: consistency 0.5, and ab jumps on still pixels
    switched = torch.cat([every_theme[:4], every_theme[4:].roll(1, dims=1)])
    s2 = clip_scores(switched, clip)
    assert s2["theme_consistency"] == 0.5 and s2["flicker"] > 10 * s["flicker"]
    # grey everywhere reproduces no theme; noise adds flicker
    assert clip_scores(torch.zeros_like(every_theme), clip)["clip_recall"] == 0.0
    noisy = every_theme + 0.05 * torch.randn(every_theme.shape, generator=torch.Generator().manual_seed(0))
    assert clip_scores(noisy, clip)["flicker"] > 0.05


def test_bench_video_writes_the_table(tmp_path, capsys):
    out = tmp_path / "bv"
    code, text, err = run_cli(["bench-video", "--methods", "mdn,cgan", "--spec", "synth:n=40,size=32", "--preset",
                               "tiny", "--clips", "3", "--frames", "3", "--k", "2", "--out", str(out), "-q"], capsys)
    assert code == 0, err
    res = json.loads((out / "video-results.json").read_text())
    assert set(res["methods"]) == {"mdn", "cgan"}
    rows = res["methods"]["mdn"]["rows"]
    assert set(rows) == {"per-frame", "sequence", "sequence, no smoothing", "sequence, smoothing 0.8",
                         "sequence, first-frame choice"}
    assert set(res["methods"]["cgan"]["rows"]) == {"per-frame", "sequence"}
    assert len(rows["sequence"]["flicker"]["values"]) == 3
    assert "| mdn | sequence |" in text and (out / "video-results.md").is_file()
    m = res["machine"]  # how fast the machine was, before the work
    assert m["reference_steps_per_s"] > 0 and m["processor"] and m["thread_changes"] == []
    assert (out / "video-results.md").read_text().startswith(f"machine: {m['reference_steps_per_s']} reference steps/s")
