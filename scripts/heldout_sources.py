"""The catalogue of ``build_heldout_data.py``: which Debian packages the held-out photos come
from, under which licence and author, and the evidence each licence file must show."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """A group of photos from one package sharing licence and author."""

    name: str  # output folder under images/
    package: str
    paths: tuple[str, ...]  # paths or globs inside the unpacked package
    licence: str  # SPDX-like id
    author: str
    evidence: tuple[tuple[str, str], ...]  # (licence file in package, regex that must match)
    note: str
    kpa_index: str = ""  # KPhotoAlbum index.xml whose angle="..." (clockwise) rotates the image


_TUX_COPYRIGHT = "usr/share/doc/tuxpaint-data/copyright"
_KODI_COPYRIGHT = "usr/share/doc/kodi-data/copyright"
_LXQT_LICENSE = "usr/share/lxqt/wallpapers/License"
_LXQT_NOTE = (
    "per usr/share/lxqt/wallpapers/License (CC-BY-SA-3.0, LXQt Project Team); debian/copyright: Files: * LGPL-2.1+"
)

SOURCES = (
    Source(
        "afterstep",
        "afterstep-data",
        ("usr/share/afterstep/desktop/tiles/rose512.jpg",),
        "GPL-2+",
        "Sasha Vasko (AfterStep)",
        (
            (
                "usr/share/doc/afterstep-data/copyright",
                r"Files: \*\nCopyright: [^\n]*Sasha Vasko[^\n]*\nLicense: GPL-2\+",
            ),
        ),
        "debian/copyright stanza 'Files: *' (package-wide; no per-file entry)",
    ),
    Source(
        "kodi",
        "kodi-data",
        tuple(f"usr/share/kodi/addons/skin.estuary/extras/home-images/{f}" for f in ("movie.jpg", "music.jpg")),
        "CC0-1.0",
        "unknown (Kodi Estuary skin)",
        ((_KODI_COPYRIGHT, r"home-images/music\.jpg\n(?:[ \w:].*\n)*?License: CC0-1\.0"),),
        "debian/copyright stanza 'Files: addons/skin.estuary/extras/home-images/movie.jpg ...music.jpg'",
    ),
    Source(
        "kodi",
        "kodi-data",
        ("usr/share/kodi/addons/skin.estouchy/background/tv.jpg",),
        "CC-BY-SA-3.0-US",
        "Team Kodi",
        ((_KODI_COPYRIGHT, r"Files: addons/skin\.estouchy/\*\n(?:[ \w:].*\n)*?License: CC-BY-SA-3\.0~us"),),
        "debian/copyright stanza 'Files: addons/skin.estouchy/*'",
    ),
    Source(
        "kphotoalbum",
        "kphotoalbum",
        ("usr/share/kphotoalbum/demo/*.jpg",),
        "GPL-2+",
        "Jesper K. Pedersen and KPhotoAlbum contributors",
        (("usr/share/doc/kphotoalbum/copyright", r"either version 2 of the License, or\s+\(at your option\) any"),),
        "KPhotoAlbum demo album; debian/copyright (package-wide GPL-2+, no per-file entry)",
        "usr/share/kphotoalbum/demo/index.xml",
    ),
    Source(
        "lxqt",
        "lxqt-themes",
        tuple(
            f"usr/share/lxqt/wallpapers/{f}"
            for f in (
                "after-the-rain.jpg",
                "appleflower.png",
                "beam.png",
                "butterfly.png",
                "drop.png",
                "flowers.png",
                "fog.jpg",
                "this-is-not-windows.jpg",
            )
        ),
        "CC-BY-SA-3.0",
        "stefonarch (standreas@riseup.net)",
        (
            (_LXQT_LICENSE, r"creativecommons\.org/licenses/by-sa/3\.0"),
            (_LXQT_LICENSE, r"stefonarch[^\n]*\nbeam,flowers,butterfly,fog,not-windows,appleflowers,after-the-rain"),
        ),
        _LXQT_NOTE,
    ),
    Source(
        "lxqt",
        "lxqt-themes",
        tuple(f"usr/share/lxqt/wallpapers/{f}" for f in ("Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "cloud.png")),
        "CC-BY-SA-3.0",
        "LXQt Project Team (no individual credit; the butterfly file name names Kenneth Wimer)",
        ((_LXQT_LICENSE, r"creativecommons\.org/licenses/by-sa/3\.0"),),
        _LXQT_NOTE,
    ),
    Source(
        "maldives",
        "sddm-theme-maldives",
        ("usr/share/sddm/themes/maldives/background.jpg",),
        "CC-BY-3.0",
        "Nevit Dilmen (http://commons.wikimedia.org/wiki/User:Nevit)",
        (
            (
                "usr/share/doc/sddm-theme-maldives/copyright",
                r"Files: data/themes/maldives/background\.jpg\nCopyright: [^\n]*Nevit Dilmen[^\n]*\nLicense: CC-BY-3",
            ),
        ),
        "debian/copyright stanza 'Files: data/themes/maldives/background.jpg'",
    ),
    Source(
        "matplotlib",
        "python-matplotlib-data",
        ("usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",),
        "Matplotlib (PSF-based)",
        "US Navy (portrait of Grace Hopper), via matplotlib sample data",
        (("usr/share/doc/python-matplotlib-data/copyright", r"Files: \*\n[^\n]*\nLicense:\n Matplotlib only uses"),),
        "debian/copyright stanza 'Files: *' (matplotlib licence, PSF-based); the photo itself is a US Navy "
        "photograph, commonly listed as public domain",
    ),
    Source(
        "tuxpaint",
        "tuxpaint-data",
        ("usr/share/tuxpaint/templates/*.jpg",),
        "GPL-2+",
        "Bill Kendrick",
        (
            (_TUX_COPYRIGHT, r"Files: \*\nCopyright: [^\n]*Bill Kendrick[^\n]*\nLicense: GPL-2\+"),
            ("usr/share/doc/tuxpaint-data/AUTHORS.txt.gz", r"\* Templates\n(?:\s+\* .*\n)+\s+Bill Kendrick"),
        ),
        "Tux Paint templates; debian/copyright 'Files: *' GPL-2+, author per AUTHORS.txt 'Templates'",
    ),
)

# Versions the folder was first built from (Debian 12 "bookworm"). Others work
# but may give different pictures; the script warns.
EXPECTED_VERSIONS = {
    "afterstep-data": "2.2.12-15",
    "kodi-data": "2:20.1+dfsg-1",
    "kphotoalbum": "5.9.1-1",
    "lxqt-themes": "1.2.0-1",
    "python-matplotlib-data": "3.6.3-1",
    "sddm-theme-maldives": "0.19.0-5",
    "tuxpaint-data": "1:0.9.28-sdl2-1",
}

SOURCE_DESCRIPTIONS = {
    "afterstep": "rose photo tile of the AfterStep window manager (`afterstep-data`)",
    "kodi": "home-screen and background photos of Kodi's Estuary/Estouchy skins (`kodi-data`)",
    "kphotoalbum": "demo album of the KPhotoAlbum photo manager: people, pets, landscapes (`kphotoalbum`)",
    "lxqt": "photo wallpapers of LXQt (`lxqt-themes`)",
    "maldives": "beach photo of the SDDM 'Maldives' login theme (`sddm-theme-maldives`)",
    "matplotlib": "Grace Hopper portrait from matplotlib's sample data (`python-matplotlib-data`)",
    "tuxpaint": "photo templates of the Tux Paint drawing program: nature, textures, animals (`tuxpaint-data`)",
}

LOOKED_AT = """\
Looked at and not used: `hugin-data` (help images copied from the PanoTools
wiki, GFDL upstream, mostly distortion demos), `tuxmath-data` (space
composites with no licence in `debian/copyright`), `manuskript` and
`digikam-data` (textures / one background with no stated origin),
`cimg-examples` (test images of unclear origin), `xfdesktop4-data`,
`fvwm-crystal`, `fluxbox`, `eterm` (abstract or rendered wallpapers), the
other `lxqt-themes` wallpapers and `kodi-data` images (abstract art, logos,
screenshots), `sddm-theme-maldives`' `maldives.jpg` (a screenshot of the
same beach). Debian 12 has no Budgie, Deepin, Cinnamon or Pantheon wallpaper
package."""
