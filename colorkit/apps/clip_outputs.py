"""Where a clip's outputs go in OUT, and which files there are colorkit's own.

A clip's outputs are ``OUT/<stem>_<j><ext>`` (or ``OUT/<stem>_<j>/`` for PNG frames),
``OUT/<stem>_sheet.png`` and the record ``OUT/<stem>_colorize.json``. The record holds the
clip's content sha256 (:func:`colorkit.data.video.content_sha256`) and, for every file
colorkit put under one of these names, its sha256 and file status, recorded before the
file takes its final name. So:

* resume is keyed on the clip's content: the record of another clip (another file of the
  same name, the same file changed since, a ``.mkv`` beside a ``.mp4``) is never resumed;
* a file under an output's name is a done version only when it is the file colorkit
  recorded there (a user's text file ``clip_1.mp4`` is not);
* a file colorkit did not make is never replaced: when ``<stem>``'s names are taken (by
  another clip's record or by files no record accounts for), the clip is named apart as
  ``<stem>-<ext>``, then ``<stem>-<ext>-2``, ... (the first whose names are all free or
  are this clip's);
* the temporary files a killed run left (colorkit's exact pattern for these outputs) are
  removed while the folder's lock is held.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorkit.core.registry import ColorkitError
from colorkit.core.regular import read_json

FORMAT = "colorkit-colorize-video-v2"
_RANDOM = r"[a-z0-9_]{8}"  # the random part of tempfile's names
MAX_NAMED_APART = 1000


def _file_sha256(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


def fingerprint(path: Path) -> dict[str, Any] | None:
    """``{"sha256", "stat"}`` of an output: a file's bytes, or a folder's files (names and
    bytes); ``None`` when it is missing, a link or unreadable."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode):
        digest = _file_sha256(path)
        return None if digest is None else {"sha256": digest, "stat": _stat_key(st)}
    if not stat.S_ISDIR(st.st_mode):
        return None
    h, keys = hashlib.sha256(), []
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
        for e in entries:
            est = e.stat(follow_symlinks=False)
            digest = _file_sha256(Path(e.path)) if stat.S_ISREG(est.st_mode) else "not-a-file"
            if digest is None:
                return None
            h.update(f"{e.name}\0{digest}\n".encode("utf-8", "surrogateescape"))
            keys.append([e.name, *_stat_key(est)])
    except OSError:
        return None
    return {"sha256": h.hexdigest(), "stat": keys}


def _quick_key(path: Path) -> Any:
    """The file status part of :func:`fingerprint`, without reading any file."""
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            return _stat_key(st)
        if stat.S_ISDIR(st.st_mode):
            return [[e.name, *_stat_key(e.stat(follow_symlinks=False))]
                    for e in sorted(os.scandir(path), key=lambda e: e.name)]
    except OSError:
        pass
    return None


def is_recorded(path: Path, entry: Any) -> bool:
    """Whether ``path`` is still the file (or folder) ``entry`` recorded."""
    if not isinstance(entry, dict):
        return False
    quick = _quick_key(path)
    if quick is None:
        return False
    if quick == entry.get("stat"):
        return True
    got = fingerprint(path)
    return got is not None and got["sha256"] == entry.get("sha256")


@dataclass
class Plan:
    """The names a clip's outputs take in ``out`` and what is there already."""

    out: Path
    stem: str
    outputs: list[Path]
    sheet: Path
    record_path: Path
    record: dict[str, Any] | None  # this clip's record in OUT, when one exists
    named_apart: bool = False
    done: list[int] = field(default_factory=list)  # versions already made (recorded, unchanged)
    sheet_done: bool = False


def _names(out: Path, stem: str, k: int, suffix: str | None) -> tuple[list[Path], Path, Path]:
    outs = [out / (f"{stem}_{j + 1}{suffix}" if suffix else f"{stem}_{j + 1}") for j in range(k)]
    return outs, out / f"{stem}_sheet.png", out / f"{stem}_colorize.json"


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        rec = read_json(path)  # a regular file only (a FIFO is never waited on), of bounded size and depth
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("format") == FORMAT else None


def plan_outputs(out: Path, stem: str, tag: str, k: int, suffix: str | None, clip_sha256: str) -> Plan:
    """Choose the stem of a clip's outputs in ``out`` (see the module docstring): ``stem``,
    then ``stem-tag``, ``stem-tag-2``, ...; ``suffix``: the versions' extension (``None``:
    folders of PNG frames). A taken name is never used; a version or sheet under this clip's
    names that is not the file recorded there is a one-line error."""
    for n in range(MAX_NAMED_APART):
        cand = stem if n == 0 else (f"{stem}-{tag}" if n == 1 else f"{stem}-{tag}-{n}")
        outputs, sheet, record_path = _names(out, cand, k, suffix)
        rec = _read_record(record_path) if os.path.lexists(record_path) else None
        if rec is not None and rec.get("clip_sha256") == clip_sha256 and not record_path.is_symlink():
            plan = Plan(out, cand, outputs, sheet, record_path, rec, named_apart=n > 0)
            _check_done(plan, rec)
            return plan
        if rec is None and not any(os.path.lexists(p) for p in (*outputs, sheet, record_path)):
            return Plan(out, cand, outputs, sheet, record_path, None, named_apart=n > 0)
    raise ColorkitError(f"{out} holds files named {stem}_* and {stem}-{tag}_* up to -{MAX_NAMED_APART - 1} that "
                        "are not this clip's; choose another --out")


def _check_done(plan: Plan, rec: dict[str, Any]) -> None:
    files = rec.get("files") if isinstance(rec.get("files"), dict) else {}
    for j, p in enumerate([*plan.outputs, plan.sheet]):
        if not os.path.lexists(p):
            continue
        if not is_recorded(p, files.get(p.name)):
            raise ColorkitError(f"{p} is not the file colorkit made there for this clip (changed or replaced since, "
                                "or never made by colorkit); move it away to have it made again, or choose another "
                                "--out")
        if j < len(plan.outputs):
            plan.done.append(j)
        else:
            plan.sheet_done = True


def remove_temporaries(plan: Plan, suffix: str | None) -> list[str]:
    """Remove what a killed run left of this clip's outputs: the temporary files and
    folders colorkit's atomic writes make beside each name (``.<name>.<8 random>.tmp<ext>``,
    ``<name>.tmp-<8 random>/``), nothing else. Call with the folder's lock held."""
    patterns = [re.compile(rf"^\.{re.escape(p.name)}\.{_RANDOM}\.tmp$") for p in (plan.sheet, plan.record_path)]
    for p in plan.outputs:
        if suffix:
            patterns.append(re.compile(rf"^\.{re.escape(p.name)}\.{_RANDOM}\.tmp{re.escape(suffix)}$"))
        else:
            patterns.append(re.compile(rf"^{re.escape(p.name)}\.tmp-{_RANDOM}$"))
    removed = []
    try:
        entries = list(os.scandir(plan.out))
    except OSError:
        return removed
    for e in entries:
        if not any(rx.match(e.name) for rx in patterns):
            continue
        try:
            mode = e.stat(follow_symlinks=False).st_mode
            if stat.S_ISREG(mode):
                os.unlink(e.path)
            elif stat.S_ISDIR(mode) and not suffix:
                shutil.rmtree(e.path)
            else:
                continue
        except OSError:
            continue
        removed.append(e.name)
    return removed
