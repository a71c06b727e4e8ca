"""Process-group helpers for ``torchrun --nproc_per_node N -m colorkit train ...``.

The engine shards every global batch across processes (a DistributedSampler over one
shared, seeded permutation), averages gradients with one bucketed all-reduce per optimizer
step (what DistributedDataParallel does; stages call sub-module methods such as
``encode``/``decode``, which DDP's forward hook would not see) and normalises BatchNorm over
the global batch. So N processes with global batch B follow one process with batch B.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def init_from_env(device: torch.device) -> bool:
    """Initialise the default process group when launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return True


def launch_rank() -> int:
    """The rank torchrun gave this process (``RANK``; 0 when not launched by it), known
    before the process group exists and after it is gone."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's index on its machine under torchrun (``LOCAL_RANK``; 0 otherwise):
    the GPU it takes."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def shutdown() -> None:
    """Leave the process group together: a barrier, then destroy it. Ranks tearing gloo
    down at different moments can abort the later one."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[bool]:
    """The process group's whole life in one place: set up from torchrun's environment on
    entry (NCCL for a CUDA ``device``, gloo otherwise) and left together (barrier, destroy)
    on exit. Yields whether it made the group. A group that already exists (made by the
    caller) is used and left as it is; without torchrun it does nothing. After an error the
    group is destroyed without the barrier, which could wait forever for a process that
    stopped elsewhere."""
    made = init_from_env(device)
    try:
        yield made
    except BaseException:
        if made and dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
        raise
    if made:
        shutdown()


def all_reduce_gradients(params: list[Tensor]) -> None:
    """Average ``.grad`` of ``params`` across processes with a single flat all-reduce."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for g, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        g.copy_(synced)


def all_reduce_sum(buf: Tensor) -> Tensor:
    """``buf`` summed over processes (a copy; on the GPU for NCCL, which cannot reduce CPU
    tensors); ``buf`` itself when not distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return buf
    if dist.get_backend() == "nccl":
        out = buf.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(out)
        return out.to(buf.device)
    out = buf.clone()
    dist.all_reduce(out)
    return out


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def all_agree(flag: bool) -> bool:
    """True only if ``flag`` is true on every process."""
    if not is_distributed():
        return flag
    t = torch.tensor([0.0 if flag else 1.0])
    dist.all_reduce(t)
    return bool(t.item() == 0)


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over processes: the gradient of a sum is the summed gradient."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: D102
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102
        g = grad.clone()
        dist.all_reduce(g)
        return g


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover the global batch across processes
    (differentiable all-reduce of per-channel sums); plain BatchNorm otherwise. Works on
    CPU (gloo) and GPU, unlike ``nn.SyncBatchNorm`` which needs GPUs."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        stacked = torch.cat([x.sum(dims), (x * x).sum(dims), count])
        stacked = _AllReduceSum.apply(stacked)
        c = x.shape[1]
        n = stacked[-1]
        mean = stacked[:c] / n
        var = (stacked[c : 2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)).clamp_min(1.0) * m)
                self.num_batches_tracked += 1
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Swap every BatchNorm1d/2d/3d in ``module`` for :class:`GlobalBatchNorm` in place
    (parameters and buffers are kept; state_dict keys are unchanged)."""
    for child in list(module.children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            child.__class__ = GlobalBatchNorm
        else:
            convert_batchnorm(child)
    return module
