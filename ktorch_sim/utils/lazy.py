"""A package's public names imported on first use (PEP 562), so importing the package stays cheap.

``__getattr__, __dir__ = lazy_exports(__name__, {"Name": "package.module", ...})`` at the end of a
package's ``__init__.py``: ``package.Name`` imports ``package.module`` the first time it is read and
caches the value in the package's namespace.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return the ``__getattr__`` and ``__dir__`` that import each of ``names`` from its module on first use."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module-level hook's name
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
