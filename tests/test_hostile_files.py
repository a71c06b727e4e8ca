"""Hostile files around colorkit's own: links where it writes (the colorize journal, a run's
log, a download's ``.part``), the user's files in OUT (never replaced, never removed),
FIFOs and devices where it reads (never a hang), records nested absurdly deep, source
folders named like colorkit's files, running out of memory while writing weights, and the
permissions of what it writes (those the umask gives)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_line_error, run_cli
from PIL import Image

from colorkit.core import fs
from colorkit.core.registry import ColorkitError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]), "OMP_NUM_THREADS": "1"}


def photo(path: Path, w: int = 40, h: int = 30, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def colorkit_cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """``colorkit ARGS`` in a child process (so that a hang is a failed test, not a hung suite)."""
    return subprocess.run([sys.executable, "-m", "colorkit", *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV, cwd=ROOT)


def one_line(proc: subprocess.CompletedProcess, needle: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr


# ------------------------------------------------------------------ never through a link
def test_open_write_never_follows_a_link_nor_opens_a_fifo(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "link").symlink_to(victim)
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "fifo"):
        for mode in ("wb", "ab", "w", "a"):
            with pytest.raises(ColorkitError, match=f"refusing to write {tmp_path / name}"):
                fs.open_write(tmp_path / name, mode)
    (tmp_path / "s.npy.part").symlink_to(victim)
    with pytest.raises(ColorkitError, match="symbolic link"):
        fs.AtomicFile(tmp_path / "s.npy", part=True)
    assert victim.read_text() == "keep"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(victim)
    with pytest.raises(ColorkitError, match="lock .* is a symbolic link"), fs.lock_dir(tmp_path / "run"):
        pass
    assert victim.read_text() == "keep"


def test_the_colorize_journal_is_never_written_through_a_link(tmp_path, capsys):
    """Item 1: ``OUT/colorize-inputs.jsonl`` linking to another file once had JSON lines
    appended to that file."""
    src = tmp_path / "src"
    photo(src / "a.jpg")
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's text\n")
    (out / "colorize-inputs.jsonl").symlink_to(victim)
    code, _, err = run_cli(["colorize", str(src), "--k", "1", "--out", str(out), "--quiet"], capsys)
    one_line_error(code, err, "colorize-inputs.jsonl: it is a symbolic link")
    assert victim.read_text() == "the user's text\n"
    assert not list(out.rglob("*.png"))


def test_resume_never_empties_a_file_through_the_runs_log(tmp_path, capsys):
    """Item 2: ``train --resume`` once emptied the file ``RUN/log.jsonl`` links to."""
    from colorkit.testing.fixtures import make_image_folder

    folder = make_image_folder(tmp_path / "imgs", n=24, size=32, seed=1)
    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("not colorkit's\n")
    (run / "log.jsonl").symlink_to(victim)
    code, _, err = run_cli(["train", "--method", "mdn", "--preset", "tiny", "--dataset", str(folder), "--size", "32",
                            "--epochs", "1", "--out", str(run), "--cache-dir", str(tmp_path / "cache"), "--resume",
                            "--quiet"], capsys)
    lines = err.strip().splitlines()  # a warning that no saved state was found, then the error
    assert code == 2 and lines[-1].startswith("colorkit: error:") and "log.jsonl: it is a symbolic link" in lines[-1]
    assert "Traceback" not in err and victim.read_text() == "not colorkit's\n"


def test_fetch_never_writes_through_a_part_link(tmp_path):
    """Item 3: ``downloads/NAME.part`` linking elsewhere once received the download."""
    from colorkit.data.recipes import fetch
    from colorkit.testing.archives import LoopbackServer, lfw_tgz

    archive = lfw_tgz(tmp_path / "lfw-deepfunneled.tgz", n_people=2, per_person=2)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "lfw-deepfunneled.tgz.part").symlink_to(victim)
    with LoopbackServer({"/lfw.tgz": archive.read_bytes()}) as srv, pytest.raises(ColorkitError) as exc:
        fetch("lfw", url=srv.url + "/lfw.tgz", cache_dir=tmp_path / "cache", progress=False, retries=0)
    assert victim.read_text() == "precious"
    assert "tgz.part: it is a symbolic link" in str(exc.value) and "\n" not in str(exc.value)


# ------------------------------------------------------------------ the user's files in OUT
def test_single_photos_never_replace_the_users_own_files(tmp_path, capsys):
    """Item 4: ``o/p1_1.png`` and ``o/grid.png`` of the user's were replaced by
    ``colorize p1.jpg --k 1 --out o``."""
    p1 = photo(tmp_path / "p1.jpg")
    out = tmp_path / "o"
    out.mkdir()
    (out / "p1_1.png").write_bytes(b"the user's own p1_1")
    (out / "grid.png").write_bytes(b"the user's own grid")
    for _ in range(2):  # the rerun replaces what colorkit made, and only that
        code, stdout, err = run_cli(["colorize", str(p1), "--k", "1", "--out", str(out)], capsys)
        assert code == 0, err
        assert (out / "p1_1.png").read_bytes() == b"the user's own p1_1"
        assert (out / "grid.png").read_bytes() == b"the user's own grid"
        assert f"{out / 'grid-2.png'}" in stdout and "p1.jpg -> p1-2_<i>.png" in stdout
        assert sorted(p.name for p in out.iterdir()) == ["colorize-photos.json", "grid-2.png", "grid.png",
                                                         "p1-2_1.png", "p1_1.png"]
        with Image.open(out / "p1-2_1.png") as im:
            assert im.size == (40, 30)
    made = json.loads((out / "colorize-photos.json").read_text())["made"]
    assert made == ["grid-2.png", "p1-2_1.png"]


def test_the_users_files_that_look_like_temporaries_are_never_removed(tmp_path, capsys):
    """Item 8: ``OUT/.notes.jpg.v2.tmp`` and ``OUT/keep/.vacation.png.draft.tmp`` were
    deleted by a folder run into an existing OUT. Only a temporary file of colorkit's
    exact pattern, for an output its record names, is removed."""
    src = tmp_path / "src"
    photo(src / "a.jpg")
    out = tmp_path / "out"
    code, _, err = run_cli(["colorize", str(src), "--k", "1", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    users = [out / ".notes.jpg.v2.tmp", out / "keep" / ".vacation.png.draft.tmp",
             out / ".mine_1.png.abcd1234.tmp", out / ".a_1.png.v2.tmp"]  # the last: the pattern's name, not its form
    for p in users:
        p.parent.mkdir(exist_ok=True)
        p.write_text("the user's")
    left = out / ".a_1.png.0123abcd.tmp"  # what a killed run leaves: its output a_1.png is in the record
    left.write_bytes(b"half a png")
    code, _, err = run_cli(["colorize", str(src), "--k", "1", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    assert all(p.read_text() == "the user's" for p in users)
    assert not left.exists()


def test_the_journal_is_read_line_by_line_and_bounded(tmp_path, capsys, monkeypatch):
    """Item 11: the journal was read whole (a 566 MB journal peaked at 2.78 GB). A line
    longer than the bound is passed over without being kept, superseded lines are dropped
    and a journal above the bound is refused with one line."""
    from colorkit.apps.folder import Journal

    out = tmp_path / "out"
    out.mkdir()
    entry = {"source": "/x/a.jpg", "sha256": "0" * 64, "stat": None, "outputs": ["a_1.png"], "done": True}
    with open(out / "colorize-inputs.jsonl", "w") as fh:
        fh.write('{"source": "' + "x" * (24 << 20) + '"}\n')  # one 24 MB line
        for _ in range(500):
            fh.write(json.dumps({**entry, "done": False}) + "\n" + json.dumps(entry) + "\n")
        b = {"source": "/x/b.jpg", "sha256": None, "stat": None, "done": True}  # named apart on a later run
        fh.write(json.dumps({**b, "outputs": ["b_1.png"]}) + "\n" + json.dumps({**b, "outputs": ["b-2_1.png"]}) + "\n")
    tracemalloc.start()
    try:
        j = Journal(out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"reading the journal took {peak / 2**20:.0f} MiB"
    assert j.last["/x/a.jpg"] == entry
    assert j.owner == {"a_1.png": "/x/a.jpg", "b_1.png": "/x/b.jpg", "b-2_1.png": "/x/b.jpg"}
    lines = (out / "colorize-inputs.jsonl").read_text().splitlines()
    assert len(lines) == 3  # rewritten: a line a photo, and one for b's earlier output
    again = Journal(out)
    assert again.last == j.last and again.owner == j.owner
    import colorkit.apps.journal as journal_mod

    monkeypatch.setattr(journal_mod, "MAX_JOURNAL_BYTES", 1000)
    (out / "colorize-inputs.jsonl").write_text("\n" * 2000)
    src = tmp_path / "src"
    photo(src / "a.jpg")
    code, _, err = run_cli(["colorize", str(src), "--k", "1", "--out", str(out), "--quiet"], capsys)
    one_line_error(code, err, "at most 1,000 are read")


# ------------------------------------------------------------------ FIFOs, devices, loops
def test_a_fifo_as_the_journal_never_hangs_colorize(tmp_path):
    """Item 12: a FIFO as ``OUT/colorize-inputs.jsonl`` hung colorize."""
    src = tmp_path / "src"
    photo(src / "a.jpg")
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "colorize-inputs.jsonl")
    one_line(colorkit_cli(["colorize", str(src), "--k", "1", "--out", str(out), "--quiet"], timeout=60),
             "colorize-inputs.jsonl is a FIFO, not a regular file")


def test_fifos_and_devices_in_a_data_set_never_hang_data_prepare(tmp_path):
    """Item 12: a FIFO or a link to /dev/zero or /dev/urandom in a data set folder hung
    ``data prepare`` (the fingerprint read them); each is skipped as ``not-a-regular-file``."""
    from colorkit.testing.fixtures import make_image_folder

    data = make_image_folder(tmp_path / "data", n=12, size=32, seed=2)
    os.mkfifo(data / "fifo.png")
    (data / "zero.png").symlink_to("/dev/zero")
    (data / "random.jpg").symlink_to("/dev/urandom")
    proc = colorkit_cli(["data", "info", "--dataset", str(data), "--size", "32", "--cache-dir",
                         str(tmp_path / "cache"), "--json"], timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["skipped"].get("not-a-regular-file") == 3, proc.stdout


def test_a_fifo_as_the_dataset_never_hangs_data_prepare(tmp_path):
    """Item 12: ``--dataset photos.tar`` naming a FIFO hung ``data prepare``."""
    os.mkfifo(tmp_path / "photos.tar")
    one_line(colorkit_cli(["data", "prepare", "--dataset", str(tmp_path / "photos.tar"), "--cache-dir",
                           str(tmp_path / "cache"), "--quiet"], timeout=60), "it is a FIFO, not a regular file")


def test_fingerprints_never_read_a_fifo_or_a_device(tmp_path):
    from colorkit.core.regular import NotRegularFile
    from colorkit.data.digests import DigestMemo

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    memo = DigestMemo(None)
    for name, reason in (("fifo", "not-a-regular-file"), ("zero", "not-a-regular-file"), ("loop", "symlink-loop")):
        with pytest.raises(NotRegularFile) as exc:
            memo.digest(tmp_path / name)
        assert exc.value.reason == reason


def test_special_files_have_their_own_skip_reason_and_message(tmp_path, capsys):
    """Item 32: a symlink loop was ``corrupt-or-truncated``, a FIFO ``empty-file`` in a
    folder run and ``no such file`` given alone."""
    src = tmp_path / "src"
    photo(src / "ok.jpg")
    os.mkfifo(src / "fifo.jpg")
    (src / "zero.png").symlink_to("/dev/zero")
    (src / "loop.jpg").symlink_to(src / "loop2.jpg")
    (src / "loop2.jpg").symlink_to(src / "loop.jpg")
    out = tmp_path / "out"
    code, stdout, err = run_cli(["colorize", str(src), "--k", "1", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    assert "skipped 4 files (not-a-regular-file 2, symlink-loop 2)" in stdout, stdout
    record = json.loads((out / "colorize.json").read_text())
    assert record["skipped_files"] == {"fifo.jpg": "not-a-regular-file", "loop.jpg": "symlink-loop",
                                       "loop2.jpg": "symlink-loop", "zero.png": "not-a-regular-file"}
    code, _, err = run_cli(["colorize", str(src / "fifo.jpg"), "--k", "1", "--out", str(tmp_path / "o2")], capsys)
    one_line_error(code, err, "fifo.jpg: it is a FIFO, not a regular file")
    code, _, err = run_cli(["colorize", str(src / "zero.png"), "--k", "1", "--out", str(tmp_path / "o2")], capsys)
    one_line_error(code, err, "zero.png: it is a device, not a regular file")
    os.mkfifo(tmp_path / "clip.mp4")
    code, _, err = run_cli(["colorize", str(tmp_path / "clip.mp4"), "--k", "1", "--out", str(tmp_path / "o2")], capsys)
    one_line_error(code, err, "clip.mp4: it is a FIFO, not a regular file")


# ------------------------------------------------------------------ one line, not a traceback
@pytest.mark.parametrize("what", ["folder", "frames"])
def test_records_nested_absurdly_deep_are_never_a_traceback(tmp_path, capsys, what):
    """Item 17: a deeply nested ``OUT/colorize.json`` or ``OUT/<stem>_colorize.json`` gave a
    RecursionError. The folder run's record is refused with one line; a clip's is not
    colorkit's record, so it is kept and the clip is named apart."""
    out = tmp_path / "out"
    out.mkdir()
    deep = "[" * 200_000 + "]" * 200_000
    if what == "folder":
        src = tmp_path / "src"
        photo(src / "a.jpg")
        (out / "colorize.json").write_text(deep)
        code, _, err = run_cli(["colorize", str(src), "--k", "1", "--out", str(out), "--quiet"], capsys)
        one_line_error(code, err, "colorize.json is not a colorkit colorize record")
        return
    src = tmp_path / "reel"
    for i in range(3):
        photo(src / f"f_{i + 1:04d}.png", 32, 24, seed=i)
    (out / "reel_colorize.json").write_text(deep)
    code, _, err = run_cli(["colorize", str(src), "--frames", "--k", "1", "--out", str(out), "--quiet"], capsys)
    assert code == 0 and "Traceback" not in err, err
    assert (out / "reel_colorize.json").read_text() == deep and len(list((out / "reel-frames_1").iterdir())) == 3


def test_a_fifo_as_a_clips_record_never_hangs(tmp_path):
    """Item 12: a FIFO under the name of a clip's record is never read (the clip is named
    apart, the FIFO left as it is)."""
    src = tmp_path / "reel"
    for i in range(3):
        photo(src / f"f_{i + 1:04d}.png", 32, 24, seed=i)
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "reel_colorize.json")
    proc = colorkit_cli(["colorize", str(src), "--frames", "--k", "1", "--out", str(out), "--quiet"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (out / "reel_colorize.json").is_fifo() and (out / "reel-frames_1").is_dir()


def test_source_folders_named_like_colorkits_own_files_are_skipped(tmp_path, capsys):
    """Item 18: a source subfolder named ``.lock`` or ``colorize-inputs.jsonl`` ended in
    FileExistsError."""
    src = tmp_path / "src"
    photo(src / "ok.jpg")
    photo(src / ".lock" / "a.jpg", seed=1)
    photo(src / "colorize-inputs.jsonl" / "b.jpg", seed=2)
    photo(src / "COLORIZE.JSON" / "c.jpg", seed=3)
    photo(src / "sub" / ".lock" / "d.jpg", seed=4)  # deeper down it names nothing of colorkit's
    out = tmp_path / "out"
    code, stdout, err = run_cli(["colorize", str(src), "--k", "1", "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    assert "colorized 2 images" in stdout and "skipped 3 files (reserved-name 3)" in stdout, stdout
    assert (out / "ok_1.png").is_file() and (out / "sub" / ".lock" / "d_1.png").is_file()
    assert (out / ".lock").is_file() and (out / "colorize-inputs.jsonl").is_file()


def test_running_out_of_memory_while_writing_weights_is_one_line(tmp_path):
    """Item 16: a real out-of-memory while writing weights aborted the process (a Rust
    backtrace, SIGABRT). Here the process may not map more than its size at the start plus
    1.6 (then 0.5) times the weights: the weights are written whole, or the command ends
    with one line and nothing is left behind."""
    script = textwrap.dedent("""
        import resource, sys
        import click, torch
        from colorkit.cli import cli, main
        from colorkit.core.tensorfile import save_tensors

        size = 64 << 20
        w = torch.ones(size // 4)

        def mapped():
            with open("/proc/self/status") as fh:
                return next(int(x.split()[1]) * 1024 for x in fh if x.startswith("VmSize"))

        @cli.command("write-weights")
        @click.argument("path")
        @click.argument("times", type=float)
        def write_weights(path, times):
            limit = mapped() + int(times * size)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            save_tensors(path, {"w": w, "half": w[: size // 8]})

        main(["write-weights", sys.argv[1], sys.argv[2]])
    """)
    runs = {}
    for times in ("1.6", "0.5"):
        (tmp_path / times).mkdir()
        runs[times] = subprocess.run([sys.executable, "-c", script, str(tmp_path / times / "w.safetensors"), times],
                                     capture_output=True, text=True, timeout=120, env=ENV)
    assert runs["1.6"].returncode == 0, runs["1.6"].stderr[-2000:]
    from safetensors.torch import load_file

    got = load_file(tmp_path / "1.6" / "w.safetensors")
    assert got["w"].shape == (16 << 20,) and bool((got["w"] == 1).all()) and got["half"].shape == (8 << 20,)
    one_line(runs["0.5"], "out of memory")
    assert list((tmp_path / "0.5").iterdir()) == []


def test_a_training_that_fails_loading_backbone_weights_leaves_no_run_folder(tmp_path, capsys):
    """Item 31: it left a run folder holding only ``.lock`` and an empty ``log.jsonl``."""
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a pickle of tensors")
    from colorkit.testing.fixtures import make_image_folder

    folder = make_image_folder(tmp_path / "imgs", n=24, size=32, seed=1)
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--method", "mdn", "--preset", "tiny", "--dataset", str(folder), "--size", "32",
                            "--option", "backbone=effnet-lite0", "--option",
                            "backbone_kwargs={\"weights\": \"" + str(bad) + "\"}", "--out", str(run), "--cache-dir",
                            str(tmp_path / "cache"), "--quiet"], capsys)
    assert code == 2 and "cannot read" in err and str(bad) in err, err
    assert not run.exists()


# ------------------------------------------------------------------ permissions
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_get_the_permissions_the_umask_gives(tmp_path, capsys, umask):
    """Item 33: every file written atomically was 0600 (mkstemp's), so colleagues and a web
    server could not read ``model.safetensors``, ``run.json``, ``results.md`` or the PNGs."""
    import torch

    from colorkit.core.images import atomic_write_png
    from colorkit.core.tensorfile import save_tensors

    old = os.umask(umask)
    try:
        fs.atomic_write_text(tmp_path / "run.json", "{}")
        fs.atomic_write_bytes(tmp_path / "results.md", b"table")
        atomic_write_png(tmp_path / "plot.png", Image.new("RGB", (4, 4)))
        save_tensors(tmp_path / "model.safetensors", {"w": torch.ones(3)})
        with fs.atomic_dir(tmp_path / "state") as d:
            (d / "x").write_text("x")
        src = tmp_path / "src"
        photo(src / "a.jpg")
        code, _, err = run_cli(["colorize", str(src), "--k", "1", "--out", str(tmp_path / "folder"), "--quiet"],
                               capsys)
        assert code == 0, err
        code, _, err = run_cli(["colorize", str(src / "a.jpg"), "--k", "1", "--out", str(tmp_path / "single")],
                               capsys)
        assert code == 0, err
    finally:
        os.umask(old)
    files = ["run.json", "results.md", "plot.png", "model.safetensors", "folder/a_1.png", "folder/colorize.json",
             "folder/colorize-inputs.jsonl", "single/a_1.png", "single/grid.png", "single/colorize-photos.json"]
    modes = {f: oct((tmp_path / f).stat().st_mode & 0o777) for f in files if (tmp_path / f).exists()}
    assert modes == dict.fromkeys(modes, oct(0o666 & ~umask))
    assert sorted(modes) == sorted(files)
    assert oct((tmp_path / "state").stat().st_mode & 0o777) == oct(0o777 & ~umask)
