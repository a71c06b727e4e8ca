"""Where images come from: folders, archives, LMDB databases and generated sets, read as a
stream of :class:`Record` s.

The data set plugin API
-----------------------
A data set registered through the ``register_datasets`` hook is a factory; ``prepare``
calls it (a family name such as ``synth:`` receives the text after the colon as
``variant=``, e.g. ``synth:seed=3,n=6000`` -> ``factory(variant="seed=3,n=6000")``; a factory
with a ``cache_dir`` parameter also receives the cache folder in use, ``--cache-dir`` or the
default, and writes anything it makes there) and accepts what it returns:

* a path (``str`` / ``os.PathLike``) to a folder of images, a ``.tar``, ``.tar.gz`` /
  ``.tgz``, ``.zip`` archive or an LMDB directory (what ``--dataset PATH`` accepts too);
* a :class:`Source`: any object with

  ``name``            a short name for messages and ``data info``;
  ``location``        a string saying where the images come from (a path, or a spec);
  ``fingerprint()``   a string that changes whenever the images could change (for files:
                      the resolved path plus a content digest; for a generated set: the
                      spec and the generator's version). It is part of the cache key, so
                      an unchanged source reuses its prepared cache and any change makes a
                      new one;
  ``records(start)``  an iterator over :class:`Record` s from position ``start`` on, always
                      in the same order (a resumed preparation skips the first ``start``);
  ``size_hint()``     the expected number of records, or ``None`` (progress bar only);
  ``split_rule``      optional ``dict`` recorded in the data info (e.g. the paper's
                      ``{"test_size": 1000, "seed": 0}``), whose ``test_size`` is the
                      default when none is asked for;

* a :class:`colorkit.data.recipes.Recipe`: a published data set that
  ``colorkit data fetch NAME`` downloads first (see that module).

A :class:`Record` carries either the encoded file (``data``: bytes, decoded by Pillow in
worker threads, the usual case for files and archives) or an already made image
(``image``: a PIL image or a ``(H, W, 3)`` uint8 array, the usual case for a generated set),
plus ``meta``, a small JSON-able ``dict`` kept per image in the prepared cache (e.g. the
parameters a generated image was drawn with; read back with
``PreparedDataset.meta(row)``). Every record is then resized, checked and either kept or
skipped with a reason exactly like a file in a folder (:mod:`colorkit.data.images`).

A generated data set is therefore a ``Source`` subclass whose ``records`` yields
``Record(key=f"{i:06d}", image=array, meta={...})`` from its spec, and whose
``fingerprint`` returns ``f"synth-v1:{spec}"``.

Opening a source never runs code from it and never touches the network; archives are
read as streams (no extraction to disk), member names are only used as keys.
"""


from __future__ import annotations

from colorkit.data.archives import (
    FolderSource,
    LMDBSource,
    TarSource,
    ZipLMDBSource,
    ZipSource,
    is_lmdb_dir,
    source_for_path,
    zip_holds_lmdb,
)
from colorkit.data.digests import DigestMemo
from colorkit.data.records import (
    ARCHIVE_SUFFIXES,
    MAX_COMPRESSION_RATIO,
    MAX_RECORD_BYTES,
    RATIO_MIN_BYTES,
    Record,
    Source,
    decode_record,
)

__all__ = [
    "ARCHIVE_SUFFIXES",
    "MAX_COMPRESSION_RATIO",
    "MAX_RECORD_BYTES",
    "RATIO_MIN_BYTES",
    "DigestMemo",
    "FolderSource",
    "LMDBSource",
    "Record",
    "Source",
    "TarSource",
    "ZipLMDBSource",
    "ZipSource",
    "decode_record",
    "is_lmdb_dir",
    "source_for_path",
    "zip_holds_lmdb",
]
