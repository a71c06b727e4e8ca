"""One configuration tree behind the commands: shared options (``--crop``, ``--test-size``,
``--cache-dir``, ``--weighting``, ``--quiet``), the
statistics options reaching training, the tree written into run.json, and sampling
settings (``--option``) at colorize and bench time."""

from __future__ import annotations

import json

import pytest
import torch

from colorkit import ColorkitError, load
from colorkit.cli import main
from colorkit.core.stats import ColorStats
from colorkit.eval.bench import BenchConfig, parse_bench_options
from colorkit.testing import make_image_folder
from colorkit.train.config import DataConfig, SampleConfig


def _cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("command", ["train", "bench", "stats", ["data", "prepare"]])
def test_commands_share_the_data_and_progress_options(command, capsys):
    args = [command] if isinstance(command, str) else list(command)
    code, out, _ = _cli([*args, "--help"], capsys)
    assert code == 0
    for opt in ("--dataset", "--size", "--crop", "--test-size", "--cache-dir", "--quiet"):
        assert opt in out, (command, opt)
    if command in ("train", "bench", "stats"):
        assert "--weighting" in out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("cfg") / "imgs", n=30, size=40, seed=8)


@pytest.fixture(scope="module")
def colornet_run(folder, tmp_path_factory):
    """A tiny ``colornet`` run trained with --weighting inverse, --test-size and --crop,
    with a training seed and COLORKIT_LOSS_IMPL set."""
    out = tmp_path_factory.mktemp("cfg-run") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLORKIT_LOSS_IMPL", "torch")
        with pytest.raises(SystemExit) as exc:
            main(["train", "--method", "colornet", "--dataset", str(folder), "--preset", "tiny", "--epochs", "1",
                  "--size", "32", "--weighting", "inverse", "--test-size", "6", "--crop", "--out", str(out),
                  "--seed", "2", "--quiet"])
    assert exc.value.code == 0
    return out


def test_stats_options_reach_training_and_run_json_holds_the_tree(colornet_run):
    info = json.loads((colornet_run / "run.json").read_text())
    cfg = info["config"]
    assert set(cfg) == {"data", "stats", "method", "train"}
    assert cfg["stats"]["weighting"] == "inverse" and cfg["data"]["test_size"] == 6 and cfg["data"]["crop"] is True
    assert cfg["method"] == {"name": "colornet", "preset": "tiny", "options": {}}
    assert cfg["train"]["epochs"] == 1 and cfg["train"]["progress"] is False
    assert cfg["train"]["seed"] == 2 and cfg["data"]["split_seed"] == 0  # --seed is the training seed only
    assert info["environment"]["COLORKIT_LOSS_IMPL"] == "torch"  # an override the config does not show
    assert info["dataset"]["n_test"] == 6
    stats = ColorStats.load(colornet_run / "stats.safetensors")
    assert stats.meta["weighting"] == "inverse"  # the statistics training used
    assert DataConfig.model_validate(cfg["data"]).size == 32


def test_sampling_settings_at_load_time(colornet_run, folder):
    grey = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    default = load(colornet_run, device="cpu")
    hot = load(colornet_run, device="cpu", options={"temperature": 5.0})
    assert hot.method.config.temperature == 5.0 and default.method.config.temperature == 0.38
    assert not torch.allclose(default.sample(grey, 1), hot.sample(grey, 1))
    per_pixel = load(colornet_run, device="cpu", options={"mode": "per-pixel"})
    a, b = per_pixel.sample(grey, 2, seed=1), per_pixel.sample(grey, 2, mode="per-pixel", seed=1)
    assert torch.equal(a, b)
    with pytest.raises(ColorkitError, match="not a sampling setting of colornet: backbone; its sampling settings: "
                                            "temperature"):
        load(colornet_run, device="cpu", options={"backbone": "other"})
    with pytest.raises(ColorkitError, match="cannot sample with mode 'nope'"):
        load(colornet_run, device="cpu", options={"mode": "nope"})


def test_colorize_option_errors_are_one_line(colornet_run, folder, tmp_path, capsys):
    img = next(p for p in sorted(folder.iterdir()) if p.suffix in {".png", ".jpg"})
    code, _, err = _cli(["colorize", str(img), "--run", str(colornet_run), "--k", "2", "--out", str(tmp_path / "o"),
                         "--option", "temperature=-1"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and "temperature" in err
    code, _, err = _cli(["colorize", str(img), "--run", str(colornet_run), "--k", "2", "--out", str(tmp_path / "p"),
                         "--option", "temperature=0.2"], capsys)
    assert code == 0, err
    assert len(list((tmp_path / "p").glob("*.png"))) == 3  # 2 colorizations + the grid


def test_bench_options_are_scoped_by_method():
    opts = parse_bench_options({"mdn:decoder_loss": "l2", "mode": "mixture", "colornet:temperature": 0.2})
    assert opts == {"mdn": {"decoder_loss": "l2"}, "*": {"mode": "mixture"}, "colornet": {"temperature": 0.2}}
    cfg = BenchConfig(methods=["mdn", "colornet"], options=opts, dataset="demo", size=32, crop=True, seed=3)
    assert cfg.data == DataConfig(dataset="demo", size=32, crop=True)  # the split keeps its own seed, 0
    assert cfg.train.seed == 3 and cfg.seed == 3
    assert cfg.method_options("mdn") == ({"decoder_loss": "l2"}, {"mode": "mixture"})
    assert cfg.method_options("colornet") == ({}, {"mode": "mixture", "temperature": 0.2})
    assert SampleConfig.from_options({"mode": "topk", "variance": 0.05}) == SampleConfig(mode="topk",
                                                                                          options={"variance": 0.05})
    with pytest.raises(ValueError):
        BenchConfig(methods=["mdn"], colour="red")  # unknown fields are errors


@pytest.mark.parametrize("option,needle", [
    ("components=0", "components"), ("mdn_lr=nan", "mdn_lr"), ("vae_lr=Infinity", "vae_lr"), ("vae_lr=0", "vae_lr"),
    ("mdn_widths=[8,0,8,8,8]", "mdn_widths"), ("mdn_batch_size=0", "mdn_batch_size"),
    ("latent_dim=0", "latent_dim"), ("mdn_dropout=1.5", "mdn_dropout"), ("pretext_lr=-1", "pretext_lr"),
    ('decoder_loss_kwargs={"hist": {"bogus": 1}}', "bogus"),
    ('decoder_loss_kwargs={"nope": {}}', "decoder_loss_kwargs names 'nope'"),
])
def test_settings_that_cannot_train_are_refused_before_any_work(tmp_path, capsys, option, needle):
    from cli_helpers import one_line_error

    out, cache = tmp_path / "run", tmp_path / "cache"
    code, _, err = _cli(["train", "--method", "mdn", "--preset", "tiny", "--option", option, "--out", str(out),
                         "--cache-dir", str(cache), "--quiet"], capsys)
    one_line_error(code, err, needle)
    assert not out.exists() and not cache.exists()  # refused before data preparation and the run folder


def test_a_training_that_fails_before_writing_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    import colorkit.train.runs as runs

    def fail(*a, **k):
        raise ColorkitError("cannot build this method here")

    monkeypatch.setattr(runs, "build_method", fail)
    folder = make_image_folder(tmp_path / "imgs", n=30, size=32, seed=3)
    out = tmp_path / "run"
    code, _, err = _cli(["train", "--method", "mdn", "--preset", "tiny", "--dataset", str(folder), "--size", "32",
                         "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet"], capsys)
    assert code == 2 and "cannot build this method here" in err
    assert not out.exists()


@pytest.mark.parametrize("method,option", [("cvae", "lr=nan"), ("cvae", "colour_widths=[8,8,0,8]"),
                                           ("cgan", "betas=[0.5,1.5]"), ("cgan", "lr=Infinity")])
def test_baselines_refuse_settings_that_cannot_train(tmp_path, capsys, method, option):
    from cli_helpers import one_line_error

    code, _, err = _cli(["train", "--method", method, "--preset", "tiny", "--option", option, "--out",
                         str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "--quiet"], capsys)
    one_line_error(code, err, option.split("=")[0])
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_former_field_names_are_unknown_fields():
    from pydantic import ValidationError

    from colorkit.core.stats import StatsConfig

    with pytest.raises(ValidationError, match="seed"):
        DataConfig(seed=3)
    with pytest.raises(ValidationError, match="k"):
        StatsConfig(k=5)
    assert not hasattr(DataConfig(), "seed") and not hasattr(StatsConfig(), "k")


def test_environment_lists_the_overrides_that_are_set(monkeypatch):
    from colorkit.train.config import ENVIRONMENT_VARIABLES, environment

    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert environment() == {}
    monkeypatch.setenv("COLORKIT_FUSED_CONFIG", "16,64,4")
    monkeypatch.setenv("COLORKIT_LOAD_PLUGINS", "")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert environment() == {"COLORKIT_FUSED_CONFIG": "16,64,4", "COLORKIT_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "2"}


@pytest.mark.parametrize("command,models", [
    ("train", ("DataConfig", "MethodPreset")), ("bench", ("DataConfig", "MethodPreset", "BenchConfig"))])
def test_options_are_generated_from_the_config_fields(command, models, capsys):
    """Every field of the data section (and the bench's own) is an option with the field's
    default and docstring."""
    import click

    from colorkit.cli import cli
    from colorkit.cli.options import field_help
    from colorkit.eval.config import BenchConfig
    from colorkit.train.config import MethodPreset

    classes = {"DataConfig": DataConfig, "MethodPreset": MethodPreset, "BenchConfig": BenchConfig}
    cmd = cli.get_command(click.Context(cli), command)
    params = {p.name: p for p in cmd.params}
    own = {"methods", "data", "stats", "train", "options", "runs", "batch_size", "sample_images", "extra_modes",
           "resamples"}
    for model in (classes[m] for m in models):
        for name, info in model.model_fields.items():
            if model is BenchConfig and (name in own or name in MethodPreset.model_fields):
                continue
            assert name in params, (command, name)
            assert params[name].help == field_help(model, name) and params[name].help
            if info.default is not None and not info.is_required():
                assert params[name].default == info.default, (command, name)
    code, out, _ = _cli([command, "--help"], capsys)
    assert code == 0 and "--split-seed" in out and "--seed" in out
    if command == "bench":
        assert "--no-references" in out and "--threads" in out and "--runs" in out


def test_stats_components_and_split_seed(folder, tmp_path, capsys):
    args = ["stats", "--dataset", str(folder), "--size", "32", "--cache-dir", str(tmp_path / "c"), "-q"]
    code, out, err = _cli([*args, "--components", "4", "--split-seed", "3"], capsys)
    assert code == 0 and "top 4 components" in out and "split seed 3" in out, err


@pytest.mark.parametrize("command,former,value", [
    ("stats", "--k", "4"), ("stats", "--no-progress", None), ("train", "--no-progress", None),
    ("stats", "--seed", "4"), ("data prepare", "--seed", "4"), ("data info", "--seed", "4")])
def test_former_option_names_are_refused_in_one_line(command, former, value, capsys):
    """--k (now --components), --no-progress (now --quiet), and --seed of the data commands
    (the split's: now --split-seed only)."""
    code, out, err = _cli([*command.split(), former, *([value] if value else [])], capsys)
    assert code == 2 and err.startswith(f"colorkit: error: No such option '{former}'.") and err.count("\n") == 1
