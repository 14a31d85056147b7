"""Physics engines behind one contract: :class:`Engine` with a batched :class:`PhysicsState`.

Names are imported on first use, so :mod:`ktorch_sim.engines.options` (the physics settings and
their checks) can be read by the config loader without importing torch or MuJoCo.
"""

from __future__ import annotations

import importlib
from typing import Any

from ktorch_sim.engines.options import ENGINE_KINDS

_LAZY: dict[str, str] = {
    **dict.fromkeys(("Engine", "EngineConfig", "PhysicsState"), "ktorch_sim.engines.base"),
    "MujocoEngine": "ktorch_sim.engines.mujoco",
    "WarpEngine": "ktorch_sim.engines.warp",
    "make_engine": "ktorch_sim.engines.factory",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["ENGINE_KINDS", "Engine", "EngineConfig", "MujocoEngine", "PhysicsState", "make_engine"]
