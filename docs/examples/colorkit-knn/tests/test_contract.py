"""Tests of colorkit-knn. The fixtures come with colorkit (its pytest plugin):
``colorkit_tiny_dataset`` (40 synthetic 32x32 colour images, prepared),
``colorkit_tiny_stats`` (their colour statistics) and ``colorkit_contract`` (runs
colorkit's contract check on a registered component)."""

from __future__ import annotations

import colorkit
import torch
from colorkit import TrainConfig, Trainer

from colorkit_knn import ChromaRatio, KNNColorizer


def test_registered_from_this_distribution():
    entry = colorkit.registry("method").get("knn")
    assert entry.factory is KNNColorizer and entry.distribution == "colorkit-knn"


def test_contract(colorkit_contract):
    # Builds knn with preset "tiny", trains it through colorkit's engine, checks sample
    # shapes and units, determinism per mode and the save/load round trip.
    colorkit_contract("knn")


def test_metric_contract(colorkit_contract):
    # Units and direction declared, finite, the same however the images are batched, reset clears.
    colorkit_contract("chroma_ratio")


def test_chroma_ratio_is_one_for_the_truth_and_pooled_over_images():
    target = torch.zeros(2, 2, 4, 4)
    target[0, 0] = 0.5  # a colourful image
    target[1, 1] = 0.1  # a nearly grey one
    m = ChromaRatio()
    m.update(target[:, None].repeat(1, 3, 1, 1, 1), target, torch.zeros(2, 1, 4, 4))
    assert abs(m.compute() - 1.0) < 1e-6  # float32 square roots
    m.reset()
    half = target.clone()
    half[1] = 0.0  # the grey image loses its colour: pooled ratio 0.5 / 0.6, not the mean of 1 and 0
    m.update(half[:, None], target, torch.zeros(2, 1, 4, 4))
    assert abs(m.compute() - 0.5 / 0.6) < 1e-6


def _trained(dataset, stats, tmp_path, **fields):
    m = colorkit.create_method("knn", stats=stats, preset="tiny", image_size=dataset.size, **fields)
    Trainer(TrainConfig(progress=False, device="cpu")).fit(m, dataset.split("train"), tmp_path / "run")
    return m


def test_a_training_image_gets_its_own_colours(colorkit_tiny_dataset, colorkit_tiny_stats, tmp_path):
    m = _trained(colorkit_tiny_dataset, colorkit_tiny_stats, tmp_path)
    train = colorkit_tiny_dataset.split("train")
    assert int(m.bank.count) == len(train)
    b = train.batch([0, 1, 2])
    out = m.sample(b["grey"], 2)  # (3, 2, 2, 32, 32), nearest first
    assert out.shape == (3, 2, 2, 32, 32)
    assert torch.allclose(out[:, 0], b["ab"], atol=5e-4)  # float16 storage
    assert not torch.allclose(out[:, 1], b["ab"], atol=5e-4)


def test_random_of_top_draws_from_the_2k_nearest(colorkit_tiny_dataset, colorkit_tiny_stats, tmp_path):
    m = _trained(colorkit_tiny_dataset, colorkit_tiny_stats, tmp_path)
    grey = colorkit_tiny_dataset.split("test").batch([0, 1])["grey"]
    top = m.sample(grey, 6, mode="nearest")  # the 2k nearest for k = 3
    draws = [m.sample(grey, 3, mode="random-of-top", generator=torch.Generator().manual_seed(s)) for s in range(4)]
    for d in draws:
        for i in range(2):
            assert all(any(torch.equal(x, t) for t in top[i]) for x in d[i])
    assert any(not torch.equal(draws[0], d) for d in draws[1:])


def test_bank_smaller_than_split_keeps_a_random_subset(colorkit_tiny_dataset, colorkit_tiny_stats, tmp_path):
    m = _trained(colorkit_tiny_dataset, colorkit_tiny_stats, tmp_path, bank_size=5)
    n_train = len(colorkit_tiny_dataset.split("train"))
    assert int(m.bank.count) == 5 and int(m.bank.seen) == n_train
    rows = m.bank.index.tolist()
    assert len(set(rows)) == 5 and set(rows) <= set(colorkit_tiny_dataset.train_idx.tolist())
