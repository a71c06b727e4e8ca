"""Command-line options generated from the configuration tree (:mod:`colorkit.train.config`,
:class:`colorkit.eval.config.BenchConfig`): :func:`field_option` makes a click option from a
pydantic field, with the field's name (``--split-seed`` for ``split_seed``), default, type and
description (its docstring), so ``train``, ``bench``, ``data``, ``stats`` and ``colorize``
spell, default and document a setting the same way, and the values map back onto the fields
by name (:func:`sections`)."""

from __future__ import annotations

import ast
import functools
import inspect
import json
import textwrap
import types
import typing
from collections.abc import Callable
from typing import Any

import click
from pydantic import BaseModel

from colorkit.core.registry import ColorkitError

# Help for fields documented neither by a docstring nor by a trailing comment (in the
# engine's TrainConfig), by field name.
FALLBACK_HELP = {
    "seed": "Seed of training (initial weights, batch order, noise).",
    "device": "auto, cpu, cuda or cuda:N.",
}


def _apply(fn: Callable, options: list[Callable]) -> Callable:
    for opt in reversed(options):
        fn = opt(fn)
    return fn


@functools.cache
def _attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """``{field: docstring}`` of the string literals written under fields in ``model``'s
    class bodies, or their trailing ``# comment`` (its bases' first)."""
    docs: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, BaseModel)) or klass is BaseModel:
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError, IndexError, AttributeError, SyntaxError):
            continue
        lines = textwrap.dedent(inspect.getsource(klass)).splitlines()
        for i, stmt in enumerate(body):
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            nxt = body[i + 1] if i + 1 < len(body) else None
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
            elif "  # " in lines[stmt.end_lineno - 1]:  # a trailing comment documents the field
                docs[stmt.target.id] = lines[stmt.end_lineno - 1].split("  # ", 1)[1].strip()
    return docs


def field_help(model: type[BaseModel], name: str) -> str:
    """The field's description (``Field(description=...)`` or its docstring) on one line,
    without reST markup; :data:`FALLBACK_HELP` for a field without one."""
    text = model.model_fields[name].description or _attribute_docs(model).get(name) or FALLBACK_HELP.get(name, "")
    return " ".join(text.replace("``", "").split())


def _base_type(annotation: Any) -> Any:
    """``int`` for ``int | None`` and ``Optional[int]``; the annotation otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def field_option(model: type[BaseModel], name: str, *flags: str, param: str | None = None,
                 **overrides: Any) -> Callable:
    """A click option for field ``name`` of ``model``: flag ``--name-with-dashes`` (or
    ``flags``), parameter ``name`` (or ``param``), the field's default (``None`` for a
    required field or a default factory) and help; ``int`` fields with ``ge``/``le``
    bounds become ``IntRange``, ``Literal`` fields ``Choice``, ``bool`` fields
    ``--name/--no-name``. ``overrides`` go to ``click.option`` as they are."""
    info = model.model_fields[name]
    flag = "--" + name.replace("_", "-")
    default = None if info.is_required() or info.default_factory is not None else info.default
    base = _base_type(info.annotation)
    attrs: dict[str, Any] = {"default": default, "show_default": default is not None,
                             "help": field_help(model, name)}
    if base is bool:
        flags = flags or (f"{flag}/--no-{name.replace('_', '-')}",)
    elif typing.get_origin(base) is typing.Literal:
        attrs["type"] = click.Choice([str(a) for a in typing.get_args(base)])
    elif base is int:
        lo = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)
        hi = next((m.le for m in info.metadata if hasattr(m, "le")), None)
        attrs["type"] = click.IntRange(min=lo, max=hi) if lo is not None or hi is not None else int
    elif base is float:
        attrs["type"] = float
    attrs.update(overrides)
    return click.option(*(flags or (flag,)), param or name, **attrs)


def sections(params: dict[str, Any], **models: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Split a command's parameters by the field names of ``models`` (``data=DataConfig``,
    ...): ``{section: {field: value}}``, taking each parameter out of ``params``."""
    out: dict[str, dict[str, Any]] = {}
    for section, model in models.items():
        out[section] = {f: params.pop(f) for f in list(model.model_fields) if f in params}
    return out


def data_options(fn: Callable | None = None, *, min_size: int = 8) -> Callable:
    """``--dataset --size --crop/--no-crop --split-seed --test-size --cache-dir``
    (:class:`colorkit.train.config.DataConfig`), reaching the command under the field names."""
    from colorkit.train.config import DataConfig

    def deco(f: Callable) -> Callable:
        return _apply(f, [
            field_option(DataConfig, "dataset"),
            field_option(DataConfig, "size", type=click.IntRange(min=min_size)),
            field_option(DataConfig, "crop"),
            field_option(DataConfig, "split_seed"),
            field_option(DataConfig, "test_size"),
            field_option(DataConfig, "cache_dir", type=click.Path(file_okay=False)),
        ])

    return deco(fn) if fn is not None else deco


def stats_options(fn: Callable) -> Callable:
    """``--weighting`` (:class:`colorkit.train.config.StatsConfig`): the colour statistics a
    method trains with and ``colorkit stats`` computes."""
    from colorkit.core.stats import WEIGHTINGS, StatsConfig

    return field_option(StatsConfig, "weighting", type=click.Choice(WEIGHTINGS))(fn)


def train_options(*names: str, **overrides: dict[str, Any]) -> Callable:
    """The options of the engine's fields ``names`` (:class:`colorkit.train.engine.TrainConfig`),
    e.g. ``--epochs --seed --device``; ``overrides[name]`` adjusts one (e.g. its help)."""
    from colorkit.train.engine import TrainConfig

    types_ = {"epochs": click.IntRange(min=1), "loader_workers": click.IntRange(min=0)}
    options = []
    for name in names:
        extra = ({"type": types_[name]} if name in types_ else {}) | overrides.get(name, {})
        if name == "compile":  # a switch: --compile (no --no-compile)
            extra = {"is_flag": True, "show_default": False, **extra}
            options.append(field_option(TrainConfig, name, "--compile", **extra))
        else:
            options.append(field_option(TrainConfig, name, **extra))
    return lambda f: _apply(f, options)


def progress_option(fn: Callable) -> Callable:
    """``--quiet/-q`` (no progress bars)."""
    return click.option("--quiet", "-q", is_flag=True, help="No progress bars.")(fn)


def option_pairs(fn: Callable | None = None, *, help: str) -> Callable:  # noqa: A002 - click's name
    """``--option KEY=VALUE`` (repeatable)."""

    def deco(f: Callable) -> Callable:
        return click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help=help)(f)

    return deco(fn) if fn is not None else deco


def parse_options(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``--option key=value`` (value parsed as JSON when it parses, else a string)."""
    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise ColorkitError(f"--option expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        if not k.strip():
            raise ColorkitError(f"--option expects key=value, got {p!r}")
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out
