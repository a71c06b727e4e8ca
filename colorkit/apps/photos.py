"""Colorizing photos given one by one into files: ``colorkit colorize photo.jpg ... --out OUT``.

Writes ``OUT/<stem>_<i>.png`` (or ``.jpg`` / ``.webp``, see
:mod:`colorkit.inference.output`) at each photo's own resolution and ``OUT/grid.png`` (grey
| k colorizations per row). Every output and the grid appear together at the end, or (on a
failure) none. A file in OUT that colorkit did not make is never replaced: the outputs take
the next free name (:mod:`colorkit.apps.made`). With colour hints (one photo),
``OUT/<stem>_hints.json`` records the hints used.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from colorkit.apps.folder import MANIFEST
from colorkit.apps.made import MadeFiles
from colorkit.apps.sources import assign_stems
from colorkit.core.fs import atomic_write_text, ensure_writable_dir, staged_files
from colorkit.core.hints import check_hints, hints_to_json
from colorkit.core.images import atomic_write_png
from colorkit.core.registry import ColorkitError
from colorkit.data.imageio import image_size, open_image
from colorkit.inference.grid import grid_row, stack_rows
from colorkit.inference.output import OutputFormat, Writer
from colorkit.inference.photo import THUMB_HEIGHT, colorize_photo, thumbnail

if TYPE_CHECKING:
    from colorkit.core.hints import Hint
    from colorkit.inference.colorizer import Colorizer

HINTS_RECORD = "_hints.json"
"""``OUT/<stem>_hints.json``: the hints a photo was colorized with (the --hints form)."""


def check_photos(images: list[str], out: str | Path, *, hints: list[Hint] | None = None,
                 max_pixels: int | None = None) -> Image.Image | None:
    """What can be refused before the model loads: an OUT holding a folder run's outputs,
    and hints that do not lie inside the one photo (as it is shown, EXIF orientation
    applied). Returns that photo, opened, when there are hints (``None`` otherwise)."""
    out_dir = Path(out)
    if (out_dir / MANIFEST).is_file():  # a folder run's outputs: its record would no longer describe them
        raise ColorkitError(f"{out_dir} holds the outputs of a folder run ({MANIFEST}); choose another --out "
                            "for single photos, or rerun the folder")
    if not hints:
        return None
    first = open_image(images[0], max_pixels)
    check_hints(hints, first.width, first.height, where=str(images[0]))
    return first


def colorize_photos(colorizer: Colorizer, images: list[str], out: str | Path, *, k: int = 5,
                    mode: str | None = None, seed: int = 0, max_pixels: int | None = None,
                    fmt: OutputFormat | None = None, hints: list[Hint] | None = None,
                    first: Image.Image | None = None, echo: Any = print) -> None:
    """Colorize each of ``images`` into ``out`` (see the module docstring). ``hints``: for
    one photo, in its pixels (checked by :func:`check_photos`, which also gives ``first``,
    the photo already opened)."""
    fmt = fmt or OutputFormat()
    out_dir = Path(out)
    if first is None:
        first = check_photos(images, out_dir, hints=hints, max_pixels=max_pixels)
    for p in images:  # fail before writing anything: every header, every size
        image_size(p, max_pixels)
    created = not out_dir.exists()
    ensure_writable_dir(out_dir)
    made = MadeFiles(out_dir)  # a file colorkit did not make here is never replaced: the next free name is taken
    # One name per output, never shared by two photos (a.jpg, a.png, a-jpg.png, A.JPG):
    # distinct also where file names differ only in case.
    assigned = assign_stems([Path(p).name for p in images], k, suffix=fmt.suffix,
                            free=lambda _j, outs: made.free(
                                [*outs, outs[0][: -len(f"_1{fmt.suffix}")] + HINTS_RECORD] if hints else outs))
    grid = made.free_name("grid", ".png")
    try:  # every output and the grid appear together at the end, or (on a failure) none
        with staged_files(out_dir, prefix=".colorize-tmp-") as staging, Writer(fmt) as writer:
            rows = []
            for path, (stem, outs) in zip(images, assigned):
                img = first if first is not None else open_image(path, max_pixels)
                first = None
                _, thumbs = colorize_photo(colorizer, img, writer, [staging / o for o in outs], k=k, mode=mode,
                                           seed=seed, thumb_height=THUMB_HEIGHT, hints=hints)
                if hints:
                    rec = ",\n ".join(json.dumps(h) for h in hints_to_json(hints))  # one hint a line
                    atomic_write_text(staging / f"{stem}{HINTS_RECORD}", f"[{rec}]\n")
                labels = ["grey"] + [f"{colorizer.name} #{i + 1}" for i in range(len(thumbs))]
                rows.append(grid_row(thumbnail(img), thumbs, height=THUMB_HEIGHT, labels=labels))
                del img
            writer.flush()
            atomic_write_png(staging / grid, stack_rows(rows))
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only when empty
        raise
    records = [f"{stem}{HINTS_RECORD}" for stem, _ in assigned]
    made.add([o for _, outs in assigned for o in outs] + [grid] + (records if hints else []))
    if not hints:  # an older run's record of hints would no longer describe these outputs (if colorkit made it)
        for name in records:
            if name in made.made:
                with contextlib.suppress(FileNotFoundError):
                    (out_dir / name).unlink()
    with_hints = (f"; {len(hints)} colour hints, recorded in {out_dir / records[0]}" if hints else "")
    echo(f"wrote {len(images) * k} colorizations ({fmt.describe()}) and {out_dir / grid} "
         f"({colorizer.label}, k={k}{with_hints})")
    apart = [f"{p} -> {stem}_<i>{fmt.suffix}" for p, (stem, _) in zip(images, assigned) if stem != Path(p).stem]
    if apart:
        echo(f"named apart {len(apart)} photos whose outputs would have had another photo's name or a file "
             f"colorkit did not make: {', '.join(apart)}")
