"""Data preparation for colorkit: folders of photographs -> cached 64x64 uint8 arrays with a
train/test split (Deshpande et al., CVPR 2017, section 7.1).

>>> from colorkit.data import prepare
>>> ds = prepare("demo")                      # or a folder path
>>> train = ds.split("train")
>>> b = train.batch(range(16))                # {"grey": (16,1,64,64), "ab": (16,2,64,64), "index": (16,)}

Units: ``grey`` = Lab L / 100, ``ab`` = Lab (a, b) / 128 (see :mod:`colorkit.color`).
"""

from __future__ import annotations

from colorkit.data.dataset import SPLITS, PreparedDataset, SplitData
from colorkit.data.images import (
    IMAGE_EXTENSIONS,
    MIN_SIDE,
    SKIP_REASONS,
    Loaded,
    find_images,
    load_image,
)
from colorkit.data.prepare import (
    FORMAT,
    content_hash,
    default_cache_dir,
    default_test_size,
    prepare,
    resolve_source,
    split_indices,
)

__all__ = [
    "FORMAT",
    "IMAGE_EXTENSIONS",
    "MIN_SIDE",
    "SKIP_REASONS",
    "SPLITS",
    "Loaded",
    "PreparedDataset",
    "SplitData",
    "content_hash",
    "default_cache_dir",
    "default_test_size",
    "find_images",
    "load_image",
    "prepare",
    "resolve_source",
    "split_indices",
]
