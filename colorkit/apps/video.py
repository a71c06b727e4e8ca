"""Colorizing a clip into files: ``colorkit colorize clip.mp4 --k 5 --out OUT``.

Writes ``OUT/<stem>_<j>.<ext>`` for j = 1..k (the input's container: ``.mp4``, ``.mov``,
``.mkv``, ``.avi``, ``.webm``; an animated GIF gives ``.mp4``; ``container=`` chooses
another), each at the clip's own resolution and frame timing with its audio stream copied,
or ``OUT/<stem>_<j>/`` with one PNG per frame (same names; frames whose names differ only
in their extension are named apart) for a folder of numbered frames; and
``OUT/<stem>_sheet.png``, a contact sheet: a few frames of the clip (columns) in grey and in
every version (rows).

All versions come from one pass of the pipeline (:mod:`colorkit.inference.clip`).
Each output is written under a temporary name and renamed when complete, so an
interrupted run leaves no half-written file under a final name, and a rerun makes only
the versions that are missing. ``OUT/<stem>_colorize.json`` records the clip's content
sha256, the settings (the weights' sha256, k, mode, seed, sampling options, scene
threshold, container) and the sha256 of every output: a rerun of the same clip with other
settings into the same OUT is refused rather than mixing two models' versions, and the
outputs never replace a file colorkit did not make (another clip of the same name, the
user's own files: the clip is named apart, see :mod:`colorkit.apps.clip_outputs`).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from colorkit.apps.clip_outputs import FORMAT, fingerprint, plan_outputs, remove_temporaries
from colorkit.apps.sources import assign_stems, real_path
from colorkit.core.fs import atomic_write_bytes, atomic_write_text, lock_dir
from colorkit.core.registry import ColorkitError
from colorkit.core.sequence import SCENE_THRESHOLD
from colorkit.data.video import CONTAINERS, FrameFolderWriter, VideoWriter, check_output, content_sha256
from colorkit.inference.clip import VideoColorization
from colorkit.inference.grid import stack_rows

if TYPE_CHECKING:
    from colorkit.inference.colorizer import Colorizer

SHEET_FRAMES = 4
"""Frames (columns) of the contact sheet, evenly spread over the clip."""
SHEET_HEIGHT = 96


def output_suffix(info: Any, container: str | None = None) -> str | None:
    """The versions' extension (``.mp4``, ...), or ``None`` for folders of PNG frames:
    ``container`` (``mp4``, ``.mkv``, ...) when given, else the clip's own (MP4 for a GIF,
    PNG frames for a folder of frames)."""
    if container is not None:
        suffix = "." + container.lower().lstrip(".")
        if suffix not in CONTAINERS:
            raise ColorkitError(f"--container {container!r}: expected one of "
                                f"{', '.join(c.lstrip('.') for c in CONTAINERS)}")
        return suffix
    if info.kind == "frames":
        return None
    return ".mp4" if info.suffix == ".gif" else info.suffix


def check_clip_output(info: Any, source: Path, out: Path, container: str | None = None) -> str | None:
    """Everything about the outputs that can be refused before the model loads: an OUT
    that is the folder of frames itself, a container that cannot hold the clip's audio.
    Returns :func:`output_suffix`."""
    if info.kind == "frames" and real_path(out) == real_path(source):
        raise ColorkitError(f"--out {out} is the folder of frames being colorized; choose another folder (one "
                            "inside it is fine)")
    suffix = output_suffix(info, container)
    if suffix is not None:
        check_output(suffix, width=info.width, height=info.height, fps=info.fps,
                     audio_from=source if info.audio else None)
    return suffix


def output_paths(info: Any, stem: str, out: Path, k: int, container: str | None = None) -> list[Path]:
    suffix = output_suffix(info, container)
    return [out / f"{stem}_{j + 1}{suffix or ''}" for j in range(k)]


def _settings(colorizer: Colorizer, clip: VideoColorization, suffix: str | None) -> dict[str, Any]:
    return {"method": colorizer.name, "weights_sha256": colorizer.weights_sha256(), "k": clip.k, "mode": clip.mode,
            "seed": clip.seed, "options": dict(colorizer.sampling.options),
            "scene_threshold": clip.scene_threshold, "fps": str(clip.info.fps),
            "container": suffix.lstrip(".") if suffix else "png-frames"}


def _check_settings(path: Path, old: Any, settings: dict[str, Any]) -> None:
    if not isinstance(old, dict):
        raise ColorkitError(f"{path} is not a colorkit video record; choose another --out")
    if old != settings:
        keys = list(settings) + [key for key in old if key not in settings]
        diff = ", ".join(f"{key} {old.get(key)!r} -> {settings.get(key)!r}" for key in keys
                         if old.get(key) != settings.get(key))
        raise ColorkitError(f"{path.parent} holds versions of this clip made with other settings ({diff}); rerun with "
                            "the same model, --k, --mode, --seed, --container and options to resume, or choose "
                            "another --out")


def frame_names(info: Any) -> list[str]:
    """The output name (without ``.png``) of each frame of a folder of frames: its stem,
    or ``stem-ext`` when another frame has the same stem (``f_1.png``, ``f_1.jpg``)."""
    return [stem for stem, _ in assign_stems([p.name for p in info.files], 1)]


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


def colorize_clip(colorizer: Colorizer, source: str | Path, out: str | Path, *, k: int = 5, mode: str | None = None,
                  seed: int = 0, fps: float | None = None, scene_threshold: float | None = SCENE_THRESHOLD,
                  max_pixels: int | None = None, container: str | None = None, progress: bool = True,
                  echo: Any = print) -> dict[str, Any]:
    """Colorize one clip into ``out`` (see the module docstring); returns the record
    written to ``out/<stem>_colorize.json``. ``container``: of the versions (``mp4``,
    ``mov``, ``mkv``, ``webm``, ``avi``; default: see :func:`output_suffix`)."""
    from tqdm import tqdm

    source, out = Path(source), Path(out)
    clip = VideoColorization(colorizer, source, k=k, mode=mode, seed=seed, fps=fps, scene_threshold=scene_threshold,
                             max_pixels=max_pixels)
    info = clip.info
    suffix = check_clip_output(info, source, out, container)
    base = source.name if info.kind == "frames" else source.stem
    tag = "frames" if info.kind == "frames" else source.suffix.lower().lstrip(".")
    settings = _settings(colorizer, clip, suffix)
    digest = content_sha256(info)
    with lock_dir(out):
        plan = plan_outputs(out, base, tag, k, suffix, digest)
        if plan.record is not None:
            _check_settings(plan.record_path, plan.record.get("settings"), settings)
        remove_temporaries(plan, suffix)
        stem, paths, sheet_path, record_path = plan.stem, plan.outputs, plan.sheet, plan.record_path
        if plan.named_apart:
            echo(f"{source}: {out} holds files named {base}_* that are not this clip's (another clip's, or not made by "
                 f"colorkit), which are never replaced; writing {stem}_<j>{suffix or '/'} and {sheet_path.name}")
        todo = [j for j in range(k) if j not in plan.done]
        if not todo and plan.sheet_done and plan.record is not None:
            echo(f"{stem}: all {k} versions are already in {out}")
            return {**plan.record, "already_done": True}
        old_files = plan.record.get("files", {}) if plan.record is not None else {}
        files = {p.name: old_files[p.name] for j, p in enumerate(paths) if j in plan.done}
        record: dict[str, Any] = {
            "format": FORMAT, "settings": settings, "model": colorizer.label, "source": str(source),
            "clip_sha256": digest, "outputs": [p.name for p in paths], "sheet": sheet_path.name, "complete": False,
            "files": files,
            "clip": {"width": info.width, "height": info.height, "fps": float(info.fps),
                     "frames_in_header": info.frames, "rotation": info.rotation, "audio": info.audio,
                     "codec": info.codec, "pix_fmt": info.pix_fmt}}
        if plan.sheet_done:
            record["files"][sheet_path.name] = old_files[sheet_path.name]  # replaced below: recorded as colorkit's

        def save() -> None:
            atomic_write_text(record_path, json.dumps(record, indent=2, sort_keys=True))

        save()
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
                writers[j] = FrameFolderWriter(paths[j]) if suffix is None else VideoWriter(
                    paths[j], width=info.width, height=info.height, fps=info.fps, time_base=info.time_base,
                    audio_from=source if info.audio else None)
            names = frame_names(info) if suffix is None else []
            last = None
            for fr in clip:
                t0, c0 = time.perf_counter(), time.process_time()
                for j in todo:
                    if suffix is None:
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
            for j in todo:  # each output's sha256 is recorded before it takes its final name
                record["files"][paths[j].name] = fingerprint(writers[j].finish())
                save()
                writers[j].close()
            encode += time.perf_counter() - t0
            encode_cpu += time.process_time() - c0
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        finally:
            bar.close()
        buf = io.BytesIO()
        contact_sheet(columns, colorizer.name).save(buf, format="PNG")
        sheet_bytes = buf.getvalue()
        record["files"][sheet_path.name] = {"sha256": hashlib.sha256(sheet_bytes).hexdigest(), "stat": None}
        save()
        atomic_write_bytes(sheet_path, sheet_bytes)
        record["files"][sheet_path.name] = fingerprint(sheet_path)
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
        save()
    return record


def summary_lines(record: dict[str, Any], out: Path) -> list[str]:
    s = record["settings"]
    lines = [f"wrote {len(record['made'])} versions of {record['frames']} frames into {out} "
             f"({', '.join(record['made'])}) and {record['sheet']} ({record['model']}, k={s['k']}; "
             f"{len(record['scene_cuts']) + 1} scene(s); {record['seconds']:.1f} s)"]
    if record.get("note"):
        lines.append(f"note: {record['note']}")
    return lines
