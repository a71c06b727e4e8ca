"""Component metadata is declared, not guessed: colorkit reads what the base classes of
:mod:`colorkit.core.interfaces` declare (``role``, ``sample_modes``, ``uses_meta``,
``external_weights``, ``decoder_loss_option`` ...) and never probes a component with
``getattr``/``hasattr``; plugin knowledge (a backbone's key prefix, a ``timm:`` family, a
``vae`` stage or embedder) stays in the plugins."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import colorkit
from colorkit.core.checkpoint import ExternalWeights, load_component, save_component
from colorkit.core.interfaces import Backbone, Method, declared

ROOT = Path(__file__).resolve().parents[1] / "colorkit"

# (file under colorkit/, a pattern of the line, why a probe is right there). Every getattr(
# or hasattr( in colorkit/ must match one entry, and every entry must still match a line.
ALLOWED: list[tuple[str, str, str]] = [
    # --- foreign objects: modules, the OS, torch, pydantic, pluggy, PIL/matplotlib
    ("__init__.py", "getattr(importlib.import_module(", "foreign object: a module's lazily exported name"),
    ("cli/__init__.py", "getattr(importlib.import_module(", "foreign object: a module's lazily loaded command"),
    ("cli/__init__.py", 'getattr(sys.modules.get("torch"), "OutOfMemoryError"', "foreign object: torch module, "
     "may be absent or old"),
    ("cli/options.py", "hasattr(m, ", "foreign object: pydantic field metadata (annotated_types bounds)"),
    ("core/plugin_manager.py", "getattr(module, attr, None)", "foreign object: a plugin module's attributes"),
    ("core/plugin_manager.py", 'getattr(obj, "colorkit_impl", None)', "foreign object: pluggy's hookimpl marker"),
    ("core/plugin_manager.py", 'getattr(module, "__name__"', "foreign object: a plugin module"),
    ("core/plugin_manager.py", "getattr(st.pm.hook, hook_name)", "foreign object: pluggy's hook relay by name"),
    ("core/plugin_manager.py", 'getattr(factory, "__doc__"', "foreign object: any registered callable"),
    ("core/plugin_manager.py", 'getattr(_loading, "active"', "foreign object: threading.local"),
    ("core/registry.py", "getattr(self.factory, '__", "foreign object: any registered callable's name"),
    ("core/loadwatch.py", 'hasattr(os, "sysconf")', "foreign object: os, by platform"),
    ("core/regular.py", "getattr(os, ", "foreign object: os flags, by platform"),
    ("core/fs.py", "getattr(os, ", "foreign object: os flags, by platform"),
    ("core/images.py", 'hasattr(image, "savefig")', "foreign object: a matplotlib figure or a PIL image"),
    ("core/color.py", 'hasattr(image, "convert")', "foreign object: a PIL image or an array"),
    ("train/device.py", 'getattr(torch.backends, "mps"', "foreign object: torch build without MPS"),
    ("train/split.py", "hasattr(split, ", "duck-typed user data: any split with len() and batch()"),
    ("train/split.py", 'getattr(split, "batch"', "duck-typed user data: any split with len() and batch()"),
    ("train/split.py", "getattr(self.data, name)", "duck-typed user data: the wrapped split's own attributes"),
    ("metrics/__init__.py", 'getattr(cls, "__mro__"', "foreign object: any class a plugin registers as a metric"),
    ("metrics/classes.py", 'getattr(stats, "weight_of"', "duck-typed user data: the stats a metric is given"),
    # --- the contract kit: its job is to check plugin objects that may not declare what they must
    ("testing/contract.py", "getattr(", "contract kit: checks an undeclared attribute of a plugin's object"),
    ("testing/sampling_checks.py", 'getattr(m, "takes_hints"', "contract kit: checks a plugin's method"),
    ("testing/dataset_contract.py", 'getattr(e.factory, "example_variant"', "contract kit: a data set factory"),
    ("core/plugin_manager.py", 'getattr(factory, "__module__"', "foreign object: any registered callable"),
    ("inference/__init__.py", "getattr(module, name)", "foreign object: a module's lazily exported name"),
    ("inference/colorizer.py", 'getattr(self.method.config, "image_size"', "foreign object: a field of some "
     "methods' pydantic configs only"),
    ("inference/colorizer.py", "getattr(ab, 'shape'", "checks a plugin's sample() output, which may not be a tensor"),
    ("inference/clip.py", "getattr(self, stage)", "its own timing fields, by stage name"),
    ("train/runs.py", 'getattr(factory, "make_config"', "any registered callable: a plain factory has none"),
    ("train/runs.py", 'getattr(entry.factory, "options_from_context"', "any registered callable: a plain "
     "factory has none"),
    ("data/meta.py", 'hasattr(index, "tolist")', "foreign object: a tensor, an array or a list of rows"),
    ("data/meta.py", 'getattr(dataset, "source"', "duck-typed user data: any data set, prepared or not"),
    ("data/loader.py", 'hasattr(self.split, "indices")', "duck-typed user data: any split with len() and batch()"),
    ("data/video.py", 'getattr(img, "n_frames"', "foreign object: PIL images of formats without frames"),
    ("data/video.py", 'getattr(frame, "rotation"', "foreign object: PyAV frames, by PyAV version"),
    ("data/recipes.py", 'getattr(resp, "status"', "foreign object: urllib responses of other schemes"),
    ("data/recipes.py", 'getattr(exc, "reason"', "foreign object: urllib's errors, some without a reason"),
    ("data/video_write.py", "getattr(av.codec.context.Flags", "foreign object: PyAV flags, by PyAV version"),
    ("data/video_write.py", 'getattr(self, "out"', "its own field, unset when opening the output failed"),
]
OWNED_ELSEWHERE: tuple[str, ...] = ()
PROBE = re.compile(r"\b(getattr|hasattr)\(")


def probes() -> list[tuple[str, int, str]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if PROBE.search(line):
                out.append((rel, n, line.strip()))
    return out


def allowed(rel: str, line: str) -> bool:
    return any((rel == f or (f.endswith("/") and rel.startswith(f))) and pattern in line for f, pattern, _ in ALLOWED)


def test_no_getattr_or_hasattr_outside_the_justified_list():
    bad = [f"colorkit/{rel}:{n}: {line}" for rel, n, line in probes() if not allowed(rel, line)]
    assert not bad, ("probes of attributes (declare them on the base class in colorkit/core/interfaces.py and read "
                     "them directly, or justify the line in ALLOWED):\n" + "\n".join(bad))


def test_every_allowed_entry_still_matches_a_line():
    found = probes()
    stale = [(f, p) for f, p, _ in ALLOWED if not f.startswith(OWNED_ELSEWHERE)
             and not any((rel == f or (f.endswith("/") and rel.startswith(f))) and p in line for rel, _, line in found)]
    assert not stale, f"entries of ALLOWED that match nothing any more (remove them): {stale}"


def test_the_check_sees_a_probe():
    assert not allowed("eval/bench.py", 'modes = getattr(colorizer.method, "sample_modes", ())')
    assert allowed("core/fs.py", '_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)')


def _string_constants(folders: tuple[str, ...]) -> list[tuple[str, int, str]]:
    """Every string literal (docstrings excepted) in the .py files of ``folders``."""
    out = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            docs = {id(n.body[0].value) for n in ast.walk(tree)
                    if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
                    and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
            out += [(path.relative_to(ROOT).as_posix(), n.lineno, n.value) for n in ast.walk(tree)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]
    return out


def test_no_plugin_names_in_the_core():
    folders = ("core", "eval", "train", "inference")
    vae = [f"{r}:{n}" for r, n, s in _string_constants(folders) if s == "vae"]
    assert not vae, f"the string 'vae' (a plugin's component or stage) in: {vae}"
    timm = [f"{r}:{n}" for r, n, s in _string_constants(("core", "eval", "train")) if "timm:" in s]
    assert not timm, f"the family 'timm:' (the paper plugin's) in: {timm}"
    prefix = [f"{p.relative_to(ROOT)}" for p in ROOT.rglob("*.py") if "backbone." in p.read_text()]
    assert not prefix, f"a backbone's state-dict prefix in: {prefix}"


# ------------------------------------------------------------------ declared metadata
def test_a_plain_callable_factory_has_the_base_class_declarations():
    class Mine(Method):
        role = "reference"

    assert declared(Mine, Method).role == "reference"
    assert declared(lambda **kw: None, Method) is Method  # a plain callable declares nothing
    assert declared(Backbone, Method) is Method


def test_an_option_key_after_any_registered_family_is_kept_whole(monkeypatch):
    """A family of any plugin, not only the paper's, is a name, not a method scope."""
    from colorkit.core.plugin_manager import state
    from colorkit.core.registry import Entry
    from colorkit.eval.config import parse_bench_options

    reg = state().registries["backbone"]
    monkeypatch.setitem(reg.entries, "fam:", Entry("backbone", "fam:", lambda **kw: None, "p", "d"))
    assert parse_bench_options({"fam:x": 1, "mdn:decoder_loss": "l2"}) == {"*": {"fam:x": 1},
                                                                             "mdn": {"decoder_loss": "l2"}}


# ------------------------------------------------------------------ external weights
SOURCE = {"frozen.weight": torch.arange(6.0).reshape(2, 3), "frozen.bias": torch.ones(2)}


class _Ext(Backbone):
    """A backbone whose ``frozen`` layer comes from elsewhere (``SOURCE``)."""

    out_channels, reduction = 2, 1

    def __init__(self, config=None, **fields):
        super().__init__(config, **fields)
        self.frozen = nn.Linear(3, 2)
        self.own = nn.Parameter(torch.zeros(2))

    def _load(self) -> str:
        with torch.no_grad():
            self.frozen.weight.copy_(SOURCE["frozen.weight"])
            self.frozen.bias.copy_(SOURCE["frozen.bias"])
        return self._digest()

    def _digest(self) -> str:
        from colorkit.core.cachefile import tensor_digest

        return tensor_digest({k: v for k, v in self.frozen.state_dict().items()})

    def external_weights(self) -> ExternalWeights:
        return ExternalWeights(frozenset({"frozen.weight", "frozen.bias"}), self._digest, self._load,
                               what="test weights", remedy="restore SOURCE")

    def forward(self, grey):
        return grey


@pytest.fixture
def ext_registered(monkeypatch):
    from colorkit.core.plugin_manager import state
    from colorkit.core.registry import Entry

    monkeypatch.setitem(state().registries["backbone"].entries, "ext-test", Entry("backbone", "ext-test", _Ext, "p",
                                                                                   "d"))
    return _Ext


def test_external_weights_are_left_out_and_loaded_from_their_source(ext_registered, tmp_path, monkeypatch):
    from safetensors import safe_open

    bb = _Ext(preset="tiny")
    bb._load()
    with torch.no_grad():
        bb.own.fill_(3.0)
    save_component(bb, tmp_path / "ck", external=True)
    with safe_open(str(tmp_path / "ck" / "model.safetensors"), framework="pt") as fh:
        assert set(fh.keys()) == {"own"}
    back = load_component(tmp_path / "ck")
    assert torch.equal(back.frozen.weight, SOURCE["frozen.weight"]) and torch.equal(back.own, bb.own)
    monkeypatch.setitem(SOURCE, "frozen.bias", torch.zeros(2))
    with pytest.raises(colorkit.ColorkitError, match="was built with test weights .*; restore SOURCE"):
        load_component(tmp_path / "ck")


def test_saving_external_weights_that_were_never_loaded_is_refused(ext_registered, tmp_path):
    with pytest.raises(colorkit.ColorkitError, match="no external weights"):
        save_component(type("NoExt", (_Ext,), {"external_weights": lambda self: None})(preset="tiny"),
                       tmp_path / "x", external=True)


def test_component_save_and_load_round_trip(ext_registered, tmp_path):
    bb = _Ext(preset="tiny")
    bb.save(tmp_path / "ck")
    back = _Ext.load(tmp_path / "ck")
    assert isinstance(back, _Ext) and all(torch.equal(a, b) for a, b in zip(bb.state_dict().values(),
                                                                              back.state_dict().values()))
    with pytest.raises(colorkit.ColorkitError, match="holds a 'backbone', expected a 'method'"):
        Method.load(tmp_path / "ck")
