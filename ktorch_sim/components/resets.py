"""Resets: how new episodes start, as in ksim's resets module.

The environment builds the reset targets from the home pose (``qpos`` = home keyframe, ``qvel`` =
0), applies every :class:`~ktorch_sim.components.base.Reset` in list order to the rows of the
worlds being reset, then calls ``engine.reset(mask, qpos, qvel)``. Each reset edits only the
masked rows of ``qpos`` (N, nq) and ``qvel`` (N, nv), in place, without a host sync.

Difference from ksim (quirk #1): ksim zeroes ``qvel`` after its resets, so its
``RandomJointVelocityReset`` and ``RandomBaseVelocityXYReset`` do nothing. Here the velocities the
resets write are the ones the episode starts with.

Conventions: the free joint comes first: ``qpos[0:3]`` world position (m), ``qpos[3:7]`` the base
quaternion (w, x, y, z), ``qvel[0:3]`` world-frame linear velocity (m/s), ``qvel[3:6]`` body-frame
angular velocity (rad/s).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import mujoco
import numpy as np
import torch

from ktorch_sim.components.base import EnvContext, Reset, index_tensor, uniform
from ktorch_sim.terrain.heights import HeightField
from ktorch_sim.utils.rotations import axis_angle_quat, quat_mul

# Joint types a reset or randomizer treats as actuated joints (never the free or ball joint).
_MOVING_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))

__all__ = [
    "HFieldXYPositionReset",
    "PlaneXYPositionReset",
    "RandomBaseVelocityXYReset",
    "RandomHeadingReset",
    "RandomHeightReset",
    "RandomJointPositionReset",
    "RandomJointVelocityReset",
    "RandomPitchRollReset",
    "get_xy_position_reset",
]


# --- helpers ---------------------------------------------------------------------------------


@functools.cache
def _cached_constant(values: tuple, device: str) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device)


def constant(values: tuple, device: torch.device) -> torch.Tensor:
    """Return ``values`` (a nested tuple) as a float32 tensor on ``device``, built once and then reused."""
    return _cached_constant(values, str(device))


def _write_rows(target: torch.Tensor, cols: slice | torch.Tensor, mask: torch.Tensor, values: torch.Tensor) -> None:
    """``target[mask, cols] = values[mask]`` in place, with ``torch.where`` (no host sync)."""
    current = target[:, cols]
    target[:, cols] = torch.where(mask.view(-1, *([1] * (current.dim() - 1))), values, current)


def _level(ctx: EnvContext) -> torch.Tensor:
    """Curriculum level as a (N, 1) column for broadcasting over joints."""
    return ctx.curriculum_level.reshape(-1, 1).to(torch.float32)


def _symmetric(scale: float, shape: tuple[int, ...], ctx: EnvContext) -> torch.Tensor:
    """U(-scale, scale) samples of ``shape`` from the environment's generator."""
    return uniform(-scale, scale, shape, ctx.generator, ctx.device)


# --- joint state -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RandomJointPositionReset(Reset):
    """Joint angles ``q = zero + U(-scale, scale) * level``, clipped to the joint ranges.

    ``zero`` is the value given in ``zeros`` for a joint, else the joint's current reset target
    (the home pose). ``level`` is the world's curriculum level when ``scale_by_curriculum`` is set
    (level 0 means no noise), else 1. Applies to hinge and slide joints (never the free joint);
    ``create`` resolves them once. Units: rad (m for slide joints).

    Difference from ksim: ksim adds the noise to 0 for joints missing from ``zeros`` because it
    starts from ``qpos0``; this environment starts from the home pose, so those joints keep it.

    Attributes:
        scale: half-width of the uniform noise, rad.
        scale_by_curriculum: multiply the noise by the curriculum level.
        qpos_indices: qpos addresses of the randomised joints; None = every hinge/slide joint.
        zeros: per joint (same order), the centre of the noise; NaN = the current target.
        mins, maxs: per joint, the clip range (-inf/inf for unlimited joints).

    """

    scale: float = 0.01
    scale_by_curriculum: bool = True
    qpos_indices: tuple[int, ...] | None = None
    zeros: tuple[float, ...] | None = None
    mins: tuple[float, ...] | None = None
    maxs: tuple[float, ...] | None = None

    @classmethod
    def create(cls, model: mujoco.MjModel, zeros: dict[str, float] | None = None, scale: float = 0.01,
               scale_by_curriculum: bool = True) -> RandomJointPositionReset:
        """Resolve every hinge/slide joint of ``model``, its range and the named ``zeros`` (rad)."""
        indices, mins, maxs = _joint_layout(model)
        centres = [math.nan] * len(indices)
        names = [model.joint(j).name for j in _non_free_joints(model)]
        for name, value in (zeros or {}).items():
            if name not in names:
                raise ValueError(f"zeros: joint {name!r} is not a hinge/slide joint of the model; joints are {names}")
            i = names.index(name)
            if not mins[i] <= value <= maxs[i]:
                raise ValueError(f"zeros: value {value} for joint {name!r} is outside its range [{mins[i]}, {maxs[i]}]")
            centres[i] = float(value)
        return cls(scale=scale, scale_by_curriculum=scale_by_curriculum, qpos_indices=tuple(indices),
                   zeros=tuple(centres), mins=tuple(mins), maxs=tuple(maxs))

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Write the noisy, clipped joint angles into the masked rows of ``qpos``."""
        indices, mins, maxs = (self.qpos_indices, self.mins, self.maxs) if self.qpos_indices is not None \
            else _joint_layout(ctx.model)
        cols = index_tensor(indices, qpos.device)
        current = qpos[:, cols]
        centre = current
        if self.zeros is not None:
            zeros = constant(tuple(self.zeros), qpos.device)
            centre = torch.where(torch.isnan(zeros), current, zeros)
        noise = _symmetric(self.scale, tuple(current.shape), ctx)
        if self.scale_by_curriculum:
            noise = noise * _level(ctx)
        low = constant(tuple(mins) if mins is not None else (-math.inf,) * len(indices), qpos.device)
        high = constant(tuple(maxs) if maxs is not None else (math.inf,) * len(indices), qpos.device)
        _write_rows(qpos, cols, mask, torch.minimum(torch.maximum(centre + noise, low), high))


def _non_free_joints(model: mujoco.MjModel) -> list[int]:
    """Ids of the hinge and slide joints, in model order."""
    return [j for j in range(model.njnt)
            if int(model.jnt_type[j]) in _MOVING_JOINTS]


def _joint_layout(model: mujoco.MjModel) -> tuple[list[int], list[float], list[float]]:
    """Return the qpos addresses and ranges (±inf where unlimited) of the hinge/slide joints."""
    joints = _non_free_joints(model)
    indices = [int(model.jnt_qposadr[j]) for j in joints]
    limited = [bool(model.jnt_limited[j]) for j in joints]
    mins = [float(model.jnt_range[j, 0]) if lim else -math.inf for j, lim in zip(joints, limited, strict=True)]
    maxs = [float(model.jnt_range[j, 1]) if lim else math.inf for j, lim in zip(joints, limited, strict=True)]
    return indices, mins, maxs


@dataclass(frozen=True, kw_only=True)
class RandomJointVelocityReset(Reset):
    """Joint velocities ``qd = U(-scale, scale) * level`` (rad/s) for every hinge/slide joint.

    The free joint's velocity is left alone. Unlike ksim (quirk #1: qvel is zeroed after the
    resets), the sampled velocities really are the episode's initial velocities.
    """

    scale: float = 0.01
    scale_by_curriculum: bool = True

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Overwrite the joint velocities of the masked rows of ``qvel``."""
        cols = index_tensor(_dof_indices(ctx.model), qvel.device)
        noise = _symmetric(self.scale, (qvel.shape[0], cols.numel()), ctx)
        if self.scale_by_curriculum:
            noise = noise * _level(ctx)
        _write_rows(qvel, cols, mask, noise)


def _dof_indices(model: mujoco.MjModel) -> list[int]:
    """Return the qvel addresses of the hinge/slide joints."""
    return [int(model.jnt_dofadr[j]) for j in _non_free_joints(model)]


# --- base state ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RandomBaseVelocityXYReset(Reset):
    """Base planar velocity ``qvel[0:2] = U(-scale, scale) * level`` (m/s, world frame).

    As in ksim the draw is always scaled by the curriculum level. Unlike ksim (quirk #1), the
    velocity survives the reset.
    """

    scale: float = 0.01

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Overwrite ``qvel[0:2]`` of the masked rows."""
        _write_rows(qvel, slice(0, 2), mask, _symmetric(self.scale, (qvel.shape[0], 2), ctx) * _level(ctx))


@dataclass(frozen=True, kw_only=True)
class RandomHeadingReset(Reset):
    """Turns the base by a uniform yaw in [-pi, pi) about the world z axis: ``q <- q_yaw(psi) * q``.

    Starting from an upright base this gives a uniformly random heading with zero pitch and
    roll. (ksim multiplies on the right, i.e. about the body z axis; the two agree for an upright
    base, and the world-axis form keeps any tilt set by an earlier reset.)
    """

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Rotate the base quaternion of the masked rows."""
        yaw = uniform(-math.pi, math.pi, (qpos.shape[0],), ctx.generator, ctx.device)
        quat = quat_mul(axis_angle_quat(yaw, 2), qpos[:, 3:7])
        _write_rows(qpos, slice(3, 7), mask, quat / quat.norm(dim=-1, keepdim=True))


@dataclass(frozen=True, kw_only=True)
class RandomHeightReset(Reset):
    """Raises the base by ``U(range)`` metres: ``z <- z + U(low, high)`` (drop from a height)."""

    range: tuple[float, float] = (0.0, 0.1)

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Add the height offset to ``qpos[:, 2]`` of the masked rows."""
        low, high = self.range
        dz = uniform(low, high, (qpos.shape[0], 1), ctx.generator, ctx.device)
        _write_rows(qpos, slice(2, 3), mask, qpos[:, 2:3] + dz)


@dataclass(frozen=True, kw_only=True)
class RandomPitchRollReset(Reset):
    """Tilts the base by a random pitch and roll (rad) in its own heading frame.

    ``q <- q * q_y(pitch) * q_x(roll)`` (intrinsic Z-Y-X Euler angles with zero yaw), pitch ~
    U(pitch_range) and roll ~ U(roll_range) drawn independently. ksim draws both from the same
    key (quirk #11), so with equal ranges its pitch always equals its roll; fixed here.
    """

    pitch_range: tuple[float, float] = (-0.1, 0.1)
    roll_range: tuple[float, float] = (-0.1, 0.1)

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Tilt the base quaternion of the masked rows."""
        n = qpos.shape[0]
        pitch = uniform(self.pitch_range[0], self.pitch_range[1], (n,), ctx.generator, ctx.device)
        roll = uniform(self.roll_range[0], self.roll_range[1], (n,), ctx.generator, ctx.device)
        tilt = quat_mul(axis_angle_quat(pitch, 1), axis_angle_quat(roll, 0))
        quat = quat_mul(qpos[:, 3:7], tilt)
        _write_rows(qpos, slice(3, 7), mask, quat / quat.norm(dim=-1, keepdim=True))


# --- position on the terrain -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PlaneXYPositionReset(Reset):
    """Places the base at a random point of a flat floor: ``x ~ U(-x_range, x_range)``, same for y.

    The point is clipped to ``padded_bounds`` (x_min, x_max, y_min, y_max) when given (a finite
    floor minus an edge padding). The height becomes ``floor_z + robot_base_height`` when
    ``robot_base_height`` is set; by default (None) the target's own height (the home pose) is
    kept, because this environment starts from the home pose, not from ``qpos0`` as ksim does.

    Attributes:
        x_range, y_range: half-widths of the sampled square, m.
        padded_bounds: (x_min, x_max, y_min, y_max) clip box in m, or None for an infinite floor.
        floor_z: height of the floor plane, m.
        robot_base_height: base height above the floor, m, or None to keep the target height.

    """

    x_range: float = 5.0
    y_range: float = 5.0
    padded_bounds: tuple[float, float, float, float] | None = None
    floor_z: float = 0.0
    robot_base_height: float | None = None

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Write x, y (and z when ``robot_base_height`` is set) of the masked rows."""
        xy = _sample_xy(self.x_range, self.y_range, self.padded_bounds, qpos.shape[0], ctx)
        _write_rows(qpos, slice(0, 2), mask, xy)
        if self.robot_base_height is not None:
            _write_rows(qpos, slice(2, 3), mask, torch.full_like(qpos[:, 2:3], self.floor_z + self.robot_base_height))


def _sample_xy(x_range: float, y_range: float, bounds: tuple[float, float, float, float] | None, n: int,
               ctx: EnvContext) -> torch.Tensor:
    """(N, 2) uniform points in the (±x_range, ±y_range) box, clipped to ``bounds``."""
    half = constant((x_range, y_range), ctx.device)
    xy = (2.0 * torch.rand((n, 2), generator=ctx.generator, device=ctx.device) - 1.0) * half
    if bounds is not None:
        low = constant((bounds[0], bounds[2]), ctx.device)
        high = constant((bounds[1], bounds[3]), ctx.device)
        xy = torch.minimum(torch.maximum(xy, low), high)
    return xy


@dataclass(frozen=True, kw_only=True)
class HFieldXYPositionReset(Reset):
    """Places the base at a random point of a height field and sets its height above the ground there.

    x, y as in :class:`PlaneXYPositionReset`; then ``z = ground(x, y) + robot_base_height``, where
    ``ground`` interpolates the height-field elevation linearly on the two triangles MuJoCo splits
    each grid square into (so it equals ``mj_ray``; ksim interpolates bilinearly): MuJoCo's elevation is
    ``geom_z + data[row, col] * size[2]``, columns running along x over [-size[0], size[0]] and rows
    along y over [-size[1], size[1]] (around the geom's x, y). ksim indexes the grid with x as the
    row and adds ``size[2]`` instead of multiplying by it; both are fixed here. The height field
    geom is assumed axis-aligned (no rotation).

    Attributes:
        x_range, y_range, padded_bounds: as in :class:`PlaneXYPositionReset`.
        hfield_data: elevation grid, (nrow, ncol) values in [0, 1], row-major.
        size: the height field's MuJoCo size (radius_x, radius_y, elevation_z, base_z), m.
        origin: the height field geom's (x, y, z) position, m.
        robot_base_height: base height above the ground, m.

    """

    x_range: float = 5.0
    y_range: float = 5.0
    padded_bounds: tuple[float, float, float, float] | None = None
    hfield_data: tuple[tuple[float, ...], ...]
    size: tuple[float, float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    robot_base_height: float = 0.0

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Write x, y and the terrain-following z of the masked rows."""
        xy = _sample_xy(self.x_range, self.y_range, self.padded_bounds, qpos.shape[0], ctx)
        xy = xy + constant(self.origin[:2], ctx.device)
        z = self.ground_height(xy) + self.robot_base_height
        _write_rows(qpos, slice(0, 2), mask, xy)
        _write_rows(qpos, slice(2, 3), mask, z.unsqueeze(-1))

    def ground_height(self, xy: torch.Tensor) -> torch.Tensor:
        """Terrain height (N,) in m at world points ``xy`` (N, 2), linear on MuJoCo's grid triangles."""
        return _height_field(self.hfield_data, self.size, self.origin).height(xy)


@functools.lru_cache(maxsize=16)
def _height_field(data: tuple[tuple[float, ...], ...], size: tuple[float, ...], origin: tuple[float, ...]) -> HeightField:
    """The :class:`~ktorch_sim.terrain.heights.HeightField` lookup of a reset's grid (built once per grid)."""
    elevation = origin[2] + size[2] * np.asarray(data, dtype=np.float64)
    return HeightField(elevation, (size[0], size[1]), (origin[0], origin[1]))


def get_xy_position_reset(model: mujoco.MjModel, x_range: float = 5.0, y_range: float = 5.0,
                          x_edge_padding: float = 5.0, y_edge_padding: float = 5.0,
                          robot_base_height: float | None = None) -> Reset:
    """Build the XY position reset for the model's floor: its height field if it has one, else its plane.

    A finite floor (plane with nonzero size, or a height field) clips the sampled point to its
    extent minus the edge padding; an infinite plane (size 0) does not clip. ``robot_base_height``
    None keeps the target height on a plane; on a height field it means 0.
    """
    hfield_geoms = [g for g in range(model.ngeom) if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_HFIELD]
    if hfield_geoms:
        g = hfield_geoms[0]
        h = int(model.geom_dataid[g])
        nrow, ncol = int(model.hfield_nrow[h]), int(model.hfield_ncol[h])
        adr = int(model.hfield_adr[h])
        data = np.asarray(model.hfield_data[adr:adr + nrow * ncol], dtype=np.float64).reshape(nrow, ncol)
        size = tuple(float(s) for s in model.hfield_size[h])
        pos = tuple(float(p) for p in model.geom_pos[g])
        bounds = _padded(pos[0], pos[1], size[0], size[1], x_edge_padding, y_edge_padding)
        return HFieldXYPositionReset(x_range=x_range, y_range=y_range, padded_bounds=bounds,
                                     hfield_data=tuple(tuple(r) for r in data.tolist()), size=size, origin=pos,
                                     robot_base_height=robot_base_height or 0.0)
    planes = [g for g in range(model.ngeom) if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE]
    if not planes:
        raise ValueError("the model has no height field or plane geom to place the robot on (no floor in the scene)")
    g = planes[0]
    sx, sy = float(model.geom_size[g, 0]), float(model.geom_size[g, 1])
    pos = model.geom_pos[g]
    bounds = _padded(float(pos[0]), float(pos[1]), sx, sy, x_edge_padding, y_edge_padding) if sx > 0 and sy > 0 \
        else None
    return PlaneXYPositionReset(x_range=x_range, y_range=y_range, padded_bounds=bounds, floor_z=float(pos[2]),
                                robot_base_height=robot_base_height)


def _padded(cx: float, cy: float, rx: float, ry: float, px: float, py: float) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) of a floor centred at (cx, cy) with half-sizes rx, ry, minus padding.

    A padding wider than the floor collapses that axis to the centre line.
    """
    px, py = min(px, rx), min(py, ry)
    return (cx - rx + px, cx + rx - px, cy - ry + py, cy + ry - py)

