"""The bundled demo model: loads with no argument, half-precision weights within the size
limit, outputs matching the float32 model it was made from, its provenance recorded, and
part of the installed package."""

from __future__ import annotations

import fnmatch
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from PIL import Image
from safetensors import safe_open

import colorkit
from colorkit.inference.colorizer import DEMO_MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo():
    return colorkit.load(device="cpu")


def test_load_without_argument_is_the_bundled_mdn(demo):
    assert demo.bundled and demo.name == "mdn" and demo.size == 64
    assert demo.run_dir == DEMO_MODEL_DIR
    assert "demo model" in demo.label


def test_weights_are_half_precision_and_under_12_mb():
    total = sum(p.stat().st_size for p in DEMO_MODEL_DIR.iterdir())
    assert total < 12_000_000, total
    with safe_open(str(DEMO_MODEL_DIR / "model.safetensors"), framework="pt") as fh:
        dtypes = {fh.get_slice(k).get_dtype() for k in fh.keys()}  # noqa: SIM118
        meta = fh.metadata()
        names = set(fh.keys())
    assert "F16" in dtypes and "F32" not in dtypes and "F64" not in dtypes
    assert not any(k.startswith("backbone.") for k in names)  # the ImageNet backbone comes from its package
    assert meta["dtype"] == "float16 (backbone from its package)" and meta["name"] == "mdn"


def test_provenance_recorded_in_metadata_and_run_json():
    with safe_open(str(DEMO_MODEL_DIR / "model.safetensors"), framework="pt") as fh:
        meta = fh.metadata()
    assert len(meta["dataset_content_hash"]) >= 16 and meta["seed"] == "0" and meta["preset"] == "small"
    budget = json.loads(meta["budget"])
    assert budget["train_seconds"] > 0 and set(budget["stage_budget"]) >= {"vae", "mdn"}
    run = json.loads((DEMO_MODEL_DIR / "run.json").read_text())
    assert run["dataset"]["content_hash"] == meta["dataset_content_hash"]
    assert run["dataset"]["n_train"] + run["dataset"]["n_test"] == run["dataset"]["n_images"]
    assert run["fp16_check"]["topk"]["max_abs"] <= 0.02 and run["fp16_check"]["mixture"]["max_abs"] <= 0.02
    assert json.loads((DEMO_MODEL_DIR / "model.json").read_text())["config"]["cache_dir"] is None


def test_outputs_match_the_float32_model(demo):
    """The float32 model's colour fields (stored at build time) against the installed
    half-precision weights, on three demo test photos: a broken conversion (or weights
    changed without rebuilding the reference) fails here."""
    with safe_open(str(DEMO_MODEL_DIR / "check.safetensors"), framework="pt") as fh:
        grey, ref = fh.get_tensor("grey"), fh.get_tensor("topk")
        k = int(fh.metadata()["k"])
    got = demo.sample(grey, k, mode="topk", seed=0).float()
    assert got.shape == ref.shape
    diff = (got - ref).abs()
    # measured at build time: max 0.0010, mean 1.1e-4 (ab/128) over the 31 demo test photos
    assert float(diff.max()) <= 0.005 and float(diff.mean()) <= 5e-4, (float(diff.max()), float(diff.mean()))
    assert float(ref.abs().mean()) > 1e-3  # the reference is a real colorization, not zeros


def test_package_data_ships_every_model_file():
    """pyproject's package-data globs cover each file of the model folder (what a wheel
    or a non-editable install copies)."""
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["colorkit"]
    pkg = ROOT / "colorkit"
    files = [p.relative_to(pkg).as_posix() for p in DEMO_MODEL_DIR.iterdir()]
    assert {"run.json", "model.json", "model.safetensors", "stats.safetensors"} <= {Path(f).name for f in files}
    for f in files:
        assert any(fnmatch.fnmatch(f, g) for g in globs), (f, globs)


def test_package_data_ships_the_web_page():
    """The page of ``colorkit serve`` is a template shipped as package data: pyproject's
    globs cover it, and it is read through importlib.resources with every field filled."""
    from colorkit.apps.serve import PAGE_TEMPLATE, render_page

    if sys.version_info >= (3, 11):
        import tomllib

        globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["colorkit"]
        assert any(fnmatch.fnmatch(f"apps/{PAGE_TEMPLATE}", g) for g in globs), globs
    page = render_page([{"name": "demo", "label": "demo (mdn)", "note": "a </script> note"}],
                       max_upload_bytes=25 * 2**20, max_pixels=16_000_000)
    assert page.startswith("<!doctype html>") and "{{" not in page
    assert '<option value="demo">demo (mdn)</option>' in page and "at most 25 MB and 16 megapixels" in page
    assert "a <\\/script> note" in page  # a note cannot close the page's script


def test_colorize_without_run_uses_the_demo_model(tmp_path, capsys):
    photo = tmp_path / "photo.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(photo)
    code, out, err = run_cli(["colorize", str(photo), "--k", "3", "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert "demo model" in out and "trained only on ~300 small (64x64) demo photos" in err
    assert [Image.open(tmp_path / "o" / f"photo_{i}.png").size for i in (1, 2, 3)] == [(70, 50)] * 3


def test_help_says_what_the_demo_model_was_trained_on(capsys):
    code, out, _ = run_cli(["colorize", "--help"], capsys)
    assert code == 0 and "trained only on ~300 small (64x64) demo photos" in " ".join(out.split())
    assert "not a model of a large data set" in " ".join(out.split())


def test_library_load_docstring_says_so():
    assert "~300 small (64x64)" in " ".join(colorkit.load.__doc__.split())


def test_demo_model_colorizes_a_grey_photo_with_colour(demo):
    from colorkit.builtin_components import DEMO_DIR

    src = sorted(DEMO_DIR.rglob("*.jpg"))[0]
    grey = Image.open(src).convert("L")
    outs = demo.colorize(grey, k=2)
    arr = np.asarray(outs[0], dtype=np.int16)
    assert outs[0].size == grey.size
    assert float(np.abs(arr[..., 0] - arr[..., 2]).mean()) > 1.0  # not grey: the model adds colour
    assert torch.is_tensor(demo.sample(torch.zeros(1, 1, 64, 64), 2))


def test_backbone_weights_come_from_the_package_and_are_checked(tmp_path):
    """The bundle leaves the frozen ImageNet backbone out and records its digest: loading
    takes the installed package's weights and refuses others."""
    import shutil

    from colorkit.inference import Colorizer

    meta = json.loads((DEMO_MODEL_DIR / "model.json").read_text())
    digest = meta["external_weights_sha256"]
    model = Colorizer(None, device="cpu")
    assert model.method.provenance() == {"backbone_weights_sha256": digest}
    copy = tmp_path / "demo"
    shutil.copytree(DEMO_MODEL_DIR, copy)
    meta["external_weights_sha256"] = "0" * 64
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(colorkit.ColorkitError, match="was built with backbone weights 000000000000"):
        Colorizer(copy, device="cpu")
