"""Which files a folder run colorizes and what their outputs are named.

:func:`find_sources`: every image under a folder (recursively; the extensions of
``colorkit data info`` and GIF) or matched by a glob, relative to the folder or to the
glob's base folder, leaving out anything inside OUT. :func:`assign_stems` /
:func:`output_names`: one name per output, never shared by two photos (also where names
differ only in case or suffix). :func:`check_inside`: every output path, symlinks
resolved, lies inside OUT before anything is written.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colorkit.apps.hintfiles import is_hints_file
from colorkit.core.registry import ColorkitError
from colorkit.data.images import IMAGE_EXTENSIONS, find_images

COLORIZE_EXTENSIONS = (*IMAGE_EXTENSIONS, ".gif")
"""Extensions colorized in a folder: those of ``colorkit data info`` and GIF (its first frame, as
for a GIF given alone)."""


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


def real_path(p: str | Path) -> str:
    """The path with every symlink resolved; never raises (a symlink loop stays as it is)."""
    return os.path.realpath(p)


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` (symlinks resolved) is ``folder`` or lies below it."""
    p, f = real_path(path), real_path(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def find_sources(arg: str, out: Path) -> Sources:
    """The folder (or the glob's fixed leading folder) and the images it names, sorted;
    anything inside ``out`` is left out (an OUT inside the folder is not colorized again).
    A glob's base is the deepest folder holding every match, so that relative paths never
    climb out of it (``a/*/../../c/*.jpg`` gives ``c/x.jpg``). Hints files
    (``NAME.hints.json``) are never taken for images."""
    arg = os.path.expanduser(arg)  # a quoted glob keeps its ~
    unreadable: dict[str, str] = {}
    if Path(arg).is_dir():
        base = Path(arg)
        if real_path(base) == real_path(out):
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
        matched = [m for m in sorted(glob.glob(arg, recursive=True)) if os.path.isfile(m) and not is_hints_file(m)]
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


def assign_stems(rels: list[str], k: int, free: Any = None, suffix: str = ".png") -> list[tuple[str, list[str]]]:
    """``(stem, outputs)`` for each relative path in ``rels`` (in order; the same path may
    come twice): outputs ``dir/stem_<i><suffix>``, ``i`` from 1 to ``k``. The mapping is
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
            outs = [(rel.parent / f"{stem}_{i + 1}{suffix}").as_posix() for i in range(k)]
            if free is None or free(j, outs):
                break
        used.add(key(str(rel.parent), stem))
        result[j] = (stem, outs)
    return [r for r in result if r is not None]


def output_names(items: list[Item], k: int, free: Any = None,
                 suffix: str = ".png") -> tuple[dict[str, list[str]], dict[str, str]]:
    """``(names, renamed)``: the relative output paths per source (see :func:`assign_stems`;
    ``free(item, outputs)``) and the stem of each source named apart from its own."""
    check = None if free is None else (lambda j, outs: free(items[j], outs))
    assigned = assign_stems([it.rel for it in items], k, check, suffix)
    names = {it.rel: outs for it, (_, outs) in zip(items, assigned)}
    renamed = {it.rel: stem for it, (stem, _) in zip(items, assigned) if stem != Path(it.rel).stem}
    return names, renamed


def check_inside(out: Path, names: dict[str, list[str]]) -> None:
    """Every output path, symlinks resolved, lies inside ``out``; else a one-line error
    before anything is written."""
    for outs in names.values():
        for n in outs:
            if Path(n).is_absolute() or ".." in Path(n).parts or not is_inside(out / n, out):
                raise ColorkitError(f"output {n} would lie outside --out {out} (a folder inside it is a link to "
                                    "elsewhere?); nothing was written")
