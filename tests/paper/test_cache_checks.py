"""Caches verified on every read: the converted ImageNet weights (``<cache>/weights/``), the
feature tables (``<set>/features/``), the pretext-trained backbones and the colour
statistics. A file that was edited, replaced, truncated or holds another dtype or row count
is rebuilt with one line saying so, never used and never fatal."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from colorkit_paper import effnet
from colorkit_paper.effnet import EffNetLite0, pretrained_state
from colorkit_paper.feature_cache import build_table
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from colorkit.testing import make_image_folder, tiny_dataset


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("colorkit: warning:")]


def _metadata(path) -> dict:
    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


@pytest.fixture
def weights_cache(tmp_path):
    """A cache holding the conversion of the installed package's weights."""
    good = pretrained_state(cache_dir=tmp_path)
    (target,) = (tmp_path / "weights").glob("effnet-lite0-*.safetensors")
    return tmp_path, target, good


@pytest.mark.parametrize("digest", ["copied", "recomputed"])
def test_tampered_weights_cache_is_converted_again(weights_cache, capsys, digest):
    """Weights scaled by 0.9, the file's own digest left as it was or recomputed to fit:
    neither is used; the package's weights are, with one line, and the cache is repaired."""
    cache, target, good = weights_cache
    meta = _metadata(target)
    scaled = {k: v * 0.9 if v.is_floating_point() else v for k, v in load_file(target).items()}
    if digest == "recomputed":
        meta["sha256"] = effnet.tensor_digest(scaled)
    save_file(scaled, target, metadata=meta)
    capsys.readouterr()
    again = pretrained_state(cache_dir=cache)
    assert all(torch.equal(again[k], good[k]) for k in good)
    lines = _warnings(capsys.readouterr().err)
    assert len(lines) == 1 and str(target) in lines[0] and "converting" in lines[0], lines
    assert "reinstall" not in lines[0] and "package" not in lines[0].split(";")[0]
    assert all(torch.equal(v, good[k]) for k, v in load_file(target).items())  # repaired
    pretrained_state(cache_dir=cache)
    assert _warnings(capsys.readouterr().err) == []


def test_truncated_weights_cache_is_rebuilt_not_fatal(weights_cache, capsys):
    cache, target, good = weights_cache
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    again = pretrained_state(cache_dir=cache)
    assert all(torch.equal(again[k], good[k]) for k in good)
    assert len(_warnings(capsys.readouterr().err)) == 1
    assert target.stat().st_size == len(data)


def test_a_training_records_the_packages_digest_despite_a_tampered_cache(weights_cache, monkeypatch, capsys):
    """What run.json records (``load_pretrained``'s provenance) is the package's digest."""
    cache, target, _ = weights_cache
    save_file({k: v * 0.9 if v.is_floating_point() else v for k, v in load_file(target).items()}, target,
              metadata=_metadata(target))
    monkeypatch.setenv("COLORKIT_CACHE", str(cache))
    from colorkit.inference.colorizer import DEMO_MODEL_DIR

    package = json.loads((DEMO_MODEL_DIR / "model.json").read_text())["external_weights_sha256"]
    assert EffNetLite0().load_pretrained()["backbone_weights_sha256"] == package


def test_tampered_weights_cache_does_not_blame_the_package(tmp_path, monkeypatch, capsys):
    """A model that names its backbone by digest (the bundled demo model does) loads with a
    tampered cache: one line, nothing written, and no advice to reinstall the package."""
    from colorkit.core.checkpoint import load_external
    from colorkit.inference.colorizer import DEMO_MODEL_DIR

    pretrained_state(cache_dir=tmp_path)
    (target,) = (tmp_path / "weights").glob("effnet-lite0-*.safetensors")
    save_file({k: v * 0.9 if v.is_floating_point() else v for k, v in load_file(target).items()}, target,
              metadata=_metadata(target))
    before = target.read_bytes()
    monkeypatch.setenv("COLORKIT_CACHE", str(tmp_path))
    package = json.loads((DEMO_MODEL_DIR / "model.json").read_text())["external_weights_sha256"]
    capsys.readouterr()
    load_external(EffNetLite0(preset="tiny"), package, DEMO_MODEL_DIR)
    lines = _warnings(capsys.readouterr().err)
    assert len(lines) == 1 and "in memory" in lines[0] and "reinstall" not in lines[0]
    assert target.read_bytes() == before  # loading a model writes nothing


# ------------------------------------------------------------------------- feature tables
class _Split:
    """The parts of a training split that the feature table reads."""

    def __init__(self, root, n=6, size=16):
        g = torch.Generator().manual_seed(0)
        self.grey = torch.rand(n, 1, size, size, generator=g)
        self.indices = np.arange(3, 3 + n, dtype=np.int64)
        self.root = root

    def __len__(self):
        return len(self.indices)

    def batch(self, idx):
        return {"grey": self.grey[idx]}


@pytest.fixture(scope="module")
def backbone():
    b = EffNetLite0(preset="tiny", levels=(2,))  # random weights: the table's numbers only need to be the backbone's
    return b.eval()


def _table(backbone, split, flip=True):
    return build_table(backbone, split, image_size=16, flip=flip, budget_mb=64)


def _stored(split):
    (path,) = (split.root / "features").glob("*.safetensors")
    return path


def test_a_feature_table_replaced_by_random_numbers_is_computed_again(backbone, tmp_path, capsys):
    split = _Split(tmp_path)
    first = _table(backbone, split)
    path = _stored(split)
    meta = _metadata(path)
    save_file({k: torch.randn_like(v) for k, v in load_file(path).items()}, path, metadata=meta)
    capsys.readouterr()
    again = _table(backbone, split)
    assert torch.equal(again.plain, first.plain) and torch.equal(again.flipped, first.flipped)
    lines = _warnings(capsys.readouterr().err)
    assert len(lines) == 1 and str(path) in lines[0] and "computing them again" in lines[0]
    assert torch.equal(load_file(path)["plain"], first.plain)  # replaced by the right table
    _table(backbone, split)
    assert _warnings(capsys.readouterr().err) == []


def test_a_feature_table_copied_under_another_key_is_not_used(backbone, tmp_path, capsys):
    """A whole, digest-carrying table of another data set's folder (same rows, other
    images), copied under this one's name."""
    split, other = _Split(tmp_path / "a"), _Split(tmp_path / "b", n=6)
    other.grey = other.grey.flip(-2)
    _table(backbone, split)
    _table(backbone, other)
    _stored(other).write_bytes(_stored(split).read_bytes())
    capsys.readouterr()
    again = _table(backbone, other)
    assert torch.equal(again.plain, backbone(other.grey))
    assert len(_warnings(capsys.readouterr().err)) == 1


@pytest.mark.parametrize("bad", ["float16", "int32", "fewer rows", "no flipped table"])
def test_a_feature_table_of_another_dtype_or_row_count_is_a_mismatch(backbone, tmp_path, capsys, bad):
    """Tables a careless tool might write: they are computed again, never reach training
    (a float16 table was a RuntimeError there, one with fewer rows an IndexError)."""
    split = _Split(tmp_path)
    first = _table(backbone, split)
    path = _stored(split)
    saved = load_file(path)
    if bad == "fewer rows":
        saved = {k: v[:-2].contiguous() for k, v in saved.items()}
    elif bad == "no flipped table":
        saved = {"plain": saved["plain"]}
    else:
        saved = {k: v.to(getattr(torch, bad)) for k, v in saved.items()}
    save_file(saved, path, metadata=_metadata(path))
    capsys.readouterr()
    again = _table(backbone, split)
    assert again.plain.dtype == torch.float32 and torch.equal(again.plain, first.plain)
    assert torch.equal(again.lookup(torch.from_numpy(split.indices)), first.plain)  # every row is there
    assert len(_warnings(capsys.readouterr().err)) == 1


def test_a_digest_carrying_table_of_the_wrong_dtype_or_rows_is_still_refused(backbone, tmp_path, capsys):
    """The shape and dtype checks stand on their own, beside the digest."""
    from colorkit_paper import feature_cache

    from colorkit.core.cachefile import write_cached

    split = _Split(tmp_path)
    first = _table(backbone, split, flip=False)
    path = _stored(split)
    key = f"{tmp_path.name}/{feature_cache._key(backbone, 16, split.indices, False)}"
    for bad in ({"plain": first.plain.half()}, {"plain": first.plain[:-1].clone()}):
        write_cached(path, bad, key)
        capsys.readouterr()
        again = _table(backbone, split, flip=False)
        assert torch.equal(again.plain, first.plain)
        lines = _warnings(capsys.readouterr().err)
        assert len(lines) == 1 and ("float16" in lines[0] or "shape" in lines[0]), lines


def test_a_training_on_a_tampered_feature_table_learns_what_it_learns_without_it(tmp_path, capsys):
    """End to end: an MDN trained after its feature table was replaced by a float16 one of
    the same shape learns exactly the weights of a training that read a sound table."""
    from colorkit.core.checkpoint import load_tensors
    from colorkit.train.runs import train

    ds = tiny_dataset(make_image_folder(tmp_path / "images", n=28, size=32), size=32, test_size=4,
                      cache_dir=tmp_path / "cache")

    def run(name):
        out = train("mdn", out=tmp_path / name, preset="tiny", size=32, epochs=1, prepared=ds,
                    options={"flip": True, "use_cache": True}, progress=False)
        return load_tensors(out / "model.safetensors")

    run("a")  # builds every cache
    (path,) = (ds.root / "features").glob("*.safetensors")
    save_file({k: v.half() for k, v in load_file(path).items()}, path, metadata=_metadata(path))
    capsys.readouterr()
    first = run("b")
    assert len([w for w in _warnings(capsys.readouterr().err) if "features" in w]) == 1
    second = run("c")
    assert _warnings(capsys.readouterr().err) == []
    for k in first:
        torch.testing.assert_close(first[k], second[k], rtol=0, atol=0, msg=k)


# ------------------------------------------------------------------------- colour statistics, pretext backbones
def test_tampered_colour_statistics_are_computed_again(tmp_path, capsys):
    from colorkit.core.stats import load_or_compute_stats, stats_cache_path

    ds = tiny_dataset(make_image_folder(tmp_path / "images", n=28, size=32), size=16, test_size=4,
                      cache_dir=tmp_path / "cache")
    good = load_or_compute_stats(ds)
    path = stats_cache_path(ds)
    meta = _metadata(path)
    tensors = load_file(path)
    tensors["bin_weights"] = tensors["bin_weights"] * 2
    save_file(tensors, path, metadata=meta)
    capsys.readouterr()
    again = load_or_compute_stats(ds)
    assert torch.equal(again.bin_weights, good.bin_weights)
    assert len(_warnings(capsys.readouterr().err)) == 1
    assert "cache_sha256" not in again.meta  # the cache's own digest does not travel into runs


def test_tampered_pretext_backbone_is_trained_again(tmp_path, capsys):
    from colorkit_paper import backbone_cache

    from colorkit import create_backbone

    b = create_backbone("colornet", preset="tiny")
    path = tmp_path / "backbones" / "colornet-0123456789ab"
    backbone_cache.save(b, path)
    fresh = create_backbone("colornet", preset="tiny")
    assert backbone_cache.load_into(fresh, path)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in fresh.state_dict().items())
    weights = path / "model.safetensors"
    save_file({k: v * 0.9 if v.is_floating_point() else v for k, v in load_file(weights).items()}, weights,
              metadata=_metadata(weights))
    capsys.readouterr()
    assert not backbone_cache.load_into(create_backbone("colornet", preset="tiny"), path)
    lines = _warnings(capsys.readouterr().err)
    assert len(lines) == 1 and "training a new one" in lines[0]
    json.loads((path / "model.json").read_text())  # the folder itself is left for the retraining to replace
