"""The GPU-ready training path, tested on CPU where it can be: bf16 autocast,
channels-last, torch.compile plumbing, and the DataLoader batches (same numbers as the
direct path, with or without worker processes)."""

from __future__ import annotations

import pytest
import torch
from toy_method import ToyMethod, ToySplit

from colorkit.train.engine import TrainConfig, Trainer, autocast_dtype, use_channels_last


def make():
    torch.manual_seed(0)
    m = ToyMethod(preset="tiny", epochs=1)
    m.registry_name = "toy"
    return m


def weights(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


class Direct:
    """A prepared split seen only through ``batch`` (the engine's path before the loader)."""

    def __init__(self, split):
        self.split = split

    def __len__(self):
        return len(self.split)

    def batch(self, idx):
        return self.split.batch(idx)


def test_precision_and_layout_defaults():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(TrainConfig(), cpu) is None and autocast_dtype(TrainConfig(), cuda) == torch.bfloat16
    assert autocast_dtype(TrainConfig(precision="bf16"), cpu) == torch.bfloat16
    assert autocast_dtype(TrainConfig(precision="fp32"), cuda) is None
    assert not use_channels_last(TrainConfig(), cpu) and use_channels_last(TrainConfig(), cuda)


def test_bf16_autocast_on_cpu(tmp_path):
    seen = []
    m = make()
    m.net[0].register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    summary = Trainer(TrainConfig(progress=False, precision="bf16")).fit(m, ToySplit(), tmp_path / "r")
    assert summary["precision"] == "bf16 autocast"
    assert seen and all(d == torch.bfloat16 for d in seen)  # convolutions ran in bf16
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in m.parameters())  # fp32 master weights
    ref = make()
    Trainer(TrainConfig(progress=False)).fit(ref, ToySplit(), tmp_path / "ref")
    diff = max((a - b).abs().max().item() for a, b in zip(m.state_dict().values(), ref.state_dict().values())
               if a.is_floating_point())
    assert 0 < diff < 0.1  # bf16 rounding moves the weights a little, not a lot


def test_channels_last_on_cpu(tmp_path):
    m = make()
    Trainer(TrainConfig(progress=False, channels_last=True)).fit(m, ToySplit(), tmp_path / "r")
    assert m.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    ref = make()
    Trainer(TrainConfig(progress=False)).fit(ref, ToySplit(), tmp_path / "ref")
    for (k, a), b in zip(m.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)


def test_compile_flag_compiles_submodules(monkeypatch, tmp_path):
    pytest.importorskip("torch._dynamo")
    m = make()
    compiled = []
    real_compile = torch.nn.Module.compile

    def spy(self, *a, **kw):
        compiled.append((self, kw))
        return real_compile(self, *a, **kw)

    monkeypatch.setattr(torch.nn.Module, "compile", spy)
    summary = Trainer(TrainConfig(progress=False, compile=True, compile_backend="eager")).fit(
        m, ToySplit(), tmp_path / "r"
    )
    assert summary["compiled"] is True
    assert compiled == [(m.net, {"backend": "eager"}), (m.head, {"backend": "eager"})]  # each sub-module, once
    assert list(m.state_dict()) == list(make().state_dict())  # checkpoints keep their keys
    ref = make()
    Trainer(TrainConfig(progress=False)).fit(ref, ToySplit(), tmp_path / "ref")
    for (k, a), b in zip(m.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_loader_gives_the_direct_paths_weights(colorkit_tiny_dataset, tmp_path):
    split = colorkit_tiny_dataset.split("train")
    runs = {}
    for name, data, workers in (("direct", Direct(split), None), ("loader0", split, 0), ("loader2", split, 2)):
        m = make()
        Trainer(TrainConfig(progress=False, loader_workers=workers)).fit(m, data, tmp_path / name)
        runs[name] = weights(m)
    for name in ("loader0", "loader2"):
        for k, v in runs["direct"].items():
            assert torch.equal(v, runs[name][k]), (name, k)


def test_train_cli_passes_engine_options(monkeypatch, tmp_path, capsys):
    from colorkit.cli import main
    from colorkit.testing import make_image_folder
    from colorkit.train import engine

    got = []
    real_init = engine.Trainer.__init__

    def spy(self, config=None):
        got.append(config)
        real_init(self, config)

    monkeypatch.setattr(engine.Trainer, "__init__", spy)
    folder = make_image_folder(tmp_path / "imgs", n=30, size=40, seed=1)
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "train",
                "--method",
                "cvae",
                "--dataset",
                str(folder),
                "--preset",
                "tiny",
                "--epochs",
                "1",
                "--size",
                "32",
                "--precision",
                "bf16",
                "--loader-workers",
                "0",
                "--out",
                str(tmp_path / "run"),
                "--quiet",
            ]
        )
    assert exc.value.code == 0, capsys.readouterr().err
    assert got[-1].precision == "bf16" and got[-1].loader_workers == 0 and got[-1].compile is False
