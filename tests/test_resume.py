"""Interrupted training: ``kill -9`` inside and at the boundary of every stage of every
built-in method, then ``--resume``, ends with exactly the weights of an uninterrupted run;
so does a seeded sweep of random kill points. Also: a finished run is never retrained, a
second training into one directory is refused, resume says when it finds no state.

Kills happen in a child process (tests/kill_driver.py) at counted events of an
uninterrupted run: optimisation steps and each rename / removal of the atomic writes.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from colorkit.testing import make_image_folder
from colorkit.train.runs import train

DRIVER = Path(__file__).with_name("kill_driver.py")
EPOCHS = 2
SIZE = 32
# use_cache=false: the pretext stage of mdn really trains in every run (a cached backbone
# from the reference run would let the interrupted runs skip it).
OPTIONS = {"mdn": {"use_cache": False}, "cvae": {}, "cgan": {}}
STAGES = {"mdn": ["colornet", "vae", "mdn"], "cvae": ["cvae"], "cgan": ["cgan"]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from colorkit.core.stats import load_or_compute_stats
    from colorkit.data import prepare

    path = make_image_folder(tmp_path_factory.mktemp("resume") / "imgs", n=24, size=32, seed=5)
    load_or_compute_stats(prepare(path, size=SIZE, split_seed=0, progress=False))  # cached for every run
    return path


def drive(spec: dict, tmp: Path) -> subprocess.CompletedProcess:
    path = tmp / f"spec-{os.getpid()}-{random.random():.9f}.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, str(DRIVER), str(path)], capture_output=True, text=True, env=env,
                          timeout=600)


def spec_for(method: str, folder: Path, out: Path, **kw) -> dict:
    return {"method": method, "dataset": str(folder), "out": str(out), "epochs": EPOCHS, "size": SIZE,
            "options": OPTIONS[method], **kw}


_refs: dict[str, tuple[Path, list[str]]] = {}


def reference(method: str, folder: Path, tmp_path_factory) -> tuple[Path, list[str]]:
    """An uninterrupted run in a child process, and the events it went through."""
    if method not in _refs:
        base = tmp_path_factory.mktemp(f"ref-{method}")
        proc = drive(spec_for(method, folder, base / "run", events=str(base / "events.json")), base)
        assert proc.returncode == 0, proc.stderr
        _refs[method] = (base / "run", json.loads((base / "events.json").read_text()))
    return _refs[method]


def kill_points(method: str, events: list[str]) -> dict[str, int]:
    """1-based event numbers: a step in the second epoch of each stage ("inside"), the
    rename that moves the stage-end checkpoint in ("boundary": the moment only the
    ``.old`` copy exists), and the rename of run.json ("finalize")."""
    points = {}
    stages = STAGES[method]
    for i, st in enumerate(stages):
        steps = [j for j, e in enumerate(events) if e == f"step:{st}"]
        assert steps, (st, events)
        points[f"{st}:inside"] = steps[(3 * len(steps)) // 4] + 1
        nxt = [j for j, e in enumerate(events) if i + 1 < len(stages) and e == f"step:{stages[i + 1]}"]
        end = nxt[0] if nxt else events.index("replace:run.json")
        window = [j for j in range(steps[-1], end) if events[j] == "replace:train_state"]
        points[f"{st}:boundary"] = window[-1] + 1
    points["finalize"] = events.index("replace:run.json") + 1
    return points


def assert_same_weights(ref: Path, run: Path) -> None:
    for name in ("model.safetensors", "stats.safetensors"):
        a, b = load_file(str(ref / name)), load_file(str(run / name))
        assert sorted(a) == sorted(b)
        differ = [k for k in a if not torch.equal(a[k], b[k])]
        assert not differ, f"{len(differ)} of {len(a)} tensors differ in {name}, e.g. {differ[:3]}"
    assert (ref / "model.safetensors").read_bytes() == (run / "model.safetensors").read_bytes()


def kill_and_resume(method: str, at: int, folder: Path, out: Path, capsys) -> str:
    """Kill a training at event ``at``, resume it (in this process); the resume's stderr."""
    killed = drive(spec_for(method, folder, out, kill_at=at), out.parent)
    assert killed.returncode == -9, f"not killed at event {at}: rc {killed.returncode}\n{killed.stderr}"
    capsys.readouterr()
    train(method, dataset=folder, out=out, preset="tiny", epochs=EPOCHS, size=SIZE, resume=True, progress=False,
          options=OPTIONS[method])
    return capsys.readouterr().err


# The default suite covers every method, a kill inside a stage and in a stage boundary's
# crash window; the rest of the grid runs with -m slow.
DEFAULT = {("mdn", "colornet:inside"), ("mdn", "vae:boundary"), ("cvae", "cvae:boundary"), ("cgan", "cgan:inside")}
CASES = [(m, f"{st}:{where}") for m in ("mdn", "cvae", "cgan") for st in STAGES[m] for where in ("inside", "boundary")]
CASES += [(m, "finalize") for m in ("mdn", "cvae", "cgan")]
CASES = [c if c in DEFAULT else pytest.param(*c, marks=pytest.mark.slow) for c in CASES]


@pytest.mark.parametrize("method,point", CASES)
def test_kill_then_resume_equals_uninterrupted(method, point, folder, tmp_path, tmp_path_factory, capsys):
    ref, events = reference(method, folder, tmp_path_factory)
    at = kill_points(method, events)[point]
    err = kill_and_resume(method, at, folder, tmp_path / "run", capsys)
    assert "resuming" in err
    assert_same_weights(ref, tmp_path / "run")
    assert not (tmp_path / "run" / "train_state").exists()
    assert not list((tmp_path / "run").glob("*.tmp-*"))


def _random_kills(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(rng.choice(["mdn", "cvae", "cgan"]), rng.random()) for _ in range(n)]


@pytest.mark.parametrize("method,u", _random_kills(2, seed=14)
                         + [pytest.param(*c, marks=pytest.mark.slow) for c in _random_kills(8, seed=15)])
def test_random_kill_points_resume_to_the_same_weights(method, u, folder, tmp_path, tmp_path_factory, capsys):
    ref, events = reference(method, folder, tmp_path_factory)
    at = 1 + int(u * len(events))
    kill_and_resume(method, at, folder, tmp_path / "run", capsys)
    assert_same_weights(ref, tmp_path / "run")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mdn", "cvae", "cgan"])
def test_every_checkpoint_event_and_random_steps(method, folder, tmp_path, tmp_path_factory, capsys):
    """Every rename / removal of every checkpoint write, plus 8 seeded random events."""
    ref, events = reference(method, folder, tmp_path_factory)
    points = [i + 1 for i, e in enumerate(events) if not e.startswith("step:")]
    points += random.Random(method).sample(range(1, len(events) + 1), 8)
    for i, at in enumerate(sorted(set(points))):
        out = tmp_path / f"run{i}"
        kill_and_resume(method, at, folder, out, capsys)
        assert_same_weights(ref, out)
        assert not (out / "train_state").exists() and not (out / "train_state.old").exists()


# ------------------------------------------------------------------ finished runs, locks
def test_resume_of_a_finished_run_leaves_it_untouched(folder, tmp_path, tmp_path_factory, capsys):
    ref, _ = reference("cvae", folder, tmp_path_factory)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in ref.iterdir() if p.is_file()}
    from colorkit.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--method", "cvae", "--dataset", str(folder), "--preset", "tiny", "--epochs", str(EPOCHS),
              "--size", str(SIZE), "--out", str(ref), "--resume", "--quiet"])
    out = capsys.readouterr()
    assert exc.value.code == 0 and "already complete" in out.err and "trained" not in out.out
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in ref.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}


def test_second_training_into_a_locked_directory_is_refused(folder, tmp_path, capsys):
    from colorkit.core.fs import lock_dir

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from colorkit.core.fs import lock_dir\n"
        f"with lock_dir({str(out)!r}):\n    print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        from colorkit.cli import main

        with pytest.raises(SystemExit) as exc:
            main(["train", "--method", "cvae", "--dataset", str(folder), "--preset", "tiny", "--epochs", "1",
                  "--size", str(SIZE), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and "in use by another colorkit process" in err[0], err
        assert f"pid {holder.pid}" in err[0]
        assert not (out / "log.jsonl").exists() and not (out / "train_state").exists()
    finally:
        holder.kill()
        holder.wait()
    with lock_dir(out):  # released by the kill
        pass


def test_resume_without_state_says_so(folder, tmp_path, capsys):
    out = train("cvae", dataset=folder, out=tmp_path / "run", preset="tiny", epochs=1, size=SIZE, resume=True,
                progress=False)
    assert "no saved training state" in capsys.readouterr().err
    assert (out / "run.json").is_file()
