"""Procedural terrain: a grid of sub-terrains written into one height grid, seeded and reproducible.

The grid has ``num_levels`` cells along world x (difficulty rises with the index) and one cell per
entry of ``kinds`` along world y. Each cell is ``cell_size`` metres square, sampled every
``horizontal_scale`` metres, and a flat ``border`` surrounds the whole grid. Heights are metres;
every kind keeps a flat platform of half-width ``platform`` at its cell centre, at height 0, where
robots spawn.

Each kind is a formula of the cell-local point (x, y) in [0, cell_size)^2 and the difficulty d in
[0, 1] (``level / (num_levels - 1)``); with ``r = max(|x - c|, |y - c|) - platform`` clipped at 0 the
(Chebyshev) distance from the platform's edge, c = cell_size / 2:

- ``flat``: 0.
- ``rough``: independent uniform noise per grid point in ±(0.01 + 0.06 d), outside the platform.
- ``waves``: ``A sin(2 pi x / L) sin(2 pi y / L)`` with A = 0.02 + 0.13 d, L = ``wave_length``, the
  platform blended in by ``min(1, r / 0.5)``.
- ``slope_up`` / ``slope_down``: ``±s r`` with s = 0.45 d (the ground rises / falls away from the
  platform; 24 deg at d = 1).
- ``stairs_up`` / ``stairs_down``: ``±h ceil(r / w)`` with step height h = 0.03 + 0.15 d and tread
  w = ``stair_width``.
- ``stepping_stones``: outside the platform, square stones of side ``1.0 - 0.65 d`` at height 0 on a
  lattice of pitch side + gap (gap 0.05 + 0.25 d) measured from the cell corner; the rest is a pit
  at ``-pit_depth``.
- ``obstacles``: ``num_obstacles`` random axis-aligned rectangles (sides 0.3-1.0 m) of height
  ±(0.03 + 0.15 d) outside the platform; a later rectangle overwrites an earlier one.

The random kinds draw from ``numpy.random.default_rng((seed, level, kind_index))``, so a cell's
heights depend only on the seed and its place in the grid. Boxes: none of these shapes needs one
(a heightfield expresses them all); :attr:`Terrain.boxes` exists so a kind that needs overhangs
can add them, and the scene builder adds them as box geoms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ktorch_sim.terrain.kinds import KINDS

__all__ = ["KINDS", "Terrain", "TerrainConfig", "cell_heights", "generate_terrain"]



@dataclass(frozen=True, kw_only=True)
class TerrainConfig:
    """How to generate a terrain grid; see the module docstring for each kind's formula.

    Attributes:
        kinds: one grid column (along world y) per entry, names from :data:`KINDS`.
        num_levels: difficulty levels, one grid row (along world x) each.
        cell_size: side of one sub-terrain, m.
        horizontal_scale: grid spacing, m; must divide ``cell_size`` and ``border``.
        border: flat margin around the grid, m.
        platform: half-width of the flat spawn platform at each cell centre, m.
        seed: seed of the random kinds.
        wave_length: period of ``waves``, m.
        stair_width: tread of the stairs, m.
        pit_depth: depth of the pits between stepping stones, m.
        num_obstacles: rectangles per ``obstacles`` cell.

    """

    kinds: tuple[str, ...] = KINDS
    num_levels: int = 10
    cell_size: float = 8.0
    horizontal_scale: float = 0.1
    border: float = 2.0
    platform: float = 1.0
    seed: int = 0
    wave_length: float = 2.0
    stair_width: float = 0.3
    pit_depth: float = 0.5
    num_obstacles: int = 30

    def __post_init__(self) -> None:
        """Check names and sizes (one line per problem)."""
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"terrain kinds {unknown or '()'} are not known; kinds are {KINDS}")
        if self.num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {self.num_levels}")
        if not 0 < self.horizontal_scale < self.cell_size:
            raise ValueError(f"horizontal_scale must be in (0, cell_size), got {self.horizontal_scale}")
        for name in ("cell_size", "border"):
            steps = getattr(self, name) / self.horizontal_scale
            if abs(steps - round(steps)) > 1e-6:
                raise ValueError(f"{name} ({getattr(self, name)} m) must be a multiple of horizontal_scale "
                                 f"({self.horizontal_scale} m)")
        if not 0 <= self.platform < self.cell_size / 2:
            raise ValueError(f"platform must be in [0, cell_size / 2), got {self.platform}")

    @property
    def cell_pixels(self) -> int:
        """Grid points along one side of a cell."""
        return round(self.cell_size / self.horizontal_scale)

    @property
    def border_pixels(self) -> int:
        """Grid points in the border, per side."""
        return round(self.border / self.horizontal_scale)

    def difficulty(self, level: int) -> float:
        """Difficulty in [0, 1] of grid row ``level``."""
        return level / (self.num_levels - 1) if self.num_levels > 1 else 0.0


@dataclass(frozen=True, eq=False)
class Terrain:
    """A generated terrain grid.

    Attributes:
        config: what generated it.
        heights: elevation in m, shape (ny, nx): row i at world y = i * h - size_y, column j at
            world x = j * h - size_x (the field is centred on the world origin, h the spacing).
        boxes: extra box geoms as (centre x, y, z, half-size x, y, z) in world m (none so far).
        obstacles: per ``obstacles`` cell (level, kind index), its rectangles as
            (x0, y0, x1, y1, height) in cell-local m, for tests and plots.

    """

    config: TerrainConfig
    heights: np.ndarray
    boxes: tuple[tuple[float, float, float, float, float, float], ...] = ()
    obstacles: dict[tuple[int, int], list[tuple[float, float, float, float, float]]] = field(default_factory=dict)

    @property
    def half_size(self) -> tuple[float, float]:
        """(size_x, size_y): half extents of the field along world x and y, m."""
        ny, nx = self.heights.shape
        h = self.config.horizontal_scale
        return (nx - 1) * h / 2, (ny - 1) * h / 2

    def cell_origin(self, level: int, kind: int) -> tuple[float, float]:
        """World (x, y) of the cell corner (its local (0, 0)), m."""
        c = self.config
        sx, sy = self.half_size
        return c.border + level * c.cell_size - sx, c.border + kind * c.cell_size - sy

    def cell_centres(self) -> np.ndarray:
        """World (x, y) of every cell centre, shape (num_levels, num_kinds, 2), m."""
        c = self.config
        out = np.zeros((c.num_levels, len(c.kinds), 2))
        for level in range(c.num_levels):
            for kind in range(len(c.kinds)):
                x0, y0 = self.cell_origin(level, kind)
                out[level, kind] = (x0 + c.cell_size / 2, y0 + c.cell_size / 2)
        return out


def generate_terrain(config: TerrainConfig) -> Terrain:
    """Write every cell's heights into one grid (the same config gives the same grid)."""
    p, b = config.cell_pixels, config.border_pixels
    nx = config.num_levels * p + 2 * b + 1
    ny = len(config.kinds) * p + 2 * b + 1
    heights = np.zeros((ny, nx))
    obstacles: dict[tuple[int, int], list[tuple[float, float, float, float, float]]] = {}
    for level in range(config.num_levels):
        for k, kind in enumerate(config.kinds):
            rng = np.random.default_rng((config.seed, level, k))
            cell, rects = cell_heights(kind, config.difficulty(level), config, rng)
            heights[b + k * p:b + (k + 1) * p, b + level * p:b + (level + 1) * p] = cell
            if rects:
                obstacles[(level, k)] = rects
    return Terrain(config=config, heights=heights, obstacles=obstacles)


def cell_heights(kind: str, difficulty: float, config: TerrainConfig, rng: np.random.Generator
                 ) -> tuple[np.ndarray, list[tuple[float, float, float, float, float]]]:
    """Heights (p, p) of one cell at local points (x, y) = (j h, i h), and its obstacle rectangles."""
    h, p = config.horizontal_scale, config.cell_pixels
    coords = np.arange(p) * h
    x, y = np.meshgrid(coords, coords)  # x varies along columns, y along rows
    r = platform_distance(x, y, config)
    d = difficulty
    rects: list[tuple[float, float, float, float, float]] = []
    if kind == "flat":
        z = np.zeros_like(x)
    elif kind == "rough":
        amp = 0.01 + 0.06 * d
        z = np.where(r > 0, rng.uniform(-amp, amp, size=x.shape), 0.0)
    elif kind == "waves":
        amp = 0.02 + 0.13 * d
        k = 2 * math.pi / config.wave_length
        z = amp * np.sin(k * x) * np.sin(k * y) * np.minimum(1.0, r / 0.5)
    elif kind in ("slope_up", "slope_down"):
        z = (1 if kind == "slope_up" else -1) * 0.45 * d * r
    elif kind in ("stairs_up", "stairs_down"):
        z = (1 if kind == "stairs_up" else -1) * (0.03 + 0.15 * d) * np.ceil(r / config.stair_width - 1e-9)
    elif kind == "stepping_stones":
        side, gap = 1.0 - 0.65 * d, 0.05 + 0.25 * d
        on_stone = (np.mod(x, side + gap) < side) & (np.mod(y, side + gap) < side)
        z = np.where((r > 0) & ~on_stone, -config.pit_depth, 0.0)
    elif kind == "obstacles":
        z, rects = _obstacles(x, y, r, 0.03 + 0.15 * d, config, rng)
    else:  # guarded by TerrainConfig
        raise ValueError(f"unknown terrain kind {kind!r}; kinds are {KINDS}")
    return z, rects


def platform_distance(x: np.ndarray, y: np.ndarray, config: TerrainConfig) -> np.ndarray:
    """Chebyshev distance (m) from the centre platform's edge, 0 on the platform."""
    c = config.cell_size / 2
    return np.maximum(np.maximum(np.abs(x - c), np.abs(y - c)) - config.platform, 0.0)


def _obstacles(x: np.ndarray, y: np.ndarray, r: np.ndarray, height: float, config: TerrainConfig,
               rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[float, float, float, float, float]]]:
    """Random rectangles of height ±``height`` over flat ground, kept off the platform."""
    z = np.zeros_like(x)
    rects = []
    for _ in range(config.num_obstacles):
        wx, wy = rng.uniform(0.3, 1.0, size=2)
        x0, y0 = rng.uniform(0.0, config.cell_size - wx), rng.uniform(0.0, config.cell_size - wy)
        top = height * rng.choice((-1.0, 1.0))
        rects.append((float(x0), float(y0), float(x0 + wx), float(y0 + wy), float(top)))
        inside = (x >= x0) & (x < x0 + wx) & (y >= y0) & (y < y0 + wy) & (r > 0)
        z[inside] = top
    return z, rects
