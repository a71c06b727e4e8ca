"""Colour hints of the photos a command colorizes: ``--hint`` / ``--hints`` for one photo,
and ``NAME.hints.json`` beside a photo ``NAME.jpg`` in a folder run.

A hints file is the JSON form of :mod:`colorkit.core.hints`
(``[{"x": 120, "y": 80, "color": "#3a7a2f"}, ...]``), in the pixels of the photo as it is
shown (after its EXIF orientation). In a folder, ``NAME.hints.json`` gives the hints of
every photo of stem ``NAME`` in the same folder (``NAME.jpg``, ``NAME.png``, ...); the
hints files themselves are never taken for photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colorkit.core.hints import Hint, hints_to_json, load_hints_file, parse_hint

HINTS_SUFFIX = ".hints.json"
"""The ending of a photo's hints file in a folder: ``NAME.hints.json`` beside ``NAME.jpg``."""


def is_hints_file(path: str | Path) -> bool:
    """Whether ``path`` is named like a photo's hints file (``NAME.hints.json``)."""
    return Path(path).name.lower().endswith(HINTS_SUFFIX)


def hints_file_for(photo: str | Path) -> Path:
    """Where the hints of ``photo`` lie: ``NAME.hints.json`` beside ``NAME.<ext>``."""
    p = Path(photo)
    return p.with_name(p.stem + HINTS_SUFFIX)


@dataclass(frozen=True)
class PhotoHints:
    """The hints of one photo of a folder run: ``hints`` (``None``: no hints file),
    ``file`` (the hints file, when there is one) and ``error`` (why the file cannot be used,
    one line; then ``hints`` is ``None``)."""

    hints: list[Hint] | None = None
    file: Path | None = None
    error: str | None = None

    def key(self) -> list[dict[str, Any]] | None:
        """The hints as JSON (what the resume record keeps; ``None`` without hints)."""
        return None if not self.hints else hints_to_json(self.hints)


def read_photo_hints(photo: str | Path) -> PhotoHints:
    """The hints of ``photo`` from its ``NAME.hints.json``, if there is one; a file that
    cannot be read or holds bad hints gives ``error`` (never raises for a bad file)."""
    from colorkit.core.registry import ColorkitError

    f = hints_file_for(photo)
    if not f.exists() and not f.is_symlink():
        return PhotoHints()
    try:
        return PhotoHints(load_hints_file(f), f)
    except ColorkitError as exc:
        return PhotoHints(None, f, str(exc))


def command_line_hints(hint_args: Sequence[str], hints_path: str | None) -> list[Hint]:
    """The hints of ``--hint X,Y,#RRGGBB[,R]`` (each) and ``--hints FILE``, in that order;
    a bad one is a one-line error naming it."""
    hints = [parse_hint(h) for h in hint_args]
    if hints_path is not None:
        hints += load_hints_file(hints_path)
    return hints
