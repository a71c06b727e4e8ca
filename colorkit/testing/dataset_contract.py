"""The contract of a registered data set (part of :func:`colorkit.testing.check_component`):
its factory gives an existing path, a well-formed Source or a complete Recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colorkit.testing.errors import fail


def check_dataset_entry(e: Any, what: str) -> None:
    """A data set factory gives an existing path, a Source whose first records are
    well-formed, or a Recipe with a file name, an image count and a split rule. A family
    (name ending in ``:``) is built with its factory's ``example_variant`` when it has one."""
    from itertools import islice

    from colorkit.data.recipes import Recipe
    from colorkit.data.sources import Record, Source

    if e.name.endswith(":"):
        example = getattr(e.factory, "example_variant", None)
        if example is None:
            return
        made = e.factory(variant=example)
    else:
        made = e.factory()
    if isinstance(made, Recipe):
        if not made.filename or made.n_images <= 0 or not isinstance(made.split_rule.get("test_size"), int):
            fail(what, f"recipe {made!r} lacks a file name, an image count or a split rule test_size")
        for value, n in ((made.md5, 32), (made.sha256, 64)):
            if value is not None and (len(value) != n or any(c not in "0123456789abcdef" for c in value)):
                fail(what, f"recipe checksum {value!r} is not {n} lowercase hexadecimal digits")
        return
    if isinstance(made, Source):
        if not isinstance(made.fingerprint(), str):
            fail(what, "Source.fingerprint() did not return a string")
        for rec in islice(made.records(0), 3):
            if not isinstance(rec, Record) or not isinstance(rec.key, str) or (
                    rec.data is None and rec.image is None and rec.path is None and rec.reason is None):
                fail(what, f"Source.records() gave {rec!r}; expected Records with a key and data, image or path")
        return
    p = Path(made)
    if not p.exists():
        fail(what, f"returned {p}, which does not exist")
