"""Components for a terrain grid: spawn on a cell, the level curriculum, height scan, ground-relative height.

Per-world terrain state (the cell's level and kind, where the episode started) lives in one
:class:`TerrainState` that the spawn reset and :class:`TerrainCurriculum` share. The spawn reset
allocates it at the environment's first reset and, at every later reset, first moves each world
whose episode just ended up or down a level by :class:`TerrainLevelRule` (legged_gym's game-like
curriculum: the reset still sees the ended episode's final state), then places the new episode.

Base pose conventions as in :mod:`ktorch_sim.components.resets`: the free joint comes first in
qpos (xyz, then the wxyz quaternion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np
import torch

from ktorch_sim.components.base import ComponentState, Curriculum, EnvContext, Observation, Reset, Reward, Termination
from ktorch_sim.components.resets import constant
from ktorch_sim.components.robot_base import base_body, base_position, base_quat
from ktorch_sim.terrain.generator import Terrain
from ktorch_sim.terrain.heights import HeightField
from ktorch_sim.utils.rotations import axis_angle_quat, quat_mul, quat_yaw

__all__ = [
    "HeightScanObservation",
    "TerrainBaseHeightObservation",
    "TerrainBaseHeightReward",
    "TerrainBaseHeightTermination",
    "TerrainCurriculum",
    "TerrainLevelRule",
    "TerrainSpawnReset",
    "TerrainState",
    "foot_points",
]


# --- per-world state -------------------------------------------------------------------------


class TerrainState:
    """Each world's terrain cell and episode start, shared by the spawn reset and the curriculum.

    Tensors (allocated by :meth:`allocate` at the first reset): ``levels`` and ``kinds`` long (N,),
    ``spawn_xy`` (N, 2) m, ``started`` bool (N,) (the world has run an episode on its cell).
    Hashable by identity.
    """

    def __init__(self, terrain: Terrain, max_init_level: int = 0) -> None:
        """Cells of ``terrain``; worlds start on a level drawn uniformly from 0..max_init_level."""
        self.num_levels = terrain.config.num_levels
        self.num_kinds = len(terrain.config.kinds)
        self.centres = terrain.cell_centres()
        self.max_init_level = min(max_init_level, self.num_levels - 1)
        self.levels: torch.Tensor | None = None
        self.kinds: torch.Tensor | None = None
        self.spawn_xy: torch.Tensor | None = None
        self.started: torch.Tensor | None = None

    def allocate(self, n: int, device: torch.device, generator: torch.Generator) -> None:
        """Give ``n`` worlds their cells: kinds spread evenly (world i gets kind i mod K), random levels."""
        self._centres = torch.as_tensor(self.centres, dtype=torch.float32, device=device)
        self.levels = torch.randint(0, self.max_init_level + 1, (n,), generator=generator, device=device)
        self.kinds = torch.arange(n, device=device) % self.num_kinds
        self.spawn_xy = torch.zeros(n, 2, device=device)
        self.started = torch.zeros(n, dtype=torch.bool, device=device)

    def cell_centres(self) -> torch.Tensor:
        """World (x, y) of each world's cell centre, (N, 2) m."""
        return self._centres[self.levels, self.kinds]

    def level_counts(self) -> torch.Tensor:
        """Worlds per level, (num_levels,) float32."""
        return torch.bincount(self.levels, minlength=self.num_levels).to(torch.float32)


@dataclass(frozen=True, kw_only=True)
class TerrainLevelRule:
    """When an ended episode moves its world up or down a level (legged_gym's rule, ours in detail).

    Up: the base ended at least ``promote_distance`` m (horizontally) from where it spawned. Down,
    unless up: the episode failed (a -1 termination, broken physics included) when
    ``demote_on_failure``, or the base covered less than ``demote_fraction`` of the distance its
    command asked for (``|command[:2]|`` m/s times the episode's duration) when ``command`` names a
    velocity command. A world promoted past the last level gets a uniformly random level when
    ``resample_past_last`` (so the hardest cells do not collect every good world), else stays.
    Only episodes that ended (terminated or truncated in this step, after at least one step) move:
    the first reset and a full ``env.reset()`` of running episodes move nothing.
    """

    promote_distance: float = 4.0
    demote_on_failure: bool = True
    command: str | None = None
    demote_fraction: float = 0.5
    resample_past_last: bool = True

    def new_levels(self, state: TerrainState, ended: torch.Tensor, ctx: EnvContext) -> torch.Tensor:
        """Levels (N,) after the worlds in ``ended`` finished their episodes (the others unchanged)."""
        xy = ctx.physics.qpos[:, 0:2]
        distance = torch.linalg.vector_norm(xy - state.spawn_xy, dim=-1)
        up = ended & (distance >= self.promote_distance)
        short = torch.zeros_like(ended)
        if self.command is not None:
            speed = torch.linalg.vector_norm(ctx.commands[self.command][:, :2], dim=-1)
            asked = speed * ctx.episode_steps.to(torch.float32) * ctx.ctrl_dt
            short = distance < self.demote_fraction * asked
        failed = ctx.extras["terminated"] if self.demote_on_failure else torch.zeros_like(ended)
        down = ended & ~up & (failed | short)
        levels = state.levels + up.to(torch.long) - down.to(torch.long)
        top = state.num_levels - 1
        if self.resample_past_last:
            random_level = torch.randint(0, state.num_levels, levels.shape, generator=ctx.generator,
                                         device=levels.device)
            levels = torch.where(levels > top, random_level, levels)
        return levels.clamp(0, top)


# --- spawn -----------------------------------------------------------------------------------

_CAPSULE_SAMPLES = 5  # points along a foot capsule: the ground can rise between heel and toe


def foot_points(model: mujoco.MjModel, geom_names: Sequence[str],
                qpos: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """Lowest points of the foot geoms at pose ``qpos``, relative to the base, in its heading frame.

    Capsules give ``_CAPSULE_SAMPLES`` evenly spaced points of their lowest line (end caps included),
    spheres their lowest point, boxes their corners.
    Returns (x, y, z) per point, m.
    """
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_kinematics(model, data)
    base = base_body(model)
    origin = data.xpos[base.body].copy()
    quat = data.xquat[base.body]
    yaw = float(quat_yaw(torch.as_tensor(quat)))
    c, s = math.cos(yaw), math.sin(yaw)
    points = []
    for name in geom_names:
        g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
        if g < 0:
            raise ValueError(f"foot geom {name!r} is not in the model")
        points.extend(_geom_low_points(model, data, g))
    out = []
    for p in points:
        d = p - origin
        out.append((c * d[0] + s * d[1], -s * d[0] + c * d[1], float(d[2])))
    return tuple(out)


def _geom_low_points(model: mujoco.MjModel, data: mujoco.MjData, g: int) -> list[np.ndarray]:
    """World points at the bottom of geom ``g`` (see :func:`foot_points`)."""
    pos, mat, size = data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3), model.geom_size[g]
    kind = int(model.geom_type[g])
    down = np.array([0.0, 0.0, -1.0])
    if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
        axis = mat[:, 2] * size[1]
        return [pos + t * axis + size[0] * down for t in np.linspace(-1.0, 1.0, _CAPSULE_SAMPLES)]
    if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        return [pos + size[0] * down]
    if kind == mujoco.mjtGeom.mjGEOM_BOX:
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        return [pos + mat @ (sg * size) for sg in signs]
    raise ValueError(f"foot geom {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g)!r} has a type "
                     "foot_points does not handle (capsule, sphere and box do)")


@dataclass(frozen=True, kw_only=True)
class TerrainSpawnReset(Reset):
    """Starts each episode on the world's terrain cell, feet just above the ground under them.

    Order: the ended episodes' levels move by ``rule`` (if any), then ``x, y = cell centre +
    U(-xy_range, xy_range)`` each, the heading turns by U(-pi, pi) about world z when
    ``random_heading``, and ``z = max_i(ground(p_i) - dz_i) + clearance`` over the foot points
    p_i (:func:`foot_points`, placed by the new heading), so the lowest-standing foot point is
    ``clearance`` m above the ground and none is below it. Put it after resets that change the
    joints (the points are taken at the home pose) and before any that tilts the base.

    Attributes:
        state: the per-world cells (shared with :class:`TerrainCurriculum`).
        ground: the height field.
        points: foot points (x, y, z) relative to the base in its heading frame, m.
        xy_range: half-width of the spawn square around the cell centre, m.
        random_heading: draw a uniform heading.
        clearance: gap between the lowest foot point and the ground, m.
        rule: the level curriculum, or None for fixed levels.

    """

    state: TerrainState = field(compare=False)
    ground: HeightField = field(compare=False)
    points: tuple[tuple[float, ...], ...]
    xy_range: float = 0.5
    random_heading: bool = True
    clearance: float = 0.002
    rule: TerrainLevelRule | None = None

    @classmethod
    def create(cls, model: mujoco.MjModel, terrain: Terrain, foot_geoms: Sequence[str], qpos: np.ndarray,
               max_init_level: int = 0, floor: str = "floor", **kwargs: object) -> TerrainSpawnReset:
        """Resolve the height field, the foot points at pose ``qpos`` and a fresh :class:`TerrainState`."""
        return cls(state=TerrainState(terrain, max_init_level), ground=HeightField.from_model(model, floor),
                   points=foot_points(model, foot_geoms, qpos), **kwargs)

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Move levels of ended episodes, then write x, y, z and the heading of the masked rows."""
        st, n, dev = self.state, qpos.shape[0], qpos.device
        if st.levels is None or st.levels.shape[0] != n:
            st.allocate(n, dev, ctx.generator)
        if self.rule is not None:
            done = ctx.extras["terminated"] | ctx.extras["truncated"]
            ended = mask & done & st.started & (ctx.episode_steps > 0)
            st.levels.copy_(torch.where(ended, self.rule.new_levels(st, ended, ctx), st.levels))
        xy = st.cell_centres() + (2 * torch.rand(n, 2, generator=ctx.generator, device=dev) - 1) * self.xy_range
        quat = qpos[:, 3:7]
        if self.random_heading:
            yaw = (2 * torch.rand(n, generator=ctx.generator, device=dev) - 1) * math.pi
            quat = quat_mul(axis_angle_quat(yaw, 2), quat)
            quat = quat / torch.linalg.vector_norm(quat, dim=-1, keepdim=True)
        z = self.spawn_height(xy, quat_yaw(quat))
        m = mask[:, None]
        qpos[:, 0:2] = torch.where(m, xy, qpos[:, 0:2])
        qpos[:, 2:3] = torch.where(m, z[:, None], qpos[:, 2:3])
        qpos[:, 3:7] = torch.where(m, quat, qpos[:, 3:7])
        st.spawn_xy.copy_(torch.where(m, xy, st.spawn_xy))
        st.started |= mask

    def spawn_height(self, xy: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
        """Return the base z (N,) that puts the lowest foot point ``clearance`` above the ground."""
        pts = constant(self.points, xy.device)  # (P, 3), built once per device (no copy inside a captured step)
        c, s = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
        wx = xy[:, :1] + c * pts[:, 0] - s * pts[:, 1]
        wy = xy[:, 1:] + s * pts[:, 0] + c * pts[:, 1]
        ground = self.ground.height(torch.stack((wx, wy), dim=-1))  # (N, P)
        return (ground - pts[:, 2]).amax(dim=-1) + self.clearance


# --- curriculum ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TerrainCurriculum(Curriculum):
    """Another curriculum's level, plus the terrain levels in the curriculum state.

    The per-world terrain levels move at episode ends (:class:`TerrainLevelRule`, applied by the
    spawn reset); this curriculum only reports them and keeps them in the checkpoint: its state
    holds ``inner``'s keys, ``terrain_levels`` (the live (N,) tensor, so a resumed run restores
    every world's level), ``terrain_level_mean`` (mean level / (num_levels - 1), in [0, 1]) and
    ``terrain_level_counts`` (worlds per level), refreshed at every :meth:`step`.
    """

    state: TerrainState = field(compare=False)
    inner: Curriculum

    def init_curriculum(self, device: torch.device) -> ComponentState:
        """``inner``'s state plus the terrain levels (the environment must exist: it allocates them)."""
        if self.state.levels is None:
            raise RuntimeError("TerrainCurriculum needs the environment built first (its first reset places worlds)")
        out = dict(self.inner.init_curriculum(device))
        out["terrain_levels"] = self.state.levels
        out["terrain_level_mean"] = torch.zeros((), device=device)
        out["terrain_level_counts"] = torch.zeros(self.state.num_levels, device=device)
        self._refresh(out)
        return out

    def step(self, state: ComponentState, metrics: dict[str, torch.Tensor]) -> None:
        """Step ``inner``, then refresh the level statistics."""
        self.inner.step(state, metrics)
        self._refresh(state)

    def metrics(self, state: ComponentState) -> dict[str, torch.Tensor]:
        """``inner``'s metrics, the mean terrain level (in [0, 1]) and the worlds on each level."""
        counts = state["terrain_level_counts"]
        return {**self.inner.metrics(state), "terrain_level_mean": state["terrain_level_mean"],
                **{f"terrain_level_{i}": counts[i] for i in range(counts.shape[0])}}

    def _refresh(self, state: ComponentState) -> None:
        top = max(self.state.num_levels - 1, 1)
        state["terrain_level_mean"].copy_(self.state.levels.to(torch.float32).mean() / top)
        state["terrain_level_counts"].copy_(self.state.level_counts())


# --- height scan and ground-relative height ----------------------------------------------------


def _ground_under_base(ground: HeightField, ctx: EnvContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the base position (N, 3) and the ground z under it (N,)."""
    pos = base_position(ctx.physics, base_body(ctx.model))
    return pos, ground.height(pos[:, :2])


@dataclass(frozen=True, kw_only=True)
class HeightScanObservation(Observation):
    """Base height above the ground at points around the base: ``base_z - ground(p)``, (N, P) m.

    The points form a grid in the base's heading frame (yaw only: the scan stays level when the
    base tilts), ``x_points`` by ``y_points`` offsets (m), x-major. Values above ``clip`` (m)
    are clipped (a pit reads as ``clip``). The ground is the height field looked up directly
    (:class:`~ktorch_sim.terrain.heights.HeightField`), which equals ``mj_ray`` straight down.
    """

    ground: HeightField = field(compare=False)
    x_points: tuple[float, ...] = tuple(round(-0.8 + 0.2 * i, 6) for i in range(9))
    y_points: tuple[float, ...] = tuple(round(-0.5 + 0.25 * i, 6) for i in range(5))
    clip: float = 2.0

    @classmethod
    def create(cls, model: mujoco.MjModel, floor: str = "floor", **kwargs: object) -> HeightScanObservation:
        """Read the height field of geom ``floor``."""
        return cls(ground=HeightField.from_model(model, floor), **kwargs)

    def scan_points(self, ctx: EnvContext) -> torch.Tensor:
        """World (x, y) of the scan points, (N, P, 2)."""
        base = base_body(ctx.model)
        pos = base_position(ctx.physics, base)
        yaw = quat_yaw(base_quat(ctx.physics, base))
        offsets = constant(tuple((x, y) for x in self.x_points for y in self.y_points), pos.device)  # (P, 2)
        c, s = torch.cos(yaw)[:, None], torch.sin(yaw)[:, None]
        wx = pos[:, :1] + c * offsets[:, 0] - s * offsets[:, 1]
        wy = pos[:, 1:2] + s * offsets[:, 0] + c * offsets[:, 1]
        return torch.stack((wx, wy), dim=-1)

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N, P) heights of the base above the scan points, clipped."""
        z = base_position(ctx.physics, base_body(ctx.model))[:, 2:3]
        return (z - self.ground.height(self.scan_points(ctx))).clamp(max=self.clip)


@dataclass(frozen=True, kw_only=True)
class TerrainBaseHeightObservation(Observation):
    """Base height above the ground right under it, (N, 1) m."""

    ground: HeightField = field(compare=False)

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``base_z - ground(base_xy)``."""
        pos, ground = _ground_under_base(self.ground, ctx)
        return (pos[:, 2] - ground)[:, None]


@dataclass(frozen=True, kw_only=True)
class TerrainBaseHeightTermination(Termination):
    """Fails (-1) when the base is less than ``min_height`` m above the ground right under it."""

    ground: HeightField = field(compare=False)
    min_height: float

    def check(self, ctx: EnvContext) -> torch.Tensor:
        """-1 where base_z - ground < min_height."""
        pos, ground = _ground_under_base(self.ground, ctx)
        return -((pos[:, 2] - ground) < self.min_height).to(torch.int8)


@dataclass(frozen=True, kw_only=True)
class TerrainBaseHeightReward(Reward):
    """``exp(-(h - height_target)^2 / (2 kernel_scale^2))`` with h the base height above the ground under it."""

    ground: HeightField = field(compare=False)
    height_target: float
    kernel_scale: float = 0.1

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) kernel of the ground-relative height error."""
        pos, ground = _ground_under_base(self.ground, ctx)
        return torch.exp(-torch.square(pos[:, 2] - ground - self.height_target) / (2.0 * self.kernel_scale ** 2))
