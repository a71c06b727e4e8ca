"""Options refused before any work, in one line: seeds out of range (colorize, train, bench,
bench-video), sampling settings the bench cannot use, an empty method list; and the bench's
scatter figure, whose labels never overlap or leave it."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import one_line_error, run_cli
from PIL import Image

from colorkit.testing import make_image_folder

HUGE = "99999999999999999999999"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("options") / "imgs", n=24, size=32, seed=9)


@pytest.fixture
def photo(tmp_path):
    p = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(p)
    return p


# ------------------------------------------------------------------ seeds
def test_colorize_refuses_a_seed_out_of_range(photo, tmp_path, capsys):
    for seed in (HUGE, "-1", str(2**32)):
        code, _, err = run_cli(["colorize", str(photo), "--k", "1", "--seed", seed, "--out", str(tmp_path / "o")],
                               capsys)
        one_line_error(code, err, "--seed")
        assert "0<=x<=4294967295" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["train", "bench"])
@pytest.mark.parametrize("flag, seed", [("--seed", HUGE), ("--seed", "-3"), ("--split-seed", HUGE)])
def test_train_and_bench_refuse_a_seed_out_of_range(command, flag, seed, folder, tmp_path, capsys):
    args = ["--method", "mdn"] if command == "train" else ["--methods", "mdn"]
    out = tmp_path / "out"
    code, _, err = run_cli([command, *args, "--dataset", str(folder), "--size", "32", "--preset", "tiny",
                            "--epochs", "1", flag, seed, "--out", str(out), "--quiet"], capsys)
    one_line_error(code, err, flag)
    assert not out.exists()


def test_bench_refuses_seeds_that_run_past_the_range(folder, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(["bench", "--methods", "mdn", "--dataset", str(folder), "--size", "32", "--preset", "tiny",
                            "--epochs", "1", "--seed", str(2**32 - 1), "--seeds", "2", "--out", str(out), "--quiet"],
                           capsys)
    one_line_error(code, err, "seeds are 0 to 4294967295")
    assert not out.exists()


def test_bench_video_refuses_a_seed_out_of_range(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(["bench-video", "--methods", "mdn", "--clips", "2", "--frames", "2", "--seed", HUGE,
                            "--preset", "tiny", "--out", str(out), "--quiet"], capsys)
    one_line_error(code, err, "--seed")
    assert not out.exists()


# ------------------------------------------------------------------ the bench's sampling settings
@pytest.mark.parametrize("option, needle", [
    ("mode=bogus", "method 'mdn' has no sampling mode 'bogus'"),
    ("mdn:mode=bogus", "method 'mdn' has no sampling mode 'bogus' (its modes: topk"),
    ("colornet:temperature=nan", "invalid sampling setting of method 'colornet': temperature='nan'"),
])
def test_bench_refuses_a_bad_sampling_setting_before_training(option, needle, folder, tmp_path, capsys):
    out = tmp_path / "out"
    methods = "colornet" if option.startswith("colornet") else "mdn"
    code, _, err = run_cli(["bench", "--methods", methods, "--no-references", "--dataset", str(folder), "--size",
                            "32", "--preset", "tiny", "--epochs", "1", "--out", str(out), "--option", option,
                            "--quiet"], capsys)
    one_line_error(code, err, needle)
    assert not (out / "runs").exists()  # nothing was trained


def test_bench_video_refuses_no_methods(tmp_path, capsys):
    for methods in ("", " , "):
        out = tmp_path / "out"
        code, _, err = run_cli(["bench-video", "--methods", methods, "--out", str(out), "--quiet"], capsys)
        one_line_error(code, err, "no methods given")
        assert not out.exists()


# ------------------------------------------------------------------ scatter.png
def _results():
    """A bench's rows as on the demo set: eight rows crowded near variance 1e-2, one far
    right, three at 0, and one mode identical to the default."""
    rows = {}

    def row(name, var, eob, kind="learned", **extra):
        rows[name] = {"kind": kind, "variance": var, "error_of_best": eob,
                      "error_of_best_ci": [eob - 0.006, eob + 0.006], **extra}

    row("mdn", 0.01398, 0.0734)
    row("mdn[distinct]", 0.01398, 0.0734, same_as="mdn")
    row("mdn[mixture]", 0.01265, 0.0786)
    row("mdn-skip", 0.01321, 0.0742)
    row("mdn-skip[distinct]", 0.01400, 0.0745)
    row("mdn-skip[mixture]", 0.00878, 0.0795)
    row("mdn[vae-kmeans]", 0.02951, 0.0834, "reference")
    row("mdn-skip[vae-kmeans]", 0.02272, 0.0786, "reference")
    row("prior-kmeans", 0.01602, 0.0747, "reference")
    row("prior-samples", 0.01510, 0.0929, "reference")
    row("colornet[per-pixel]", 0.03904, 0.1879, "reference")
    row("grey", 0.0, 0.0956, "reference")
    row("mean-field", 0.0, 0.0914, "reference")
    row("colornet", 0.0, 0.1288, "reference")
    return {"methods": rows, "test_set": {"name": "demo"}, "split": {"test": 31}, "k": 5}


def test_scatter_labels_never_overlap_or_leave_the_figure(monkeypatch, tmp_path):
    import matplotlib.legend
    import matplotlib.text

    from colorkit.eval import plots

    figures = []
    monkeypatch.setattr(plots, "atomic_write_png", lambda path, fig, **kw: figures.append(fig))
    plots.scatter_plot(_results(), tmp_path / "scatter.png")
    (fig,) = figures
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    labels = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
    for i, (a, box) in enumerate(labels.items()):
        for b, other in list(labels.items())[:i]:
            assert not box.overlaps(other), f"{a!r} overprints {b!r}"
    assert len(labels) == 13  # one per row drawn: the identical mode is not drawn again
    page = fig.bbox
    boxes = {"axes with its labels": ax.get_tightbbox(renderer), **labels,
             **{f"legend {i}": lg.get_window_extent(renderer) for i, lg in enumerate(fig.legends + ax.get_children())
                if isinstance(lg, matplotlib.legend.Legend)}}
    assert any(w.startswith("legend") for w in boxes)
    for what, box in boxes.items():
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, what
    words = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    assert sum("mdn[distinct]" in w for w in words) == 1 and any("same as mdn" in w for w in words)
