"""Registry and plugin-manager behaviour: unknown, duplicate, failing and misspelt plugins,
a real entry point from a distribution the test creates, and the load controls."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

import colorkit
from colorkit.cli import main
from colorkit.core import plugin_manager as plugins
from colorkit.core.registry import ColorkitError, DuplicateComponentError, Entry, Registry, UnknownComponentError


def make_dist(root, dist_name, module, source, entry_name=None):
    """Write an installed distribution (dist-info with an entry point) under ``root``."""
    entry_name = entry_name or module
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist_name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[colorkit]\n{entry_name} = {module}\n")
    (info / "RECORD").write_text("")


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reload()
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("ck_test_")]:
        del sys.modules[mod]
    monkeypatch.undo()
    plugins.reload()


GOOD = '''
from colorkit import hookimpl

def my_dataset():
    """a test data set"""
    return "/nowhere"

@hookimpl
def register_datasets(register):
    register("ck-test-set", my_dataset)
'''


def test_unknown_name_lists_known():
    reg = Registry("metric")
    reg.add(Entry("metric", "a", object, "p", "d"))
    reg.add(Entry("metric", "b", object, "p", "d"))
    with pytest.raises(UnknownComponentError, match=r"unknown metric 'c'; known: a, b"):
        reg.get("c")


def test_duplicate_names_both_sources():
    reg = Registry("backbone")
    reg.add(Entry("backbone", "x", object, "first", "dist-one"))
    with pytest.raises(
        DuplicateComponentError,
        match=r"plugin 'first' \(distribution 'dist-one'\).*plugin 'second' \(distribution 'dist-two'\)",
    ):
        reg.add(Entry("backbone", "x", object, "second", "dist-two"))


def test_family_names_pass_variant():
    reg = Registry("backbone")
    reg.add(Entry("backbone", "timm:", lambda variant, **kw: ("built", variant, kw), "p", "d"))
    assert reg.create("timm:resnet18", level=2) == ("built", "resnet18", {"level": 2})
    assert "timm:resnet18" in reg and "timm:" in reg and "other" not in reg


def test_real_entry_point_registers(plugin_path):
    make_dist(plugin_path, "ck-test-good", "ck_test_good", GOOD)
    assert "ck-test-set" in colorkit.list_datasets()
    entry = plugins.registry("dataset").get("ck-test-set")
    assert entry.distribution == "ck-test-good" and entry.plugin == "ck_test_good"
    assert entry.description == "a test data set"


def test_failing_plugin_reported_others_work(plugin_path, capsys):
    make_dist(plugin_path, "ck-test-good", "ck_test_good", GOOD)
    make_dist(plugin_path, "ck-test-bad", "ck_test_bad", "raise RuntimeError('boom at import')\n")
    assert "ck-test-set" in colorkit.list_datasets()
    fails = plugins.failures()
    (bad,) = [f for f in fails if f.plugin.startswith("ck_test")]
    assert bad.plugin == "ck_test_bad" and bad.distribution == "ck-test-bad"
    assert "RuntimeError: boom at import" in str(bad)
    assert "ck_test_bad" in capsys.readouterr().err


def test_misspelt_hook_rejected(plugin_path):
    make_dist(plugin_path, "ck-test-typo", "ck_test_typo", '''
from colorkit import hookimpl

@hookimpl
def register_dataset(register):
    register("never", lambda: None)
''')
    assert "never" not in colorkit.list_datasets()
    (fail,) = [f for f in plugins.failures() if f.plugin == "ck_test_typo"]
    assert "unknown hook 'register_dataset'" in fail.error


def test_duplicate_across_plugins_reported(plugin_path):
    make_dist(plugin_path, "ck-test-good", "ck_test_good", GOOD)
    make_dist(plugin_path, "ck-test-dup", "ck_test_dup", GOOD.replace("my_dataset", "other"))
    (fail,) = [f for f in plugins.failures() if f.plugin in {"ck_test_dup", "ck_test_good"}]
    assert "duplicate dataset name 'ck-test-set'" in fail.error
    assert "ck-test-set" in colorkit.list_datasets()


def test_hook_raising_is_isolated(plugin_path):
    make_dist(plugin_path, "ck-test-raise", "ck_test_raise", '''
from colorkit import hookimpl

@hookimpl
def register_datasets(register):
    raise ValueError("inside the hook")
''')
    assert "demo" in colorkit.list_datasets()
    (fail,) = [f for f in plugins.failures() if f.plugin == "ck_test_raise"]
    assert "register_datasets: ValueError: inside the hook" in fail.error


def test_env_restricts_and_blocks(plugin_path, monkeypatch):
    make_dist(plugin_path, "ck-test-good", "ck_test_good", GOOD)
    monkeypatch.setenv("COLORKIT_LOAD_PLUGINS", "")
    plugins.reload()
    assert "ck-test-set" not in colorkit.list_datasets()
    assert "demo" in colorkit.list_datasets()  # core components stay
    assert colorkit.list_methods() == []
    monkeypatch.setenv("COLORKIT_LOAD_PLUGINS", "ck_test_good")
    plugins.reload()
    assert "ck-test-set" in colorkit.list_datasets()
    monkeypatch.delenv("COLORKIT_LOAD_PLUGINS")
    monkeypatch.setenv("COLORKIT_BLOCK_PLUGINS", "ck_test_good")
    plugins.reload()
    assert "ck-test-set" not in colorkit.list_datasets()


def test_plugins_command_text_and_json(plugin_path, capsys):
    make_dist(plugin_path, "ck-test-good", "ck_test_good", GOOD)
    with pytest.raises(SystemExit) as exc:
        main(["plugins", "--json"])
    assert exc.value.code == 0
    data = json.loads(capsys.readouterr().out)
    rows = {(c["kind"], c["name"]): c for c in data["components"]}
    assert rows[("dataset", "ck-test-set")]["distribution"] == "ck-test-good"
    assert rows[("dataset", "demo")]["distribution"] == "colorkit"
    with pytest.raises(SystemExit):
        main(["plugins"])
    out = capsys.readouterr().out
    assert "ck-test-set" in out and "ck-test-good" in out and out.startswith("KIND")


def test_cli_user_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plugins", "--kind", "nonsense"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("colorkit: error:") and err.count("\n") == 1 and "Traceback" not in err


def test_plugin_adds_a_cli_command(plugin_path, capsys):
    make_dist(plugin_path, "ck-test-cmd", "ck_test_cmd", '''
import click
from colorkit import hookimpl

@click.command("ck-hello")
@click.option("--name", default="world")
def hello(name):
    """Say hello (a plugin command)."""
    click.echo(f"hello {name}")

@hookimpl
def register_commands(cli):
    cli.add_command(hello)
''')
    from colorkit.cli import cli

    cli._plugins_added = False  # the group is module-level: let it ask the plugins again
    cli.commands.pop("ck-hello", None)
    try:
        with pytest.raises(SystemExit) as exc:
            main(["ck-hello", "--name", "colorkit"])
        assert exc.value.code == 0 and capsys.readouterr().out == "hello colorkit\n"
        with pytest.raises(SystemExit):
            main(["--help"])
        assert "ck-hello" in capsys.readouterr().out
    finally:
        cli.commands.pop("ck-hello", None)
        cli._plugins_added = False


CLASH = '''
from colorkit import hookimpl

class Fake:
    """a look-alike"""

@hookimpl
def register_methods(register):
    register("{name}", Fake)
    register("{name}-own", Fake)
'''


@pytest.mark.parametrize("entry,name", [("zzz", "mdn"), ("aaa", "cvae")])
def test_plugin_never_replaces_a_builtin(plugin_path, entry, name):
    """A plugin whose entry-point name sorts after (zzz) or before (aaa) colorkit's own
    registers a built-in's name: the built-in keeps it, the clash names both plugins, the
    built-in's other components and the plugin's other components still register."""
    make_dist(plugin_path, f"ck-test-{entry}", f"ck_test_{entry}", CLASH.format(name=name), entry_name=entry)
    reg = plugins.registry("method")
    assert reg.get(name).distribution == "colorkit" and reg.get(name).plugin in {"paper", "baselines"}
    assert {"mdn", "mdn-skip", "cvae", "cgan", f"{name}-own"} <= set(reg.names())
    fails = [f for f in plugins.failures() if name in f.error]
    assert len(fails) == 1 and fails[0].plugin == entry, fails
    assert f"registered by plugin '{reg.get(name).plugin}' (distribution 'colorkit')" in fails[0].error
    assert f"plugin '{entry}' (distribution 'ck-test-{entry}')" in fails[0].error
    assert not [f for f in plugins.failures() if f.distribution == "colorkit"]


def test_register_commands_raising_is_isolated(plugin_path, capsys):
    """A plugin whose ``register_commands`` raises: ``colorkit --help`` and the built-in
    commands still work, and one warning line names the plugin."""
    make_dist(plugin_path, "ck-test-cmdbad", "ck_test_cmdbad", '''
from colorkit import hookimpl

@hookimpl
def register_commands(cli):
    raise RuntimeError("broken command plugin")
''')
    from colorkit.cli import cli

    cli._plugins_added = False
    try:
        with pytest.raises(SystemExit) as exc:
            main(["--help"])
        assert exc.value.code == 0
        out, err = capsys.readouterr()
        assert "bench" in out and "train" in out
        lines = [ln for ln in err.splitlines() if "ck_test_cmdbad" in ln]
        assert len(lines) == 1 and "register_commands: RuntimeError: broken command plugin" in lines[0]
        assert "Traceback" not in err
        cli._plugins_added = False
        with pytest.raises(SystemExit) as exc:
            main(["bench", "--help"])
        assert exc.value.code == 0 and "--methods" in capsys.readouterr().out
    finally:
        cli._plugins_added = False


def test_a_plugin_command_never_replaces_a_builtin(plugin_path, capsys):
    make_dist(plugin_path, "ck-test-shadow", "ck_test_shadow", '''
import click
from colorkit import hookimpl

@click.command("bench")
def fake():
    """Not colorkit's bench."""
    click.echo("fake bench")

@hookimpl
def register_commands(cli):
    cli.add_command(fake)
''')
    from colorkit.cli import cli

    cli._plugins_added = False
    try:
        with pytest.raises(SystemExit) as exc:
            main(["bench", "--help"])
        out = capsys.readouterr().out
        assert exc.value.code == 0 and "--methods" in out and "fake bench" not in out
    finally:
        cli._plugins_added = False


FORMER_HOOK = '''
from colorkit import hookimpl

class Former:
    """a method registered through a hook name colorkit does not define"""

@hookimpl
def register_conditional_models(register):
    register("ck-former-hook", Former)
'''


def test_the_former_hook_name_is_an_unknown_hook(plugin_path):
    """``register_conditional_models``, the hook's name before 0.1.0, is rejected like any
    hook name colorkit does not define: the plugin fails to load, naming the known hooks."""
    make_dist(plugin_path, "ck-test-former", "ck_test_former", FORMER_HOOK, entry_name="former")
    assert "ck-former-hook" not in plugins.registry("method")
    (fail,) = [f for f in plugins.failures() if f.plugin == "former"]
    assert "unknown hook 'register_conditional_models'" in fail.error and "register_methods" in fail.error


def test_the_former_kind_name_is_an_unknown_kind():
    with pytest.raises(ColorkitError, match=r"unknown component kind 'conditional_model'; expected one of .*method"):
        plugins.registry("conditional_model")
