"""Procedural terrain: the generator, the MjSpec scene builder, the height lookup and terrain components.

``generate_terrain(TerrainConfig(...))`` writes a grid of sub-terrains into one height grid,
``add_terrain`` / ``terrain_model`` put it into a scene, ``HeightField`` reads the ground under
world points in torch, and :mod:`ktorch_sim.terrain.components` spawns worlds on their cells,
moves them through levels, and observes the ground (docs/terrain.md).
"""

from ktorch_sim.terrain.components import (
    HeightScanObservation,
    TerrainBaseHeightObservation,
    TerrainBaseHeightReward,
    TerrainBaseHeightTermination,
    TerrainCurriculum,
    TerrainLevelRule,
    TerrainSpawnReset,
    TerrainState,
    foot_points,
)
from ktorch_sim.terrain.generator import KINDS, Terrain, TerrainConfig, cell_heights, generate_terrain
from ktorch_sim.terrain.heights import HeightField
from ktorch_sim.terrain.scene import TERRAIN_HFIELD, add_terrain, terrain_model

__all__ = ["KINDS", "TERRAIN_HFIELD", "HeightField", "HeightScanObservation", "Terrain", "TerrainBaseHeightObservation",
           "TerrainBaseHeightReward", "TerrainBaseHeightTermination", "TerrainConfig", "TerrainCurriculum",
           "TerrainLevelRule", "TerrainSpawnReset", "TerrainState", "add_terrain", "cell_heights", "foot_points",
           "generate_terrain", "terrain_model"]
