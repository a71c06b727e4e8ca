"""Running the CLI in-process from tests, and checking its user-error contract."""

from __future__ import annotations

import pytest

from colorkit.cli import main


def run_cli(args, capsys):
    """``colorkit ARGS`` in this process -> ``(exit code, stdout, stderr)``."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def one_line_error(code, err, needle):
    """A user error: exit status 2 and one line of stderr, ``colorkit: error: ...``
    naming ``needle`` (so no traceback)."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("colorkit: error:") and needle in lines[0], err
