"""The engine's stage lifecycle hooks (skip, on_start, on_end) and the seeded per-process
generator it gives every step (``ctx.generator``), saved and restored on resume."""

from __future__ import annotations

import math

import pytest
import torch
from toy_method import Interrupted, ToyMethod, ToySplit, interrupt_at

from colorkit.core.interfaces import Stage, StageEnd
from colorkit.core.registry import ColorkitError
from colorkit.train.engine import TrainConfig, Trainer, engine_seed


class HookedToy(ToyMethod):
    """ToyMethod whose stages record their hooks and the generator's draws."""

    def __init__(self, *a, skip_first: bool = False, **kw):
        super().__init__(*a, **kw)
        self.events: list[tuple] = []
        self.draws: list[float] = []
        self.skip_first = skip_first

    def stages(self):
        st = ToyMethod.stages(self)
        out = []
        for s in st:
            inner = s.step

            def step(batch, ctx, inner=inner):
                assert isinstance(ctx.generator, torch.Generator)
                self.draws.append(float(torch.rand((), generator=ctx.generator)))
                return inner(batch, ctx)

            def on_start(split, name=s.name):
                self.events.append(("start", name))

            def on_end(split, end, name=s.name):
                self.events.append(("end", name, end))

            def skip(split, name=s.name):
                self.events.append(("skip?", name))
                return self.skip_first and name == "net"

            s.step, s.on_start, s.on_end, s.skip = step, on_start, on_end, skip
            out.append(s)
        return out


def make(**kw):
    torch.manual_seed(0)
    m = HookedToy(preset="tiny", **kw)
    m.registry_name = "toy"
    return m


def fit(m, run_dir, resume=False, **cfg):
    return Trainer(TrainConfig(progress=False, **cfg)).fit(m, ToySplit(), run_dir, resume=resume)


def test_hooks_in_order_with_the_stage_outcome(tmp_path):
    m = make()
    fit(m, tmp_path / "r")
    names = [e[:2] for e in m.events]
    assert names == [("skip?", "net"), ("start", "net"), ("end", "net"),
                     ("skip?", "head"), ("start", "head"), ("end", "head")]
    end = m.events[2][2]
    assert end == StageEnd(name="net", epochs=3, planned_epochs=3, complete=True)


def test_shortened_runs_are_not_complete(tmp_path):
    m = make()
    fit(m, tmp_path / "a", epochs=1)  # an --epochs override
    assert m.events[2][2] == StageEnd(name="net", epochs=1, planned_epochs=3, complete=False)
    m = make()
    fit(m, tmp_path / "b", max_steps_per_epoch=1)  # epochs cut short
    assert m.events[2][2].complete is False and m.events[2][2].epochs == 3


def test_skip_runs_nothing_of_the_stage(tmp_path):
    m = make(skip_first=True)
    net0 = {k: v.clone() for k, v in m.net.state_dict().items()}
    summary = fit(m, tmp_path / "r")
    assert [e[:2] for e in m.events] == [("skip?", "net"), ("skip?", "head"), ("start", "head"), ("end", "head")]
    assert summary["stage_budget"]["net"] == {"epochs": 0, "images": 0}
    assert summary["steps"] == 9  # only the head stage's 3 epochs x 3 batches
    assert all(torch.equal(v, m.net.state_dict()[k]) for k, v in net0.items())


def test_generator_is_seeded_per_run_and_per_process(tmp_path):
    a, b, c = make(), make(), make()
    fit(a, tmp_path / "a", seed=3)
    fit(b, tmp_path / "b", seed=3)
    fit(c, tmp_path / "c", seed=4)
    assert a.draws == b.draws and a.draws != c.draws and len(a.draws) == 18
    first = torch.rand((), generator=torch.Generator().manual_seed(engine_seed(3, 0)))
    assert a.draws[0] == float(first)
    assert engine_seed(3, 0) != engine_seed(3, 1)  # every process draws its own noise


def test_resume_restores_the_generator(tmp_path):
    ref = make()
    fit(ref, tmp_path / "full")

    m = make()
    interrupt_at(m, stage=1, step=12)  # stage 2, after its first epoch was checkpointed
    with pytest.raises(Interrupted):
        fit(m, tmp_path / "cut")
    again = make()
    fit(again, tmp_path / "cut", resume=True)
    assert again.draws == ref.draws[12:]  # the draws after the checkpoint, as in one go
    for k, v in ref.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


class CosineToy(HookedToy):
    """HookedToy whose stages decay their learning rate (cosine) and record it per step."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lrs: list[tuple[str, int, float]] = []

    def stages(self):
        out = []
        for s in HookedToy.stages(self):
            inner = s.step

            def step(batch, ctx, inner=inner, name=s.name):
                opt = next(iter(ctx.optimizers.values()))
                self.lrs.append((name, ctx.epoch, opt.param_groups[0]["lr"]))
                return inner(batch, ctx)

            s.step, s.lr_schedule = step, "cosine"
            out.append(s)
        return out


def make_cosine():
    torch.manual_seed(0)
    m = CosineToy(preset="tiny")
    m.registry_name = "toy"
    return m


def test_cosine_schedule_decays_each_stage_from_its_rate_to_zero(tmp_path):
    m = make_cosine()
    fit(m, tmp_path / "run")
    for name in ("net", "head"):
        lrs = [lr for n, _, lr in m.lrs if n == name]
        assert len(lrs) == 9  # 3 epochs of 3 steps (24 images, batch 8)
        want = [0.05 * 0.5 * (1 + math.cos(math.pi * i / 9)) for i in range(9)]
        assert lrs == pytest.approx(want, rel=1e-12)
    assert m.lrs[0][2] == 0.05 and m.lrs[8][2] < 0.002  # starts at lr, ends near 0


def test_cosine_schedule_on_epochs_override_spans_the_run(tmp_path):
    m = make_cosine()
    fit(m, tmp_path / "run", epochs=2)
    lrs = [lr for n, _, lr in m.lrs if n == "net"]
    assert lrs == pytest.approx([0.05 * 0.5 * (1 + math.cos(math.pi * i / 6)) for i in range(6)], rel=1e-12)


def test_cosine_schedule_resumes_exactly(tmp_path):
    ref = make_cosine()
    fit(ref, tmp_path / "full")
    m = make_cosine()
    interrupt_at(m, stage=0, step=4)  # inside stage 1's second epoch; its first was checkpointed
    with pytest.raises(Interrupted):
        fit(m, tmp_path / "cut", checkpoint_every=1)
    again = make_cosine()
    fit(again, tmp_path / "cut", resume=True)
    assert again.lrs == ref.lrs[3:]
    for k, v in ref.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_unknown_lr_schedule_is_a_clear_error():
    with pytest.raises(ColorkitError, match="lr_schedule must be one of constant, cosine"):
        Stage("s", {}, dict, lambda b, c: {}, epochs=1, lr_schedule="linear")
