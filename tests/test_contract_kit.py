"""The contract kit (colorkit.testing) rejects broken methods and says what is wrong.

Each broken method is a small working one with one defect; it is registered into the
method registry for the test only (the contract reads registry metadata and
rebuilds the method through the registry on load)."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import colorkit
from colorkit.core.interfaces import ComponentConfig, Method, Metric, RatioMetric, Stage
from colorkit.testing import ContractError, check_method


class _Config(ComponentConfig):
    image_size: int = 32


class Good(Method):
    """A working method: a 3x3 conv regresses ab, samples add seeded per-sample offsets."""

    Config = _Config
    PRESETS = {"paper": {}, "small": {}, "tiny": {}}

    def __init__(self, config=None, *, stats, **fields):
        super().__init__(config, stats=stats, **fields)
        self.net = nn.Conv2d(1, 2, 3, padding=1)

    def predict(self, grey):
        return torch.tanh(self.net(grey))  # (B, 2, H, W) in ab/128

    def loss(self, batch, ctx):
        return (self.predict(batch["grey"]) - batch["ab"]).pow(2).mean()

    def _step(self, batch, ctx):
        loss = self.loss(batch, ctx)
        ctx.optimize("net", loss)
        return {"loss": loss.detach()}

    def stages(self):
        return [Stage("fit", {"net": self.net}, lambda: {"net": torch.optim.SGD(self.net.parameters(), lr=0.1)},
                      self._step, epochs=1, batch_size=4)]

    def noise(self, shape, generator):
        return torch.randn(shape, generator=generator)

    @torch.no_grad()
    def sample(self, grey, k, *, mode=None, generator=None):
        self.check_mode(mode)
        offsets = 0.05 * self.noise((grey.shape[0], k, 2, 1, 1), generator)
        return (self.predict(grey)[:, None] + offsets).clamp(-1, 1)  # (B, k, 2, H, W)


class WrongShape(Good):
    @torch.no_grad()
    def sample(self, grey, k, *, mode=None, generator=None):
        return super().sample(grey, k, mode=mode, generator=generator)[..., ::2, ::2]  # half size


class LabUnits(Good):
    @torch.no_grad()
    def sample(self, grey, k, *, mode=None, generator=None):
        return 128 * super().sample(grey, k, mode=mode, generator=generator)  # Lab a, b, not / 128


class IgnoresGenerator(Good):
    def noise(self, shape, generator):
        return torch.randn(shape)  # torch's global generator: differs from call to call


class UnregisteredTensor(Good):
    def __init__(self, config=None, *, stats, **fields):
        super().__init__(config, stats=stats, **fields)
        self.scale = torch.rand(())  # a plain attribute: not in state_dict, random again on load

    def predict(self, grey):
        return torch.tanh(self.scale * self.net(grey))


class RandomBuffer(Good):
    def __init__(self, config=None, *, stats, **fields):
        super().__init__(config, stats=stats, **fields)
        self.register_buffer("shift", 0.3 * torch.rand(2, 1, 1), persistent=False)  # not saved

    def predict(self, grey):
        return torch.tanh(self.net(grey) + self.shift)


class NaNLoss(Good):
    def loss(self, batch, ctx):
        return super().loss(batch, ctx) * float("nan")


class LazyStage(Good):
    """Two stages; the second computes a loss but never optimizes it."""

    def __init__(self, config=None, *, stats, **fields):
        super().__init__(config, stats=stats, **fields)
        self.head = nn.Conv2d(2, 2, 1)

    def predict(self, grey):
        return torch.tanh(self.head(self.net(grey)))

    def stages(self):
        def lazy(batch, ctx):
            return {"loss": self.loss(batch, ctx).detach()}  # no ctx.optimize("head", ...)

        return [*super().stages(),
                Stage("head", {"head": self.head}, lambda: {"head": torch.optim.SGD(self.head.parameters(), lr=0.1)},
                      lazy, epochs=1, batch_size=4, frozen=[self.net])]


class FreshNoisePerFrame(Good):
    """Colorizes a clip frame by frame with one running generator: new noise every frame."""

    def sequence_sampler(self, k, *, mode=None, generator=None):
        from colorkit.core.sequence import SequenceSampler

        method = self

        class PerFrame(SequenceSampler):
            def __init__(self):
                super().__init__(method, k, mode=mode, generator=generator)
                self.gen = generator

            def sample_frames(self, grey, scenes, meta):
                return method.sample(grey, k, mode=mode, generator=self.gen)

        return PerFrame()


class ChunkDependent(Good):
    """Its sequence sampler restarts its noise at every chunk instead of every scene."""

    def sequence_sampler(self, k, *, mode=None, generator=None):
        from colorkit.core.sequence import SequenceSampler

        method = self

        class PerChunk(SequenceSampler):
            def sample_frames(self, grey, scenes, meta):
                if not hasattr(self, "gen"):
                    self.gen = self.generator_for(0)
                noise = 0.05 * method.noise((1, k, 2, 1, 1), self.gen)  # one draw per chunk
                return (method.predict(grey)[:, None] + noise).clamp(-1, 1)

        return PerChunk(method, k, mode=mode, generator=generator)


@pytest.fixture
def registered():
    """``registered(cls)`` registers ``cls`` as a method for this test only."""
    names = []

    def add(cls):
        name = f"contract-kit-{cls.__name__.lower()}"
        colorkit.register("method", name, description="test")(cls)
        names.append(name)
        return cls

    yield add
    for name in names:
        colorkit.unregister("method", name)


def check(cls, stats, tmp_path):
    check_method(cls, stats=stats, tmp_dir=tmp_path)


def test_a_working_method_passes(registered, colorkit_tiny_stats, tmp_path):
    check(registered(Good), colorkit_tiny_stats, tmp_path)


@pytest.mark.parametrize(
    "cls,needles",
    [
        pytest.param(
            WrongShape,
            ["sample(mode='default') has shape (2, 3, 2, 16, 16)", "expected (2, 3, 2, 32, 32)"],
            id="WrongShape",
        ),
        pytest.param(LabUnits, ["reaches |ab| =", "expected Lab ab / 128", "not Lab units"], id="LabUnits"),
        pytest.param(
            IgnoresGenerator,
            ["sample(mode='default') is not reproducible with the same generator seed"],
            id="IgnoresGenerator",
        ),
        pytest.param(
            UnregisteredTensor,
            ["samples (mode='default') differ after the save/load round trip"],
            id="UnregisteredTensor",
        ),
        pytest.param(
            RandomBuffer, ["samples (mode='default') differ after the save/load round trip"], id="RandomBuffer"
        ),
        pytest.param(
            NaNLoss,
            ["training through the engine failed", "TrainingDiverged", "became nan", "stage 'fit'"],
            id="NaNLoss",
        ),
        pytest.param(
            FreshNoisePerFrame,
            ["sample_sequence(mode='default'): frame", "of a clip that repeats one frame is not what sample() gives"],
            id="FreshNoisePerFrame",
        ),
        pytest.param(
            ChunkDependent,
            ["sample_sequence(mode='default') differs when the clip is fed to its sequence_sampler in chunks"],
            id="ChunkDependent",
        ),
        pytest.param(
            LazyStage,
            ["stage 'head' left every parameter of its modules (head) unchanged", "ctx.optimize"],
            id="LazyStage",
        ),
    ],
)
def test_broken_method_fails_saying_why(cls, needles, registered, colorkit_tiny_stats, tmp_path):
    registered(cls)
    with pytest.raises(ContractError) as exc:
        check(cls, colorkit_tiny_stats, tmp_path)
    msg = str(exc.value)
    assert msg.startswith(f"method 'contract-kit-{cls.__name__.lower()}'"), msg
    for needle in needles:
        assert needle in msg, msg


def test_unregistered_method_fails_saying_how_to_register(colorkit_tiny_stats, tmp_path):
    with pytest.raises(ContractError) as exc:
        check(Good, colorkit_tiny_stats, tmp_path)
    msg = str(exc.value)
    assert "Good: is not registered as a method" in msg
    assert "register_methods" in msg and "[project.entry-points.colorkit]" in msg


def test_unknown_name_fails(colorkit_tiny_stats):
    from colorkit.testing import check_component

    with pytest.raises(ContractError, match=r"no-such-method: no method of that name is registered"):
        check_component("no-such-method", "method", stats=colorkit_tiny_stats)


def test_method_without_stats_says_pass_stats(registered, tmp_path):
    """A method needs colour statistics: without them the kit says so in one line
    instead of failing somewhere inside the method's constructor."""
    from colorkit.testing import check_component

    registered(Good)
    with pytest.raises(ContractError, match=r"method 'contract-kit-good' .*: a method needs colour statistics: "
                                            r"pass stats="):
        check_component("contract-kit-good", "method", tmp_dir=tmp_path)


# ------------------------------------------------------------------ metrics
class LastBatchOnly(Metric):
    """Keeps only the last batch's mean: wrong as soon as the images come in two batches."""

    units = "ab/128"
    higher_is_better = False

    def per_image(self, samples, target, grey):
        return (samples - target[:, None]).abs().flatten(1).mean(1)

    def update(self, samples, target, grey):
        self.total = self.per_image(samples, target, grey).double().mean()
        self.count = torch.ones((), dtype=torch.float64)


class NoUnits(Metric):
    """Declares no units."""

    units = ""
    higher_is_better = True

    def per_image(self, samples, target, grey):
        return samples.new_zeros(samples.shape[0])


class Undeclared(Metric):
    """Declares neither units nor higher_is_better (the base class's fallbacks would pass)."""

    def per_image(self, samples, target, grey):
        return (samples - target[:, None]).abs().flatten(1).mean(1)


class UndeclaredDirection(Metric):
    """Declares its units but not higher_is_better."""

    units = "ab/128"

    def per_image(self, samples, target, grey):
        return (samples - target[:, None]).abs().flatten(1).mean(1)


class NeverResets(Metric):
    """Its reset keeps the sums."""

    units = "ab/128"
    higher_is_better = False

    def reset(self):
        if not hasattr(self, "total"):
            super().reset()

    def per_image(self, samples, target, grey):
        return (samples - target[:, None]).abs().flatten(1).mean(1)


class Pooled(RatioMetric):
    """A ratio of sums over images (passes)."""

    units = "fraction of pixels"
    higher_is_better = None

    def per_image_parts(self, samples, target, grey):
        hit = ((samples - target[:, None]).abs() < 0.05).flatten(1).double().sum(1)
        return hit, torch.full_like(hit, float(samples[0].numel()))


@pytest.mark.parametrize("cls,needle", [
    (LastBatchOnly, "for the images in two batches"),
    (NoUnits, "must declare higher_is_better"),
    (Undeclared, "declares no units and no higher_is_better: set the class attributes units"),
    (UndeclaredDirection, "declares no higher_is_better"),
    (NeverResets, "reset() does not clear the state"),
    (Pooled, None),
])
def test_metric_contract(cls, needle, colorkit_tiny_stats, tmp_path):
    from colorkit.testing import check_component

    name = f"contract-kit-{cls.__name__.lower()}"
    colorkit.register("metric", name)(cls)
    try:
        if needle is None:
            check_component(name, "metric", stats=colorkit_tiny_stats, tmp_dir=tmp_path)
        else:
            with pytest.raises(ContractError, match=re.escape(needle)):
                check_component(name, "metric", stats=colorkit_tiny_stats, tmp_dir=tmp_path)
    finally:
        colorkit.unregister("metric", name)


def test_unregistered_metric_names_the_metrics_hook(colorkit_tiny_stats):
    from colorkit.testing import check_component

    with pytest.raises(ContractError) as exc:
        check_component(Pooled, stats=colorkit_tiny_stats)
    assert "register_metrics" in str(exc.value) and "register_methods" not in str(exc.value)
