"""Values written as TOML literals: the config's TOML output and every config error message show values this way."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any


def toml_value(value: Any) -> str:
    """Write ``value`` as a TOML literal; None becomes the string "none" (TOML has no null)."""
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def toml_string(s: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = [escapes.get(c, f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c) for c in s]
    return '"' + "".join(out) + '"'


def show_value(value: Any) -> str:
    """Show a value as it would be written in TOML, for error messages."""
    try:
        return toml_value(value)
    except TypeError:
        return repr(value)


def choice_problem(value: Any, choices: Sequence[Any]) -> str:
    """Describe a value outside ``choices``, suggesting the closest allowed one."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    hint = f"; did you mean {show_value(close[0])}?" if close else ""
    return f"expected one of {', '.join(show_value(c) for c in choices)}, got {show_value(value)}{hint}"
