"""Colorizing a whole folder (or a glob) of photos: ``colorkit colorize DIR --out OUT``.

Every image under the folder (recursively; the extensions of ``colorkit data info``) or
matched by the glob gets ``k`` colorizations at its own resolution, written as
``OUT/<relative folder>/<stem>_<i>.png``. Files that cannot be read are skipped and
counted per reason (the reasons of ``colorkit data info``: ``empty-file``,
``not-an-image``, ``corrupt-or-truncated``, ``too-large``, ``unsupported-mode``); grey
photos are what colorize is for, so they are never skipped.

Resume: every output is written atomically (a temporary file beside it, then a rename),
so a file under its final name is always whole. An image whose k outputs all exist is
complete and skipped by a rerun; an image cut short is made again. ``OUT/colorize.json``
records the model (its weights' sha256), k, mode and seed: a rerun with other settings
into the same OUT is refused rather than mixing outputs of two models.

Throughput: images are decoded in threads, the model samples a batch of images at once,
and PNGs are encoded and written in threads while the next colorization is composed.
Memory is bounded by ``batch_pixels`` (decoded photos of one batch, and colorizations
waiting to be written), whatever the folder's size.
"""

from __future__ import annotations

import glob
import json
import os
import re
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import torch

from colorkit.core.checkpoint import atomic_write_text, lock_dir
from colorkit.core.registry import ColorkitError
from colorkit.data.imageio import (
    Photo,
    check_k,
    compose_colorizations,
    model_grey,
    photo_header,
    read_photo,
)
from colorkit.data.images import IMAGE_EXTENSIONS, find_images

FORMAT = "colorkit-colorize-v1"
MANIFEST = "colorize.json"
BATCH_PIXELS = 32_000_000
"""Default bound on the pixels of the decoded photos of one batch (and, separately, of
the colorizations waiting to be written): about 20 bytes each."""
_TMP_RE = re.compile(r"^\..+\.png\.[^/]*\.tmp$")  # atomic_write_bytes' temporary files


def is_pattern(arg: str) -> bool:
    """Whether ``arg`` is a folder or a glob pattern (rather than one image file)."""
    arg = os.path.expanduser(arg)
    return Path(arg).is_dir() or (glob.has_magic(arg) and not Path(arg).exists())


@dataclass(frozen=True)
class Item:
    path: Path
    rel: str  # relative POSIX path of the source, from the folder / the glob's base


def find_sources(arg: str, out: Path) -> tuple[Path, list[Item]]:
    """The folder (or the glob's fixed leading folder) and the images it names, sorted;
    anything inside ``out`` is left out (an OUT inside the folder is not colorized again)."""
    arg = os.path.expanduser(arg)  # a quoted glob keeps its ~
    out_abs = out.resolve()

    def outside(p: Path) -> bool:
        r = p.resolve()
        return r != out_abs and out_abs not in r.parents

    if Path(arg).is_dir():
        base = Path(arg)
        if base.resolve() == out_abs:
            raise ColorkitError(f"--out {out} is the folder being colorized; choose another folder (one inside it "
                                "is fine: it is left out)")
        rels = find_images(base)
        items = [Item(base / r, r) for r in rels if outside(base / r)]
    else:
        parts = Path(arg).parts
        fixed = []
        for part in parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        base = Path(*fixed) if fixed else Path(".")
        matched = sorted(glob.glob(arg, recursive=True))
        items = []
        for m in matched:
            p = Path(m)
            if p.is_file() and outside(p):
                items.append(Item(p, Path(os.path.relpath(p, base)).as_posix()))
    if not items:
        what = "folder" if Path(arg).is_dir() else "pattern"
        exts = ", ".join(IMAGE_EXTENSIONS)
        raise ColorkitError(f"no image files in {what} {arg} (looked for {exts}, in subfolders too)")
    return base, items


def output_names(items: list[Item], k: int) -> dict[str, list[str]]:
    """Relative output paths per source: ``dir/stem_<i>.png``; two sources with the same
    stem in one folder (``a.jpg``, ``a.png``) get ``stem-ext_<i>.png`` instead."""
    stems = Counter((str(Path(it.rel).parent), Path(it.rel).stem) for it in items)
    out: dict[str, list[str]] = {}
    for it in items:
        rel = Path(it.rel)
        stem = rel.stem
        if stems[(str(rel.parent), stem)] > 1:
            stem = f"{stem}-{rel.suffix.lstrip('.').lower()}"
        out[it.rel] = [(rel.parent / f"{stem}_{i + 1}.png").as_posix() for i in range(k)]
    return out


def _settings(colorizer: Any, k: int, mode: str | None, seed: int) -> dict[str, Any]:
    sampling = getattr(colorizer, "sampling", None)
    return {"method": colorizer.name, "weights_sha256": colorizer.weights_sha256(), "k": k,
            "mode": mode or (sampling.mode if sampling is not None else None), "seed": seed,
            "options": dict(sampling.options) if sampling is not None else {}}


def _check_manifest(out: Path, settings: dict[str, Any]) -> None:
    path = out / MANIFEST
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
        old_settings = old["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ColorkitError(f"{path} is not a colorkit colorize record; choose another --out") from None
    if old_settings != settings:
        diff = ", ".join(f"{key} {old_settings.get(key)!r} -> {settings[key]!r}" for key in settings
                         if old_settings.get(key) != settings[key])
        raise ColorkitError(f"{out} holds colorizations made with other settings ({diff}); rerun with the same "
                            "model, --k, --mode and --seed to resume, or choose another --out")


def _clean_temporaries(out: Path) -> None:
    """Remove temporary files a killed run left (never a file under a final name)."""
    for dirpath, _dirs, files in os.walk(out):
        for name in files:
            if _TMP_RE.match(name):
                try:
                    os.unlink(os.path.join(dirpath, name))
                except OSError:
                    pass


def _write_png(img: Any, path: Path) -> None:
    from colorkit.core.checkpoint import atomic_write_bytes

    buf = BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def colorize_folder(colorizer: Any, arg: str, out: str | Path, *, k: int = 5, mode: str | None = None,
                    seed: int = 0, max_pixels: int | None = None, batch_size: int = 8,
                    batch_pixels: int = BATCH_PIXELS, workers: int = 2, progress: bool = True,
                    echo: Any = print) -> dict[str, Any]:
    """Colorize every image of folder or glob ``arg`` into ``out`` (see the module
    docstring); returns the summary also written to ``out/colorize.json``."""
    check_k(k)
    if batch_size < 1 or workers < 1 or batch_pixels < 1:
        raise ColorkitError("batch_size, batch_pixels and workers must be at least 1")
    out = Path(out)
    base, items = find_sources(arg, out)
    names = output_names(items, k)
    settings = _settings(colorizer, k, mode, seed)
    # The model accepts k and mode (e.g. topk gives at most 8): checked before anything is written.
    colorizer.sample(torch.zeros(1, 1, colorizer.size, colorizer.size), k, mode=mode, seed=seed)
    with lock_dir(out):
        _check_manifest(out, settings)
        _clean_temporaries(out)
        todo = [it for it in items if not all((out / n).is_file() for n in names[it.rel])]
        done_before = len(items) - len(todo)
        record = {"format": FORMAT, "settings": settings, "model": colorizer.label, "source": str(arg),
                  "outputs": "<relative folder>/<stem>_<i>.png, RGB PNG at the source's own resolution",
                  "units": "8-bit sRGB; the colour is predicted at the model size (ab/128) and upsampled",
                  "complete": False}
        atomic_write_text(out / MANIFEST, json.dumps(record, indent=2, sort_keys=True))
        echo(f"colorizing {len(todo)} images from {base} into {out} ({len(items)} found, {done_before} already done; "
             f"{colorizer.label}, k={k})")
        t0 = time.perf_counter()
        skipped, made = _run(colorizer, todo, out, names, k=k, mode=mode, seed=seed, max_pixels=max_pixels,
                             batch_size=batch_size, batch_pixels=batch_pixels, workers=workers, progress=progress)
        seconds = time.perf_counter() - t0
        counts = dict(sorted(Counter(skipped.values()).items()))
        record.update({
            "complete": True, "found": len(items), "colorized": made, "already_done": done_before,
            "skipped": counts, "skipped_files": dict(sorted(skipped.items())), "seconds": round(seconds, 3),
        })
        atomic_write_text(out / MANIFEST, json.dumps(record, indent=2, sort_keys=True))
    return record


def _run(colorizer: Any, todo: list[Item], out: Path, names: dict[str, list[str]], *, k: int, mode: str | None,
         seed: int, max_pixels: int | None, batch_size: int, batch_pixels: int, workers: int,
         progress: bool) -> tuple[dict[str, str], int]:
    from tqdm import tqdm

    skipped: dict[str, str] = {}
    made = 0
    bar = tqdm(total=len(todo), unit="img", disable=not progress, dynamic_ncols=True)
    pending: list[tuple[Future, int]] = []  # (write, pixels) in submission order
    pending_pixels = 0

    def drain(limit: int) -> None:
        nonlocal pending_pixels
        while pending and pending_pixels > limit:
            fut, px = pending.pop(0)
            fut.result()  # a failed write (a full disk) stops the run here, with its error
            pending_pixels -= px

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="colorkit-io") as pool:
        try:
            pos = 0
            while pos < len(todo):
                # One batch: header sizes first (cheap), so decoded pixels stay under the bound.
                batch: list[Item] = []
                px = 0
                while pos < len(todo) and len(batch) < batch_size:
                    it = todo[pos]
                    head = photo_header(it.path, max_pixels)
                    if isinstance(head, Photo):
                        skipped[it.rel] = head.reason or "corrupt-or-truncated"
                        bar.update(1)
                        pos += 1
                        continue
                    if batch and px + head[0] * head[1] > batch_pixels:
                        break
                    batch.append(it)
                    px += head[0] * head[1]
                    pos += 1
                if not batch:
                    continue
                photos = list(pool.map(lambda it: read_photo(it.path, max_pixels), batch))
                good = []
                for it, ph in zip(batch, photos):
                    if ph.image is None:
                        skipped[it.rel] = ph.reason or "corrupt-or-truncated"
                        bar.update(1)
                    else:
                        good.append((it, ph.image))
                if not good:
                    continue
                grey = torch.cat([model_grey(img, colorizer.size) for _, img in good])
                ab = colorizer.sample(grey, k, mode=mode, seed=seed).float().cpu()  # (B, k, 2, s, s)
                for j, (it, img) in enumerate(good):
                    n_px = img.width * img.height
                    for i, o in enumerate(compose_colorizations(img, ab[j])):
                        drain(max(0, batch_pixels - n_px))
                        pending.append((pool.submit(_write_png, o, out / names[it.rel][i]), n_px))
                        pending_pixels += n_px
                        del o
                    made += 1
                    bar.update(1)
                del photos, good
            drain(-1)
        finally:
            for fut, _ in pending:  # on an error: let started writes finish (each is atomic)
                fut.cancel()
            bar.close()
    return skipped, made


def summary_lines(record: dict[str, Any], out: Path) -> list[str]:
    """What the command prints at the end."""
    k = record["settings"]["k"]
    lines = [f"colorized {record['colorized']} images into {out} ({record['colorized'] * k} PNGs at each photo's own "
             f"size; {record['already_done']} already done; {record['model']}, k={k}; {record['seconds']:.1f} s)"]
    skipped = record["skipped"]
    if skipped:
        n = sum(skipped.values())
        per = ", ".join(f"{reason} {count}" for reason, count in skipped.items())
        lines.append(f"skipped {n} files ({per}); each is listed in {out / MANIFEST}")
    else:
        lines.append("skipped 0 files")
    return lines
