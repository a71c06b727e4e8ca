#!/usr/bin/env python3
"""Build colorkit's shipped demo data set of real colour photographs.

The demo set lives in ``colorkit/demo_data``::

    colorkit/demo_data/images/<source>/<name>.jpg   short side 128 px, JPEG q85
    colorkit/demo_data/ATTRIBUTION.csv              one row per image
    colorkit/demo_data/README.md                    counts, build notes, licences

Every photo comes from a permissively licensed file that is available offline
through Debian packages (fetched with ``apt-get download``, unpacked with
``dpkg-deb -x`` into a temporary folder) or from wheels already installed
with colorkit's dependencies; nothing else is downloaded.

Sources (output folder: package)
--------------------------------
``gcompris``: ``gcompris-qt-data``
    Photos of animals, monuments, tools, fishes, musicians... stored as WebP
    streams inside Qt resource (``.rcc``) files. ``read_rcc`` parses the rcc
    format (``qres`` header, tree / data / names offsets, zlib or zstd
    compressed entries) and so recovers every file *with its source path*.
    Author/licence come first from the upstream ``README`` files shipped in
    the same rcc next to the images (they describe the WebP files actually
    shipped), else from the matching stanza of the package's DEP-5
    ``copyright`` file (last matching ``Files:`` glob wins; ``.webp`` is also
    tried as ``.jpg``/``.png``... since that file still names the pre-WebP
    originals). Skipped: ``paintings`` and ``babyshapes`` (paintings and
    puzzle cut-outs); of ``details`` only the ``*_background`` pictures whose
    README says they are based on a photo are taken.
``plasma``: ``plasma-workspace-data``
    User avatar photos (Pexels, CC0), licence from the REUSE
    ``<file>.png.license`` side files.
``palapeli``: ``palapeli-data``
    Puzzle photos; licence from each puzzle's ``.desktop`` file. The two GFDL
    ones are skipped (GFDL is not on the allow-list).
``lomiri``: ``lomiri-wallpapers`` and its binary siblings
    ``lomiri-wallpapers-16.04`` / ``-20.04`` (same source package and
    copyright file, which lists a licence per wallpaper). The
    ``lomiri-wallpapers`` package itself only has an abstract wallpaper.
``mate``: ``mate-backgrounds``, per-file licences in its copyright file.
``plasma_wallpapers``: ``plasma-workspace-wallpapers``, licence/author from
    each wallpaper's ``metadata.json``/``metadata.desktop``.
``skimage``: ``skimage.data`` of the installed scikit-image wheel (astronaut,
    chelsea, coffee, rocket, retina...; licences from their docstrings).
``sklearn``: the two sample photos of scikit-learn (``china``, ``flower``),
    CC-BY-2.0 per ``sklearn/datasets/images/README.txt``.

Filtering
---------
1. Licence allow-list: public domain, CC0, CC-BY-*, CC-BY-SA-*, GPL/LGPL,
   Expat/MIT, BSD. Anything else (GFDL, NC/ND, unknown) is skipped, and so
   is a file with no licence information at all.
2. Images whose alpha channel is actually used (sprites/cut-outs) are skipped.
3. Resize with Pillow LANCZOS to short side 128, then keep only images with
   * mean Lab chroma >= ``MIN_CHROMA`` (drops greyscale / near-greyscale),
   * >= ``MIN_UNIQUE`` unique RGB values (drops flat clip-art),
   * <= ``MAX_FLAT`` of pixels in flat areas (all 8 neighbours equal) and
     <= ``MAX_TOP_COLOUR`` of pixels with the single most frequent colour.
4. Near-duplicates: 16x16 Lab thumbnails; an image whose mean absolute
   difference to an already kept one (in sorted order) is below
   ``DUP_THRESHOLD`` is dropped.
5. ``EXCLUDE``: an explicit, hand-reviewed list (from eyeballing the contact
   sheet) of non-photos that pass the statistical filter, each with a reason.

Everything is processed in sorted order, so re-running with the same package
versions (``EXPECTED_VERSIONS``; the script warns on others) and the same
Pillow/libjpeg gives the same files.

Usage::

    python scripts/build_demo_data.py                  # download .debs, build
    python scripts/build_demo_data.py --debs DIR       # reuse downloaded .debs
    python scripts/build_demo_data.py --dry-run --report /tmp/verdicts.csv \\
        --contact-sheet /tmp/sheet.png                  # review candidates

Requires ``apt-get`` (with up-to-date lists: ``apt-get update``) and
``dpkg-deb``, Pillow with WebP support, numpy, scikit-image (and optionally
scikit-learn); ``zstandard`` only if an rcc file uses zstd.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "colorkit" / "demo_data"

PACKAGES = [
    "gcompris-qt-data",
    "plasma-workspace-data",
    "palapeli-data",
    "lomiri-wallpapers",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
]
# Versions the shipped set was built from (Debian 12 "bookworm"). Other
# versions work, but may give a different set; the script warns.
EXPECTED_VERSIONS = {
    "gcompris-qt-data": "3.1-2",
    "plasma-workspace-data": "4:5.27.5-2+deb12u2",
    "palapeli-data": "4:22.12.3-1",
    "lomiri-wallpapers": "20.04.0-2",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "mate-backgrounds": "1.26.0-1",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
}

SHORT_SIDE = 128
JPEG_QUALITY = 85

MIN_CHROMA = 4.0  # mean Lab chroma (sqrt(a^2 + b^2)) at 128 px
MIN_UNIQUE = 2500  # unique RGB triplets at 128 px
MAX_FLAT = 0.50  # fraction of pixels with zero 3x3 gradient
MAX_TOP_COLOUR = 0.30  # fraction covered by the single most frequent colour
MIN_ALPHA_OPAQUE = 0.99  # an RGBA image must be this opaque to count as photo
DUP_THRESHOLD = 4.0  # mean |dLab| of 16x16 thumbnails under which = duplicate

# gcompris activities that are not photographs at all (paintings, renders,
# drawings). Skipped before any statistics are computed.
GCOMPRIS_SKIP_ACTIVITIES = {
    "paintings": "reproductions of paintings, not photographs",
    "babyshapes": "puzzle pieces cut out of paintings and of one dog photo",
}
# The "details" activity shows crops ("details") of a full picture, the
# "<name>_background" file; only those backgrounds whose README entry says
# they are based on a photo are taken (the others are paintings).
GCOMPRIS_DETAILS_PHOTO = re.compile(r"based on (a photo|an original image) by", re.I)
# Typos in upstream README file lists: name in README -> real file name.
GCOMPRIS_README_ALIASES = {
    "src/activities/explore_monuments/resource/germany/audaPalatina.webp": (
        "src/activities/explore_monuments/resource/germany/aulaPalatina.webp"
    ),
}
# path components dropped when building output names
GCOMPRIS_NAME_SKIP = {"resource", "images", "image", "animals", "music"}

# Hand-reviewed exclusions, "<source>/<name>" -> reason: images that pass the
# statistical filter but are not photographs, found by eyeballing the contact
# sheet (--contact-sheet) of everything the filter keeps.
_ABSTRACT = "abstract / digital artwork, not a photograph"
EXCLUDE: dict[str, str] = {
    "gcompris/louis_braille_chart": "braille alphabet chart (flat graphic)",
    "lomiri/analogpattern_by_peter_nerlich": _ABSTRACT,
    "lomiri/fossa_by_jasper_roks": _ABSTRACT,
    "lomiri/greentock_by_peter_nerlich": "3D render of a clock, not a photograph",
    "lomiri/infinite_sea_by_aury88": _ABSTRACT,
    "lomiri/umang_by_abhishek_mudgal": _ABSTRACT,
    "mate/elephants": "painting/illustration, not a photograph",
    "mate/float_into_mate": _ABSTRACT,
    "mate/ubuntu_mate_cold_no_logo": _ABSTRACT,
    "mate/ubuntu_mate_radioactive_no_logo": _ABSTRACT,
    "mate/ubuntu_mate_warm_no_logo": _ABSTRACT,
    "plasma_wallpapers/altai": _ABSTRACT,
    "plasma_wallpapers/autumn": "digital painting, not a photograph",
    "plasma_wallpapers/canopee": _ABSTRACT,
    "plasma_wallpapers/cascade": _ABSTRACT,
    "plasma_wallpapers/cluster": _ABSTRACT,
    "plasma_wallpapers/elarun": _ABSTRACT,
    "plasma_wallpapers/flow": _ABSTRACT,
    "plasma_wallpapers/honeywave": _ABSTRACT,
    "plasma_wallpapers/icecold": _ABSTRACT,
    "plasma_wallpapers/kay": _ABSTRACT,
    "plasma_wallpapers/kokkini": _ABSTRACT,
    "plasma_wallpapers/milkyway": _ABSTRACT,
    "plasma_wallpapers/opal": _ABSTRACT,
    "plasma_wallpapers/pastelhills": _ABSTRACT,
    "plasma_wallpapers/patak": _ABSTRACT,
    "plasma_wallpapers/safelanding": "illustration, not a photograph",
    "plasma_wallpapers/shell": _ABSTRACT,
    "plasma_wallpapers/volna": _ABSTRACT,
}

# skimage.data colour photographs and their licences (from the docstrings of
# skimage.data.<name> in scikit-image 0.26).
SKIMAGE_PHOTOS = {
    "astronaut": (
        "NASA (photo of Eileen Collins)",
        "public-domain",
        "skimage.data.astronaut docstring: NASA Great Images database, "
        "'No known copyright restrictions, released into the public domain' (https://flic.kr/p/r9qvLn)",
    ),
    "chelsea": (
        "Stefan van der Walt",
        "CC0-1.0",
        "skimage.data.chelsea docstring: 'No copyright restrictions. CC0 by the photographer'",
    ),
    "coffee": (
        "Rachel Michetti (courtesy of Pikolo Espresso Bar)",
        "CC0-1.0",
        "skimage.data.coffee docstring: 'No copyright restrictions. CC0 by the photographer'",
    ),
    "rocket": (
        "SpaceX",
        "public-domain",
        "skimage.data.rocket docstring: released in the public domain by SpaceX "
        "(https://www.flickr.com/photos/spacexphotos/16511594820/)",
    ),
    "hubble_deep_field": (
        "NASA",
        "public-domain",
        "skimage.data.hubble_deep_field docstring: captured by NASA, may be freely used in the "
        "public domain (http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/)",
    ),
    "retina": (
        "Mikael Häggström",
        "CC0-1.0",
        "skimage.data.retina docstring: CC0 1.0 "
        "(https://commons.wikimedia.org/wiki/File:Fundus_photograph_of_normal_left_eye.jpg)",
    ),
}


# --------------------------------------------------------------------------
# Licences
# --------------------------------------------------------------------------

_PERMISSIVE = [
    r"public-domain",
    r"CC0(-1\.0)?",
    r"CC-BY-\d(\.\d)?",
    r"CC-BY-SA-\d(\.\d)?",
    r"L?GPL-\d(\.\d)?\+?",
    r"(Expat|MIT)",
    r"BSD-\d-Clause",
]


def normalise_licence(text: str) -> str:
    """Turn the many spellings found in the packages into SPDX-like ids."""
    s = text.strip().splitlines()[0].strip() if text.strip() else ""
    s = re.sub(r"\s+", " ", s)
    low = s.lower()
    if low in {"public domain", "public-domain", "pd", "publicdomain"}:
        return "public-domain"
    if low in {"cc0", "cc0 1.0", "cc0-1.0", "cc-0"}:
        return "CC0-1.0"
    m = re.fullmatch(r"(l?)gplv?(\d)(\+|orlater)?", low.replace(" ", ""))
    if m:
        return f"{m.group(1).upper()}GPL-{m.group(2)}{'+' if m.group(3) else ''}"
    s = re.sub(r"(?i)^cc[- ]by", "CC-BY", s)
    s = re.sub(r"(?i)-sa\b", "-SA", s)
    s = re.sub(r"(CC-BY(-SA)?)[ -]?(\d(\.\d)?)", r"\1-\3", s)
    return s


def is_permissive(licence: str) -> bool:
    """True for the licences this data set accepts (see module docstring)."""
    if re.search(r"(?i)\b(NC|ND|GFDL|FDL|proprietary|unknown)\b", licence):
        return False
    parts = re.split(r"\s+(?:or|and)\s+", licence)
    ok = [any(re.fullmatch(p, x.strip()) for p in _PERMISSIVE) for x in parts]
    if " or " in licence:
        return any(ok)
    return all(ok)


# --------------------------------------------------------------------------
# Debian helpers
# --------------------------------------------------------------------------


def download_debs(dest: Path) -> None:
    """``apt-get download`` the packages into *dest* (needs apt lists)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = ["apt-get", "download", *PACKAGES]
    r = subprocess.run(cmd, cwd=dest, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(
            "apt-get download failed; run 'apt-get update' first (as root) "
            "or pass --debs DIR with the .deb files"
        )


def extract_debs(debs: Path, root: Path) -> dict[str, str]:
    """Extract each package into root/<package>; return package -> version."""
    versions = {}
    for pkg in PACKAGES:
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not found:
            raise SystemExit(f"no {pkg}_*.deb in {debs}")
        deb = found[-1]
        ver = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        versions[pkg] = ver
        if EXPECTED_VERSIONS.get(pkg) != ver:
            print(
                f"warning: {pkg} {ver} (set was built from {EXPECTED_VERSIONS.get(pkg)})",
                file=sys.stderr,
            )
        target = root / pkg
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    return versions


def parse_dep5(text: str) -> list[dict[str, str]]:
    """Minimal machine-readable debian/copyright (DEP-5) parser."""
    stanzas: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    key = None
    for line in text.split("\n"):
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur, key = {}, None
            continue
        if line[0] in " \t" and key:
            cur[key] += "\n" + line.strip()
            continue
        m = re.match(r"([A-Za-z-]+):\s*(.*)", line)
        if m:
            key = m.group(1)
            cur[key] = m.group(2)
    if cur:
        stanzas.append(cur)
    return stanzas


def dep5_lookup(stanzas: list[dict[str, str]], candidates: list[str]) -> dict[str, str] | None:
    """Last ``Files:`` stanza whose globs match any candidate path."""
    best = None
    for st in stanzas:
        for p in st.get("Files", "").split():
            if any(fnmatch.fnmatchcase(c, p) for c in candidates):
                best = dict(st, _matched=p)  # remember which glob matched
                break
    return best


# --------------------------------------------------------------------------
# Qt resource (.rcc) reader
# --------------------------------------------------------------------------

RCC_COMPRESSED, RCC_DIRECTORY, RCC_COMPRESSED_ZSTD = 0x01, 0x02, 0x04


def read_rcc(buf: bytes) -> list[tuple[str, bytes]]:
    """Return [(path, uncompressed bytes)] for every file in a Qt .rcc blob.

    Layout: b"qres", u32 version, u32 tree offset, u32 data offset, u32 names
    offset, (version >= 3) u32 flags; all big-endian. Tree nodes are 14 bytes
    (+8 byte mtime from version 2): u32 name offset, u16 flags, then either
    u32 child count + u32 first child index (directory) or u16 country +
    u16 language + u32 data offset (file). Names: u16 length, u32 hash, UTF-16BE.
    Data: u32 size + payload; zlib payloads start with a u32 uncompressed size.
    """
    if buf[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", buf[4:20])
    node_size = 22 if version >= 2 else 14
    out: list[tuple[str, bytes]] = []

    def name_at(off: int) -> str:
        p = names + off
        (n,) = struct.unpack(">H", buf[p : p + 2])
        return buf[p + 6 : p + 6 + 2 * n].decode("utf-16-be")

    def walk(index: int, prefix: str) -> None:
        p = tree + index * node_size
        name_off, flags = struct.unpack(">IH", buf[p : p + 6])
        path = f"{prefix}/{name_at(name_off)}" if index else ""
        if flags & RCC_DIRECTORY:
            count, first = struct.unpack(">II", buf[p + 6 : p + 14])
            for child in range(first, first + count):
                walk(child, path)
            return
        (data_off,) = struct.unpack(">I", buf[p + 10 : p + 14])
        q = data + data_off
        (size,) = struct.unpack(">I", buf[q : q + 4])
        raw = buf[q + 4 : q + 4 + size]
        if flags & RCC_COMPRESSED:
            raw = zlib.decompress(raw[4:])
        elif flags & RCC_COMPRESSED_ZSTD:
            import zstandard  # only needed for zstd-built rcc files

            raw = zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 28)
        out.append((path, raw))

    walk(0, "")
    return out


def parse_gcompris_readme(text: str, base: str) -> dict[str, dict[str, str]]:
    """Upstream gcompris resource README -> {source path: {Copyright, License, ...}}.

    Blocks are separated by blank lines; each has ``Key: value`` lines and
    file names, normally after a ``Files:`` key (on the same or the next
    lines), though some blocks just list them without the key.
    """
    info: dict[str, dict[str, str]] = {}
    key_re = re.compile(r"\s*(Copyright|License|Licence|Source|Comments?|Files|Author)\s*:\s*(.*)")
    for block in re.split(r"\n\s*\n", text):
        meta: dict[str, str] = {}
        files: list[str] = []
        key = None
        for line in block.splitlines():
            m = key_re.match(line)
            if m:
                key = m.group(1).replace("Licence", "License").replace("Comments", "Comment")
                if key == "Files":
                    files += m.group(2).split()
                else:
                    meta[key] = m.group(2).strip()
            elif re.fullmatch(r"\s*\S+\.(webp|png|jpe?g|svg|ogg|wav|gif)\s*", line, re.I):
                files.append(line.strip())
            elif key and key != "Files" and line.strip():
                meta[key] = (meta.get(key, "") + " " + line.strip()).strip()
        for f in files:
            info[f"{base}/{f}"] = meta
    return info


# --------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------


@dataclass
class Candidate:
    source: str  # output sub-folder
    name: str  # output file stem
    package: str
    original_path: str
    author: str
    licence: str
    note: str
    load: Callable[[], Image.Image] = field(repr=False)
    stats: dict = field(default_factory=dict, repr=False)


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_")


def _authors(copyright_field: str, limit: int = 3) -> str:
    """Copyright holders of a DEP-5 stanza, e-mail addresses dropped."""
    lines = [re.sub(r"\s*<[^>]*>|[\u00b4]", "", ln).strip() for ln in copyright_field.splitlines()]
    lines = [ln for ln in lines if ln]
    more = f"; and {len(lines) - limit} more (see package copyright)" if len(lines) > limit else ""
    return "; ".join(lines[:limit]) + more


def _from_bytes(data: bytes) -> Callable[[], Image.Image]:
    return lambda: Image.open(io.BytesIO(data))


def _from_path(path: Path) -> Callable[[], Image.Image]:
    return lambda: Image.open(path)


def gcompris_candidates(root: Path) -> list[Candidate]:
    pkg = "gcompris-qt-data"
    base = root / pkg
    stanzas = parse_dep5((base / "usr/share/doc" / pkg / "copyright").read_text())
    images: dict[str, tuple[str, bytes]] = {}
    readme: dict[str, dict[str, str]] = {}
    for rcc in sorted((base / "usr/share/gcompris-qt/rcc").glob("*.rcc")):
        for path, raw in read_rcc(rcc.read_bytes()):
            rel = path.removeprefix("/gcompris/")
            if rel.endswith("/README"):
                entries = parse_gcompris_readme(
                    raw.decode("utf-8", "replace"), rel[: -len("/README")]
                )
                for typo, real in GCOMPRIS_README_ALIASES.items():
                    if typo in entries:
                        entries[real] = dict(entries.pop(typo), Alias=os.path.basename(typo))
                readme.update(entries)
            elif rel.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
                images[rel] = (rcc.name, raw)
    out = []
    for rel in sorted(images):
        rcc_name, raw = images[rel]
        parts = rel.split("/")
        if len(parts) < 3 or parts[1] != "activities":
            continue  # core UI graphics
        activity = parts[2]
        if activity in GCOMPRIS_SKIP_ACTIVITIES:
            continue
        stem = os.path.splitext(rel)[0]
        meta = readme.get(rel)
        if activity == "details" and not (
            stem.endswith("_background")
            and meta
            and GCOMPRIS_DETAILS_PHOTO.search(meta.get("Comment", ""))
        ):
            continue
        st = dep5_lookup(
            stanzas, [rel] + [stem + e for e in (".jpg", ".jpeg", ".JPG", ".png", ".svg")]
        )
        deb_lic = normalise_licence(st["License"]) if st else ""
        deb_auth = _authors(st.get("Copyright", "")) if st else ""
        original = f"usr/share/gcompris-qt/rcc/{rcc_name}:/gcompris/{rel}"
        if meta and meta.get("License"):
            licence = normalise_licence(meta["License"])
            author = meta.get("Copyright") or deb_auth or "unknown (see package copyright)"
            m_by = re.search(
                r"based on (?:a photo|an original image) by (.+?), licen[cs]e",
                meta.get("Comment", ""),
            )
            if m_by:  # "details" backgrounds: GCompris edit of someone's photo
                author = f"{m_by.group(1)} (photo); {author} (GCompris edit)"
            note = "; ".join(
                x
                for x in (
                    meta.get("Source", ""),
                    meta.get("Comment", "") if activity == "details" else "",
                    f"per upstream README in {rcc_name}:/gcompris/{os.path.dirname(rel)}/README"
                    + (f" (listed there as '{meta['Alias']}')" if "Alias" in meta else ""),
                    f"debian/copyright 'Files: {st['_matched']}': {deb_lic}" if st else "",
                )
                if x
            )
        elif st:
            licence = deb_lic
            author = deb_auth or "unknown (see package copyright)"
            glob_ = st["_matched"]
            note = f"debian/copyright stanza 'Files: {glob_}'"
            if glob_ == "*":
                note += " (package-wide default; no per-file entry)"
            if st.get("Comment", "").startswith("http"):
                note = st["Comment"].split()[0] + "; " + note
        else:
            continue
        keep = [p for p in parts[2:-1] if p not in GCOMPRIS_NAME_SKIP]
        name = _slug("_".join(keep + [os.path.splitext(parts[-1])[0]]))
        out.append(
            Candidate("gcompris", name, pkg, original, author, licence, note, _from_bytes(raw))
        )
    return out


def plasma_candidates(root: Path) -> list[Candidate]:
    pkg = "plasma-workspace-data"
    out = []
    for png in sorted((root / pkg / "usr/share/plasma/avatars/photos").glob("*.png")):
        lic_file = png.with_name(png.name + ".license")
        text = lic_file.read_text() if lic_file.exists() else ""
        m_lic = re.search(r"SPDX-License-Identifier:\s*(\S+)", text)
        m_auth = re.search(r"SPDX-FileCopyrightText:\s*(.+)", text)
        m_url = re.search(r"(https?://\S+)", text)
        if not m_lic:
            continue
        author = m_auth.group(1).strip() if m_auth else "unknown (see package copyright)"
        author = re.sub(r"\s*<[^>]*>", "", author)
        note = (m_url.group(1) + "; " if m_url else "") + f"REUSE side file {png.name}.license"
        out.append(
            Candidate(
                "plasma",
                _slug(png.stem).lower(),
                pkg,
                str(png.relative_to(root / pkg)),
                author,
                normalise_licence(m_lic.group(1)),
                note,
                _from_path(png),
            )
        )
    return out


def palapeli_candidates(root: Path) -> list[Candidate]:
    pkg = "palapeli-data"
    out = []
    for desk in sorted((root / pkg / "usr/share/palapeli/collection").glob("*.desktop")):
        kv = dict(
            re.match(r"([^=\[]+)=(.*)", ln).groups()
            for ln in desk.read_text().splitlines()
            if re.match(r"[^=\[]+=", ln)
        )
        img = desk.with_name(kv.get("Image", desk.stem + ".jpg"))
        if not img.exists():
            continue
        out.append(
            Candidate(
                "palapeli",
                _slug(img.stem).lower(),
                pkg,
                str(img.relative_to(root / pkg)),
                kv.get("X-KDE-PluginInfo-Author", "unknown (see package copyright)"),
                normalise_licence(kv.get("X-KDE-PluginInfo-License", "unknown")),
                f"{kv.get('X-KDE-PluginInfo-Website', '')}; per {desk.name}".lstrip("; "),
                _from_path(img),
            )
        )
    return out


# Wallpaper packages: package -> (output source folder, image folder inside
# the package, path prefixes the copyright file uses for those images).
WALLPAPER_PACKAGES = {
    "lomiri-wallpapers": ("lomiri", "usr/share/backgrounds", [""]),
    "lomiri-wallpapers-16.04": ("lomiri", "usr/share/backgrounds", ["16.04/"]),
    "lomiri-wallpapers-20.04": ("lomiri", "usr/share/backgrounds", ["20.04/"]),
    "mate-backgrounds": ("mate", "usr/share/backgrounds/mate", [""]),
}


def wallpaper_candidates(root: Path) -> list[Candidate]:
    """Images of the wallpaper packages, licence from their DEP-5 copyright."""
    out = []
    for pkg, (source, img_dir, prefixes) in sorted(WALLPAPER_PACKAGES.items()):
        base = root / pkg
        stanzas = parse_dep5((base / "usr/share/doc" / pkg / "copyright").read_text())
        for img in sorted((base / img_dir).rglob("*")):
            if img.is_symlink() or img.suffix.lower() not in {".png", ".jpg", ".jpeg"}:
                continue
            rel = str(img.relative_to(base / img_dir))
            st = dep5_lookup(stanzas, [pre + rel for pre in prefixes])
            if not st:
                continue  # not covered by any stanza: no licence information
            glob_ = st["_matched"]
            note = f"debian/copyright stanza 'Files: {glob_}'"
            if glob_ == "*":
                note += " (package-wide default)"
            author = _authors(st.get("Copyright", ""))
            out.append(
                Candidate(
                    source,
                    _slug(img.stem).lower(),
                    pkg,
                    str(img.relative_to(base)),
                    author or "unknown (see package copyright)",
                    normalise_licence(st["License"]),
                    note,
                    _from_path(img),
                )
            )
    return out


def plasma_wallpaper_candidates(root: Path) -> list[Candidate]:
    """KDE Plasma wallpapers; author/licence from each wallpaper's metadata."""
    import json

    pkg = "plasma-workspace-wallpapers"
    base = root / pkg
    out = []
    for d in sorted((base / "usr/share/wallpapers").iterdir()):
        meta_json, meta_desk = d / "metadata.json", d / "metadata.desktop"
        if meta_json.exists():
            plugin = json.loads(meta_json.read_text()).get("KPlugin", {})
            author = ", ".join(a.get("Name", "") for a in plugin.get("Authors", [])) or None
            licence = plugin.get("License")
            meta_name = meta_json.name
        elif meta_desk.exists():
            kv = dict(
                ln.split("=", 1)
                for ln in meta_desk.read_text().splitlines()
                if "=" in ln and "[" not in ln.split("=")[0]
            )
            author, licence = kv.get("X-KDE-PluginInfo-Author"), kv.get("X-KDE-PluginInfo-License")
            meta_name = meta_desk.name
        else:
            continue
        if not licence:
            continue
        # one image per wallpaper: the smallest landscape one with short side >= 512
        sizes = []
        for img in sorted((d / "contents/images").glob("*")):
            m = re.fullmatch(r"(\d+)x(\d+)", img.stem)
            if m and int(m.group(1)) >= int(m.group(2)) >= 512:
                sizes.append((int(m.group(1)) * int(m.group(2)), img.name, img))
        if not sizes:
            continue
        img = min(sizes)[2]
        out.append(
            Candidate(
                "plasma_wallpapers",
                _slug(d.name).lower(),
                pkg,
                str(img.relative_to(base)),
                author or "unknown (see package copyright)",
                normalise_licence(licence),
                f"per usr/share/wallpapers/{d.name}/{meta_name} (debian/copyright: Files: * GPL-2+)",
                _from_path(img),
            )
        )
    return out


def sklearn_candidates() -> list[Candidate]:
    """The two sample photos of scikit-learn (sklearn/datasets/images)."""
    try:
        import sklearn
    except ImportError:
        print("warning: scikit-learn not installed, its 2 photos are left out", file=sys.stderr)
        return []
    d = Path(sklearn.__file__).parent / "datasets" / "images"
    info = {
        "china": (
            "danielbuechele (Flickr)",
            "https://www.flickr.com/photos/danielbuechele/6061409035/",
        ),
        "flower": (
            "vultilion (Flickr; the README's attribution line names danielbuechele)",
            "https://www.flickr.com/photos/vultilion/6056698931/",
        ),
    }
    out = []
    for name in sorted(info):
        img = d / f"{name}.jpg"
        if not img.exists():
            continue
        author, url = info[name]
        out.append(
            Candidate(
                "sklearn",
                name,
                f"scikit-learn {sklearn.__version__} (wheel)",
                f"sklearn/datasets/images/{name}.jpg",
                author,
                "CC-BY-2.0",
                f"{url}; per sklearn/datasets/images/README.txt",
                _from_path(img),
            )
        )
    return out


def skimage_candidates() -> list[Candidate]:
    import skimage
    import skimage.data

    out = []
    for name in sorted(SKIMAGE_PHOTOS):
        author, licence, note = SKIMAGE_PHOTOS[name]
        fn = getattr(skimage.data, name)
        out.append(
            Candidate(
                "skimage",
                name,
                f"scikit-image {skimage.__version__} (wheel)",
                f"skimage.data.{name}()",
                author,
                licence,
                note,
                (lambda fn=fn: Image.fromarray(fn())),
            )
        )
    return out


# --------------------------------------------------------------------------
# Image processing and filtering
# --------------------------------------------------------------------------


def to_rgb(im: Image.Image) -> tuple[Image.Image | None, str]:
    """RGB image, or (None, reason) for sprites / unusable modes."""
    im.load()
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        if (alpha >= 250).mean() < MIN_ALPHA_OPAQUE:
            return None, "uses transparency (sprite/cut-out)"
        return rgba.convert("RGB"), ""
    if im.mode in ("L", "1", "I", "I;16", "F"):
        return None, "greyscale mode"
    return im.convert("RGB"), ""


def resize_short(im: Image.Image, short: int = SHORT_SIDE) -> Image.Image:
    w, h = im.size
    s = short / min(w, h)
    size = (max(short, round(w * s)), max(short, round(h * s)))
    return im.resize(size, Image.LANCZOS)


def image_stats(im: Image.Image) -> dict:
    from skimage.color import rgb2lab

    a = np.asarray(im)
    lab = rgb2lab(a)
    chroma = float(np.hypot(lab[..., 1], lab[..., 2]).mean())
    flat_rgb = a.reshape(-1, 3)
    codes = (
        (flat_rgb[:, 0].astype(np.int64) << 16)
        | (flat_rgb[:, 1].astype(np.int64) << 8)
        | flat_rgb[:, 2]
    )
    _, counts = np.unique(codes, return_counts=True)
    g = a.astype(np.int16)
    # zero gradient in a 3x3 neighbourhood: pixel equals all 8 neighbours
    c = g[1:-1, 1:-1]
    same = np.ones(c.shape[:2], bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                nb = g[1 + dy : g.shape[0] - 1 + dy, 1 + dx : g.shape[1] - 1 + dx]
                same &= (np.abs(c - nb) <= 1).all(-1)
    thumb = rgb2lab(np.asarray(im.resize((16, 16), Image.BOX)))
    return {
        "chroma": chroma,
        "unique": int(len(counts)),
        "flat": float(same.mean()),
        "top": float(counts.max() / codes.size),
        "thumb": thumb,
        "w": im.size[0],
        "h": im.size[1],
    }


def stat_reject(s: dict) -> str:
    if s["chroma"] < MIN_CHROMA:
        return f"low colour (chroma {s['chroma']:.1f})"
    if s["unique"] < MIN_UNIQUE:
        return f"few colours ({s['unique']})"
    if s["flat"] > MAX_FLAT:
        return f"flat areas ({s['flat']:.2f})"
    if s["top"] > MAX_TOP_COLOUR:
        return f"dominant flat colour ({s['top']:.2f})"
    return ""


def contact_sheet(
    items: list[tuple[str, Image.Image]],
    path: Path,
    cols: int = 10,
    cell: int = 120,
    per_page: int = 80,
) -> list[Path]:
    """PNG grids of numbered thumbnails, ``per_page`` per file (path_1.png, ...)."""
    from PIL import ImageDraw

    pages = []
    for page, start in enumerate(range(0, len(items), per_page), 1):
        chunk = items[start : start + per_page]
        rows = (len(chunk) + cols - 1) // cols
        sheet = Image.new("RGB", (cols * cell, rows * (cell + 14)), "white")
        draw = ImageDraw.Draw(sheet)
        for i, (label, im) in enumerate(chunk):
            t = im.copy()
            t.thumbnail((cell - 4, cell - 4))
            x, y = (i % cols) * cell, (i // cols) * (cell + 14)
            sheet.paste(t, (x + 2, y + 2))
            draw.text(
                (x + 2, y + cell - 1), f"{start + i} {label.split('/')[-1][:16]}", fill="black"
            )
        out = path.with_name(f"{path.stem}_{page}{path.suffix}")
        sheet.save(out)
        pages.append(out)
    return pages


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


SOURCE_DESCRIPTIONS = {
    "gcompris": "photos from the educational suite GCompris (`gcompris-qt-data`), "
    "extracted from its Qt `.rcc` resource files",
    "lomiri": "photo wallpapers of Lomiri (`lomiri-wallpapers-16.04`, `lomiri-wallpapers-20.04`, "
    "binaries of the `lomiri-wallpapers` source package)",
    "mate": "nature photo wallpapers of MATE (`mate-backgrounds`)",
    "palapeli": "public-domain puzzle photos of the Palapeli jigsaw game (`palapeli-data`)",
    "plasma": "KDE Plasma user avatar photos (`plasma-workspace-data`)",
    "plasma_wallpapers": "photo wallpapers of KDE Plasma (`plasma-workspace-wallpapers`)",
    "skimage": "colour photographs bundled with scikit-image (`skimage.data`)",
    "sklearn": "the two sample photos bundled with scikit-learn (`sklearn.datasets.load_sample_images`)",
}


def write_readme(
    out: Path, kept: list[Candidate], versions: dict[str, str], total_bytes: int
) -> None:
    from collections import Counter

    per_source = Counter(c.source for c in kept)
    per_licence = Counter(c.licence for c in kept)
    rows_src = "\n".join(
        f"| `{s}` | {per_source[s]} | {SOURCE_DESCRIPTIONS.get(s, '')} |"
        for s in sorted(per_source)
    )
    rows_lic = "\n".join(
        f"| {lic} | {n} |" for lic, n in sorted(per_licence.items(), key=lambda x: (-x[1], x[0]))
    )
    pkgs = "\n".join(f"- `{p}` {v}" for p, v in sorted(versions.items()))
    text = f"""# colorkit demo data

{len(kept)} small, real colour photographs (animals, monuments, landscapes,
plants, objects, people, food...) for colorkit's demos, examples and smoke
tests. Each image is resized to a short side of {SHORT_SIDE} px (Pillow LANCZOS)
and stored as JPEG quality {JPEG_QUALITY} under `images/<source>/<name>.jpg`
({total_bytes / 1e6:.1f} MB of JPEG data in total).

**Generated, do not edit by hand**: the whole folder is written by
`scripts/build_demo_data.py`; its module docstring documents every rule.

## Sources

| source | images | what |
| --- | ---: | --- |
{rows_src}

Built from:

{pkgs}

`lomiri-wallpapers` itself (one abstract wallpaper), `ukui-wallpapers`,
`gnome-backgrounds` and `sway-backgrounds` were looked at too: they ship no
photographs.

## How it was built

1. `apt-get download` the Debian packages and `dpkg-deb -x` them into a
   temporary folder; the scikit-image/scikit-learn photos come from the
   installed wheels.
2. Parse GCompris' Qt resource files to recover each WebP with its original
   source path, so that each image is matched with its own licence entry.
3. Keep only files with a permissive licence (public domain, CC0, CC-BY,
   CC-BY-SA, GPL/LGPL). Skip GCompris' painting reproductions and puzzle
   cut-outs, images with transparency (sprites), greyscale or nearly
   colourless images (mean Lab chroma < {MIN_CHROMA:g}), non-photographic images
   (< {MIN_UNIQUE} unique colours at 128 px, large flat areas), and
   near-duplicates.
4. Drop the non-photos left (abstract wallpapers, renders, a chart), found by
   eyeballing a contact sheet; they are listed with a reason in the script's
   `EXCLUDE` table.
5. Resize, save as JPEG, write `ATTRIBUTION.csv` and this README.

Rebuild (needs Debian/Ubuntu `apt-get` with fresh lists, `dpkg-deb`, Pillow
with WebP, numpy, scikit-image, scikit-learn):

    python scripts/build_demo_data.py

## Licences

Every image keeps the licence of its original. `ATTRIBUTION.csv` has one row
per file: `file`, `source_package`, `original_path` (for GCompris
`<rcc file>:<path inside the rcc>`), `author`, `licence` (SPDX-like id) and
`licence_url_or_note` (source URL, and where the licence information was
read).

| licence | images |
| --- | ---: |
{rows_lic}

- The licences apply to the images, not to colorkit's code. When
  redistributing the images, keep `ATTRIBUTION.csv` (the attribution
  notice) with them. CC-BY/CC-BY-SA require credit; CC-BY-SA and GPL/LGPL
  images are share-alike/copyleft. The JPEGs here are adaptations
  (downscaled, re-encoded) of the originals.
- GCompris: its `debian/copyright` still lists the pre-WebP versions of many
  pictures, which upstream has since replaced; the upstream `README` next to
  the shipped WebP files describes the pictures actually shipped, so it is
  used first and the `debian/copyright` entry is quoted in the note. The
  two often name different licences, mostly because they describe different
  pictures; the one case where the old entry is not on the allow-list is
  `explore_world_animals_kangaroo` (README: public domain photo by Vicki
  Nunn; old `debian/copyright` entry for `kangaroo.jpg`: GFDL). One README
  entry misspells its file (`audaPalatina.webp` for `aulaPalatina.webp`);
  the script maps it explicitly.
- `details_*` GCompris pictures are GCompris' edits (CC-BY-SA-4.0/CC-BY-4.0)
  of Wikimedia Commons photos; the photographer is named in `author`.
- The five GCompris `louis_braille_*` photos (GPL-3) are credited by the
  upstream README to "Bruno Coudoin and others" (the GCompris authors), not
  to a named photographer.
- Plasma wallpapers: `debian/copyright` only has a package-wide `Files: *`
  (GPL-2+); the per-wallpaper metadata (LGPL-3) is used.
- scikit-learn's README credits `flower.jpg` to danielbuechele while linking
  to vultilion's Flickr page; both are recorded.
"""
    (out / "README.md").write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (colorkit/demo_data)"
    )
    ap.add_argument("--debs", type=Path, help="folder with already downloaded .deb files")
    ap.add_argument(
        "--contact-sheet", type=Path, help="write a PNG contact sheet of the kept images"
    )
    ap.add_argument("--report", type=Path, help="write a CSV with every candidate and its verdict")
    ap.add_argument("--dry-run", action="store_true", help="do not write the data set")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="colorkit-demo-") as tmp:
        tmp = Path(tmp)
        debs = args.debs
        if debs is None:
            debs = tmp / "debs"
            download_debs(debs)
        versions = extract_debs(debs, tmp / "x")
        import skimage

        versions["scikit-image (wheel)"] = skimage.__version__
        try:
            import sklearn

            versions["scikit-learn (wheel)"] = sklearn.__version__
        except ImportError:
            pass
        cands = (
            gcompris_candidates(tmp / "x")
            + plasma_candidates(tmp / "x")
            + palapeli_candidates(tmp / "x")
            + wallpaper_candidates(tmp / "x")
            + plasma_wallpaper_candidates(tmp / "x")
            + skimage_candidates()
            + sklearn_candidates()
        )
        cands.sort(key=lambda c: (c.source, c.name))

        seen_names: set[tuple[str, str]] = set()
        kept: list[tuple[Candidate, Image.Image]] = []
        report = []
        for c in cands:
            verdict = ""
            small = None
            if (c.source, c.name) in seen_names:
                verdict = "duplicate output name"
            elif not is_permissive(c.licence):
                verdict = f"licence not accepted ({c.licence})"
            else:
                rgb, verdict = to_rgb(c.load())
                if rgb is not None:
                    small = resize_short(rgb)
                    c.stats = image_stats(small)
                    verdict = stat_reject(c.stats)
            if not verdict and small is not None:
                for k, _ in kept:
                    if np.abs(k.stats["thumb"] - c.stats["thumb"]).mean() < DUP_THRESHOLD:
                        verdict = f"near-duplicate of {k.source}/{k.name}"
                        break
            key = f"{c.source}/{c.name}"
            if not verdict and key in EXCLUDE:
                verdict = f"excluded: {EXCLUDE[key]}"
            if not verdict:
                kept.append((c, small))
                seen_names.add((c.source, c.name))
            s = c.stats
            report.append(
                [c.source, c.name, c.licence, verdict or "kept"]
                + (
                    [f"{s['chroma']:.1f}", s["unique"], f"{s['flat']:.3f}", f"{s['top']:.3f}"]
                    if s
                    else ["", "", "", ""]
                )
            )

        unknown = sorted(set(EXCLUDE) - {f"{c.source}/{c.name}" for c in cands})
        if unknown:
            print(f"warning: EXCLUDE names not found: {unknown}", file=sys.stderr)
        if args.report:
            with open(args.report, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(
                    ["source", "name", "licence", "verdict", "chroma", "unique", "flat", "top"]
                )
                w.writerows(report)
        if args.contact_sheet:
            contact_sheet([(f"{c.source}/{c.name}", im) for c, im in kept], args.contact_sheet)
            for i, (c, _) in enumerate(kept):
                print(f"{i}\t{c.source}/{c.name}")

        from collections import Counter

        print(
            "kept per source:",
            dict(sorted(Counter(c.source for c, _ in kept).items())),
            file=sys.stderr,
        )
        print("total kept:", len(kept), file=sys.stderr)
        if args.dry_run:
            return 0

        out = args.out
        images_dir = out / "images"
        if images_dir.exists():
            shutil.rmtree(images_dir)
        total = 0
        rows = []
        for c, im in kept:
            d = images_dir / c.source
            d.mkdir(parents=True, exist_ok=True)
            dest = d / f"{c.name}.jpg"
            im.save(dest, "JPEG", quality=JPEG_QUALITY, optimize=True)
            total += dest.stat().st_size
            rows.append(
                [
                    str(dest.relative_to(out)),
                    c.package,
                    c.original_path,
                    c.author,
                    c.licence,
                    c.note,
                ]
            )
        rows.sort()
        with open(out / "ATTRIBUTION.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(
                [
                    "file",
                    "source_package",
                    "original_path",
                    "author",
                    "licence",
                    "licence_url_or_note",
                ]
            )
            w.writerows(rows)
        write_readme(out, [c for c, _ in kept], versions, total)
        print(f"wrote {len(kept)} images ({total / 1e6:.2f} MB) to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
