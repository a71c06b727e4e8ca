"""The contract every registered component meets; a plugin author calls it on their class.

.. code-block:: python

    from colorkit.testing import check_method

    def test_my_method(colorkit_tiny_stats):
        check_method(MyMethod, stats=colorkit_tiny_stats)

Each check raises :class:`ContractError` naming the component and what is wrong.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from colorkit.core.interfaces import Metric, RatioMetric
from colorkit.core.registry import KINDS, Entry
from colorkit.testing.errors import fail
from colorkit.testing.sampling_checks import check_hints as _check_hints
from colorkit.testing.sampling_checks import check_sequence as _check_sequence
from colorkit.testing.tensors import check_ab, check_finite, random_ab, random_grey


def find_entry(obj: Any, kind: str | None = None) -> Entry:
    """The registry entry of a name or a class (registry metadata check)."""
    from colorkit.core.plugin_manager import registry

    kinds = [kind] if kind else list(KINDS)
    if isinstance(obj, str):
        for k in kinds:
            reg = registry(k)
            if obj in reg:
                return reg.get(obj)
        fail(obj, f"no {kind or 'component'} of that name is registered (see `colorkit plugins`)")
    for k in kinds:
        for e in registry(k).entries.values():
            if e.factory is obj:
                return e
    name = getattr(obj, "__qualname__", repr(obj))
    fail(name, f"is not registered as a {kind or 'component'}: add a hookimpl {hook_for(obj, kind)} "
                "in a module named by a [project.entry-points.colorkit] line of your package, and install it")
    raise AssertionError  # unreachable


def hook_for(obj: Any, kind: str | None = None) -> str:
    """The hook that registers ``obj`` (a class) or components of ``kind``."""
    from colorkit.core.plugin_manager import HOOK_FOR_KIND

    if kind is None and isinstance(obj, type):
        from colorkit.core import interfaces as I

        bases = {I.Metric: "metric", I.Method: "method", I.DecoderLoss: "decoder_loss",
                 I.Backbone: "backbone", I.Embedder: "embedder"}
        kind = next((k for base, k in bases.items() if issubclass(obj, base)), None)
    return HOOK_FOR_KIND.get(kind or "", "register_<kind>s, e.g. register_metrics")


def _check_entry(e: Entry) -> str:
    what = f"{e.kind} {e.name!r} ({e.source})"
    if not e.description:
        fail(what, "has no description: pass description= to register() or give the class a docstring")
    if e.distribution in {"", "?"}:
        fail(what, "does not come from an installed distribution (entry point without metadata)")
    return what


def _build(e: Entry, stats: Any, image_size: int | None, **extra: Any) -> Any:
    fields = getattr(getattr(e.factory, "Config", None), "model_fields", {})
    kw: dict[str, Any] = {"preset": "tiny", **extra} if "preset" in fields else dict(extra)
    if image_size is not None and "image_size" in fields:
        kw["image_size"] = image_size
    if e.kind in {"method"}:
        kw["stats"] = stats
    if e.kind == "metric":
        return e.factory(stats=stats)
    obj = e.factory(**kw)
    obj.registry_name = e.name
    return obj


def _meta_data(what: str, obj: Any, s: int, batch: int) -> tuple[Any, dict[str, Tensor], list]:
    """For ``uses_meta`` components: the data set their ``contract_dataset`` names, prepared
    at ``s`` pixels, a test batch of ``batch`` images and its metadata records."""
    from colorkit.data import prepare
    from colorkit.data.meta import load_meta

    spec = obj.contract_dataset
    if not spec:
        fail(what, "declares uses_meta = True but names no contract_dataset (a data set with per-image "
                    "metadata to check it on)")
    ds = prepare(spec, size=s, progress=False, test_size=batch)
    meta_of = load_meta(ds)
    if meta_of is None:
        fail(what, f"contract_dataset {spec!r} has no per-image metadata (colorkit-meta.json)")
    b = ds.split("test").batch(list(range(batch)))
    return ds, b, meta_of(b["index"])


def _round_trip(what: str, obj: Any, stats: Any, tmp: Path) -> Any:
    from colorkit.core.checkpoint import load_component, save_component

    method = obj.kind == "method"
    try:
        save_component(obj, tmp / "ckpt", stats=stats if method else None)
        # Rebuild under another RNG state, as a new process would: random state kept outside
        # the state_dict then differs instead of being redrawn identically.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((torch.initial_seed() + 7919) % 2**63)
            back = load_component(tmp / "ckpt", kind=obj.kind, name=obj.registry_name,
                                  **({"stats": stats} if method else {}))
    except Exception as exc:  # noqa: BLE001
        fail(what, f"save/load round trip failed: {type(exc).__name__}: {exc}")
    a, b = obj.state_dict(), back.state_dict()
    for k, v in a.items():
        if not torch.equal(v.cpu(), b[k].cpu()):
            fail(what, f"tensor {k!r} differs after the save/load round trip")
    return back


def _stage_state(stage: Any) -> dict[str, Tensor]:
    """Copies of what a stage trains: its modules' parameters, or their buffers when they
    have no parameters (e.g. a bank of stored examples)."""
    items = [(f"{n}.{k}", v) for n, mod in stage.modules.items() for k, v in mod.named_parameters()]
    if not items:
        items = [(f"{n}.{k}", v) for n, mod in stage.modules.items() for k, v in mod.named_buffers()]
    return {k: v.detach().clone() for k, v in items}


def _backward(what: str, loss: Tensor, params: list[nn.Parameter]) -> None:
    loss.backward()
    got = [p.grad for p in params if p.grad is not None]
    if params and not got:
        fail(what, "backward produced no gradient for any parameter")
    for gr in got:
        check_finite(what, "a gradient", gr)


# ------------------------------------------------------------------ per kind
def check_method(obj: Any, *, stats: Any, dataset: Any = None, image_size: int | None = None, k: int = 3,
                 batch: int = 2, seed: int = 0, tmp_dir: str | Path | None = None, train_steps: int = 2) -> None:
    """Contract of a method: builds from ``preset="tiny"`` + ``stats``, every
    stage takes engine steps with finite losses and changes its modules, ``sample`` gives
    ``(B, k, 2, H, W)`` in ab / 128, reproducible under a seed for every sampling mode,
    and the same samples after a save/load round trip."""
    from colorkit.train.engine import TrainConfig, Trainer

    e = find_entry(obj, "method")
    what = _check_entry(e)
    if stats is None:
        fail(what, "a method needs colour statistics: pass stats= (a ColorStats, e.g. the colorkit_tiny_stats "
                    "fixture of colorkit.testing, or colorkit.core.stats.load_or_compute_stats(dataset))")
    s = image_size or int(getattr(stats, "image_size", 64))
    torch.manual_seed(seed)
    m = _build(e, stats, s)
    if getattr(m.config, "image_size", s) != s:
        fail(what, f"config image_size {m.config.image_size} differs from the statistics' {s}")
    stages = m.stages()
    if not stages:
        fail(what, "stages() returned no training stage")
    names = [st.name for st in stages]
    if len(set(names)) != len(names):
        fail(what, f"stage names repeat: {names}")
    modes = tuple(getattr(m, "sample_modes", ()))
    if not modes:
        fail(what, "sample_modes is empty")
    extra: dict[str, Any] = {}
    grey = random_grey(batch, s, seed)
    if getattr(m, "uses_meta", False):  # sampled with per-image metadata, trained on its data set
        dataset, b, meta = _meta_data(what, m, s, batch)
        grey, extra = b["grey"], {"meta": meta}
    with tempfile.TemporaryDirectory(dir=tmp_dir) as td:
        tmp = Path(td)
        split = dataset.split("train") if dataset is not None else _SyntheticSplit(12, s, seed)
        before = {st.name: _stage_state(st) for st in stages}
        try:
            Trainer(TrainConfig(epochs=1, max_steps_per_epoch=train_steps, progress=False, seed=seed,
                                batch_size=4, device="cpu")).fit(m, split, tmp / "run")
        except Exception as exc:  # noqa: BLE001
            fail(what, f"training through the engine failed: {type(exc).__name__}: {exc}")
        for st in stages:
            old = before[st.name]
            if st.epochs and old:
                now = _stage_state(st)
                if all(torch.equal(v, now[k2]) for k2, v in old.items()):
                    has_params = any(True for mod in st.modules.values() for _ in mod.parameters())
                    fail(what, f"stage {st.name!r} left every {'parameter' if has_params else 'buffer'} of its "
                                f"modules ({', '.join(st.modules)}) unchanged after {train_steps} engine steps: "
                                "its step must change them (e.g. ctx.optimize(name, loss) with a loss that "
                                "depends on them)")
        for mode in modes:
            g1 = torch.Generator().manual_seed(seed)
            out = m.sample(grey, k, mode=mode, generator=g1, **extra)
            check_ab(what, f"sample(mode={mode!r})", out, (batch, k, 2, s, s))
            again = m.sample(grey, k, mode=mode, generator=torch.Generator().manual_seed(seed), **extra)
            if not torch.allclose(out, again, atol=1e-6):
                fail(what, f"sample(mode={mode!r}) is not reproducible with the same generator seed")
        for mode in modes:
            _check_sequence(what, m, grey, k, mode, seed, extra)
        _check_hints(what, m, grey, k, modes[0], seed, extra)
        back = _round_trip(what, m, stats, tmp)
        for mode in modes:
            a = m.sample(grey, k, mode=mode, generator=torch.Generator().manual_seed(seed), **extra)
            b = back.sample(grey, k, mode=mode, generator=torch.Generator().manual_seed(seed), **extra)
            if not torch.allclose(a, b, atol=1e-5):
                fail(what, f"samples (mode={mode!r}) differ after the save/load round trip: state outside the "
                            "state_dict? (keep tensors as parameters or persistent registered buffers)")


class _SyntheticSplit:
    """A split of random grey/ab fields, for checks run without a prepared data set."""

    def __init__(self, n: int, s: int, seed: int) -> None:
        self.grey, self.ab = random_grey(n, s, seed), random_ab(n, s, seed)

    def __len__(self) -> int:
        return len(self.grey)

    def batch(self, idx: Any) -> dict[str, Tensor]:
        i = torch.as_tensor(list(idx), dtype=torch.long)
        return {"grey": self.grey[i], "ab": self.ab[i], "index": i}


def _check_backbone(e: Entry, what: str, stats: Any, s: int, tmp: Path) -> None:
    m = _build(e, stats, s)
    if not isinstance(getattr(m, "out_channels", None), int) or not isinstance(getattr(m, "reduction", None), int):
        fail(what, "must state integer out_channels and reduction")
    m.train()
    f = m(random_grey(2, s, 0))
    h = -(-s // m.reduction)
    if f.dim() != 4 or f.shape[:2] != (2, m.out_channels) or abs(f.shape[-1] - h) > 1:
        fail(what, f"forward gave {tuple(f.shape)}, expected (2, {m.out_channels}, ~{h}, ~{h})")
    check_finite(what, "features", f)
    _backward(what, f.float().pow(2).mean(), list(m.parameters()))
    m.eval()
    back = _round_trip(what, m, None, tmp)
    x = random_grey(2, s, 1)
    if not torch.allclose(m(x), back.eval()(x), atol=1e-5):
        fail(what, "features differ after the save/load round trip")


def _check_embedder(e: Entry, what: str, stats: Any, s: int, tmp: Path) -> None:
    m = _build(e, stats, s)
    d = getattr(m, "latent_dim", None)
    ab, grey = random_ab(2, s, 0), random_grey(2, s, 0)
    g = grey if m.uses_grey else None
    m.train()
    post = m.encode(ab, g)
    if tuple(post.mu.shape) != (2, d) or tuple(post.logvar.shape) != (2, d):
        fail(what, f"encode gave mu {tuple(post.mu.shape)}, logvar {tuple(post.logvar.shape)}; expected (2, {d})")
    rec = m.decode(post.sample(), g)
    check_ab(what, "decode", rec[:, None], (2, 1, 2, s, s))
    _backward(what, (rec - ab).pow(2).mean() + post.kl().mean(), list(m.parameters()))
    m.eval()
    back = _round_trip(what, m, None, tmp)
    if not torch.allclose(m.decode(post.mu.detach(), g), back.eval().decode(post.mu.detach(), g), atol=1e-5):
        fail(what, "decode differs after the save/load round trip")


def _check_loss(e: Entry, what: str, stats: Any, s: int, tmp: Path) -> None:
    m = _build(e, stats, None)
    target = random_ab(3, s, 0)
    pred = random_ab(3, s, 5).requires_grad_(True)
    val = m(pred, target, stats)
    if tuple(val.shape) != (3,):
        fail(what, f"returned shape {tuple(val.shape)}, expected per-sample (B,) = (3,)")
    check_finite(what, "loss", val)
    val.sum().backward()
    if pred.grad is None:
        fail(what, "no gradient reaches the prediction")
    check_finite(what, "gradient", pred.grad)
    same = m(target.clone(), target, stats)
    if (same.abs() > 1e-4 * (1 + val.detach().abs())).any():
        fail(what, f"is not ~0 for a perfect prediction (got {same.tolist()})")
    _round_trip(what, m, None, tmp)


def _check_metric(e: Entry, what: str, stats: Any, s: int, tmp: Path) -> None:
    """A metric declares its units and direction; ``compute`` is a finite float after one
    update; the value does not depend on how the images are cut into batches (streaming
    state summed correctly); ``reset`` clears the state; ``per_image`` (the base class's
    path) gives one value per image; a second instance computes the same value."""
    undeclared = [a for a in ("units", "higher_is_better") if not _declared(e.factory, a)]
    if undeclared:
        fail(what, f"declares no {' and no '.join(undeclared)}: set the class attributes units (what the value is "
                    "measured in, written beside it, e.g. 'ab/128') and higher_is_better (True, False, or None when "
                    "neither direction is better); the base class's values are only fallbacks")
    m = _build(e, stats, None)
    if m.higher_is_better not in (True, False, None) or not isinstance(m.units, str) or not m.units:
        fail(what, "must declare higher_is_better (True, False or None) and units (a non-empty string)")
    n = 4
    target, grey = random_ab(n, s, 0), random_grey(n, s, 0)
    extra: dict[str, Any] = {}
    if getattr(m, "uses_meta", False):
        _, b, meta = _meta_data(what, m, s, n)
        target, grey, extra = b["ab"], b["grey"], {"meta": meta}
    noise_ = torch.randn((n, 3, 2, s, s), generator=torch.Generator().manual_seed(1)) * 0.05
    scale = torch.arange(3).view(1, 3, 1, 1, 1) * torch.arange(1, n + 1).view(n, 1, 1, 1, 1)  # images differ
    samples = (target[:, None] + noise_ * scale).clamp(-1, 1)

    def part(lo: int, hi: int) -> dict[str, Any]:
        return {k: v[lo:hi] for k, v in extra.items()}

    m.update(samples, target, grey, **extra)
    whole = m.compute()
    if not isinstance(whole, float) or whole != whole or whole in (float("inf"), float("-inf")):
        fail(what, f"compute() gave {whole!r}, expected a finite float after one update")
    m.reset()
    m.update(samples[:1], target[:1], grey[:1], **part(0, 1))
    m.update(samples[1:], target[1:], grey[1:], **part(1, n))
    split = m.compute()
    if abs(split - whole) > 1e-5 * (1 + abs(whole)):
        fail(what, f"gives {split!r} for the images in two batches (1 + {n - 1}) but {whole!r} for one batch of "
                    f"{n}: its state must accumulate sums over images (or override update/compute together)")
    m.reset()
    m.update(samples[:1], target[:1], grey[:1], **part(0, 1))
    first = m.compute()
    other = _build(e, stats, None)
    other.update(samples[:1], target[:1], grey[:1], **part(0, 1))
    if abs(first - other.compute()) > 1e-6 * (1 + abs(first)):
        fail(what, "reset() does not clear the state: after reset and one update it differs from a new instance")
    cls = type(m)
    if cls.update is Metric.update:
        vals = m.per_image(samples, target, grey)
        if tuple(vals.shape) != (n,):
            fail(what, f"per_image returned shape {tuple(vals.shape)}, expected one value per image ({n},)")


def _declared(cls: Any, attr: str) -> bool:
    """Whether ``cls`` or one of its own bases (not colorkit's metric base classes) sets ``attr``."""
    own = [c for c in getattr(cls, "__mro__", ()) if c not in _METRIC_BASES]
    return any(attr in vars(c) for c in own)


_METRIC_BASES = frozenset(RatioMetric.__mro__)


def check_component(obj: Any, kind: str | None = None, *, stats: Any = None, image_size: int | None = None,
                    tmp_dir: str | Path | None = None, dataset: Any = None) -> None:
    """Run the contract for any registered component (name or class)."""
    e = find_entry(obj, kind)
    what = _check_entry(e)
    s = image_size or int(getattr(stats, "image_size", 32))
    if e.kind == "method":
        check_method(e.factory, stats=stats, image_size=s, tmp_dir=tmp_dir, dataset=dataset)
        return
    if e.kind == "dataset":
        from colorkit.testing.dataset_contract import check_dataset_entry

        check_dataset_entry(e, what)
        return
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(dir=tmp_dir) as td:
        check = {"backbone": _check_backbone, "embedder": _check_embedder, "decoder_loss": _check_loss,
                 "metric": _check_metric}[e.kind]
        check(e, what, stats, s, Path(td))
