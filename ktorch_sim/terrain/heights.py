"""Ground height under world points, read straight from the model's height field, batched in torch.

Exact for the height field: MuJoCo (C and Warp, for collisions and ``mj_ray``) splits each grid
square with corners (r, c) .. (r + 1, c + 1) into the triangles (r, c), (r, c + 1), (r + 1, c + 1) and
(r, c), (r + 1, c + 1), (r + 1, c), so the surface is linear on each triangle, not bilinear. With u, v
the fractional column and row inside the square: ``z = z00 + u (z01 - z00) + v (z11 - z01)`` where
u >= v, else ``z = z00 + v (z10 - z00) + u (z11 - z10)``. The lookup is a gather and a few
multiply-adds per point, the same on every device, and needs no ray cast (tests/test_terrain.py
holds it to ``mj_ray`` on both engines). Points outside the field read its edge.
"""

from __future__ import annotations

import functools

import mujoco
import numpy as np
import torch

__all__ = ["HeightField"]


class HeightField:
    """One axis-aligned height field geom of a compiled model, as a torch lookup.

    Hashable by identity, so frozen components can hold one.
    """

    def __init__(self, elevation: np.ndarray, half_size: tuple[float, float], centre: tuple[float, float]) -> None:
        """``elevation`` (nrow, ncol): world z of each grid point, m; rows along y, columns along x."""
        self.elevation = np.asarray(elevation, dtype=np.float32)
        self.half_size = (float(half_size[0]), float(half_size[1]))
        self.centre = (float(centre[0]), float(centre[1]))

    @classmethod
    def from_model(cls, model: mujoco.MjModel, geom: str = "floor") -> HeightField:
        """Read the height field under geom ``geom`` (world z = geom z + data * size[2])."""
        g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, geom)
        if g < 0 or model.geom_type[g] != mujoco.mjtGeom.mjGEOM_HFIELD:
            raise ValueError(f"geom {geom!r} is not a height field geom of the model")
        if not np.allclose(model.geom_quat[g], (1, 0, 0, 0)):
            raise ValueError(f"height field geom {geom!r} is rotated; only axis-aligned height fields are supported")
        h = int(model.geom_dataid[g])
        nrow, ncol, adr = int(model.hfield_nrow[h]), int(model.hfield_ncol[h]), int(model.hfield_adr[h])
        size = model.hfield_size[h]
        data = model.hfield_data[adr:adr + nrow * ncol].reshape(nrow, ncol).astype(np.float64)
        pos = model.geom_pos[g]
        return cls(pos[2] + data * size[2], (size[0], size[1]), (pos[0], pos[1]))

    def grid(self, device: torch.device) -> torch.Tensor:
        """Return the elevation grid on ``device``, (nrow, ncol) float32, built once per device."""
        return _device_grid(self, str(device))

    def height(self, xy: torch.Tensor) -> torch.Tensor:
        """Ground z (m) under world points ``xy`` (..., 2): piecewise linear on MuJoCo's triangles."""
        grid = self.grid(xy.device)
        nrow, ncol = grid.shape
        sx, sy = self.half_size
        col = ((xy[..., 0] - self.centre[0] + sx) * ((ncol - 1) / (2 * sx))).clamp(0, ncol - 1)
        row = ((xy[..., 1] - self.centre[1] + sy) * ((nrow - 1) / (2 * sy))).clamp(0, nrow - 1)
        c0 = col.floor().long().clamp(max=ncol - 2)
        r0 = row.floor().long().clamp(max=nrow - 2)
        u, v = col - c0, row - r0
        z00, z01 = grid[r0, c0], grid[r0, c0 + 1]
        z10, z11 = grid[r0 + 1, c0], grid[r0 + 1, c0 + 1]
        lower = z00 + u * (z01 - z00) + v * (z11 - z01)
        upper = z00 + v * (z10 - z00) + u * (z11 - z10)
        return torch.where(u >= v, lower, upper)


@functools.lru_cache(maxsize=16)
def _device_grid(field: HeightField, device: str) -> torch.Tensor:
    return torch.as_tensor(field.elevation, device=device)
