"""``OUT/colorize-photos.json``: the files ``colorkit colorize photo.jpg ... --out OUT``
made in OUT. A later run replaces only those; any other file in OUT (the user's own
``p1_1.png`` or ``grid.png``, a link) is never replaced: the new outputs take the next
free name (``p1-2_1.png``, ``grid-2.png``), as in a folder run."""

from __future__ import annotations

import json
import os
from pathlib import Path

from colorkit.core.fs import atomic_write_text
from colorkit.core.registry import ColorkitError
from colorkit.core.regular import read_json

PHOTOS_RECORD = "colorize-photos.json"
FORMAT = "colorkit-colorize-photos-v1"


class MadeFiles:
    """The names (relative to ``out``) of the files colorkit made there for single photos."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = self.out / PHOTOS_RECORD
        self.made: set[str] = set()
        if not os.path.lexists(self.path):
            return
        try:
            rec = read_json(self.path)
            if rec["format"] != FORMAT or not all(isinstance(n, str) for n in rec["made"]):
                raise ValueError("not this record")
            self.made = set(rec["made"])
        except (OSError, ValueError, KeyError, TypeError):
            raise ColorkitError(f"{self.path} is not colorkit's record of the photos it colorized into {self.out}; "
                                "choose another --out") from None

    def free(self, names: list[str]) -> bool:
        """Whether colorkit may write ``names``: each is absent or made by colorkit."""
        return all(n in self.made or not os.path.lexists(self.out / n) for n in names)

    def free_name(self, stem: str, suffix: str) -> str:
        """``stem + suffix``, or ``stem-2 + suffix``, ... : the first name colorkit may write."""
        n = 1
        while not self.free([name := f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}"]):
            n += 1
        return name

    def add(self, names: list[str]) -> None:
        """Record ``names`` as made by colorkit (after they are written)."""
        self.made.update(names)
        atomic_write_text(self.path, json.dumps({"format": FORMAT, "made": sorted(self.made)}, indent=1))
