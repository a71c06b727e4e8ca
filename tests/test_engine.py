"""The training engine: stages, resume to the same result, NaN stop, 2-process DDP."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from toy_method import Interrupted, ToyMethod, ToySplit, interrupt_at

from colorkit.core.registry import ColorkitError
from colorkit.train.engine import TrainConfig, Trainer, TrainingDiverged


def make(**kw):
    torch.manual_seed(0)
    m = ToyMethod(preset="tiny", **kw)
    m.registry_name = "toy"
    return m


def fit(m, run_dir, **cfg):
    return Trainer(TrainConfig(progress=False, **cfg)).fit(m, ToySplit(), run_dir)


def test_stages_train_only_their_modules(tmp_path):
    m = make()
    net0 = {k: v.clone() for k, v in m.net.state_dict().items()}
    head0 = {k: v.clone() for k, v in m.head.state_dict().items()}
    summary = fit(m, tmp_path / "r")
    assert summary["steps"] == 2 * 3 * 3  # 2 stages x 3 epochs x 24/8 batches
    assert any(not torch.equal(v, m.net.state_dict()[k]) for k, v in net0.items())
    assert any(not torch.equal(v, m.head.state_dict()[k]) for k, v in head0.items())
    log = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log].count("net") == 9 and (tmp_path / "r" / "loss.png").stat().st_size > 1000
    first = [r["loss"] for r in log if r["stage"] == "net"]
    assert first[-1] < first[0]


def test_resume_reaches_the_same_result(tmp_path):
    ref = make()
    fit(ref, tmp_path / "full")
    m = make()
    interrupt_at(m, stage=1, step=12)  # stage 2, after its first epoch was checkpointed
    with pytest.raises(Interrupted):
        fit(m, tmp_path / "cut")
    assert (tmp_path / "cut" / "train_state" / "progress.json").is_file()
    with pytest.raises(ColorkitError, match="pass --resume"):
        fit(make(), tmp_path / "cut")
    resumed = make(width=4)
    with torch.no_grad():  # scramble: resume must load the checkpointed weights
        for p in resumed.parameters():
            p.add_(1.0)
    Trainer(TrainConfig(progress=False)).fit(resumed, ToySplit(), tmp_path / "cut", resume=True)
    for k, v in ref.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-6), k


def test_resume_refuses_other_config(tmp_path):
    m = make(nan_at_step=4)
    with pytest.raises(TrainingDiverged):
        fit(m, tmp_path / "r")
    with pytest.raises(ColorkitError, match="different config"):
        Trainer(TrainConfig(progress=False)).fit(make(width=5), ToySplit(), tmp_path / "r", resume=True)


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
    m = make(nan_at_step=7)  # epoch 3 of stage 1; epochs 1-2 checkpointed
    with pytest.raises(TrainingDiverged, match=r"loss 'net' became nan in stage 'net' at epoch 3, step 7"):
        fit(m, tmp_path / "r")
    prog = json.loads((tmp_path / "r" / "train_state" / "progress.json").read_text())
    assert prog["epoch"] == 2 and prog["global_step"] == 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    m = make()
    if rank == 1:  # different initial weights: the engine must broadcast rank 0's
        with torch.no_grad():
            for p in m.parameters():
                p.mul_(-3.0)
    Trainer(TrainConfig(progress=False)).fit(m, ToySplit(), os.path.join(out, "run"))
    if rank == 0:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, os.path.join(out, "ddp.safetensors"))
    import torch.distributed as dist

    assert not dist.is_initialized()  # fit set the process group up and left it


def test_two_process_ddp_matches_single_process(tmp_path):
    single = make()
    fit(single, tmp_path / "single")
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    from safetensors.torch import load_file

    ddp = load_file(str(tmp_path / "ddp.safetensors"))
    for k, v in single.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        assert torch.allclose(v, ddp[k], atol=2e-5, rtol=1e-4), (k, (v - ddp[k]).abs().max())
