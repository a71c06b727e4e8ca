"""Appending measured rows to ``benchmarks/results/<name>.csv`` (header on first write)."""

from __future__ import annotations

import csv
import datetime as dt
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def append_rows(name: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Append ``rows`` to ``results/<name>.csv``, each prefixed with date and host."""
    out = RESULTS / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["date", "host", *header])
        stamp = [dt.datetime.now().isoformat(timespec="seconds"), platform.node()]
        for row in rows:
            w.writerow([*stamp, *row])
    return out
