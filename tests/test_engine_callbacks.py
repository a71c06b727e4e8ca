"""The engine's callbacks and loggers, gradient clipping, the learning-rate schedule as
LambdaLR, the deferred loss reads, backward outside autocast and the typed split."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from pydantic import ValidationError
from toy_method import ToyMethod, ToySplit

from colorkit.core.interfaces import lr_factor
from colorkit.core.registry import ColorkitError
from colorkit.train.callbacks import Callback, Logger
from colorkit.train.engine import TrainConfig, Trainer, TrainingDiverged
from colorkit.train.schedule import StageSchedule
from colorkit.train.split import TrainSplit


def make(cls=ToyMethod, **kw):
    torch.manual_seed(0)
    m = cls(preset="tiny", **kw)
    m.registry_name = "toy"
    return m


def weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


class Recorder(Logger):
    def __init__(self):
        self.events, self.records = [], []

    def on_fit_start(self, fit):
        self.events.append(("fit_start", fit.rank, fit.world_size, len(fit.history)))

    def on_epoch_start(self, epoch):
        self.events.append(("epoch_start", epoch.stage, epoch.epoch, epoch.steps))

    def on_step_end(self, step):
        self.events.append(("step", step.stage, step.epoch, step.index, step.global_step, step.images))

    def on_epoch_end(self, epoch):
        self.events.append(("epoch_end", epoch.stage, epoch.epoch, epoch.images))

    def on_fit_end(self, summary):
        self.events.append(("fit_end", summary["steps"]))

    def log(self, record):
        self.records.append(record)


def test_a_user_callback_sees_every_event_in_order(tmp_path):
    rec = Recorder()
    Trainer(TrainConfig(progress=False), callbacks=[rec]).fit(make(), ToySplit(), tmp_path / "r")
    ev = rec.events
    assert ev[0] == ("fit_start", 0, 1, 0) and ev[-1] == ("fit_end", 18)
    assert ev[1:6] == [("epoch_start", "net", 0, 3), ("step", "net", 0, 0, 1, 8), ("step", "net", 0, 1, 2, 16),
                       ("step", "net", 0, 2, 3, 24), ("epoch_end", "net", 0, 24)]
    assert [e[1:3] for e in ev if e[0] == "epoch_end"] == [("net", 0), ("net", 1), ("net", 2),
                                                            ("head", 0), ("head", 1), ("head", 2)]
    assert sum(e[0] == "step" for e in ev) == 18
    # a user logger gets exactly the records of log.jsonl (the engine's own logger)
    lines = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert rec.records == lines and len(lines) == 18


def test_plain_callbacks_and_replaced_loggers(tmp_path):
    class Epochs(Callback):
        def __init__(self):
            self.seen = []

        def on_epoch_end(self, epoch):
            self.seen.append((epoch.stage, epoch.epoch))

    cb, only = Epochs(), Recorder()
    Trainer(TrainConfig(progress=False, log_every=2), callbacks=[cb], loggers=[only]).fit(
        make(), ToySplit(), tmp_path / "r")
    assert cb.seen == [("net", 0), ("net", 1), ("net", 2), ("head", 0), ("head", 1), ("head", 2)]
    assert [r["global_step"] for r in only.records] == list(range(2, 19, 2))
    assert not (tmp_path / "r" / "log.jsonl").exists() and not (tmp_path / "r" / "loss.png").exists()


class Clipped(ToyMethod):
    """Records the gradients' total norm right after each optimisation step."""

    norms: list

    def stages(self):
        st = super().stages()
        inner = st[0].step

        def step(batch, ctx):
            out = inner(batch, ctx)
            grads = [p.grad for p in self.net.parameters() if p.grad is not None]
            self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
            return out

        st[0].step = step
        return st


def test_gradient_clipping_is_off_by_default_and_bounds_the_norm(tmp_path):
    assert TrainConfig().grad_clip is None
    with pytest.raises(ValidationError):
        TrainConfig(grad_clip=0)
    free, clipped = make(Clipped), make(Clipped)
    free.norms, clipped.norms = [], []
    Trainer(TrainConfig(progress=False)).fit(free, ToySplit(), tmp_path / "a")
    Trainer(TrainConfig(progress=False, grad_clip=0.01)).fit(clipped, ToySplit(), tmp_path / "b")
    assert max(free.norms) > 0.02  # the bound below is a real constraint
    assert all(n <= 0.01 * (1 + 1e-5) for n in clipped.norms)
    assert any(not torch.equal(a, b) for a, b in zip(weights(free).values(), weights(clipped).values()))


def _formula(lr0, k, per_epoch, epochs):
    epoch, i = divmod(k, per_epoch)
    return lr0 * lr_factor("cosine", (epoch + i / per_epoch) / max(1, epochs))


@pytest.mark.parametrize("start", [0, 7])
def test_cosine_schedule_as_lambdalr_gives_the_same_floats(start):
    per_epoch, epochs = 7, 3
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.3)
    if start:  # a resumed stage: the optimizer comes back with the rate it started from
        opt.param_groups[0]["initial_lr"] = 0.3
        opt.param_groups[0]["lr"] = 0.123
    sched = StageSchedule({"o": opt}, "cosine", per_epoch, epochs, start=start)
    got = []
    for _ in range(start, per_epoch * epochs):
        sched.advance()
        got.append(opt.param_groups[0]["lr"])
        opt.step()
    want = [_formula(0.3, k, per_epoch, epochs) for k in range(start, per_epoch * epochs)]
    assert got == want  # exact floats, not approximately
    assert StageSchedule({"o": opt}, "constant", per_epoch, epochs).schedulers == []


class Cosine(ToyMethod):
    def stages(self):
        st = super().stages()
        for s in st:
            s.lr_schedule = "cosine"
            inner = s.step

            def step(batch, ctx, inner=inner):
                self.lrs.append(next(iter(ctx.optimizers.values())).param_groups[0]["lr"])
                return inner(batch, ctx)

            s.step = step
        return st


def test_engine_rates_follow_the_cosine_formula_exactly(tmp_path):
    m = make(Cosine)
    m.lrs = []
    Trainer(TrainConfig(progress=False, epochs=2)).fit(m, ToySplit(), tmp_path / "r")
    want = [_formula(0.05, k, 3, 2) for k in range(6)]
    assert m.lrs == want + want  # two stages of 2 epochs x 3 steps, lr 0.05


def test_deferred_reads_log_and_train_the_same(tmp_path):
    a, b = make(), make()

    class Values(Callback):
        def __init__(self):
            self.values = []

        def on_step_end(self, step):
            self.values.append(step.values)

    now, later = Values(), Values()
    Trainer(TrainConfig(progress=False), callbacks=[now]).fit(a, ToySplit(), tmp_path / "a")
    Trainer(TrainConfig(progress=False, sync_every=4), callbacks=[later]).fit(b, ToySplit(), tmp_path / "b")
    assert all(torch.equal(v, weights(b)[k]) for k, v in weights(a).items())
    assert (tmp_path / "a" / "log.jsonl").read_text() == (tmp_path / "b" / "log.jsonl").read_text()
    assert all(set(v) == {"loss"} for v in now.values) and later.values == [None] * 18


@pytest.mark.parametrize("every", [2, 100])
def test_deferred_reads_still_stop_on_nan(tmp_path, every):
    m = make(nan_at_step=7)  # epoch 3 of stage 1; epochs 1-2 checkpointed
    with pytest.raises(TrainingDiverged, match=r"loss 'net' became nan in stage 'net' at epoch 3, step 7; "):
        Trainer(TrainConfig(progress=False, sync_every=every)).fit(m, ToySplit(), tmp_path / "r")
    prog = json.loads((tmp_path / "r" / "train_state" / "progress.json").read_text())
    assert prog["epoch"] == 2 and prog["global_step"] == 6
    logged = [json.loads(x)["global_step"] for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4, 5, 6, 7]  # the steps before the bad one (step 7 is the 8th)


class _Probe(torch.autograd.Function):
    """Identity whose backward records whether autocast is on while it runs."""

    seen: list = []

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        _Probe.seen.append(torch.is_autocast_enabled("cpu"))
        return grad


class Probed(ToyMethod):
    def stages(self):
        st = super().stages()
        c = self.config

        def step(batch, ctx):
            self.forward_amp.append(torch.is_autocast_enabled("cpu"))
            out = _Probe.apply(self.net(batch["grey"]))
            loss = (out.float() - batch["ab"]).pow(2).mean()
            ctx.optimize("net", loss)
            return {"loss": loss.detach()}

        st[0].step, st[0].epochs = step, 1
        st[1].epochs = 0 * c.epochs
        return st


def test_backward_runs_outside_autocast(tmp_path):
    m = make(Probed)
    m.forward_amp, _Probe.seen = [], []
    Trainer(TrainConfig(progress=False, precision="bf16")).fit(m, ToySplit(), tmp_path / "r")
    assert m.forward_amp == [True] * 3  # forward and loss under bf16 autocast
    assert _Probe.seen == [False] * 3  # backward not


class Tagged(ToySplit):
    tag = "mine"


def test_hooks_get_a_typed_split_that_answers_like_the_data(tmp_path):
    got = []

    class Hooked(ToyMethod):
        def stages(self):
            st = super().stages()
            st[0].on_start = lambda split: got.append(split)
            return st

    data = Tagged()
    Trainer(TrainConfig(progress=False, epochs=1)).fit(make(Hooked), data, tmp_path / "r")
    split = got[0]
    assert isinstance(split, TrainSplit) and split.data is data and not split.sharded
    assert len(split) == 24 and split.tag == "mine" and hasattr(split, "grey") and not hasattr(split, "nope")
    assert torch.equal(split.batch([0, 3])["ab"], data.batch([0, 3])["ab"])
    assert pickle.loads(pickle.dumps(split)).tag == "mine"
    assert TrainSplit.of(split) is split
    with pytest.raises(ColorkitError, match=r"training split must have len\(\) and batch\(indices\), got list"):
        TrainSplit.of([1, 2, 3])
