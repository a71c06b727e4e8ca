"""Recipes for the paper's data sets, and ``fetch``: download (or register) an archive,
resume an interrupted download, verify its checksum.

A :class:`Recipe` is what a data set plugin registers for a published data set: the
archive's file name, where it is published, its published image count and checksums, and
the paper's split rule (1,000 random test images, seeded; the rest for training).
``colorkit data fetch NAME`` stores the archive under ``<cache>/downloads/`` and records it
in ``<cache>/downloads/NAME.json``; from then on ``--dataset NAME`` reads that archive
(streaming, see :mod:`colorkit.data.prepare`).

Downloads go to ``FILE.part`` and are renamed to ``FILE`` only after the checksum matched:
a half-written or wrong file never carries the final name. An interrupted download is
resumed with an HTTP ``Range`` request when the server supports it (restarted otherwise).
The checksum is the recipe's (sha256, else its published md5) or the one given with
``--sha256``; a mismatch is a one-line error and the ``.part`` file is removed. An archive
already verified stays until its replacement is verified. A download stops at a bound
derived from the recipe's known size (``--max-bytes`` sets another), follows redirects to
http:// and https:// addresses only, and is bounded in time (:mod:`colorkit.data.transfer`):
a request that gets no byte for ``--stall-timeout`` seconds (60) is retried from where it
stopped, and one slower than ``--min-rate`` bytes a second (4096) over such a span stops.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorkit.core import fs
from colorkit.core.registry import ColorkitError
from colorkit.data import sources as _sources
from colorkit.data import transfer
from colorkit.data.cache import cache_root

PAPER_SPLIT = {
    "test_size": 1000,
    "seed": 0,
    "rule": "1000 random test images (numpy default_rng(seed) permutation), the rest for training",
}


@dataclass
class Recipe:
    """A published data set: how to get its archive and how the paper splits it."""

    name: str
    filename: str
    url: str | None
    n_images: int
    description: str
    md5: str | None = None
    sha256: str | None = None
    approx_bytes: int | None = None
    layout: str = ""
    split_rule: dict[str, Any] = field(default_factory=lambda: dict(PAPER_SPLIT))

    def record_path(self, cache: Path) -> Path:
        return cache / "downloads" / f"{self.name}.json"

    def fetched(self, cache: Path) -> Path | None:
        """The fetched archive, if ``fetch`` recorded one that still exists."""
        try:
            rec = json.loads(self.record_path(cache).read_text())
            path = Path(rec["path"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return path if path.exists() else None

    def source(self, cache: Path) -> _sources.Source:
        path = self.fetched(cache)
        if path is None:
            how = (
                "--url URL or --from FILE"
                if self.url is None
                else f"[--url URL | --from FILE] (default URL {self.url})"
            )
            raise ColorkitError(
                f"data set {self.name!r} is not fetched yet; run `colorkit data fetch {self.name} {how}` "
                f"(cache {cache})"
            )
        src = _sources.source_for_path(path, name=self.name, cache_dir=cache)
        src.split_rule = dict(self.split_rule)
        src.expected_images = self.n_images  # prepare warns when the archive holds another count
        return src


RECIPES: dict[str, Recipe] = {
    "lfw": Recipe(
        name="lfw",
        filename="lfw-deepfunneled.tgz",
        url="http://vis-www.cs.umass.edu/lfw/lfw-deepfunneled.tgz",
        n_images=13233,
        md5="68331da3eb755a505a502b5aacb3c201",
        approx_bytes=108_000_000,
        layout="gzip tar, one folder per person, 250x250 JPEGs",
        description="Labeled Faces in the Wild, deep-funneled (13,233 faces)",
    ),
    "lsun-church": Recipe(
        name="lsun-church",
        filename="church_outdoor_train_lmdb.zip",
        url="http://dl.yf.io/lsun/scenes/church_outdoor_train_lmdb.zip",
        n_images=126227,
        approx_bytes=2_300_000_000,
        layout="zip of an LMDB whose values are WebP images (short side 256)",
        description="LSUN Church (outdoor), training set (126,227 images)",
    ),
    "imagenet-val": Recipe(
        name="imagenet-val",
        filename="ILSVRC2012_img_val.tar",
        url=None,  # needs an account: give --url or --from
        n_images=50000,
        md5="29b22e2961454d5413ddabcf34fc5622",
        approx_bytes=6_744_924_160,
        layout="plain tar of 50,000 JPEGs",
        description="ImageNet (ILSVRC 2012) validation set (50,000 images)",
    ),
}
"""The paper's three data sets. ``md5``: as published with the data sets (the figures
torchvision checks); none is published for LSUN. ``approx_bytes``: for the disk estimate
only, never checked."""


def _check_hex(value: str, n: int, what: str) -> str:
    v = value.strip().lower()
    if len(v) != n or any(c not in "0123456789abcdef" for c in v):
        raise ColorkitError(f"--{what} {value!r} is not a {what} checksum; expected {n} hexadecimal digits")
    return v


def _hash_file(path: Path, progress: bool, desc: str) -> tuple[str, str]:
    from tqdm.auto import tqdm

    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    total = path.stat().st_size
    with open(path, "rb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=desc, file=sys.stderr,
                                      disable=None if progress else True) as bar:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            md5.update(chunk)
            bar.update(len(chunk))
    return sha.hexdigest(), md5.hexdigest()


def _verify(path: Path, recipe: Recipe | None, sha256: str | None, progress: bool) -> tuple[str, str]:
    """``(sha256, how)``; raises (and removes nothing itself) on a mismatch."""
    got_sha, got_md5 = _hash_file(path, progress, f"verifying {path.name}")
    want_sha = sha256 or (recipe.sha256 if recipe else None)
    if want_sha is not None:
        if got_sha != want_sha:
            raise ColorkitError(
                f"checksum mismatch for {path.name}: sha256 {got_sha}, expected {want_sha}; file not kept"
            )
        return got_sha, "sha256"
    if recipe is not None and recipe.md5 is not None:
        if got_md5 != recipe.md5:
            raise ColorkitError(
                f"checksum mismatch for {path.name}: md5 {got_md5}, expected the published {recipe.md5}; "
                "file not kept (give --sha256 HEX for a different file)"
            )
        return got_sha, "published md5"
    return got_sha, "none published (sha256 recorded)"


class _Interrupted(Exception):
    pass


DEFAULT_MAX_BYTES = 64 * 1024**3
"""Largest download when neither the recipe's size nor ``--max-bytes`` gives a bound."""


def max_download_bytes(recipe: Recipe | None, max_bytes: int | None = None) -> int:
    """The most bytes a fetch reads: ``max_bytes`` when given, else the recipe's known size
    with a margin (a quarter more, plus 16 MiB), else :data:`DEFAULT_MAX_BYTES`."""
    if max_bytes is not None:
        return int(max_bytes)
    if recipe is not None and recipe.approx_bytes:
        return int(recipe.approx_bytes * 1.25) + 16 * 1024**2
    return DEFAULT_MAX_BYTES


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http:// and https:// addresses."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201 - urllib's signature
        if not newurl.lower().startswith(("http://", "https://")):
            raise ColorkitError(f"cannot download {req.full_url}: the server redirects to {newurl!r}, which is not "
                                "an http:// or https:// address")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def download(url: str, dest: Path, *, progress: bool = True, retries: int = 3, max_bytes: int = DEFAULT_MAX_BYTES,
             stall_timeout: float = transfer.STALL_TIMEOUT, min_rate: float = transfer.MIN_RATE) -> None:
    """Download ``url`` into ``dest`` (``dest`` grows; resumes from its current size with
    an HTTP Range request; starts over when the server ignores the Range). Retries a
    dropped connection, or one that sent nothing for ``stall_timeout`` seconds, ``retries``
    times; a body slower than ``min_rate`` bytes a second over ``stall_timeout`` seconds
    stops the download (:mod:`colorkit.data.transfer`). Redirects are followed to http(s)
    addresses only; a body longer than ``max_bytes`` (announced or received) stops the
    download and removes ``dest``. Every error is one line."""
    from tqdm.auto import tqdm

    transfer.check_bounds(stall_timeout, min_rate)

    if not url.lower().startswith(("http://", "https://")):
        raise ColorkitError(f"--url {url!r}: expected an http:// or https:// address")

    def too_large(n: int | str) -> ColorkitError:
        dest.unlink(missing_ok=True)
        return ColorkitError(f"cannot download {url}: the file is larger than {max_bytes:,} bytes ({n}), more than "
                             "this data set should be; give --max-bytes N if it is really that large")

    def kept_tail() -> str:
        kept = dest.exists() and dest.stat().st_size > 0
        return (f"partial file kept as {dest} ({dest.stat().st_size:,} bytes); run the same fetch again to resume"
                if kept else "nothing was received; run the same fetch again to retry")

    attempt = 0
    while True:
        have = dest.stat().st_size if dest.exists() else 0
        try:
            req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        except ValueError as exc:
            raise ColorkitError(f"--url {url!r} is not a valid address ({exc})") from None
        watch = transfer.Watch(stall_timeout, min_rate)
        try:
            with watch, transfer.opener(watch, _HttpOnlyRedirects()).open(req, timeout=2 * stall_timeout) as resp:
                watch.answered()
                status = getattr(resp, "status", 200)
                if have and status == 200:
                    have = 0  # server ignored the Range: start over
                elif status == 206:
                    rng = resp.headers.get("Content-Range", "")
                    if not rng.startswith(f"bytes {have}-"):
                        raise ColorkitError(f"{url}: the server answered the range request with {rng!r}; "
                                            f"expected bytes {have}-")
                length = resp.headers.get("Content-Length")
                total = have + int(length) if length is not None and length.isdigit() else None
                if total is not None and total > max_bytes:
                    raise too_large(f"announced {total:,}")
                mode = "ab" if have else "wb"
                with fs.open_write(dest, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                 desc=f"fetching {dest.name.removesuffix('.part')}",
                                                 file=sys.stderr, disable=None if progress else True) as bar:
                    got = 0
                    while chunk := resp.read1(1 << 16):  # what has arrived: a trickle is seen as one
                        watch.received(len(chunk))
                        if have + got + len(chunk) > max_bytes:
                            f.close()
                            raise too_large(f"received more than {max_bytes:,}")
                        f.write(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
                    f.flush()
                    os.fsync(f.fileno())
                if watch.reason is not None:
                    raise _Interrupted(watch.reason)
                if length is not None and length.isdigit() and got < int(length):
                    raise _Interrupted(f"connection closed after {have + got} of {total} bytes")
                return
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # the range starts at the end: nothing left to get
                return
            if 300 <= exc.code < 400:  # urllib gives up on a loop or after 10 redirects
                raise ColorkitError(f"cannot download {url}: the server redirects in a loop or more than 10 times "
                                    f"(HTTP {exc.code}, {_one_line(exc.hdrs.get('Location', '')) or 'no address'})"
                                    ) from None
            raise ColorkitError(f"cannot download {url}: HTTP {exc.code} {_one_line(exc.reason)}") from None
        except ValueError as exc:  # urllib's own check of an address (a redirect's included)
            raise ColorkitError(f"cannot download {url}: not a valid address ({_one_line(exc)})") from None
        except (_Interrupted, urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
                OSError) as exc:
            if isinstance(exc, ColorkitError):
                raise
            reason = watch.reason or (f"the connection timed out after {2 * stall_timeout:g} s (--stall-timeout)"
                                      if isinstance(getattr(exc, "reason", exc), TimeoutError)
                                      else _one_line(getattr(exc, "reason", exc)))
            if watch.reason is not None and not watch.retry:  # a trickle: retrying would not help
                raise ColorkitError(f"cannot download {url}: {reason} ({kept_tail()})") from None
            attempt += 1
            if attempt > retries:
                raise ColorkitError(f"cannot download {url}: {reason} ({kept_tail()})") from None
            print(f"colorkit: download interrupted ({reason}); resuming (attempt {attempt} of {retries})",
                  file=sys.stderr)
            time.sleep(min(2.0 * attempt, 5.0) if attempt > 1 else 0.0)


def fetch(name: str, *, url: str | None = None, from_file: str | os.PathLike[str] | None = None,
          sha256: str | None = None, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True,
          retries: int = 3, max_bytes: int | None = None, stall_timeout: float = transfer.STALL_TIMEOUT,
          min_rate: float = transfer.MIN_RATE) -> Path:
    """Get data set ``name``'s archive into the cache (or register a local copy with
    ``from_file``, which is verified and used in place, not copied). Returns its path.

    A verified archive already in the cache is never removed before its replacement is
    downloaded and verified. The download stops beyond :func:`max_download_bytes`, and is
    bounded in time by ``stall_timeout`` and ``min_rate`` (see :func:`download`)."""
    transfer.check_bounds(stall_timeout, min_rate)
    from colorkit.core.plugin_manager import registry

    reg = registry("dataset")
    if name not in reg:
        known = ", ".join(n for n in reg.names()) or "none"
        raise ColorkitError(f"unknown data set {name!r}; known: {known}")
    recipe = reg.create(name)
    if not isinstance(recipe, Recipe):
        raise ColorkitError(f"data set {name!r} is not fetched from an archive (nothing to fetch); "
                            "use it directly with --dataset")
    if url is not None and from_file is not None:
        raise ColorkitError("give either --url or --from, not both")
    want = _check_hex(sha256, 64, "sha256") if sha256 is not None else None
    cache = cache_root(cache_dir)
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    if from_file is not None:
        path = Path(from_file).expanduser().resolve()
        if not path.is_file():
            raise ColorkitError(f"--from {str(from_file)!r} is not a file; expected the {recipe.filename} archive")
        got, how = _verify(path, recipe, want, progress)
    else:
        address = url or recipe.url
        if address is None:
            raise ColorkitError(f"data set {name!r} has no public download address; give --url URL or --from FILE")
        path = downloads / recipe.filename
        part = downloads / (recipe.filename + ".part")
        if path.exists():
            try:
                got, how = _verify(path, recipe, want, progress)
            except ColorkitError:
                pass  # not the file asked for: kept until a verified replacement takes its name
            else:
                part.unlink(missing_ok=True)
                _record(recipe, cache, path, got, how, address)
                return path
        download(address, part, progress=progress, retries=retries, max_bytes=max_download_bytes(recipe, max_bytes),
                 stall_timeout=stall_timeout, min_rate=min_rate)
        try:
            got, how = _verify(part, recipe, want, progress)
        except ColorkitError:
            part.unlink(missing_ok=True)
            raise
        fs.replace(part, path)
    _record(recipe, cache, path, got, how, str(from_file) if from_file is not None else (url or recipe.url or ""))
    return path


def _record(recipe: Recipe, cache: Path, path: Path, sha: str, how: str, origin: str) -> None:
    rec = {"name": recipe.name, "path": str(path), "sha256": sha, "verified_by": how, "origin": origin,
           "bytes": path.stat().st_size, "fetched": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    fs.atomic_write_text(recipe.record_path(cache), json.dumps(rec, indent=1))


def recipe_factory(name: str):
    def make() -> Recipe:
        return RECIPES[name]

    make.__doc__ = RECIPES[name].description
    return make


__all__ = ["PAPER_SPLIT", "RECIPES", "Recipe", "download", "fetch", "recipe_factory"]
