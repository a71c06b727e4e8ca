"""Colorizing a whole folder (or a glob) of photos: ``colorkit colorize DIR --out OUT``.

Every image under the folder (recursively; the extensions of ``colorkit data info`` and
GIF) or matched by the glob gets ``k`` colorizations at its own resolution, written as
``OUT/<relative folder>/<stem>_<i>.png`` (or ``.jpg`` / ``.webp`` with another output
format, see :mod:`colorkit.inference.output`). Files that cannot be read are skipped and
counted per reason (the reasons of ``colorkit data info``: ``empty-file``,
``not-an-image``, ``corrupt-or-truncated``, ``too-large``, ``unsupported-mode``;
``not-a-regular-file`` for a FIFO or a device, which is never opened, and
``symlink-loop``; ``reserved-name`` for photos in a top folder named as a file colorkit
keeps in OUT, such as ``.lock``); folders that cannot be listed are reported; grey photos
are what colorize is for, so they are never skipped.

Colour hints: a file ``NAME.hints.json`` beside a photo ``NAME.jpg`` gives that photo's
hints (see :mod:`colorkit.apps.hintfiles`); a hints file that cannot be read, or whose
hints are bad or lie outside the photo, skips that photo with the reason ``bad-hints``
(the message is kept in ``colorize.json``'s ``hint_errors``). The hints used are recorded
per photo (``colorize.json``'s ``hints`` and the resume record).

Outputs stay inside OUT and never replace another input's: a glob's relative paths never
climb out of its base folder, every output path is resolved (symlinks included) and
checked to lie inside OUT before anything is written, and the names are injective (two
photos whose names differ only in case or suffix, or a photo whose name another run's
photo already took, are named apart, and the summary says so). A file in OUT that no
colorize run recorded is never replaced or removed: the temporary files a killed run left
are removed only when they have the exact name of colorkit's temporary files and belong
to an output the record names. Nothing is written through a symbolic link.

Resume: every output is written atomically (a temporary file beside it, then a rename),
so a file under its final name is always whole. ``OUT/colorize-inputs.jsonl`` records,
per photo, its resolved path, content sha256, hints and outputs (before the first output
is written and again when all are; see :mod:`colorkit.apps.journal`). A photo is done
when that record says so, its outputs exist and its content and hints are unchanged; a
photo replaced since (same name, another content) or whose hints file changed (or
appeared, or was removed) is made again.
``OUT/colorize.json`` records the model (its weights' sha256), k, mode, seed and output
format, and says what each output file is: a rerun with other settings
into the same OUT is refused rather than mixing outputs of two models.

Throughput: the next batch of images is decoded in threads (each photo taken to the
model's input and to its lightness, the decoded image then dropped) while the model
samples the current batch at once; the :class:`~colorkit.inference.output.Writer` composes,
encodes and writes the colorizations in its threads meanwhile. Memory is bounded by
``batch_pixels`` (the photos of each of the two batches in hand, and the colorizations
waiting to be written), whatever k and the folder's size.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from colorkit.apps.hintfiles import PhotoHints, read_photo_hints
from colorkit.apps.journal import JOURNAL, MAX_JOURNAL_BYTES, Journal, file_sha256, stat_key  # noqa: F401 - re-exported
from colorkit.apps.made import PHOTOS_RECORD
from colorkit.apps.sources import (  # noqa: F401 - is_pattern, assign_stems: also reachable from here
    Item,
    assign_stems,
    check_inside,
    find_sources,
    is_pattern,
    output_names,
    real_path,
)
from colorkit.core import loadwatch
from colorkit.core.fs import atomic_write_text, lock_dir, temporary_of
from colorkit.core.hints import check_hints, hint_map
from colorkit.core.registry import ColorkitError
from colorkit.core.regular import read_json
from colorkit.data.compose import Lightness
from colorkit.data.imageio import Photo, model_grey, photo_header, read_photo
from colorkit.inference.output import OutputFormat, Writer, default_workers, when_written
from colorkit.inference.photo import check_k, write_colorizations

if TYPE_CHECKING:
    from colorkit.inference.colorizer import Colorizer

FORMAT = "colorkit-colorize-v2"
MANIFEST = "colorize.json"
BATCH_PIXELS = 32_000_000
"""Default bound on the pixels of the decoded photos of one batch (and, separately, of
the colorizations waiting to be written): about 20 bytes each."""
BAD_HINTS = "bad-hints"
"""The skip reason of a photo whose hints file cannot be used."""
RESERVED = (".lock", MANIFEST, JOURNAL, PHOTOS_RECORD)
"""Names colorkit keeps in OUT: a source's top folder of one of these names is not colorized
(``reserved-name``)."""


def _settings(colorizer: Colorizer, k: int, mode: str | None, seed: int, fmt: OutputFormat) -> dict[str, Any]:
    sampling = colorizer.sampling
    return {"method": colorizer.name, "weights_sha256": colorizer.weights_sha256(), "k": k,
            "mode": mode or sampling.mode, "seed": seed, "options": dict(sampling.options), **fmt.settings()}


def _check_manifest(out: Path, settings: dict[str, Any]) -> None:
    path = out / MANIFEST
    if not os.path.lexists(path):
        return
    try:
        old = read_json(path)  # a regular file, of bounded size and depth
        old_settings = old["settings"]
        old_format = old["format"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable as one"
        raise ColorkitError(f"{path} is not a colorkit colorize record ({why}); choose another --out") from None
    if old_format != FORMAT:
        raise ColorkitError(f"{out} holds colorizations recorded by another colorkit version ({old_format!r}, "
                            f"not {FORMAT!r}); choose another --out")
    if old_settings != settings:
        keys = list(settings) + [key for key in old_settings if key not in settings]
        diff = ", ".join(f"{key} {old_settings.get(key)!r} -> {settings.get(key)!r}" for key in keys
                         if old_settings.get(key) != settings.get(key))
        raise ColorkitError(f"{out} holds colorizations made with other settings ({diff}); rerun with the same "
                            "model, --k, --mode, --seed, --format and --quality to resume, or choose another --out")


def _clean_temporaries(out: Path, journal: Journal) -> None:
    """Remove the temporary files a killed run left: only files with the exact name of an
    atomic write's temporary file (``.NAME.XXXXXXXX.tmp``) whose output ``NAME`` the
    journal records (the lock is held: no other run is writing). A file of the user's,
    whatever its name, is never removed."""
    for dirpath, _dirs, files in os.walk(out):
        rel = Path(dirpath).relative_to(out)
        for name in files:
            final = temporary_of(name)
            if final is not None and (rel / final).as_posix() in journal.owner:
                try:
                    os.unlink(os.path.join(dirpath, name))
                except OSError:
                    pass


def colorize_folder(colorizer: Colorizer, arg: str, out: str | Path, *, k: int = 5, mode: str | None = None,
                    seed: int = 0, max_pixels: int | None = None, batch_size: int = 8,
                    batch_pixels: int = BATCH_PIXELS, fmt: OutputFormat | None = None, workers: int | None = None,
                    progress: bool = True, echo: Any = print) -> dict[str, Any]:
    """Colorize every image of folder or glob ``arg`` into ``out`` (see the module
    docstring); returns the summary also written to ``out/colorize.json``. ``fmt``: the
    output format (PNG by default); ``workers``: decoding and encoding threads (default:
    one per core, 2 to 8). A photo's hints come from ``NAME.hints.json`` beside it."""
    check_k(k)
    fmt = fmt or OutputFormat()
    if batch_size < 1 or (workers is not None and workers < 1) or batch_pixels < 1:
        raise ColorkitError("batch_size, batch_pixels and workers must be at least 1")
    out = Path(out)
    found = find_sources(arg, out)
    base, items = found.base, found.items
    settings = _settings(colorizer, k, mode, seed, fmt)
    # The model accepts k and mode (e.g. topk gives at most 8): checked before anything is written.
    colorizer.sample(torch.zeros(1, 1, colorizer.size, colorizer.size), k, mode=mode, seed=seed)
    reserved = {it.rel: "reserved-name" for it in items
                if "/" in it.rel and it.rel.split("/", 1)[0].casefold() in {r.casefold() for r in RESERVED}}
    items = [it for it in items if it.rel not in reserved]
    with lock_dir(out):
        _check_manifest(out, settings)
        journal = Journal(out)
        _clean_temporaries(out, journal)
        sources = {it.rel: real_path(it.path) for it in items}
        names, renamed = output_names(items, k, lambda it, outs: journal.free(sources[it.rel], outs, out),
                                      fmt.suffix)
        check_inside(out, names)
        hints = {it.rel: read_photo_hints(it.path) for it in items}
        skipped: dict[str, str] = dict(reserved)
        hint_errors = {rel: ph.error for rel, ph in hints.items() if ph.error is not None}
        try:
            todo = [it for it in items if it.rel not in hint_errors
                    and not journal.done(sources[it.rel], names[it.rel], out, it.path, hints[it.rel].key())]
            done_before = len(items) - len(todo) - len(hint_errors)
            record = {"format": FORMAT, "settings": settings, "model": colorizer.label, "source": str(arg),
                      "outputs": f"<relative folder>/<stem>_<i>{fmt.suffix}, {fmt.describe()} at the source's "
                                 "own resolution",
                      "units": "8-bit sRGB; the colour is predicted at the model size (ab/128) and upsampled",
                      "complete": False}
            atomic_write_text(out / MANIFEST, json.dumps(record, indent=2, sort_keys=True))
            echo(f"colorizing {len(todo)} images from {base} into {out} ({len(items)} found, {done_before} already "
                 f"done; {colorizer.label}, k={k})")
            t0 = time.perf_counter()
            skipped.update(dict.fromkeys(hint_errors, BAD_HINTS))
            made = _run(colorizer, todo, out, names, sources, journal, skipped, hints, hint_errors, fmt=fmt, k=k,
                        mode=mode, seed=seed, max_pixels=max_pixels, batch_size=batch_size,
                        batch_pixels=batch_pixels, workers=workers, progress=progress)
        finally:
            journal.close()
        seconds = time.perf_counter() - t0
        used = {rel: {"file": str(ph.file), "hints": ph.key()} for rel, ph in sorted(hints.items())
                if ph.hints and rel not in skipped}
        counts = dict(sorted(Counter(skipped.values()).items()))
        record.update({
            "complete": True, "found": len(items) + len(reserved), "colorized": made, "already_done": done_before,
            "skipped": counts, "skipped_files": dict(sorted(skipped.items())), "seconds": round(seconds, 3),
            "renamed": dict(sorted(renamed.items())),
            "unreadable_folders": dict(sorted(found.unreadable.items())), "inside_out": found.inside_out,
            "hints": used, "hint_errors": dict(sorted(hint_errors.items())),
        })
        atomic_write_text(out / MANIFEST, json.dumps(record, indent=2, sort_keys=True))
    return record


def _batches(todo: list[Item], skipped: dict[str, str], bar: Any, *, max_pixels: int | None, batch_size: int,
             batch_pixels: int) -> Iterator[list[Item]]:
    """``todo`` in batches of at most ``batch_size`` photos and ``batch_pixels`` pixels (by
    their headers, read here: cheap); a file whose header cannot be read is skipped."""
    pos = 0
    while pos < len(todo):
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
        if batch:
            yield batch


def _sample(colorizer: Colorizer, greys: list[torch.Tensor], maps: list[torch.Tensor | None], k: int, mode: str | None,
            seed: int) -> torch.Tensor:
    """The colour fields ``(B, k, 2, s, s)`` of a batch: the photos without hints sampled as
    always (``hints=None``), those with hints together, with their hint maps."""
    ab: list[Any] = [None] * len(greys)
    for with_hints in (False, True):
        group = [j for j, m in enumerate(maps) if (m is not None) == with_hints]
        if group:
            hmaps = torch.cat([maps[j] for j in group]) if with_hints else None
            loadwatch.checkpoint()  # fewer threads while other jobs hold the cores (a no-op without a watch)
            got = colorizer.sample(torch.cat([greys[j] for j in group]), k, mode=mode, seed=seed, hints=hmaps)
            for i, j in enumerate(group):
                ab[j] = got[i].float().cpu()
    return torch.stack(ab)


def _run(colorizer: Colorizer, todo: list[Item], out: Path, names: dict[str, list[str]], sources: dict[str, str],
         journal: Journal, skipped: dict[str, str], hints: dict[str, PhotoHints], hint_errors: dict[str, str], *,
         fmt: OutputFormat, k: int, mode: str | None, seed: int, max_pixels: int | None, batch_size: int,
         batch_pixels: int, workers: int | None, progress: bool) -> int:
    """Colorize ``todo``; the files skipped are added to ``skipped`` (and the messages of
    hints outside their photo to ``hint_errors``). Returns how many were colorized."""
    from tqdm import tqdm

    made = 0
    bar = tqdm(total=len(todo), unit="img", disable=not progress, dynamic_ncols=True)

    def read(it: Item) -> tuple[str | None, Any, list[int] | None, str | None]:
        """A photo's model input, lightness and hint map (the decoded image is not kept),
        or why it could not be read."""
        stat = stat_key(it.path)
        ph = read_photo(it.path, max_pixels)
        if ph.image is None:
            return ph.reason, None, stat, None
        own = hints[it.rel]
        hmap = None
        if own.hints:
            try:
                check_hints(own.hints, ph.image.width, ph.image.height, where=f"hints file {own.file}")
            except ColorkitError as exc:
                hint_errors[it.rel] = str(exc)
                return BAD_HINTS, None, stat, None
            hmap = hint_map(own.hints, ph.image.width, ph.image.height, colorizer.size)
        prepared = (model_grey(ph.image, colorizer.size), Lightness.of(ph.image), hmap)
        return None, prepared, stat, file_sha256(it.path)

    batches = _batches(todo, skipped, bar, max_pixels=max_pixels, batch_size=batch_size, batch_pixels=batch_pixels)
    readers = ThreadPoolExecutor(max_workers=workers or default_workers(), thread_name_prefix="colorkit-read")
    try:
        with readers, Writer(fmt, workers=workers, max_pixels=batch_pixels) as writer:
            batch = next(batches, None)
            reading = [readers.submit(read, it) for it in batch or []]
            while batch is not None:
                photos = [f.result() for f in reading]
                # The next batch is decoded while this one is colorized; the writer's threads
                # compose and write its colorizations meanwhile.
                batch_now, batch = batch, next(batches, None)
                reading = [readers.submit(read, it) for it in batch or []]
                good = []
                for it, (reason, prepared, stat, digest) in zip(batch_now, photos):
                    if prepared is None:
                        skipped[it.rel] = reason or "corrupt-or-truncated"
                        bar.update(1)
                    else:
                        good.append((it, prepared, stat, digest))
                del photos
                if not good:
                    continue
                ab = _sample(colorizer, [p[0] for _, p, _, _ in good], [p[2] for _, p, _, _ in good], k, mode,
                             seed)  # (B, k, 2, s, s)
                for j, (it, (_, light, _), stat, digest) in enumerate(good):
                    entry = {"source": sources[it.rel], "sha256": digest, "stat": stat, "outputs": names[it.rel]}
                    if hints[it.rel].hints:
                        entry["hints"] = hints[it.rel].key()
                    journal.add({**entry, "done": False})  # claims the names before the first write
                    futures, _ = write_colorizations(light, ab[j], writer, [out / n for n in names[it.rel]])
                    when_written(futures, lambda entry=entry: journal.add({**entry, "done": True}))
                    made += 1
                    bar.update(1)
                del good
    finally:
        bar.close()
    return made


def summary_lines(record: dict[str, Any], out: Path) -> list[str]:
    """What the command prints at the end."""
    k = record["settings"]["k"]
    suffix = "." + record["settings"].get("format", "png")
    kind = {".png": "PNGs", ".jpg": "JPEGs", ".webp": "WebPs"}[suffix]
    lines = [f"colorized {record['colorized']} images into {out} ({record['colorized'] * k} {kind} at each photo's own "
             f"size; {record['already_done']} already done; {record['model']}, k={k}; {record['seconds']:.1f} s)"]
    renamed = record.get("renamed") or {}
    if renamed:
        shown = ", ".join(f"{rel} -> {stem}_<i>{suffix}" for rel, stem in list(renamed.items())[:3])
        more = f" and {len(renamed) - 3} more" if len(renamed) > 3 else ""
        lines.append(f"named apart {len(renamed)} photos whose outputs would have had the name of another photo's "
                     f"({shown}{more}); each is listed in {out / MANIFEST}")
    skipped = record["skipped"]
    if skipped:
        n = sum(skipped.values())
        per = ", ".join(f"{reason} {count}" for reason, count in skipped.items())
        lines.append(f"skipped {n} files ({per}); each is listed in {out / MANIFEST}")
    else:
        lines.append("skipped 0 files")
    errors = record.get("hint_errors") or {}
    if errors:
        shown = "; ".join(f"{rel}: {err}" for rel, err in list(errors.items())[:3])
        more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
        lines.append(f"not colorized for bad hints ({len(errors)}): {shown}{more}")
    used = record.get("hints") or {}
    if used:
        lines.append(f"{len(used)} photos colorized with the colour hints of their NAME.hints.json (listed in "
                     f"{out / MANIFEST})")
    unreadable = record.get("unreadable_folders") or {}
    if unreadable:
        shown = ", ".join(f"{rel} ({err})" for rel, err in list(unreadable.items())[:3])
        lines.append(f"could not read {len(unreadable)} folders, whose photos were not colorized: {shown}; each is "
                     f"listed in {out / MANIFEST}")
    return lines
