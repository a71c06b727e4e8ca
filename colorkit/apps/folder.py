"""Colorizing a whole folder (or a glob) of photos: ``colorkit colorize DIR --out OUT``.

Every image under the folder (recursively; the extensions of ``colorkit data info`` and
GIF) or matched by the glob gets ``k`` colorizations at its own resolution, written as
``OUT/<relative folder>/<stem>_<i>.png``. Files that cannot be read are skipped and
counted per reason (the reasons of ``colorkit data info``: ``empty-file``,
``not-an-image``, ``corrupt-or-truncated``, ``too-large``, ``unsupported-mode``); folders
that cannot be listed are reported; grey photos are what colorize is for, so they are
never skipped.

Outputs stay inside OUT and never replace another input's: a glob's relative paths never
climb out of its base folder, every output path is resolved (symlinks included) and
checked to lie inside OUT before anything is written, and the names are injective (two
photos whose names differ only in case or suffix, or a photo whose name another run's
photo already took, are named apart, and the summary says so). A file in OUT that no
colorize run recorded is never replaced.

Resume: every output is written atomically (a temporary file beside it, then a rename),
so a file under its final name is always whole. ``OUT/colorize-inputs.jsonl`` records,
per photo, its resolved path, content sha256 and outputs (before the first output is
written and again when all are). A photo is done when that record says so, its outputs
exist and its content is unchanged; a photo replaced since (same name, another content)
is made again. ``OUT/colorize.json`` records the model (its weights' sha256), k, mode and
seed: a rerun with other settings into the same OUT is refused rather than mixing outputs
of two models.

Throughput: images are decoded in threads, the model samples a batch of images at once,
and PNGs are encoded and written in threads while the next colorization is composed.
Memory is bounded by ``batch_pixels`` (decoded photos of one batch, and colorizations
waiting to be written), whatever the folder's size.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import threading
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

FORMAT = "colorkit-colorize-v2"
MANIFEST = "colorize.json"
JOURNAL = "colorize-inputs.jsonl"
COLORIZE_EXTENSIONS = (*IMAGE_EXTENSIONS, ".gif")
"""Extensions colorized in a folder: those of ``colorkit data info`` and GIF (its first frame, as
for a GIF given alone)."""
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
    rel: str  # relative POSIX path of the source, from the folder / the glob's base (never with "..")


@dataclass
class Sources:
    """What :func:`find_sources` found: the base folder, the images, the folders that
    could not be read (relative path -> error) and how many images lay inside OUT."""

    base: Path
    items: list[Item]
    unreadable: dict[str, str]
    inside_out: int = 0


def _real(p: str | Path) -> str:
    """The path with every symlink resolved; never raises (a symlink loop stays as it is)."""
    return os.path.realpath(p)


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` (symlinks resolved) is ``folder`` or lies below it."""
    p, f = _real(path), _real(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def find_sources(arg: str, out: Path) -> Sources:
    """The folder (or the glob's fixed leading folder) and the images it names, sorted;
    anything inside ``out`` is left out (an OUT inside the folder is not colorized again).
    A glob's base is the deepest folder holding every match, so that relative paths never
    climb out of it (``a/*/../../c/*.jpg`` gives ``c/x.jpg``)."""
    arg = os.path.expanduser(arg)  # a quoted glob keeps its ~
    unreadable: dict[str, str] = {}
    if Path(arg).is_dir():
        base = Path(arg)
        if _real(base) == _real(out):
            raise ColorkitError(f"--out {out} is the folder being colorized; choose another folder (one inside it "
                                "is fine: it is left out)")

        def onerror(exc: OSError) -> None:
            where = Path(exc.filename or base)
            try:
                rel = where.relative_to(base).as_posix()
            except ValueError:
                rel = str(where)
            if not is_inside(where, out):
                unreadable[rel] = exc.strerror or str(exc)

        rels = find_images(base, COLORIZE_EXTENSIONS, onerror=onerror)
        found = [Item(base / r, r) for r in rels]
    else:
        fixed = []
        for part in Path(arg).parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        fixed_abs = os.path.normpath(os.path.abspath(Path(*fixed) if fixed else "."))
        matched = [m for m in sorted(glob.glob(arg, recursive=True)) if os.path.isfile(m)]
        absolute = [os.path.normpath(os.path.abspath(m)) for m in matched]
        base_abs = os.path.commonpath([fixed_abs] + [os.path.dirname(a) for a in absolute])
        base = Path(*fixed) if base_abs == fixed_abs and fixed else Path(base_abs)
        found = sorted((Item(Path(m), Path(os.path.relpath(a, base_abs)).as_posix())
                        for m, a in zip(matched, absolute)), key=lambda it: it.rel)
    items = [it for it in found if not is_inside(it.path, out)]
    what = "folder" if Path(arg).is_dir() else "pattern"
    if not items and found:
        raise ColorkitError(f"no image files in {what} {arg} outside --out {out}: the {len(found)} found all lie "
                            "inside --out, whose files are never colorized again; choose an --out outside the "
                            "folder or colorize another folder")
    if not items and not unreadable:
        exts = ", ".join(COLORIZE_EXTENSIONS)
        raise ColorkitError(f"no image files in {what} {arg} (looked for {exts}, in subfolders too)")
    if not items:
        rel, err = next(iter(unreadable.items()))
        raise ColorkitError(f"no image files could be read in {what} {arg}: {len(unreadable)} folder(s) cannot be "
                            f"read (e.g. {rel}: {err})")
    return Sources(base, items, unreadable, len(found) - len(items))


def assign_stems(rels: list[str], k: int, free: Any = None) -> list[tuple[str, list[str]]]:
    """``(stem, outputs)`` for each relative path in ``rels`` (in order; the same path may
    come twice): outputs ``dir/stem_<i>.png``, ``i`` from 1 to ``k``. The mapping is
    injective, also where names differ only in case: paths sharing a stem in one folder
    (``a.jpg``, ``a.png``, ``A.JPG``) get ``stem-ext``, then ``stem-ext-2``, ... until no
    other path takes the name. ``free(index, outputs)`` may refuse a candidate (an output
    that belongs to another input); the next suffix is tried."""

    def key(parent: str, stem: str) -> tuple[str, str]:
        return parent.casefold(), stem.casefold()

    paths = [Path(r) for r in rels]
    groups = Counter(key(str(r.parent), r.stem) for r in paths)
    shared = [groups[key(str(r.parent), r.stem)] > 1 for r in paths]
    used: set[tuple[str, str]] = set()
    result: list[tuple[str, list[str]] | None] = [None] * len(rels)
    # Paths whose stem is unique in their folder first: they keep it whatever sorts before them.
    for j in sorted(range(len(rels)), key=lambda j: (shared[j], rels[j], j)):
        rel = paths[j]
        first = f"{rel.stem}-{rel.suffix.lstrip('.').lower()}" if shared[j] else rel.stem
        for n in range(1, 1_000_000):
            stem = first if n == 1 else f"{first}-{n}"
            if key(str(rel.parent), stem) in used:
                continue
            outs = [(rel.parent / f"{stem}_{i + 1}.png").as_posix() for i in range(k)]
            if free is None or free(j, outs):
                break
        used.add(key(str(rel.parent), stem))
        result[j] = (stem, outs)
    return [r for r in result if r is not None]


def output_names(items: list[Item], k: int, free: Any = None) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``(names, renamed)``: the relative output paths per source (see :func:`assign_stems`;
    ``free(item, outputs)``) and the stem of each source named apart from its own."""
    check = None if free is None else (lambda j, outs: free(items[j], outs))
    assigned = assign_stems([it.rel for it in items], k, check)
    names = {it.rel: outs for it, (_, outs) in zip(items, assigned)}
    renamed = {it.rel: stem for it, (stem, _) in zip(items, assigned) if stem != Path(it.rel).stem}
    return names, renamed


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
        old_format = old["format"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ColorkitError(f"{path} is not a colorkit colorize record; choose another --out") from None
    if old_format != FORMAT:
        raise ColorkitError(f"{out} holds colorizations recorded by another colorkit version ({old_format!r}, "
                            f"not {FORMAT!r}); choose another --out")
    if old_settings != settings:
        diff = ", ".join(f"{key} {old_settings.get(key)!r} -> {settings[key]!r}" for key in settings
                         if old_settings.get(key) != settings[key])
        raise ColorkitError(f"{out} holds colorizations made with other settings ({diff}); rerun with the same "
                            "model, --k, --mode and --seed to resume, or choose another --out")


def _stat_key(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a file's bytes, or ``None`` when it cannot be read."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


class Journal:
    """``OUT/colorize-inputs.jsonl``: one line per photo when its outputs are about to be
    written (``"done": false``) and one when all are written (``"done": true``), each with
    the photo's resolved path, sha256 and file status. An output belongs to the input whose
    line names it; a photo is done when its last line says so, its outputs exist and its
    content is the one recorded."""

    def __init__(self, out: Path) -> None:
        self.path = out / JOURNAL
        self.last: dict[str, dict[str, Any]] = {}  # source -> its last entry
        self.owner: dict[str, str] = {}  # output -> source that wrote (or was writing) it
        self._lock = threading.Lock()
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        except OSError as exc:
            raise ColorkitError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        for line in lines:
            try:
                e = json.loads(line)
                src, outs = e["source"], e["outputs"]
            except (ValueError, KeyError, TypeError, RecursionError):
                continue  # a line cut short by a kill
            if not isinstance(src, str) or not isinstance(outs, list):
                continue
            self.last[src] = e
            for o in outs:
                if isinstance(o, str):
                    self.owner[o] = src
        self._fh: Any = None

    def done(self, source: str, outputs: list[str], out: Path, path: Path) -> bool:
        e = self.last.get(source)
        if not e or not e.get("done") or e.get("outputs") != outputs:
            return False
        if not all((out / n).is_file() for n in outputs):
            return False
        if e.get("stat") == _stat_key(path):
            return True
        return e.get("sha256") is not None and file_sha256(path) == e.get("sha256")

    def free(self, source: str, outputs: list[str], out: Path) -> bool:
        """Whether ``source`` may write ``outputs``: each is absent or its own."""
        for o in outputs:
            owner = self.owner.get(o)
            if owner is not None and owner != source:
                return False
            if owner is None and os.path.lexists(out / o):
                return False  # a file this OUT's record does not account for: never replaced
        return True

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            if self._fh is None:
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._fh.write(json.dumps(entry, sort_keys=True) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            for o in entry["outputs"]:
                self.owner[o] = entry["source"]

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


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


def check_inside(out: Path, names: dict[str, list[str]]) -> None:
    """Every output path, symlinks resolved, lies inside ``out``; else a one-line error
    before anything is written."""
    for outs in names.values():
        for n in outs:
            if Path(n).is_absolute() or ".." in Path(n).parts or not is_inside(out / n, out):
                raise ColorkitError(f"output {n} would lie outside --out {out} (a folder inside it is a link to "
                                    "elsewhere?); nothing was written")


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
    found = find_sources(arg, out)
    base, items = found.base, found.items
    settings = _settings(colorizer, k, mode, seed)
    # The model accepts k and mode (e.g. topk gives at most 8): checked before anything is written.
    colorizer.sample(torch.zeros(1, 1, colorizer.size, colorizer.size), k, mode=mode, seed=seed)
    with lock_dir(out):
        _check_manifest(out, settings)
        _clean_temporaries(out)
        journal = Journal(out)
        sources = {it.rel: _real(it.path) for it in items}
        names, renamed = output_names(items, k, lambda it, outs: journal.free(sources[it.rel], outs, out))
        check_inside(out, names)
        try:
            todo = [it for it in items if not journal.done(sources[it.rel], names[it.rel], out, it.path)]
            done_before = len(items) - len(todo)
            record = {"format": FORMAT, "settings": settings, "model": colorizer.label, "source": str(arg),
                      "outputs": "<relative folder>/<stem>_<i>.png, RGB PNG at the source's own resolution",
                      "units": "8-bit sRGB; the colour is predicted at the model size (ab/128) and upsampled",
                      "complete": False}
            atomic_write_text(out / MANIFEST, json.dumps(record, indent=2, sort_keys=True))
            echo(f"colorizing {len(todo)} images from {base} into {out} ({len(items)} found, {done_before} already "
                 f"done; {colorizer.label}, k={k})")
            t0 = time.perf_counter()
            skipped, made = _run(colorizer, todo, out, names, sources, journal, k=k, mode=mode, seed=seed,
                                 max_pixels=max_pixels, batch_size=batch_size, batch_pixels=batch_pixels,
                                 workers=workers, progress=progress)
        finally:
            journal.close()
        seconds = time.perf_counter() - t0
        counts = dict(sorted(Counter(skipped.values()).items()))
        record.update({
            "complete": True, "found": len(items), "colorized": made, "already_done": done_before,
            "skipped": counts, "skipped_files": dict(sorted(skipped.items())), "seconds": round(seconds, 3),
            "renamed": dict(sorted(renamed.items())),
            "unreadable_folders": dict(sorted(found.unreadable.items())), "inside_out": found.inside_out,
        })
        atomic_write_text(out / MANIFEST, json.dumps(record, indent=2, sort_keys=True))
    return record


def _run(colorizer: Any, todo: list[Item], out: Path, names: dict[str, list[str]], sources: dict[str, str],
         journal: Journal, *, k: int, mode: str | None, seed: int, max_pixels: int | None, batch_size: int,
         batch_pixels: int, workers: int, progress: bool) -> tuple[dict[str, str], int]:
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

    def when_written(entry: dict[str, Any], futures: list[Future]) -> None:
        left = [len(futures)]
        lock = threading.Lock()

        def one(fut: Future) -> None:
            if fut.cancelled() or fut.exception() is not None:
                return
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:  # every output of the photo is under its final name
                journal.add({**entry, "done": True})

        for fut in futures:
            fut.add_done_callback(one)

    def read(it: Item) -> tuple[Photo, list[int] | None, str | None]:
        stat = _stat_key(it.path)
        return read_photo(it.path, max_pixels), stat, file_sha256(it.path)

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
                photos = list(pool.map(read, batch))
                good = []
                for it, (ph, stat, digest) in zip(batch, photos):
                    if ph.image is None:
                        skipped[it.rel] = ph.reason or "corrupt-or-truncated"
                        bar.update(1)
                    else:
                        good.append((it, ph.image, stat, digest))
                if not good:
                    continue
                grey = torch.cat([model_grey(img, colorizer.size) for _, img, _, _ in good])
                ab = colorizer.sample(grey, k, mode=mode, seed=seed).float().cpu()  # (B, k, 2, s, s)
                for j, (it, img, stat, digest) in enumerate(good):
                    n_px = img.width * img.height
                    entry = {"source": sources[it.rel], "sha256": digest, "stat": stat, "outputs": names[it.rel]}
                    journal.add({**entry, "done": False})  # claims the names before the first write
                    futures = []
                    for i, o in enumerate(compose_colorizations(img, ab[j])):
                        drain(max(0, batch_pixels - n_px))
                        fut = pool.submit(_write_png, o, out / names[it.rel][i])
                        futures.append(fut)
                        pending.append((fut, n_px))
                        pending_pixels += n_px
                        del o
                    when_written(entry, futures)
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
    renamed = record.get("renamed") or {}
    if renamed:
        shown = ", ".join(f"{rel} -> {stem}_<i>.png" for rel, stem in list(renamed.items())[:3])
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
    unreadable = record.get("unreadable_folders") or {}
    if unreadable:
        shown = ", ".join(f"{rel} ({err})" for rel, err in list(unreadable.items())[:3])
        lines.append(f"could not read {len(unreadable)} folders, whose photos were not colorized: {shown}; each is "
                     f"listed in {out / MANIFEST}")
    return lines
