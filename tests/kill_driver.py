"""Run ``colorkit.train.runs.train`` in a child process and kill it with SIGKILL at a chosen event.

    python kill_driver.py SPEC.json

SPEC: ``{"method", "dataset", "out", "epochs", "size", "options", "resume", "kill_at",
"events"}``. Events are counted in the order they happen: every optimisation step
(``step:<stage>``), every ``os.replace`` (``replace:<destination name>``) and every
``shutil.rmtree`` (``rmtree:<name>``) the checkpoint code makes. With ``kill_at = n`` the
process kills itself (``kill -9``) just *before* event n (1-based) happens; with
``kill_at = null`` it trains to the end and writes the event list to ``events``. So the
events of an uninterrupted run name every point where a kill can land: inside a stage (a
step), and each step of each atomic write at an epoch end or a stage boundary.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    import colorkit.core.fs as ck
    import colorkit.train.engine as engine
    from colorkit.train.runs import train

    events: list[str] = []
    kill_at = spec.get("kill_at")

    def event(label: str) -> None:
        events.append(label)
        if kill_at is not None and len(events) == kill_at:
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    real_replace, real_rmtree = os.replace, shutil.rmtree
    out = Path(spec["out"]).resolve()

    def in_run(path) -> bool:  # only the run directory's writes (not the data cache's)
        return out in Path(path).resolve().parents

    def replace(src, dst, *a, **kw):
        if in_run(dst):
            event(f"replace:{Path(dst).name}")
        return real_replace(src, dst, *a, **kw)

    def rmtree(path, *a, **kw):
        if in_run(path) and ".tmp-" not in Path(path).name:
            event(f"rmtree:{Path(path).name}")
        return real_rmtree(path, *a, **kw)

    ck.os.replace = replace  # the os module itself: every atomic write goes through it
    ck.shutil.rmtree = rmtree
    real_optimize_fn = engine.Trainer._optimize_fn

    def optimize_fn(self, optimizers, where):
        inner = real_optimize_fn(self, optimizers, where)

        def optimize(name, loss):
            event(f"step:{where['stage']}")
            return inner(name, loss)

        return optimize

    engine.Trainer._optimize_fn = optimize_fn
    train(spec["method"], dataset=spec["dataset"], out=spec["out"], preset="tiny", epochs=spec["epochs"],
          size=spec["size"], resume=spec.get("resume", False), progress=False, options=spec.get("options") or {})
    if spec.get("events"):
        Path(spec["events"]).write_text(json.dumps(events))


if __name__ == "__main__":
    main()
