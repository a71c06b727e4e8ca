"""``colorkit bench-video``: the known-answer table for clips, and the speed of the pipeline.

Known answer: the methods are trained on the ``synth`` world of a spec (or runs are
reused), then colorize ``--clips`` synthetic clips of that world (:mod:`.clips`: moving
objects, a panning camera, one theme per clip) two ways:

* ``per-frame``: ``sample`` on the frames, in batches of 8 with a generator seeded the same
  for every batch, as a folder of frames is colorized by ``colorkit colorize DIR``;
* ``sequence``: ``sample_sequence`` (the method's sequence sampler, scene cuts from the
  grey histograms), as ``colorkit colorize clip.mp4`` does.

Each clip gets theme consistency, flicker and clip recall (:func:`.clips.clip_scores`);
the table gives their means over clips with 95% bootstrap intervals over clips, and the
flicker ratio per-frame / sequence with its interval. ``--variants`` adds the MDN's
alternatives (no smoothing, stronger smoothing, the first frame's choice).

Speed (``--speed``): a 720p H.264 clip is made and colorized with the bundled demo model
at k=5 through the whole pipeline; the seconds per stage give frames per second for
decode, model, composition and encode.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from colorkit.core.sequence import SceneDetector
from colorkit.core.stages import MAX_SEED
from colorkit.metrics.bootstrap import bootstrap_ci

from .clips import clip_scores, make_clips

METRICS = ("theme_consistency", "flicker", "clip_recall")
MDN_VARIANTS = {
    "sequence, no smoothing": {"sequence_smoothing": 0.0},
    "sequence, smoothing 0.8": {"sequence_smoothing": 0.8},
    "sequence, first-frame choice": {"sequence_choice": "first-frame"},
}


def _per_frame(method: Any, grey: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    outs = [method.sample(grey[i:i + 8], k, generator=torch.Generator().manual_seed(seed))
            for i in range(0, grey.shape[0], 8)]
    return torch.cat(outs)


def _ratio_ci(num: np.ndarray, den: np.ndarray, seed: int = 0, resamples: int = 2000) -> tuple[float, float, float]:
    """mean(num) / mean(den) and its percentile bootstrap interval over clips."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), (resamples, len(num)))
    ratios = num[idx].mean(1) / np.maximum(den[idx].mean(1), 1e-12)
    return float(num.mean() / max(den.mean(), 1e-12)), float(np.quantile(ratios, 0.025)), \
        float(np.quantile(ratios, 0.975))


def score_method(method: Any, clips: list, *, k: int, seed: int, variants: dict[str, dict[str, Any]]) -> dict:
    rows: dict[str, dict[str, list[float]]] = {}

    def add(label: str, versions: torch.Tensor, clip: Any) -> None:
        for key, v in clip_scores(versions, clip).items():
            rows.setdefault(label, {}).setdefault(key, []).append(v)

    cuts = []
    for clip in clips:
        add("per-frame", _per_frame(method, clip.grey, k, seed), clip)
        detector = SceneDetector()
        scenes = detector.update(clip.grey)
        cuts.append(len(detector.cuts))
        add("sequence", method.sample_sequence(clip.grey, k, generator=torch.Generator().manual_seed(seed),
                                               scenes=scenes), clip)
        for label, opts in variants.items():
            old = {name: getattr(method.config, name) for name in opts}
            method.configure_sampling(**opts)
            try:
                add(label, method.sample_sequence(clip.grey, k, generator=torch.Generator().manual_seed(seed),
                                                  scenes=scenes), clip)
            finally:
                method.configure_sampling(**old)
    out: dict[str, Any] = {"false_scene_cuts": int(sum(cuts)), "rows": {}}
    for label, vals in rows.items():
        out["rows"][label] = {key: {"mean": float(np.mean(v)), "ci": list(bootstrap_ci(v, seed=seed)),
                                    "values": [round(x, 6) for x in v]} for key, v in vals.items()}
    pf = np.array(rows["per-frame"]["flicker"])
    for label in rows:
        if label != "per-frame":
            out["rows"][label]["flicker_reduction"] = list(_ratio_ci(pf, np.array(rows[label]["flicker"]), seed))
    return out


def _fmt(cell: dict[str, Any], digits: int = 3) -> str:
    lo, hi = cell["ci"]
    return f"{cell['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def table_markdown(results: dict[str, Any]) -> str:
    lines = [f"Known-answer clips: {results['clips']} clips of {results['frames']} frames, world `{results['spec']}`, "
             f"k={results['k']}; mean [95% bootstrap interval over clips]",
             "",
             "| method | colorized | theme consistency | flicker (ab/128) | flicker reduction (x) | clip recall |",
             "|---|---|---|---|---|---|"]
    for name, res in results["methods"].items():
        for label, row in res["rows"].items():
            red = row.get("flicker_reduction")
            red_s = f"{red[0]:.1f} [{red[1]:.1f}, {red[2]:.1f}]" if red else "1 (reference)"
            lines.append(f"| {name} | {label} | {_fmt(row['theme_consistency'])} | {_fmt(row['flicker'], 4)} | "
                         f"{red_s} | {_fmt(row['clip_recall'])} |")
    lines.append("")
    lines.append("Scene cuts detected inside the clips (each is one shot): "
                 + ", ".join(f"{n} {r['false_scene_cuts']}" for n, r in results["methods"].items()))
    return "\n".join(lines)


def speed(out: Path, *, frames: int = 48, width: int = 1280, height: int = 720, k: int = 5,
          progress: bool = False) -> dict[str, Any]:
    """Colorize a made-up ``width`` x ``height`` clip with the bundled model; fps per stage."""
    import colorkit
    from colorkit.apps.video import colorize_clip
    from colorkit.data.video import VideoWriter

    src = out / "speed-clip.mp4"
    yy, xx = np.mgrid[0:height, 0:width]
    base = (60 + 120 * yy / height).astype(np.float32)
    with VideoWriter(src, width=width, height=height, fps=24) as w:
        for t in range(frames):
            img = base.copy()
            cx = (40 + 12 * t) % width
            img[(xx - cx) ** 2 + (yy - height / 2) ** 2 < (height / 6) ** 2] = 210
            w.write(np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    colorizer = colorkit.load()
    t0 = time.perf_counter()
    rec = colorize_clip(colorizer, src, out / "speed-out", k=k, progress=progress, echo=lambda m: None)
    wall = time.perf_counter() - t0
    st = rec["stage_seconds"]
    n = rec["frames"]
    fps = {stage: n / s if s > 0 else float("inf") for stage, s in st.items()}
    fps["model+compose"] = n / (st["model"] + st["compose"])
    fps["total"] = n / wall
    return {"frames": n, "width": width, "height": height, "k": k, "stage_seconds": st, "fps": fps,
            "cpu_seconds_per_frame": {stage: v / n for stage, v in rec["stage_cpu_seconds"].items()},
            "wall_seconds": wall, "decode_passes": rec["decode_passes"], "threads": torch.get_num_threads(),
            "load_average": os.getloadavg()}


@click.command("bench-video")
@click.option("--methods", default="mdn-skip,mdn,cvae,cgan", show_default=True)
@click.option("--runs", multiple=True, type=click.Path(file_okay=False), help="Reuse these run directories.")
@click.option("--spec", default="synth", show_default=True, help="The synth world (methods train on its images).")
@click.option("--preset", default="small", show_default=True, help="Preset of the methods trained here.")
@click.option("--clips", type=click.IntRange(min=2), default=40, show_default=True)
@click.option("--frames", type=click.IntRange(min=2), default=24, show_default=True)
@click.option("--k", type=click.IntRange(min=1, max=8), default=5, show_default=True)
@click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=0, show_default=True)
@click.option("--variants/--no-variants", default=True, show_default=True,
              help="Also score the MDN's alternatives (smoothing, choice).")
@click.option("--speed/--no-speed", "with_speed", default=False, show_default=True,
              help="Also time the pipeline on a 720p clip with the bundled model (k=5).")
@click.option("--out", default="bench-video-out", show_default=True, type=click.Path(file_okay=False))
@click.option("--quiet", "-q", is_flag=True)
def bench_video(methods, runs, spec, preset, clips, frames, k, seed, variants, with_speed, out, quiet) -> None:
    """Known-answer table for clips (per-frame against sequence colorization) and speed.

    \b
    Writes OUT/video-results.json and OUT/video-results.md and prints the table.
    Example: colorkit bench-video --methods mdn-skip,mdn,cvae,cgan --runs runs/mdn-skip
    """
    import colorkit
    from colorkit.core import loadwatch
    from colorkit.core.fs import atomic_write_text
    from colorkit.core.plugin_manager import registry
    from colorkit.core.registry import ColorkitError
    from colorkit.eval.machine import describe_machine, machine_line, machine_speed
    from colorkit.train.runs import read_run, train

    from .world import parse_spec

    t0 = time.perf_counter()
    names = [m.strip() for m in methods.split(",") if m.strip()]
    if not names:
        raise ColorkitError("no methods given; e.g. --methods mdn-skip,mdn,cvae,cgan")
    if len(set(names)) != len(names):
        raise ColorkitError(f"--methods lists a method twice: {','.join(names)}")
    for name in names:
        registry("method").get(name)  # an unknown name is one line listing the known ones
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_method = {read_run(r)["method"]: r for r in runs}
    size = parse_spec(spec).size
    machine = {**describe_machine(), **machine_speed()}  # before the work, at the run's thread count
    test_clips = make_clips(spec, clips, frames, seed)
    results: dict[str, Any] = {"spec": spec, "clips": clips, "frames": frames, "k": k, "seed": seed,
                               "machine": machine, "threads": loadwatch.own_threads(), "methods": {}}
    watch_mark = loadwatch.mark()
    for name in names:
        run = by_method.get(name)
        if run is None:
            run = out_dir / "runs" / name
            if not (run / "run.json").is_file():
                train(name, dataset=spec, out=run, preset=preset, seed=seed, progress=not quiet, size=size,
                      resume=(run / "train_state").is_dir())
        colorizer = colorkit.load(run, device="cpu")
        if colorizer.size != size:
            raise ColorkitError(f"{run} was trained at {colorizer.size}x{colorizer.size}; the clips of {spec} are "
                                f"{size}x{size}")
        method = colorizer.method
        var = MDN_VARIANTS if variants and hasattr(method.config, "sequence_smoothing") else {}
        t1 = time.perf_counter()
        results["methods"][name] = score_method(method, test_clips, k=k, seed=seed, variants=var)
        results["methods"][name]["score_seconds"] = time.perf_counter() - t1
        results["methods"][name]["run"] = str(run)
        atomic_write_text(out_dir / "video-results.json", json.dumps(results, indent=1))  # so far
    text = machine_line(machine) + ".\n\n" + table_markdown(results)
    if with_speed:
        results["speed"] = speed(out_dir, k=5, progress=not quiet)
        s = results["speed"]
        text += ("\n\nSpeed (bundled model, {width}x{height}, k={k}, {frames} frames, {threads} threads, load "
                 "average {load}): ").format(**s, load=", ".join(f"{v:.2f}" for v in s["load_average"]))
        text += "; ".join(f"{stage} {v:.2f} fps" for stage, v in s["fps"].items())
        text += "; CPU seconds per frame: " + ", ".join(f"{stage} {v:.3f}"
                                                       for stage, v in s["cpu_seconds_per_frame"].items())
    results["load_average_end"] = os.getloadavg()
    machine["thread_changes"] = loadwatch.changes_since(watch_mark)
    results["seconds"] = time.perf_counter() - t0
    atomic_write_text(out_dir / "video-results.json", json.dumps(results, indent=1))
    atomic_write_text(out_dir / "video-results.md", text + "\n")
    click.echo(text)
    click.echo(f"outputs in {out_dir}/; total elapsed {results['seconds']:.1f} s")
