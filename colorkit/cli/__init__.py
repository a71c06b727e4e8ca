"""The ``colorkit`` command line: one module per command group; plugins add commands
through the ``register_commands`` hook.

User errors (:class:`colorkit.ColorkitError`, bad options) print one line and exit 2.
"""

from __future__ import annotations

import errno
import importlib
import sys

import click

from colorkit import __version__
from colorkit.core.registry import ColorkitError

# name -> "module:attribute"; imported lazily so `colorkit --help` stays fast.
COMMANDS = {
    "plugins": "colorkit.cli.plugins:plugins",
    "data": "colorkit.cli.data:data",
    "stats": "colorkit.cli.stats:stats",
    "train": "colorkit.cli.train:train",
    "colorize": "colorkit.cli.colorize:colorize",
    "bench": "colorkit.cli.bench:bench",
    "serve": "colorkit.cli.serve:serve",
}


class _Group(click.Group):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._plugins_added = False

    def _add_plugin_commands(self) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        from colorkit.core.plugin_manager import call_hook

        # one guarded call per plugin: a plugin whose hook raises is named in one line and
        # every other command (``--help`` included) keeps working
        for fail in call_hook("register_commands", cli=self):
            click.echo(f"colorkit: warning: {fail}", err=True)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._add_plugin_commands()  # a broken plugin is named here, whatever the command
        if name in COMMANDS:  # colorkit's own command, even if a plugin added one of that name
            mod, attr = COMMANDS[name].split(":")
            self.commands[name] = getattr(importlib.import_module(mod), attr)
        return self.commands.get(name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="colorkit")
def cli() -> None:
    """colorkit: diverse image colorization (Deshpande et al., CVPR 2017).

    \b
    Examples:
      colorkit bench --methods mdn,cvae,cgan     # train and score on the demo set
      colorkit train --method mdn --out runs/mdn
      colorkit colorize photo.jpg --k 5          # the bundled demo model
      colorkit colorize photos/ --out colorized/  # a whole folder, resumable
      colorkit serve                            # a web page (pip install 'colorkit[serve]')
      colorkit plugins                          # what is registered, from where
    """


# Failures of the machine rather than of colorkit: one line, exit 2.
_USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR}


def _is_oom(exc: BaseException) -> bool:
    oom = getattr(sys.modules.get("torch"), "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or "DefaultCPUAllocator: can't allocate memory" in str(exc)


def _out_of_memory(exc: BaseException) -> None:
    msg = " ".join(str(exc).split())[:200] or type(exc).__name__
    click.echo(f"colorkit: error: out of memory ({msg}); use a smaller photo, --k, batch or preset, or a machine "
               "with more memory", err=True)
    sys.exit(2)


TRAINING_COMMANDS = {"train", "bench", "colorize", "bench-video"}
"""Commands that keep the cores busy for long: before torch loads, they let OpenMP threads
sleep on a busy machine (:func:`colorkit.core.threads.adapt_wait_policy`), and while they run
they use fewer threads when other processes take the cores (:mod:`colorkit.core.loadwatch`,
unless the thread count was given)."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    args = sys.argv[1:] if argv is None else argv
    watching = False
    if next((a for a in args if not a.startswith("-")), None) in TRAINING_COMMANDS:
        from colorkit.core import loadwatch
        from colorkit.core.threads import adapt_wait_policy

        adapt_wait_policy()
        if loadwatch.should_watch(args):
            loadwatch.start_watch()
            watching = True
    try:
        _main(argv)
    finally:
        if watching:  # called in-process (a test, a script): its own thread count back, no thread left
            loadwatch.stop_watch()


def _main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="colorkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        msg = exc.format_message().replace("\n", " ")
        click.echo(f"colorkit: error: {msg}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else 2)
    except ColorkitError as exc:
        click.echo(f"colorkit: error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        if exc.errno not in _USER_ERRNOS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"colorkit: error: {exc.strerror or exc}{where} (nothing finished was overwritten; "
                   "free space or choose another --out and run again)", err=True)
        sys.exit(2)
    except MemoryError as exc:  # torch.OutOfMemoryError (CUDA) is a RuntimeError, below
        _out_of_memory(exc)
    except RuntimeError as exc:
        if not _is_oom(exc):
            raise
        _out_of_memory(exc)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(0)
