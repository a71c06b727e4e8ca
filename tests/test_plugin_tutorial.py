"""docs/plugin-tutorial.md cannot drift: the command lines of its walkthrough (sections 1 to
4) are run as written, in order, with the checkout's path for ``~/colorkit`` and a
temporary folder for ``/tmp``; each must succeed, and the listings and test counts it shows
must be what the commands print.

The lines that make the virtual environment and install colorkit itself are the
environment this suite already runs in, so they are recognised, not run. The example
package is installed for real, with pip, into a folder put on ``PYTHONPATH`` (no network:
its one dependency, colorkit, is already there)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "plugin-tutorial.md"
EXAMPLE = "~/colorkit/docs/examples/colorkit-knn"
SETUP = {
    "python3 -m venv /tmp/tutorial-venv",
    "source /tmp/tutorial-venv/bin/activate",
    "pip install -q -c ~/colorkit/constraints.txt -e ~/colorkit",
    "pip install -q pytest",
}
"""The environment's own lines: what this suite runs in already."""


def walkthrough() -> list[tuple[str, list[tuple[str, str]]]]:
    """``[(section title, [(language, code), ...])]`` of the sections numbered 1 to 4."""
    out = []
    for part in re.split(r"^## ", TUTORIAL.read_text(), flags=re.M)[1:]:
        title = part.splitlines()[0]
        if re.match(r"[1-4]\. ", title):
            out.append((title, re.findall(r"^```(\w+)\n(.*?)^```", part, flags=re.M | re.S)))
    return out


def test_the_walkthrough_has_its_four_sections():
    titles = [t for t, _ in walkthrough()]
    assert [t[:2] for t in titles] == ["1.", "2.", "3.", "4."], titles
    assert all(any(lang == "bash" for lang, _ in blocks) for _, blocks in walkthrough())


def _argv(words: list[str]) -> list[str]:
    if words[0] == "colorkit":
        return [sys.executable, "-m", "colorkit", *words[1:]]
    if words[0] in ("python", "python3"):
        return [sys.executable, *words[1:]]
    return words


def test_the_tutorial_commands_run_as_written(tmp_path):
    work, site, example = tmp_path / "tmp", tmp_path / "site", tmp_path / "colorkit-knn"
    work.mkdir()
    shutil.copytree(ROOT / EXAMPLE.removeprefix("~/colorkit/"), example,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"))
    rng = np.random.default_rng(0)  # the user's photo of section 3
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(work / "some-photo.jpg")
    path = [str(site), str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "COLORKIT_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(path)}
    cwd = ROOT
    ran = 0
    for title, blocks in walkthrough():
        printed: list[str] = []
        for lang, code in blocks:
            if lang == "text" and printed and printed[-1] is not None:
                _compare(title, code, printed[-1])
                printed.append(None)
            if lang != "bash":
                continue
            for line in code.strip().splitlines():
                if line in SETUP:
                    continue
                line = line.replace(EXAMPLE, str(example)).replace("~/colorkit", str(ROOT))
                for command in line.split(" && "):
                    words = shlex.split(command)
                    if words[0] == "cd":
                        cwd = work if words[1] == "/tmp" else Path(words[1])
                        continue
                    if words[:3] == ["pip", "install", "-e"]:
                        words = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                                 "--no-index", "--disable-pip-version-check", "--target", str(site), words[3]]
                    proc = subprocess.run(_argv(words), cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
                    said = proc.stdout[-2000:] + proc.stderr[-2000:]
                    assert proc.returncode == 0, f"{title}: `{command}` failed:\n{said}"
                    printed.append(proc.stdout)
                    ran += 1
    assert ran >= 7


def _compare(title: str, shown: str, printed: str) -> None:
    if shown.startswith("KIND"):  # a listing: exactly what the command prints
        assert [ln.rstrip() for ln in printed.strip().splitlines()] == shown.strip().splitlines(), title
    elif "passed" in shown:  # a pytest summary: the same number of tests
        count = re.search(r"(\d+) passed", shown).group(1)
        assert re.search(rf"\b{count} passed\b", printed), (title, printed[-500:])
