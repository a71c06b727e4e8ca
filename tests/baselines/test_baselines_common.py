"""Contract checks shared by both baselines (cvae, cgan) on tiny presets at 32x32."""

from __future__ import annotations

import pytest
import torch

import colorkit
from colorkit.core.checkpoint import load_component, save_component
from colorkit.core.interfaces import Method
from colorkit.core.registry import ColorkitError

NAMES = ("cvae", "cgan")


def _make(name: str, stats, **fields) -> Method:
    return colorkit.create_method(name, stats=stats, preset="tiny", image_size=32, **fields)


def test_registered_with_descriptions():
    for name in NAMES:
        entry = colorkit.core.plugin_manager.registry("method").get(name)
        assert entry.description and entry.plugin == "baselines"


@pytest.mark.parametrize("name", NAMES)
def test_constructible_from_tiny_preset(name, stats):
    m = colorkit.create_method(name, stats=stats, preset="tiny")
    assert m.config.image_size == 64 and m.sample_modes == ("centres", "samples")
    out = m.sample(torch.rand(1, 1, 64, 64), 3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 3, 2, 64, 64)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["centres", "samples"])
def test_sample_shapes_and_range(name, mode, stats, batch, train_steps):
    m = _make(name, stats)
    train_steps(m, batch, 1)
    out = m.sample(batch["grey"][:3], 5, mode=mode, generator=torch.Generator().manual_seed(1))
    assert out.shape == (3, 5, 2, 32, 32)
    assert bool(torch.isfinite(out).all()) and float(out.abs().max()) <= 1.0
    assert m.training, "sample restores the training mode"


@pytest.mark.parametrize("name", NAMES)
def test_sampling_is_deterministic_given_the_generator(name, stats, batch):
    m = _make(name, stats)
    grey = batch["grey"][:2]
    a = m.sample(grey, 4, generator=torch.Generator().manual_seed(3))
    b = m.sample(grey, 4, generator=torch.Generator().manual_seed(3))
    c = m.sample(grey, 4, mode="samples", generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(c[:, 0], c[:, 1]), "raw samples differ from one another"


@pytest.mark.parametrize("name", NAMES)
def test_chunked_sampling_matches_one_pass_in_shape(name, stats, batch):
    m = _make(name, stats, num_samples=12, sample_batch=5)
    out = m.sample(batch["grey"][:2], 3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 2, 32, 32)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_gives_the_same_samples(name, stats, batch, tmp_path, train_steps):
    m = _make(name, stats)
    train_steps(m, batch, 2)  # BatchNorm running statistics are no longer the defaults
    save_component(m, tmp_path / "ckpt")
    loaded = load_component(tmp_path / "ckpt", kind="method", name=name, stats=stats)
    assert type(loaded) is type(m) and loaded.config == m.config
    grey = batch["grey"][:2]
    a = m.sample(grey, 3, generator=torch.Generator().manual_seed(9))
    b = loaded.sample(grey, 3, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_errors_name_what_was_given(name, stats):
    m = _make(name, stats)
    with pytest.raises(ColorkitError, match=r"\(B, 1, 32, 32\)"):
        m.sample(torch.rand(1, 1, 64, 64), 2)
    with pytest.raises(ColorkitError, match="mode 'best'"):
        m.sample(torch.rand(1, 1, 32, 32), 2, mode="best")
    with pytest.raises(ColorkitError, match="k=99"):
        m.sample(torch.rand(1, 1, 32, 32), 99)
    with pytest.raises(ColorkitError, match="image_size=40"):
        colorkit.create_method(name, stats=stats, preset="tiny", image_size=40)
    with pytest.raises(ColorkitError, match="preset 'huge'"):
        colorkit.create_method(name, stats=stats, preset="huge")
