"""Colorizing a clip into files: ``colorkit colorize clip.mp4 --k 5 --out OUT``.

Writes ``OUT/<stem>_<j>.<ext>`` for j = 1..k (the input's container: ``.mp4``, ``.mov``,
``.mkv``, ``.avi``, ``.webm``; an animated GIF gives ``.mp4``), each at the clip's own
resolution and frame timing with its audio stream copied, or ``OUT/<stem>_<j>/`` with one
PNG per frame (same names) for a folder of numbered frames; and ``OUT/<stem>_sheet.png``,
a contact sheet: a few frames of the clip (columns) in grey and in every version (rows).

All versions come from one pass of the pipeline (:mod:`colorkit.data.video_colorize`).
Each output is written under a temporary name and renamed when complete, so an
interrupted run leaves no half-written file under a final name, and a rerun makes only
the versions that are missing. ``OUT/<stem>_colorize.json`` records the settings (the
weights' sha256, k, mode, seed, sampling options, scene threshold): a rerun with other
settings into the same OUT is refused rather than mixing two models' versions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from colorkit.core.checkpoint import atomic_write_png, atomic_write_text, lock_dir
from colorkit.core.registry import ColorkitError
from colorkit.core.sequence import SCENE_THRESHOLD
from colorkit.data.imageio import stack_rows
from colorkit.data.video import FrameFolderWriter, VideoWriter
from colorkit.data.video_colorize import VideoColorization

FORMAT = "colorkit-colorize-video-v1"
SHEET_FRAMES = 4
"""Frames (columns) of the contact sheet, evenly spread over the clip."""
SHEET_HEIGHT = 96


def output_paths(info: Any, stem: str, out: Path, k: int) -> list[Path]:
    if info.kind == "frames":
        return [out / f"{stem}_{j + 1}" for j in range(k)]
    ext = ".mp4" if info.suffix == ".gif" else info.suffix
    return [out / f"{stem}_{j + 1}{ext}" for j in range(k)]


def _settings(colorizer: Any, clip: VideoColorization) -> dict[str, Any]:
    sampling = getattr(colorizer, "sampling", None)
    return {"method": colorizer.name, "weights_sha256": colorizer.weights_sha256(), "k": clip.k, "mode": clip.mode,
            "seed": clip.seed, "options": dict(sampling.options) if sampling is not None else {},
            "scene_threshold": clip.scene_threshold, "fps": str(clip.info.fps)}


def _check_record(path: Path, settings: dict[str, Any]) -> None:
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ColorkitError(f"{path} is not a colorkit video record; choose another --out") from None
    if old != settings:
        diff = ", ".join(f"{k} {old.get(k)!r} -> {settings[k]!r}" for k in settings if old.get(k) != settings[k])
        raise ColorkitError(f"{path.parent} holds versions of this clip made with other settings ({diff}); rerun with "
                            "the same model, --k, --mode, --seed and options to resume, or choose another --out")


def _sheet_frames(info: Any) -> set[int]:
    n = info.frames
    if not n:  # the header does not say: the first seconds
        rate = max(1, round(float(info.fps)))
        return {0, rate, 2 * rate, 4 * rate}
    return {int(round(i * (n - 1) / max(1, SHEET_FRAMES - 1))) for i in range(SHEET_FRAMES)}


def _thumb(rgb: np.ndarray) -> Image.Image:
    img = Image.fromarray(rgb)
    return img.resize((max(1, round(img.width * SHEET_HEIGHT / img.height)), SHEET_HEIGHT),
                      Image.Resampling.LANCZOS, reducing_gap=3.0)


def _row(tiles: list[Image.Image], labels: list[str]) -> Image.Image:
    pad, top = 4, 14
    row = Image.new("RGB", (sum(t.width for t in tiles) + pad * (len(tiles) - 1), SHEET_HEIGHT + top), "white")
    draw = ImageDraw.Draw(row)
    x = 0
    for tile, label in zip(tiles, labels):
        row.paste(tile, (x, top))
        draw.text((x + 2, 1), label, fill=(0, 0, 0))
        x += tile.width + pad
    return row


def contact_sheet(columns: list[tuple[int, Image.Image, list[Image.Image]]], name: str) -> Image.Image:
    """Rows: the grey frames, then version 1..k; columns: the chosen frames."""
    k = len(columns[0][2])
    rows = [_row([c[1].convert("L").convert("RGB") for c in columns], [f"grey, frame {c[0]}" for c in columns])]
    for j in range(k):
        rows.append(_row([c[2][j] for c in columns], [f"{name} #{j + 1}"] + [""] * (len(columns) - 1)))
    return stack_rows(rows)


def colorize_clip(colorizer: Any, source: str | Path, out: str | Path, *, k: int = 5, mode: str | None = None,
                  seed: int = 0, fps: float | None = None, scene_threshold: float | None = SCENE_THRESHOLD,
                  max_pixels: int | None = None, progress: bool = True, echo: Any = print) -> dict[str, Any]:
    """Colorize one clip into ``out`` (see the module docstring); returns the record
    written to ``out/<stem>_colorize.json``."""
    from tqdm import tqdm

    source, out = Path(source), Path(out)
    clip = VideoColorization(colorizer, source, k=k, mode=mode, seed=seed, fps=fps, scene_threshold=scene_threshold,
                             max_pixels=max_pixels)
    info = clip.info
    stem = source.name if info.kind == "frames" else source.stem
    paths = output_paths(info, stem, out, k)
    sheet_path, record_path = out / f"{stem}_sheet.png", out / f"{stem}_colorize.json"
    settings = _settings(colorizer, clip)
    with lock_dir(out):
        _check_record(record_path, settings)
        todo = [j for j, p in enumerate(paths) if not p.exists()]
        if not todo and sheet_path.is_file():
            echo(f"{stem}: all {k} versions are already in {out}")
            return json.loads(record_path.read_text())
        record: dict[str, Any] = {
            "format": FORMAT, "settings": settings, "model": colorizer.label, "source": str(source),
            "outputs": [p.name for p in paths], "sheet": sheet_path.name, "complete": False,
            "clip": {"width": info.width, "height": info.height, "fps": float(info.fps),
                     "frames_in_header": info.frames, "rotation": info.rotation, "audio": info.audio,
                     "codec": info.codec, "pix_fmt": info.pix_fmt}}
        atomic_write_text(record_path, json.dumps(record, indent=2, sort_keys=True))
        echo(f"colorizing {source} ({info.width}x{info.height}, {float(info.fps):.3g} fps, "
             f"{info.frames or 'unknown'} frames) into {out}: versions {', '.join(str(j + 1) for j in todo)} of {k} "
             f"({colorizer.label})")
        clip.versions = todo
        t_start = time.perf_counter()
        writers: dict[int, Any] = {}
        encode = encode_cpu = 0.0
        wanted, columns = _sheet_frames(info), []
        bar = tqdm(total=info.frames, unit="frame", disable=not progress, dynamic_ncols=True)
        try:
            for j in todo:
                writers[j] = FrameFolderWriter(paths[j]) if info.kind == "frames" else VideoWriter(
                    paths[j], width=info.width, height=info.height, fps=info.fps, time_base=info.time_base,
                    audio_from=source if info.audio else None)
            names = [p.stem for p in info.files]
            last = None
            for fr in clip:
                t0, c0 = time.perf_counter(), time.process_time()
                for j in todo:
                    if info.kind == "frames":
                        writers[j].write(fr.versions[j], names[fr.index])
                    else:
                        writers[j].write(fr.versions[j], fr.pts)
                encode += time.perf_counter() - t0
                encode_cpu += time.process_time() - c0
                if fr.index in wanted:
                    columns.append((fr.index, _thumb(fr.rgb), [_thumb(fr.compose(j)) for j in range(k)]))
                last = fr
                bar.update(1)
            if last is not None and len(columns) < min(SHEET_FRAMES, last.index + 1) and last.index not in wanted:
                columns.append((last.index, _thumb(last.rgb), [_thumb(last.compose(j)) for j in range(k)]))
            t0, c0 = time.perf_counter(), time.process_time()
            for j in todo:
                writers[j].close()
            encode += time.perf_counter() - t0
            encode_cpu += time.process_time() - c0
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        finally:
            bar.close()
        atomic_write_png(sheet_path, contact_sheet(columns, colorizer.name))
        t = clip.timings
        record.update({
            "complete": True, "frames": t.frames, "made": [paths[j].name for j in todo],
            "scene_cuts": clip.scene_cuts, "seconds": round(time.perf_counter() - t_start, 3),
            "stage_seconds": {"decode": round(t.decode, 3), "model": round(t.model, 3),
                              "compose": round(t.compose, 3), "encode": round(encode, 3)},
            "stage_cpu_seconds": {**{k: round(v, 3) for k, v in t.cpu.items()}, "encode": round(encode_cpu, 3)},
            "decode_passes": t.passes})
        if info.frames and t.frames < info.frames:
            record["note"] = (f"the header states {info.frames} frames but only {t.frames} could be decoded "
                              "(a truncated or damaged stream); the versions end there")
        atomic_write_text(record_path, json.dumps(record, indent=2, sort_keys=True))
    return record


def summary_lines(record: dict[str, Any], out: Path) -> list[str]:
    s = record["settings"]
    lines = [f"wrote {len(record['made'])} versions of {record['frames']} frames into {out} "
             f"({', '.join(record['made'])}) and {record['sheet']} ({record['model']}, k={s['k']}; "
             f"{len(record['scene_cuts']) + 1} scene(s); {record['seconds']:.1f} s)"]
    if record.get("note"):
        lines.append(f"note: {record['note']}")
    return lines
