"""The inference layer (colorkit/inference): what ``colorkit`` exports from it, the
attributes a :class:`~colorkit.inference.Colorizer` declares for its callers, and that no
caller probes a Colorizer for them."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import colorkit

ROOT = Path(__file__).resolve().parents[1] / "colorkit"


def test_colorkit_exports_the_colorizer_and_the_file_runners():
    from colorkit.apps.folder import colorize_folder
    from colorkit.apps.video import colorize_clip
    from colorkit.inference import Colorizer, load
    from colorkit.inference.colorizer import Colorizer as Defined

    assert colorkit.Colorizer is Colorizer is Defined
    assert colorkit.colorize_folder is colorize_folder
    assert colorkit.colorize_clip is colorize_clip
    assert {"Colorizer", "colorize_folder", "colorize_clip", "load"} <= set(colorkit.__all__)
    assert isinstance(colorkit.load(device="cpu"), Colorizer)
    assert load.__module__ == "colorkit.inference.colorizer"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        colorkit.inference.nothing  # noqa: B018 - the lazy names are only the declared ones


def test_a_colorizer_declares_what_its_callers_read():
    demo = colorkit.load(device="cpu", options={"mode": "mixture"})
    for name in ("bundled", "run_dir", "info", "device", "method", "size", "sampling"):
        assert name in colorkit.Colorizer.__annotations__, name
    assert demo.sampling.mode == "mixture" and demo.sampling.options == {}
    assert demo.size == 64 and demo.bundled
    assert demo.takes_hints is bool(demo.method.takes_hints)
    assert demo.sample_modes == tuple(demo.method.sample_modes) and "mixture" in demo.sample_modes
    assert colorkit.load(device="cpu").sampling.mode is None


def test_a_clip_and_a_folder_record_the_colorizers_own_sampling(tmp_path):
    """The settings a folder run records come from the declared ``sampling`` (the mode given
    to ``colorkit.load``, when none is given to the run)."""
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 28, 3), dtype=np.uint8)).save(src / "a.png")
    demo = colorkit.load(device="cpu", options={"mode": "mixture"})
    record = colorkit.colorize_folder(demo, str(src), tmp_path / "out", k=1, progress=False, echo=lambda m: None)
    assert record["settings"]["mode"] == "mixture" and record["settings"]["options"] == {}
    assert (tmp_path / "out" / "a_1.png").is_file()


def probes(path: Path) -> list[str]:
    """``getattr`` / ``hasattr`` calls on a colorizer itself (a name such as ``colorizer``)."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") \
                and node.args and isinstance(node.args[0], ast.Name) and "colorizer" in node.args[0].id.lower():
            bad.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return bad


def test_no_module_probes_a_colorizer_for_an_attribute():
    bad = [f"colorkit/{p.relative_to(ROOT)}: {b}" for p in sorted(ROOT.rglob("*.py")) for b in probes(p)]
    assert not bad, "read the attribute Colorizer declares instead:\n" + "\n".join(bad)


def test_the_probe_check_sees_a_probe(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f(colorizer, c):\n    a = getattr(colorizer, 'sampling', None)\n"
                 "    return a, hasattr(colorizer, 'size'), getattr(c.method, 'x', 0), colorizer.sampling\n")
    assert probes(f) == ["m.py:2 getattr(colorizer, 'sampling', None)", "m.py:3 hasattr(colorizer, 'size')"]
