"""Objects named by ``"package.module:Name"`` strings, imported when first asked for.

The shipped tasks (:mod:`ktorch_sim.tasks`) and the one entry point the task layer calls in the
training layer (:data:`ktorch_sim.ppo_task.LAUNCHER`) are named this way, so that a lower layer
refers to a higher one by name and the package has no import cycle (tests/test_import_graph.py).
"""

from __future__ import annotations

import importlib
from typing import Any


def resolve_object(path: str) -> Any:
    """Import ``"package.module:Name"`` (``Name`` may be dotted: ``Outer.Inner``) and return the object."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'package.module:Name', got {path!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
