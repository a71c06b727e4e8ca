"""safetensors files written atomically and byte-reproducibly: the one writer of every
``.safetensors`` file colorkit makes (weights, colour statistics, training state)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save as save_bytes

from colorkit.core.fs import atomic_write_bytes
from colorkit.core.registry import ColorkitError


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """safetensors file of contiguous CPU copies (shared storage is split apart), written
    atomically and byte-reproducibly: the header's keys are sorted, so the same tensors and
    metadata always give the same bytes."""
    path = Path(path)
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    data = safetensors_bytes(clean, {k: str(v) for k, v in (metadata or {}).items()})
    atomic_write_bytes(path, data)


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors serialisation with its JSON header's keys sorted (the library writes
    metadata in hash order, which changes from one call to the next). Tensor data and
    offsets are unchanged; the header keeps its length, so the file stays valid."""
    try:
        data = save_bytes(tensors, metadata=metadata or None)
    except BaseException as exc:
        # safetensors' Rust code reports a failed allocation as a pyo3 PanicException (a
        # BaseException): it is running out of memory, told as such.
        if type(exc).__name__ != "PanicException":
            raise
        msg = " ".join(str(exc).split())[:200]
        if "alloc" in msg or "memory" in msg or "capacity" in msg:
            raise MemoryError(f"while serialising tensors: {msg}") from None
        raise ColorkitError(f"cannot serialise tensors to safetensors ({msg})") from None
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:  # cannot happen: same content, same compact separators
        raise RuntimeError("safetensors header grew when sorted")
    return data[:8] + text.ljust(n, b" ") + data[8 + n :]
