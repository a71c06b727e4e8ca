"""``colorkit plugins``: every registered component, its kind and where it came from."""

from __future__ import annotations

import json

import click

from colorkit.core.registry import KINDS


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--kind", type=click.Choice(KINDS), default=None, help="Only this kind.")
def plugins(as_json: bool, kind: str | None) -> None:
    """List registered components (kind, name, plugin, distribution) and plugin failures.

    \b
    Environment: COLORKIT_LOAD_PLUGINS=a,b loads only those entry points ('' loads none);
    COLORKIT_BLOCK_PLUGINS=a,b skips them.
    """
    from colorkit.core.plugin_manager import all_entries, failures, loaded_plugins

    entries = [e for e in all_entries() if kind is None or e.kind == kind]
    fails = failures()
    if as_json:
        click.echo(json.dumps({
            "components": [{**e.as_dict(), "description": _description(e)} for e in entries],
            "plugins": [{"name": p.name, "distribution": p.distribution, "module": p.module} for p in loaded_plugins()],
            "failures": [{"plugin": f.plugin, "distribution": f.distribution, "error": f.error} for f in fails],
        }, indent=2))
        return
    rows = [(e.kind, e.name, e.plugin, e.distribution, _description(e)) for e in entries]
    headers = ("KIND", "NAME", "PLUGIN", "DISTRIBUTION", "DESCRIPTION")
    widths = [max([len(headers[i])] + [len(r[i]) for r in rows]) for i in range(4)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers[:4], widths)) + "  " + headers[4])
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    if fails:
        click.echo(f"\n{len(fails)} plugin(s) failed to load:")
        for f in fails:
            click.echo(f"  {f}")


def _description(entry) -> str:
    """The entry's description; a metric class that declares no units says so first (the
    bench does not score it)."""
    if entry.kind == "metric" and isinstance(entry.factory, type):
        from colorkit.metrics import declares

        if not declares(entry.factory, "units"):
            return f"[units not declared: not scored] {entry.description}".rstrip()
    return entry.description
