"""Procedural terrain: the generator, the MjSpec scene builder, the height lookup and terrain components.

``generate_terrain(TerrainConfig(...))`` writes a grid of sub-terrains into one height grid,
``add_terrain`` / ``terrain_model`` put it into a scene, ``HeightField`` reads the ground under
world points in torch, and :mod:`ktorch_sim.terrain.components` spawns worlds on their cells,
moves them through levels, and observes the ground (docs/terrain.md).

Names are imported on first use, so :data:`KINDS` (:mod:`ktorch_sim.terrain.kinds`) can be read by
the torch-free task configs.
"""

from __future__ import annotations

from ktorch_sim.terrain.kinds import KINDS
from ktorch_sim.utils.lazy import lazy_exports

_COMPONENTS = ("HeightScanObservation", "TerrainBaseHeightObservation", "TerrainBaseHeightReward",
               "TerrainBaseHeightTermination", "TerrainCurriculum", "TerrainLevelRule", "TerrainSpawnReset",
               "TerrainState", "foot_points")
_LAZY: dict[str, str] = {
    **dict.fromkeys(_COMPONENTS, "ktorch_sim.terrain.components"),
    **dict.fromkeys(("Terrain", "TerrainConfig", "cell_heights", "generate_terrain"), "ktorch_sim.terrain.generator"),
    "HeightField": "ktorch_sim.terrain.heights",
    **dict.fromkeys(("TERRAIN_HFIELD", "add_terrain", "terrain_model"), "ktorch_sim.terrain.scene"),
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["KINDS", *sorted(_LAZY)]
