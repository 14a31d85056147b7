"""Put a generated terrain into a MuJoCo scene with MjSpec (no XML templates).

The terrain replaces the scene's floor geom: one height field geom under the floor's name (so
components that name the floor, such as foot-contact observations, keep working) with the floor's
contact settings and material, plus one box geom per :attr:`Terrain.boxes` entry.

MuJoCo stores a height field as values in [0, 1] times ``size[2]``, offset by the geom's z, and
renormalises user data to [0, 1] when it compiles; so the grid is written already normalised, with
``size[2]`` = max - min and the geom at z = min (the compiled elevation equals the grid up to
float32 rounding).
"""

from __future__ import annotations

import mujoco
import numpy as np

from ktorch_sim.terrain.generator import Terrain

__all__ = ["TERRAIN_HFIELD", "add_terrain", "terrain_model"]

TERRAIN_HFIELD = "terrain"
"""Name of the height field asset the builder adds."""

_MIN_RANGE = 1e-3  # size[2] must be positive; a flat grid gets this (its data is all zeros)


def add_terrain(spec: mujoco.MjSpec, terrain: Terrain, floor: str = "floor", base_thickness: float = 1.0) -> None:
    """Replace geom ``floor`` of ``spec`` by ``terrain``'s height field (and boxes), in place."""
    old = spec.geom(floor)
    if old is None:
        names = [g.name for g in spec.geoms]
        raise ValueError(f"the scene has no geom {floor!r} to replace by the terrain; geoms are {names}")
    settings = {k: getattr(old, k) for k in ("contype", "conaffinity", "condim", "friction", "material", "group",
                                              "priority", "solref", "solimp", "margin")}
    spec.delete(old)
    low = float(terrain.heights.min())
    span = max(float(terrain.heights.max()) - low, _MIN_RANGE)
    data = (terrain.heights - low) / span
    ny, nx = data.shape
    sx, sy = terrain.half_size
    spec.add_hfield(name=TERRAIN_HFIELD, size=[sx, sy, span, base_thickness], nrow=ny, ncol=nx,
                    userdata=data.astype(np.float32).ravel().tolist())
    geom = spec.worldbody.add_geom(name=floor, type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname=TERRAIN_HFIELD,
                                   pos=[0.0, 0.0, low])
    for key, value in settings.items():
        setattr(geom, key, value)
    for i, (x, y, z, hx, hy, hz) in enumerate(terrain.boxes):
        box = spec.worldbody.add_geom(name=f"{floor}_box_{i}", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[x, y, z],
                                      size=[hx, hy, hz])
        for key, value in settings.items():
            setattr(box, key, value)


def terrain_model(scene_xml: str, terrain: Terrain, floor: str = "floor") -> mujoco.MjModel:
    """Compile the scene file ``scene_xml`` with its floor replaced by ``terrain``."""
    spec = mujoco.MjSpec.from_file(str(scene_xml))
    add_terrain(spec, terrain, floor=floor)
    return spec.compile()
