"""Run directories from strangers, damaged files and hostile environments: one-line errors
(exit 2), no network, no unbounded allocation, nothing already written lost.

Run directories here hold untrained tiny methods (made in a second): what is tested is
how they are opened, not what they predict.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import one_line_error, run_cli
from PIL import Image
from safetensors.torch import load_file, save_file

import colorkit
from colorkit.core import checkpoint as ck
from colorkit.core import fs
from colorkit.core import plugin_manager as plugins
from colorkit.core.registry import ColorkitError, Entry
from colorkit.testing import make_image_folder

SIZE = 32


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from colorkit.core.stats import load_or_compute_stats
    from colorkit.data import prepare

    folder = make_image_folder(tmp_path_factory.mktemp("untrusted") / "imgs", n=24, size=32, seed=7)
    ds = prepare(folder, size=SIZE, split_seed=0, progress=False)
    return folder, ds, load_or_compute_stats(ds)


def make_run(data, out: Path, method: str) -> Path:
    """A finished run directory of an untrained ``method`` (tiny preset)."""
    from colorkit.train.runs import build_method, finalize_run

    _, ds, st = data
    torch.manual_seed(0)
    m = build_method(method, st, preset="tiny", options={}, dataset=ds)
    m.registry_name = method
    out.mkdir(parents=True)
    finalize_run(out, m, st, {
        "method": method, "preset": "tiny", "options": {}, "seed": 0, "epochs_override": None,
        "dataset": {"source": str(ds.source), "size": ds.size, "n_train": len(ds.train_idx),
                    "n_test": len(ds.test_idx), "hash": ds.info().get("hash")},
        "train_seconds": 0.0, "stage_seconds": {}, "wall_seconds": 0.0, "world_size": 1, "device": "cpu"})
    return out


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return {m: make_run(data, base / m, m) for m in ("mdn", "cvae")}


def copy_run(runs, method, tmp_path) -> Path:
    dst = tmp_path / f"{method}-copy"
    shutil.copytree(runs[method], dst)
    return dst


def edit_json(path: Path, fn) -> None:
    obj = json.loads(path.read_text())
    fn(obj)
    path.write_text(json.dumps(obj))


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(p)
    return p


# ------------------------------------------------------------------ method vs weights
def test_run_whose_weights_are_another_method_is_refused(runs, data, tmp_path, photo, capsys):
    run = copy_run(runs, "cvae", tmp_path)
    edit_json(run / "run.json", lambda r: r.update(method="mdn"))
    with pytest.raises(ColorkitError, match="run.json says method 'mdn' but model.json holds"):
        colorkit.load(run)
    code, _, err = run_cli(["colorize", str(photo), "--run", str(run), "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, "model.json holds the method 'cvae'")
    folder = data[0]
    code, _, err = run_cli(["bench", "--methods", "mdn", "--runs", str(run), "--dataset", str(folder), "--preset",
                            "tiny", "--size", str(SIZE), "--out", str(tmp_path / "b"), "--quiet"], capsys)
    one_line_error(code, err, "run.json says method 'mdn'")


@pytest.mark.parametrize("text,needle", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "holds a JSON list, expected an object"),
    ('{"format": "colorkit-run-v1"}', "lacks valid method"),
    ('{"format": "colorkit-run-v1", "method": "cvae", "dataset": {"size": 1e12}, "train_seconds": 1}',
     "dataset.size"),
])
def test_damaged_run_json_is_one_line(runs, tmp_path, photo, capsys, text, needle):
    run = copy_run(runs, "cvae", tmp_path)
    (run / "run.json").write_text(text)
    code, _, err = run_cli(["colorize", str(photo), "--run", str(run), "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, needle)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ no network, bounded memory
@pytest.mark.parametrize("name", ["timm:hf-hub:someone/evil-model", "timm:local-dir:/tmp/evil"])
def test_backbone_names_from_a_run_are_plain_names_only(runs, tmp_path, monkeypatch, name):
    run = copy_run(runs, "mdn", tmp_path)
    edit_json(run / "model.json", lambda m: m["config"].update(backbone=name))
    contacted = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: contacted.append(a) or [][0])
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: contacted.append(addr) or [][0])
    with pytest.raises(ColorkitError, match="not a plain timm architecture name"):
        colorkit.load(run)
    assert not contacted


LOAD_LIMITED = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    import colorkit
    from colorkit.core.registry import ColorkitError
    try:
        colorkit.load(sys.argv[1])
    except ColorkitError as exc:
        print("REFUSED:", exc)
""")


def test_huge_config_is_refused_before_allocating(runs, tmp_path):
    """mdn_fc = 5e7 asks for ~100 GB: refused from the safetensors header's shapes, in a
    process that may not map more than 6 GB."""
    run = copy_run(runs, "mdn", tmp_path)
    edit_json(run / "model.json", lambda m: m["config"].update(mdn_fc=50_000_000))
    proc = subprocess.run([sys.executable, "-c", LOAD_LIMITED, str(run)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0 and "REFUSED:" in proc.stdout and "shape mismatch" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_weights_are_refused(runs, tmp_path, photo, capsys, bad):
    run = copy_run(runs, "cvae", tmp_path)
    state = load_file(str(run / "model.safetensors"))
    key = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[key].view(-1)[0] = bad
    save_file(state, str(run / "model.safetensors"), metadata={"format": ck.FORMAT})
    with pytest.raises(ColorkitError, match="NaN or infinite"):
        colorkit.load(run)
    code, _, err = run_cli(["colorize", str(photo), "--run", str(run), "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, f"tensor {key!r} holds 1 NaN or infinite value")


# ------------------------------------------------------------------ reproducible bytes
def test_safetensors_files_are_byte_reproducible(tmp_path, data):
    tensors = {f"t{i}": torch.arange(i + 1, dtype=torch.float32) for i in range(5)}
    meta = {f"key{i:02d}": f"value {i}" for i in range(20)}
    blobs = set()
    for i in range(12):
        ck.save_tensors(tmp_path / f"w{i}.safetensors", tensors, meta)
        blobs.add((tmp_path / f"w{i}.safetensors").read_bytes())
    assert len(blobs) == 1
    from safetensors import safe_open

    with safe_open(str(tmp_path / "w0.safetensors"), "pt") as fh:
        assert fh.metadata() == meta
        assert torch.equal(fh.get_tensor("t3"), tensors["t3"])
    st = data[2]
    st.save(tmp_path / "a.safetensors")
    st.save(tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


# ------------------------------------------------------------------ one-line errors
def test_plugin_constructor_raising_anything_is_one_line(data, tmp_path, capsys):
    def boom(**kw):
        """explodes"""
        raise RuntimeError("kaboom\nsecond line")

    reg = plugins.registry("method")
    reg.add(Entry("method", "ck-boom", boom, "ck_test_boom", "ck-test-boom"))
    try:
        with pytest.raises(ColorkitError, match=r"'ck-boom' from plugin 'ck_test_boom' .*failed to build: "
                                                r"RuntimeError: kaboom second line"):
            reg.create("ck-boom")
        code, _, err = run_cli(["train", "--method", "ck-boom", "--dataset", str(data[0]), "--preset", "tiny",
                                "--size", str(SIZE), "--out", str(tmp_path / "r"), "--quiet"], capsys)
        one_line_error(code, err, "failed to build: RuntimeError: kaboom")
    finally:
        del reg.entries["ck-boom"]


def test_unwritable_out_fails_before_any_work(tmp_path, monkeypatch, capsys):
    """--out is checked before the data set is even looked at (the data set here does not
    exist: the --out error must come first)."""
    out = tmp_path / "ro"
    real = fs.tempfile.mkstemp

    def read_only(*a, dir=None, **kw):
        if dir is not None and Path(dir) == out:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(fs.tempfile, "mkstemp", read_only)
    for cmd in (["train", "--method", "cvae"], ["bench", "--methods", "cvae"]):
        code, _, err = run_cli([*cmd, "--dataset", str(tmp_path / "no-such-folder"), "--preset", "tiny", "--out",
                                str(out), "--quiet"], capsys)
        one_line_error(code, err, f"cannot write to --out {out}: Read-only file system")


def _mount_tmpfs(path: Path, opts: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    mounted = []

    def make(name: str, opts: str) -> Path:
        p = tmp_path / name
        if not _mount_tmpfs(p, opts):
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(p)
        return p

    yield make
    for p in mounted:
        subprocess.run(["umount", str(p)], capture_output=True)


def test_read_only_mount_out_is_one_line(tmpfs, capsys):
    ro = tmpfs("ro", "ro,size=64k")
    code, _, err = run_cli(["train", "--method", "cvae", "--preset", "tiny", "--out", str(ro / "run"),
                            "--quiet"], capsys)
    one_line_error(code, err, "--out")
    assert "Read-only file system" in err


def test_full_disk_colorize_leaves_no_partial_outputs(runs, tmpfs, tmp_path, capsys):
    big = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(big)
    disk = tmpfs("disk", "size=600k")  # one 360 KB colorization fits, not two
    (disk / "keep.txt").write_text("mine")
    code, _, err = run_cli(["colorize", str(big), "--run", str(runs["cvae"]), "--k", "3", "--out", str(disk)],
                           capsys)
    one_line_error(code, err, "No space left on device")
    assert sorted(p.name for p in disk.iterdir()) == ["keep.txt"] and (disk / "keep.txt").read_text() == "mine"


def test_disk_full_while_writing_colorizations(runs, tmp_path, photo, monkeypatch, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "photo_1.png").write_bytes(b"an earlier result")
    calls = []
    real = Image.Image.save

    def save(self, fp, *a, **kw):
        calls.append(fp)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(fp))
        return real(self, fp, *a, **kw)

    monkeypatch.setattr(Image.Image, "save", save)
    code, _, err = run_cli(["colorize", str(photo), "--run", str(runs["cvae"]), "--k", "3", "--out",
                            str(tmp_path / "o")], capsys)
    one_line_error(code, err, "No space left on device")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["photo_1.png"]
    assert (tmp_path / "o" / "photo_1.png").read_bytes() == b"an earlier result"


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError(
    "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    "102400000000 bytes.")])
def test_out_of_memory_is_one_line(runs, photo, tmp_path, monkeypatch, capsys, exc):
    import colorkit.inference

    def oom(*a, **kw):
        raise exc

    monkeypatch.setattr(colorkit.inference, "load", oom)
    code, _, err = run_cli(["colorize", str(photo), "--run", str(runs["cvae"]), "--out", str(tmp_path / "o")],
                           capsys)
    one_line_error(code, err, "out of memory")


def test_colorize_a_directory_without_images_says_so(runs, tmp_path, capsys):
    """A directory is colorized as a folder (tests/test_colorize_folder.py); one holding no
    image is a one-line error."""
    (tmp_path / "src").mkdir()
    code, _, err = run_cli(["colorize", str(tmp_path / "src"), "--run", str(runs["cvae"]), "--out",
                            str(tmp_path / "o")], capsys)
    one_line_error(code, err, "no image files in folder")


# ------------------------------------------------------------------ colorize: bounded memory
def test_pixel_limit_and_k_bound(runs, tmp_path, capsys):
    huge = tmp_path / "huge.png"
    Image.new("L", (12000, 12000)).save(huge)  # a few hundred bytes, 144 megapixels
    assert huge.stat().st_size < 200_000
    from colorkit.data.imageio import MAX_PIXELS, image_size

    with pytest.raises(ColorkitError, match="12000x12000 = 144,000,000 pixels; the limit is 50,000,000"):
        image_size(huge)
    assert MAX_PIXELS == 50_000_000
    mid = tmp_path / "mid.png"
    Image.new("RGB", (2000, 1000)).save(mid)
    code, _, err = run_cli(["colorize", str(mid), "--run", str(runs["cvae"]), "--max-pixels", "1000000",
                            "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, "2000x1000 = 2,000,000 pixels; the limit is 1,000,000")
    assert not (tmp_path / "o").exists()
    code, _, err = run_cli(["colorize", str(mid), "--run", str(runs["cvae"]), "--k", "65"], capsys)
    assert code == 2 and "65" in err and "Traceback" not in err
    with pytest.raises(ColorkitError, match="k must be an integer from 1 to 64"):
        colorkit.load(runs["cvae"]).colorize(mid, k=100)


def test_banded_colorizations_match_the_full_resolution_formula(runs, tmp_path, monkeypatch):
    """One output at a time, in bands of rows: the same pixels as upsampling the whole ab
    field at once (to rounding)."""
    import torch.nn.functional as F

    import colorkit.data.compose as compose
    import colorkit.data.imageio as io
    from colorkit.core.color import AB_SCALE, lab_to_rgb, rgb_to_lab

    monkeypatch.setattr(compose, "SERIAL_ELEMENTS", 3 * 70)  # 3-row bands
    c = colorkit.load(runs["cvae"])
    img = Image.fromarray(np.random.default_rng(3).integers(0, 255, (45, 70, 3), dtype=np.uint8))
    outs = list(c.iter_colorize(img, k=3, seed=1))
    ab = c.sample(io.model_grey(img, c.size), 3, seed=1)[0].float()
    L = rgb_to_lab(io.to_tensor(img))[:, :1]
    ab_full = F.interpolate(ab, size=(45, 70), mode="bilinear", align_corners=False) * AB_SCALE
    ref = lab_to_rgb(torch.cat([L.expand(3, 1, 45, 70), ab_full], 1))
    for o, r in zip(outs, ref):
        got = torch.from_numpy(np.array(o)).permute(2, 0, 1).float() / 255
        assert float((got - r.clamp(0, 1)).abs().max()) <= 1.5 / 255


# ------------------------------------------------------------------ damaged run directories, more
def _deep(path: Path) -> None:
    path.write_text("[" * 200_000 + "]" * 200_000)


def _int8(run: Path) -> None:
    state = load_file(str(run / "model.safetensors"))
    save_file({k: v.to(torch.int8) if v.is_floating_point() else v for k, v in state.items()},
              str(run / "model.safetensors"), metadata={"format": ck.FORMAT})


def _replace(run: Path, name: str, make) -> None:
    (run / name).unlink()
    make(run / name)


DAMAGE = {
    "config-unknown-key": (lambda r: edit_json(r / "model.json", lambda m: m["config"].update(bogus=1)),
                           "config does not fit"),
    "config-wrong-type": (lambda r: edit_json(r / "model.json", lambda m: m["config"].update(latent_dim="many")),
                          "config does not fit"),
    "model-json-nested": (lambda r: _deep(r / "model.json"), "nested too deeply"),
    "run-json-nested": (lambda r: _deep(r / "run.json"), "nested too deeply"),
    "model-json-not-utf8": (lambda r: (r / "model.json").write_bytes(b'{"format": "\xff\xfe"}'), "not UTF-8"),
    "stats-dev-zero": (lambda r: _replace(r, "stats.safetensors", lambda p: p.symlink_to("/dev/zero")),
                       "is a device, not a regular file"),
    "weights-fifo": (lambda r: _replace(r, "model.safetensors", os.mkfifo), "is a FIFO, not a regular file"),
    "weights-dev-zero": (lambda r: _replace(r, "model.safetensors", lambda p: p.symlink_to("/dev/zero")),
                         "is a device, not a regular file"),
    "weights-int8": (_int8, "is int8, the model holds floating point"),
    "size-huge": (lambda r: edit_json(r / "run.json", lambda i: i["dataset"].update(size=4096)),
                  "dataset.size (an integer from 1 to 1024)"),
    "size-other-than-trained": (lambda r: edit_json(r / "run.json", lambda i: i["dataset"].update(size=SIZE * 2)),
                                f"dataset.size {SIZE * 2} does not match the weights (stats.safetensors says {SIZE}"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_more_damaged_run_directories_are_one_line(runs, tmp_path, photo, capsys, case):
    damage, needle = DAMAGE[case]
    run = copy_run(runs, "mdn", tmp_path)
    damage(run)
    code, _, err = run_cli(["colorize", str(photo), "--run", str(run), "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, needle)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ self-contained runs
def test_a_run_loads_without_its_initial_weights_file(data, tmp_path, photo):
    """A timm backbone trained from ``backbone_kwargs.weights``: the run holds every tensor
    and loads after that file has gone."""
    import timm

    init = tmp_path / "init" / "test_resnet.safetensors"
    init.parent.mkdir()
    torch.manual_seed(1)
    save_file({k: v.contiguous() for k, v in timm.create_model("test_resnet", features_only=True, in_chans=1,
                                                               out_indices=(2,)).state_dict().items()}, str(init))
    from colorkit.train.runs import build_method, finalize_run

    _, ds, st = data
    m = build_method("mdn", st, preset="tiny", dataset=ds, options={
        "backbone": "timm:test_resnet", "backbone_kwargs": {"weights": str(init)}, "pretext_epochs": 0})
    m.registry_name = "mdn"
    run = tmp_path / "run"
    run.mkdir()
    finalize_run(run, m, st, {"method": "mdn", "dataset": {"size": ds.size}, "train_seconds": 0.0})
    want = colorkit.load(run).colorize(photo, k=2, output="tensors")
    shutil.rmtree(init.parent)
    got = colorkit.load(run).colorize(photo, k=2, output="tensors")
    assert torch.equal(want, got)


def test_a_run_loads_without_its_training_only_decoder_loss(runs, tmp_path, photo):
    run = copy_run(runs, "mdn", tmp_path)
    want = colorkit.load(run).colorize(photo, k=2, output="tensors")
    edit_json(run / "model.json", lambda m: m["config"].update(decoder_loss={"someones-plugin-loss": 1.0},
                                                               decoder_loss_kwargs={"someones-plugin-loss": {"a": 1}}))
    assert torch.equal(colorkit.load(run).colorize(photo, k=2, output="tensors"), want)


def test_a_missing_plugin_component_names_its_distribution(runs, tmp_path, photo, capsys):
    info = json.loads((runs["mdn"] / "run.json").read_text())
    assert info["components"]["method:mdn"]["distribution"] == "colorkit"
    assert info["components"]["backbone:colornet"]["distribution"] == "colorkit"
    run = copy_run(runs, "mdn", tmp_path)
    edit_json(run / "run.json", lambda i: i["components"].update({"backbone:fancy": {
        "plugin": "fancy", "distribution": "colorkit-fancy", "version": "1.2"}}))
    code, _, err = run_cli(["colorize", str(photo), "--run", str(run), "--out", str(tmp_path / "o")], capsys)
    one_line_error(code, err, "provided by the package 'colorkit-fancy' (plugin 'fancy')")
    assert "pip install 'colorkit-fancy==1.2'" in err
