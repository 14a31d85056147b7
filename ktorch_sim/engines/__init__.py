"""Physics engines behind one contract: :class:`Engine` with a batched :class:`PhysicsState`.

Names are imported on first use, so :mod:`ktorch_sim.engines.options` (the physics settings and
their checks) can be read by the config loader without importing torch or MuJoCo.
"""

from __future__ import annotations

from ktorch_sim.engines.options import ENGINE_KINDS
from ktorch_sim.utils.lazy import lazy_exports

_LAZY: dict[str, str] = {
    **dict.fromkeys(("Engine", "EngineConfig", "PhysicsState"), "ktorch_sim.engines.base"),
    "MujocoEngine": "ktorch_sim.engines.mujoco",
    "WarpEngine": "ktorch_sim.engines.warp",
    "make_engine": "ktorch_sim.engines.factory",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["ENGINE_KINDS", "Engine", "EngineConfig", "MujocoEngine", "PhysicsState", "make_engine"]
