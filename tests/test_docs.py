"""The documentation cannot drift: the generated references equal what the code gives
now, and every relative link in the Markdown points to a file that exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("page", ["docs/cli.md", "docs/config.md"])
def test_generated_page_is_current(page):
    gen = _gen_docs()
    expected = gen.PAGES[page]()
    current = (ROOT / page).read_text()
    assert current == expected, f"{page} is out of date: run `python scripts/gen_docs.py`"


def _markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [f for f in files if "build" not in f.parts and not any(p.endswith(".egg-info") for p in f.parts)]


def _links(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold no links
    text = re.sub(r"`[^`\n]*`", "", text)
    return [a or b for a, b in LINK.findall(text)]


@pytest.mark.parametrize("md", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(md):
    broken = []
    for target in _links(md.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http:, mailto:, in-page anchors
        path = target.split("#", 1)[0]
        if not (md.parent / path).exists():
            broken.append(target)
    assert not broken, f"{md.relative_to(ROOT)}: links to missing files: {broken}"


def test_docs_index_links_every_page():
    index = (ROOT / "docs" / "index.md").read_text()
    linked = {Path(t.split("#")[0]).name for t in _links(index)}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"


def test_link_finder_sees_links():
    assert _links("see [a](x.md) and ![img](y.png), not `[c](z.md)`") == ["x.md", "y.png"]


def test_the_layout_in_concepts_names_every_module_and_only_real_ones():
    """docs/concepts.md's "Layout" picture matches the tree: every module of the folders it
    lists file by file is named, and every file it names exists."""
    import re

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "concepts.md").read_text()
    layout = text[text.index("## Layout"):]
    block = layout[layout.index("```text"):layout.index("```", layout.index("```text") + 7)]
    named = set(re.findall(r"([a-z_]+\.(?:py|html))", block))
    tree = {p.name for p in (root / "colorkit").rglob("*.py")} | {"serve.html"}
    assert not sorted(n for n in named if n not in tree and n != "test_layers_imports.py")
    for folder in ("core", "data", "eval", "train", "inference", "apps", "testing"):
        files = {p.name for p in (root / "colorkit" / folder).glob("*.py")} - {"__init__.py"}
        assert not sorted(files - named), f"colorkit/{folder}: {sorted(files - named)} not in the Layout"
