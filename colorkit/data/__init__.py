"""Data preparation for colorkit: folders, archives, LMDB databases, fetched recipes
(``lfw``, ``lsun-church``, ``imagenet-val``) and generated sets -> cached, sharded 64x64
uint8 arrays with a train/test split (Deshpande et al., CVPR 2017, section 7.1).

>>> from colorkit.data import prepare
>>> ds = prepare("demo")                      # or a folder, .tar, .tar.gz, .zip, LMDB dir
>>> train = ds.split("train")
>>> b = train.batch(range(16))                # {"grey": (16,1,64,64), "ab": (16,2,64,64), "index": (16,)}

Units: ``grey`` = Lab L / 100, ``ab`` = Lab (a, b) / 128 (see :mod:`colorkit.core.color`).
"""

from __future__ import annotations

from colorkit.data.cache import default_cache_dir
from colorkit.data.dataset import SPLITS, PreparedDataset, SplitData
from colorkit.data.images import (
    IMAGE_EXTENSIONS,
    MIN_SIDE,
    SKIP_REASONS,
    Loaded,
    find_images,
    load_image,
)
from colorkit.data.loader import batch_loader
from colorkit.data.prepare import content_hash, prepare
from colorkit.data.resolve import resolve_source
from colorkit.data.shards import FORMAT, SHARD_SIZE
from colorkit.data.sources import Record, Source, source_for_path
from colorkit.data.split import default_test_size, split_indices

__all__ = [
    "FORMAT",
    "SHARD_SIZE",
    "IMAGE_EXTENSIONS",
    "MIN_SIDE",
    "SKIP_REASONS",
    "SPLITS",
    "Loaded",
    "PreparedDataset",
    "Record",
    "Source",
    "SplitData",
    "batch_loader",
    "content_hash",
    "default_cache_dir",
    "default_test_size",
    "find_images",
    "load_image",
    "prepare",
    "resolve_source",
    "source_for_path",
    "split_indices",
]
