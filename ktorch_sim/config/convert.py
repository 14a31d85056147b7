"""Typed construction of a config section: each TOML value converted to its field's annotation and checked
(finite floats, 64-bit ints, ``choices``), with one :class:`ConfigError` line per problem."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from ktorch_sim.errors import ConfigError
from ktorch_sim.utils.limits import INT64_MAX
from ktorch_sim.utils.toml_values import choice_problem as _choice_problem
from ktorch_sim.utils.toml_values import show_value

if typing.TYPE_CHECKING:
    from ktorch_sim.config.loader import _Where


class _Mismatch(Exception):
    """A value that does not fit a type; ``expected`` says what would."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _build_section(section: str, cls: type, table: Mapping[str, Any], where: _Where) -> Any:
    """Build a fresh ``cls`` from a key-checked table, converting each value to its field's type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        dotted = f"{section}.{key}"
        kwargs[key] = _convert_field(value, hints[key], fields[key], dotted, where)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # the class's own __post_init__ checks
        from_cli = [f"{section}.{k}" for k in kwargs if f"{section}.{k}" in where.overridden]
        raise ConfigError(str(e), key=section, source=where(from_cli[0] if from_cli else section)) from None


def _convert_field(value: Any, tp: Any, field: dataclasses.Field, dotted: str, where: _Where) -> Any:
    """``value`` converted to ``tp`` and checked against the field's ``choices``; ConfigError otherwise."""
    try:
        converted = _convert(value, tp)
    except _Mismatch as e:
        raw = where.overridden.get(dotted)
        try:  # a str field takes the raw text: --set logging.run_name=2024 is the string "2024"
            if raw is None or raw == value:
                raise
            converted = _convert(raw, tp)
        except _Mismatch:
            raise ConfigError(f"expected {e.expected}, got {show_value(value)}", key=dotted, source=where(dotted)) from None
    choices = field.metadata.get("choices")
    if choices is not None and converted not in choices:
        raise ConfigError(_choice_problem(converted, choices), key=dotted, source=where(dotted))
    problem = _number_problem(converted, field, raw=where.overridden.get(dotted))
    if problem:
        raise ConfigError(problem, key=dotted, source=where(dotted))
    return converted


def _number_problem(value: Any, field: dataclasses.Field, raw: str | None = None) -> str | None:
    """Describe a non-finite float (or one in a tuple) or an int beyond 64 bits; None when the value is fine.

    ``inf`` is allowed only in a field made with ``config_field(..., allow_inf=True)`` (its help text
    says what infinity means) or whose default holds an infinity itself (e.g. a range ``(0.7, inf)``:
    the default shows what it means); ``nan`` never. ``raw`` is the ``--set`` text, shown when it
    differs (``1e400`` is read as inf).
    """
    items = value if isinstance(value, (tuple, list)) else (value,)
    if raw is not None and len(raw) > 40:
        raw = f"{raw[:20]}... ({len(raw)} characters)"
    shown = show_value(value) if raw is None or raw == show_value(value) else f"{raw} (read as {show_value(value)})"
    for item in items:
        if isinstance(item, bool):
            continue
        if isinstance(item, float) and math.isnan(item):
            return f"must be a number, got {shown}"
        if isinstance(item, float) and math.isinf(item) and not _allows_inf(field):
            return f"must be a finite number, got {shown}"
        if isinstance(item, int) and not -INT64_MAX - 1 <= item <= INT64_MAX:
            return f"must fit in a 64-bit integer (|value| <= {INT64_MAX}), got {shown}"
    return None


def _allows_inf(field: dataclasses.Field) -> bool:
    """Whether ``field`` may hold an infinity: ``allow_inf`` metadata, or a default that holds one."""
    if field.metadata.get("allow_inf"):
        return True
    default = field.default
    if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    items = default if isinstance(default, (tuple, list)) else (default,)
    return any(isinstance(v, float) and math.isinf(v) for v in items)


def _convert(value: Any, tp: Any) -> Any:  # noqa: C901 - one branch per supported annotation
    """``value`` (a TOML datum) as type ``tp``; raises :class:`_Mismatch` naming what was expected."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return _convert_union(value, args, tp)
    if tp is Any or tp is object:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch("bool (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch("int")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an int beyond float range: as inf, which the finiteness check refuses
                return math.inf if value > 0 else -math.inf
        raise _Mismatch("float")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch("str")
    if origin is Literal:
        if value in args:
            return value
        raise _Mismatch(f"one of {', '.join(show_value(a) for a in args)}")
    if origin in (tuple, list):
        return _convert_sequence(value, origin, args, tp)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Mismatch(_type_name(tp))


def _convert_union(value: Any, args: tuple[Any, ...], tp: Any) -> Any:
    if type(None) in args and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(value, arg)
        except _Mismatch:
            continue
    raise _Mismatch(_type_name(tp))


def _convert_sequence(value: Any, origin: type, args: tuple[Any, ...], tp: Any) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _Mismatch(f"{_type_name(tp)} (a TOML array)")
    if origin is list or (len(args) == 2 and args[1] is Ellipsis):
        item = args[0] if args else Any
        items = [_convert_item(v, item, tp) for v in value]
        return items if origin is list else tuple(items)
    if not args:
        return tuple(value)
    if len(value) != len(args):
        raise _Mismatch(f"{_type_name(tp)} (an array of {len(args)})")
    return tuple(_convert_item(v, a, tp) for v, a in zip(value, args, strict=True))


def _convert_item(value: Any, item_tp: Any, tp: Any) -> Any:
    try:
        return _convert(value, item_tp)
    except _Mismatch:
        raise _Mismatch(_type_name(tp)) from None


def _type_name(tp: Any) -> str:
    """Write an annotation readably: ``int``, ``tuple[float, float]``, ``float | None``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(show_value(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]" if args else origin.__name__
    return getattr(tp, "__name__", str(tp))
