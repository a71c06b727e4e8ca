"""safetensors files written atomically and byte-reproducibly: the one writer of every
``.safetensors`` file colorkit makes (weights, colour statistics, training state)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save as save_bytes
from safetensors.torch import save_file

from colorkit.core.fs import AtomicFile, open_write
from colorkit.core.registry import ColorkitError


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """safetensors file of contiguous CPU tensors (shared storage is split apart), written
    atomically and byte-reproducibly: the header's keys are sorted, so the same tensors and
    metadata always give the same bytes. The tensors are written straight from their own
    memory, tensor by tensor (no copy of the whole file is made), and running out of
    memory on the way is a :class:`MemoryError`, never an abort."""
    path = Path(path)
    meta = {k: str(v) for k, v in (metadata or {}).items()} or None
    with _out_of_memory():
        clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        storages: dict[int, int] = {}
        for v in clean.values():
            if v.numel():
                storages[v.untyped_storage().data_ptr()] = storages.get(v.untyped_storage().data_ptr(), 0) + 1
        clean = {k: v.clone() if v.numel() and storages[v.untyped_storage().data_ptr()] > 1 else v
                 for k, v in clean.items()}
        with AtomicFile(path) as tmp:
            save_file(clean, tmp, metadata=meta)
            _sort_header(tmp)


@contextlib.contextmanager
def _out_of_memory() -> Iterator[None]:
    """safetensors' Rust code reports a failed allocation as a pyo3 ``PanicException`` (a
    BaseException) and PyTorch's as a ``RuntimeError``: both become :class:`MemoryError`."""
    try:
        yield
    except (MemoryError, ColorkitError):
        raise
    except BaseException as exc:
        msg = " ".join(str(exc).split())[:200]
        if type(exc).__name__ == "PanicException":
            if "alloc" in msg or "memory" in msg or "capacity" in msg:
                raise MemoryError(f"while serialising tensors: {msg}") from None
            raise ColorkitError(f"cannot serialise tensors to safetensors ({msg})") from None
        if isinstance(exc, RuntimeError) and ("can't allocate memory" in msg or "out of memory" in msg):
            raise MemoryError(f"while copying tensors to write them: {msg}") from None
        raise


def _sort_header(path: Path) -> None:
    """Rewrite the JSON header of the safetensors file ``path`` in place with its keys
    sorted (the library writes metadata in hash order, which changes from one call to the
    next); same length, so offsets and data are unchanged."""
    with open_write(path, "r+b") as fh:
        n = int.from_bytes(fh.read(8), "little")
        text = _sorted_header(fh.read(n), n)
        fh.seek(8)
        fh.write(text)


def _sorted_header(raw: bytes, n: int) -> bytes:
    header = json.loads(raw)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:  # cannot happen: same content, same compact separators
        raise RuntimeError("safetensors header grew when sorted")
    return text.ljust(n, b" ")


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors serialisation (in memory) with its JSON header's keys sorted."""
    with _out_of_memory():
        data = save_bytes(tensors, metadata=metadata or None)
    n = int.from_bytes(data[:8], "little")
    return data[:8] + _sorted_header(data[8 : 8 + n], n) + data[8 + n :]
