"""Procedural terrain: the generator, the MjSpec scene builder, the height lookup and terrain components.

``generate_terrain(TerrainConfig(...))`` writes a grid of sub-terrains into one height grid,
``add_terrain`` / ``terrain_model`` put it into a scene, ``HeightField`` reads the ground under
world points in torch, and :mod:`ktorch_sim.terrain.components` spawns worlds on their cells,
moves them through levels, and observes the ground (docs/terrain.md).

Names are imported on first use, so :data:`KINDS` (:mod:`ktorch_sim.terrain.kinds`) can be read by
the torch-free task configs.
"""

from __future__ import annotations

import importlib
from typing import Any

from ktorch_sim.terrain.kinds import KINDS

_COMPONENTS = ("HeightScanObservation", "TerrainBaseHeightObservation", "TerrainBaseHeightReward",
               "TerrainBaseHeightTermination", "TerrainCurriculum", "TerrainLevelRule", "TerrainSpawnReset",
               "TerrainState", "foot_points")
_LAZY: dict[str, str] = {
    **dict.fromkeys(_COMPONENTS, "ktorch_sim.terrain.components"),
    **dict.fromkeys(("Terrain", "TerrainConfig", "cell_heights", "generate_terrain"), "ktorch_sim.terrain.generator"),
    "HeightField": "ktorch_sim.terrain.heights",
    **dict.fromkeys(("TERRAIN_HFIELD", "add_terrain", "terrain_model"), "ktorch_sim.terrain.scene"),
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


__all__ = ["KINDS", *sorted(_LAZY)]
