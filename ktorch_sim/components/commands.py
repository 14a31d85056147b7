"""Commands: what the policy is asked to do (walk at a velocity, swing its feet, reach a pose).

Every command keeps its current value in ``state["value"]``, shape (N, D), float32; the
environment passes it to the policy and to the rewards under the command's name. A command
samples a fresh value for new episodes in :meth:`reset` (masked rows only) and advances once per
control step in :meth:`update` (random switches, ramps toward a target, phase clocks).

Random draws always cover every world and are then selected by mask with ``torch.where``, so no
call synchronises with the host or depends on how many worlds are affected.

Two families of velocity commands are provided:

* :class:`VelocityCommand`, the command mjlab / Isaac Lab users expect: ``[vx, vy, wz]`` robot-frame
  targets drawn from boxes, a standing probability and an optional heading controller.
* :class:`LinearVelocityCommand` and :class:`AngularVelocityCommand`, ksim's ramped commands. ksim's
  reference list gives their parameters and a one-line description; the details below that list
  does not fix are our reading of it and are marked "inferred" in the docstrings.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import mujoco
import torch

from ktorch_sim.components.base import (
    Command,
    ComponentState,
    EnvContext,
    index_tensor,
    joint_qpos_indices,
    masked_assign,
    name_to_id,
    uniform,
)
from ktorch_sim.components.robot_base import heading_xy, quat_yaw
from ktorch_sim.symmetry import Mirror, ModelMirror
from ktorch_sim.utils.rotations import wrap_angle

__all__ = [
    "AngularVelocityCommand",
    "BaseHeightCommand",
    "FloatVectorCommand",
    "IntVectorCommand",
    "JointPositionCommand",
    "LinearVelocityCommand",
    "SinusoidalGaitCommand",
    "StartPositionCommand",
    "StartQuaternionCommand",
    "VelocityCommand",
]

# A ksim "Scale": a constant, or a function of the per-world curriculum level (N,) -> (N,).
ScaleLike = float | Callable[[torch.Tensor], torch.Tensor]


# --- helpers -----------------------------------------------------------------------------------


def _check_prob(name: str, value: float) -> None:
    """Raise a clear error unless ``value`` is a probability."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


def _check_range(name: str, value: Sequence[float]) -> tuple[float, float]:
    """Validate a (low, high) pair and return it as a tuple of floats."""
    if len(value) != 2 or not value[0] <= value[1]:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {value!r}")
    return float(value[0]), float(value[1])


def _bernoulli(prob: float, ctx: EnvContext) -> torch.Tensor:
    """Bool (N,): true with probability ``prob`` per world (no draw when prob is 0)."""
    if prob <= 0.0:
        return torch.zeros(ctx.num_envs, dtype=torch.bool, device=ctx.device)
    return torch.rand(ctx.num_envs, generator=ctx.generator, device=ctx.device) < prob


def _scaled(value: ScaleLike, ctx: EnvContext) -> float | torch.Tensor:
    """Evaluate a Scale-valued parameter at the curriculum level: a float or an (N,) tensor."""
    return value(ctx.curriculum_level) if callable(value) else float(value)


def _ctrl_dt(ctrl_dt: float | None, ctx: EnvContext) -> float:
    """Return the component's own control period if given, else the environment's."""
    return ctx.ctrl_dt if ctrl_dt is None else ctrl_dt


def base_yaw(qpos: torch.Tensor) -> torch.Tensor:
    """Heading (yaw about world z, rad) of a free-joint base from its wxyz quaternion ``qpos[:, 3:7]``, (N,).

    For any model (a free joint elsewhere in qpos, or none) use
    ``quat_yaw(base_quat(physics, base_body(model)))`` from :mod:`ktorch_sim.components.robot_base`.
    """
    return quat_yaw(qpos[:, 3:7])


def heading_frame_xy(qpos: torch.Tensor, v_world: torch.Tensor) -> torch.Tensor:
    """Planar part (N, 2) of world vectors ``v_world`` (N, 3) in a free-joint base's heading (yaw-only) frame."""
    return heading_xy(base_yaw(qpos), v_world)


def _step_toward(current: torch.Tensor, target: torch.Tensor, max_step: float | torch.Tensor) -> torch.Tensor:
    """Move ``current`` toward ``target`` by at most ``max_step`` (a rate-limited ramp)."""
    limit = torch.as_tensor(max_step, dtype=current.dtype, device=current.device)
    return current + torch.minimum(torch.maximum(target - current, -limit), limit)


@functools.cache
def _cached_const(values: tuple[float, ...], device: str) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device)


def const_tensor(values: Sequence[float], device: torch.device) -> torch.Tensor:
    """Return a float32 tensor of ``values`` on ``device``, built once and reused (no per-step host copy)."""
    return _cached_const(tuple(float(v) for v in values), str(device))


def _zeros(ctx: EnvContext, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return a zero (N, *shape) tensor on the context's device."""
    return torch.zeros(ctx.num_envs, *shape, dtype=dtype, device=ctx.device)


def _all_worlds(ctx: EnvContext) -> torch.Tensor:
    """Return a mask selecting every world."""
    return torch.ones(ctx.num_envs, dtype=torch.bool, device=ctx.device)


# --- resampled box commands ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _ResampledCommand(Command):
    """A value drawn afresh at reset and, with probability ``switch_prob``, at every control step."""

    switch_prob: float = 0.0

    @property
    def dim(self) -> int:
        """Width D of the value."""
        raise NotImplementedError

    def sample(self, ctx: EnvContext) -> torch.Tensor:
        """Draw a fresh value for every world, (N, D)."""
        raise NotImplementedError

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Allocate the value and draw it for every world."""
        state = {"value": _zeros(ctx, self.dim)}
        self.reset(state, _all_worlds(ctx), ctx)
        return state

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw a new value for the worlds in ``mask``."""
        masked_assign(state["value"], mask, self.sample(ctx))

    def update(self, state: ComponentState, ctx: EnvContext) -> None:
        """Redraw the value of each world with probability ``switch_prob``."""
        if self.switch_prob > 0.0:
            masked_assign(state["value"], _bernoulli(self.switch_prob, ctx), self.sample(ctx))


def _box(ranges: Sequence[Sequence[float]], ctx: EnvContext) -> torch.Tensor:
    """U(low_d, high_d) per column d, shape (N, len(ranges))."""
    low = const_tensor([r[0] for r in ranges], ctx.device)
    high = const_tensor([r[1] for r in ranges], ctx.device)
    return uniform(low, high, (ctx.num_envs, len(ranges)), ctx.generator, ctx.device)


@dataclass(frozen=True, kw_only=True)
class FloatVectorCommand(_ResampledCommand):
    """A float vector drawn uniformly from a box: column d ~ U(ranges[d][0], ranges[d][1]).

    With probability ``zero_prob`` the whole drawn vector is zero instead (e.g. "stand still").
    A world redraws its vector with probability ``switch_prob`` at every control step, so a
    command lasts ``ctrl_dt / switch_prob`` seconds on average. Value shape (N, len(ranges)).
    """

    ranges: tuple[tuple[float, float], ...] = ((-1.0, 1.0),)
    zero_prob: float = 0.0

    def __post_init__(self) -> None:
        """Validate the box and probabilities; store the ranges as tuples."""
        if not self.ranges:
            raise ValueError("ranges must hold at least one (low, high) pair")
        ranges = tuple(_check_range(f"ranges[{i}]", r) for i, r in enumerate(self.ranges))
        object.__setattr__(self, "ranges", ranges)
        _check_prob("switch_prob", self.switch_prob)
        _check_prob("zero_prob", self.zero_prob)

    @property
    def dim(self) -> int:
        """Number of ranges."""
        return len(self.ranges)

    def sample(self, ctx: EnvContext) -> torch.Tensor:
        """Uniform box samples, whole rows zeroed with probability ``zero_prob``."""
        value = _box(self.ranges, ctx)
        return torch.where(_bernoulli(self.zero_prob, ctx)[:, None], 0.0, value)


@dataclass(frozen=True, kw_only=True)
class IntVectorCommand(_ResampledCommand):
    """An integer vector: column d uniform over the integers ``ranges[d][0] .. ranges[d][1]`` (inclusive).

    Stored as float32 holding whole numbers so it concatenates with the other observations (use
    it for discrete modes or one-of-K choices). ``zero_prob`` and ``switch_prob`` act as in
    :class:`FloatVectorCommand`. Both ends are included (inferred; the reference does not say).
    """

    ranges: tuple[tuple[int, int], ...] = ((0, 1),)
    zero_prob: float = 0.0

    def __post_init__(self) -> None:
        """Validate the integer ranges and probabilities."""
        if not self.ranges:
            raise ValueError("ranges must hold at least one (low, high) pair")
        for i, r in enumerate(self.ranges):
            if len(r) != 2 or int(r[0]) != r[0] or int(r[1]) != r[1] or r[0] > r[1]:
                raise ValueError(f"ranges[{i}] must be an integer (low, high) pair with low <= high, got {r!r}")
        object.__setattr__(self, "ranges", tuple((int(r[0]), int(r[1])) for r in self.ranges))
        _check_prob("switch_prob", self.switch_prob)
        _check_prob("zero_prob", self.zero_prob)

    @property
    def dim(self) -> int:
        """Number of ranges."""
        return len(self.ranges)

    def sample(self, ctx: EnvContext) -> torch.Tensor:
        """floor(U(low, high + 1)), clamped to high against rounding; rows zeroed with ``zero_prob``."""
        low = const_tensor([r[0] for r in self.ranges], ctx.device)
        high = const_tensor([r[1] for r in self.ranges], ctx.device)
        u = uniform(low, high + 1.0, (ctx.num_envs, self.dim), ctx.generator, ctx.device)
        value = torch.minimum(torch.floor(u), high)
        return torch.where(_bernoulli(self.zero_prob, ctx)[:, None], 0.0, value)


@dataclass(frozen=True, kw_only=True)
class BaseHeightCommand(_ResampledCommand):
    """Target base height in metres, U(min_height, max_height), shape (N, 1).

    Redrawn with probability ``switch_prob`` per control step (ksim default 0.005, i.e. about
    every 4 s at 50 Hz). ksim draws the switch decision and the new height from the same random
    key, which correlates them (its quirk 11); here they are independent draws.
    """

    min_height: float = 0.6
    max_height: float = 0.8
    switch_prob: float = 0.005

    def __post_init__(self) -> None:
        """Validate the height range and switch probability."""
        _check_range("(min_height, max_height)", (self.min_height, self.max_height))
        _check_prob("switch_prob", self.switch_prob)

    @property
    def dim(self) -> int:
        """One height."""
        return 1

    def sample(self, ctx: EnvContext) -> torch.Tensor:
        """Uniform heights."""
        return uniform(self.min_height, self.max_height, (ctx.num_envs, 1), ctx.generator, ctx.device)

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """A height is the same in the mirror image."""
        return Mirror.identity(1)


# --- velocity commands ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class VelocityCommand(Command):
    """Velocity targets in the robot's frame, ``value = [vx, vy, wz]`` (m/s, m/s, rad/s), shape (N, 3).

    vx is forward, vy to the left (the base's heading frame, as the velocity rewards measure),
    wz the yaw rate.

    The command mjlab / Isaac Lab velocity tasks use. Each draw takes vx ~ U(x_range),
    vy ~ U(y_range), wz ~ U(yaw_range); with probability ``zero_prob`` the world is told to stand
    (all three zero). A world redraws with probability ``switch_prob`` per control step.

    Heading mode (``heading_control=True``): each draw also picks an absolute world heading
    ``h ~ U(heading_range)`` and, at every reset and update, the yaw-rate target follows it with
    a proportional controller: ``wz = clip(heading_stiffness * wrap(h - yaw), yaw_range)``, where
    ``yaw`` is the base's current heading from ``qpos[3:7]``. Standing worlds keep wz = 0.

    State: ``value`` (N, 3), ``heading`` (N,) target heading (rad), ``standing`` (N,) bool.
    """

    x_range: tuple[float, float] = (-1.0, 1.0)
    y_range: tuple[float, float] = (-0.5, 0.5)
    yaw_range: tuple[float, float] = (-1.0, 1.0)
    zero_prob: float = 0.1
    switch_prob: float = 0.0
    heading_control: bool = False
    heading_range: tuple[float, float] = (-math.pi, math.pi)
    heading_stiffness: float = 0.5

    def __post_init__(self) -> None:
        """Validate ranges and probabilities; store ranges as tuples."""
        for name in ("x_range", "y_range", "yaw_range", "heading_range"):
            object.__setattr__(self, name, _check_range(name, getattr(self, name)))
        _check_prob("zero_prob", self.zero_prob)
        _check_prob("switch_prob", self.switch_prob)

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Allocate the state and draw a command for every world."""
        state = {"value": _zeros(ctx, 3), "heading": _zeros(ctx), "standing": _zeros(ctx, dtype=torch.bool)}
        self.reset(state, _all_worlds(ctx), ctx)
        return state

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw new commands for the worlds in ``mask`` (and their heading-mode yaw rate)."""
        self._resample(state, mask, ctx)
        if self.heading_control:
            masked_assign(state["value"][:, 2], mask, self._heading_yaw_rate(state, ctx))

    def update(self, state: ComponentState, ctx: EnvContext) -> None:
        """Redraw with probability ``switch_prob``; in heading mode recompute wz for every world."""
        if self.switch_prob > 0.0:
            self._resample(state, _bernoulli(self.switch_prob, ctx), ctx)
        if self.heading_control:
            state["value"][:, 2].copy_(self._heading_yaw_rate(state, ctx))

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """In the mirror image (about the base's x-z plane) forward stays forward, left becomes right and a
        turn to the left one to the right: ``[vx, vy, wz] -> [vx, -vy, -wz]``."""
        return Mirror((0, 1, 2), (1.0, -1.0, -1.0))

    def _resample(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw [vx, vy, wz], standing flags and target headings into the rows in ``mask``."""
        n, gen, dev = ctx.num_envs, ctx.generator, ctx.device
        value = torch.stack([uniform(*r, (n,), gen, dev) for r in (self.x_range, self.y_range, self.yaw_range)], -1)
        standing = _bernoulli(self.zero_prob, ctx)
        masked_assign(state["value"], mask, torch.where(standing[:, None], 0.0, value))
        masked_assign(state["standing"], mask, standing)
        masked_assign(state["heading"], mask, uniform(*self.heading_range, (n,), gen, dev))

    def _heading_yaw_rate(self, state: ComponentState, ctx: EnvContext) -> torch.Tensor:
        """Compute wz = clip(k * wrap(target heading - base yaw), yaw_range), 0 when standing, (N,)."""
        error = wrap_angle(state["heading"] - base_yaw(ctx.physics.qpos))
        wz = torch.clamp(self.heading_stiffness * error, self.yaw_range[0], self.yaw_range[1])
        return torch.where(state["standing"], 0.0, wz)


@dataclass(frozen=True, kw_only=True)
class LinearVelocityCommand(Command):
    """ksim's ramped planar velocity command, as a speed along a direction in the heading frame.

    ``value`` (N, 6) = ``[xvel, yvel, vel, yaw, target_vel, target_yaw]``: the current speed
    ``vel`` (m/s) along the direction ``yaw`` (rad, 0 = forward, +pi/2 = left) in the base's
    heading frame (world frame rotated by the base yaw), its components ``xvel = vel cos(yaw)``,
    ``yvel = vel sin(yaw)``, and the target the current command ramps toward. ksim orders its
    fields ``vel, yaw, xvel, yvel, target_vel, target_yaw``; here ``xvel, yvel`` come first so
    every velocity command (this one and :class:`VelocityCommand`) has the planar target in
    columns 0, 1, which is what the velocity rewards read. Column indices are the class
    attributes ``XVEL`` ... ``TARGET_YAW``.

    Targets: speed ~ U(min_vel, max_vel), negated with probability ``backward_prob``, zero with
    probability ``zero_prob``; direction ~ U(-max_yaw, max_yaw). A world draws a new target with
    probability ``switch_prob`` per control step. Each step the current speed moves toward the
    target by at most ``linear_accel * ctrl_dt`` and the direction by at most
    ``angular_accel * ctrl_dt`` (the short way round). At reset the current command starts from
    the robot's planar velocity in the heading frame (speed = its norm, direction = its angle),
    so a robot spawned at rest starts from zero and accelerates. (ksim uses the full body frame;
    the heading frame keeps vertical speed out when the base pitches, and matches the frame the
    velocity rewards measure in. For an upright base the two agree.)

    Every parameter may be a float or, like ksim's ``Scale``, a function of the curriculum level
    (N,) -> (N,). ``ctrl_dt=None`` uses the environment's control period.

    Inferred (the reference lists only the parameters and "ramps toward the target at a bounded
    accel; starts from the robot's current body-frame velocity"): backward means a negative speed;
    a zero target has direction 0; ``angular_accel`` bounds the rate of the direction ``yaw``.
    """

    XVEL: ClassVar[int] = 0
    YVEL: ClassVar[int] = 1
    VEL: ClassVar[int] = 2
    YAW: ClassVar[int] = 3
    TARGET_VEL: ClassVar[int] = 4
    TARGET_YAW: ClassVar[int] = 5

    min_vel: ScaleLike = 0.1
    max_vel: ScaleLike = 1.0
    ctrl_dt: float | None = None
    linear_accel: ScaleLike = 1.0
    angular_accel: ScaleLike = math.pi
    max_yaw: ScaleLike = math.pi
    zero_prob: ScaleLike = 0.2
    backward_prob: ScaleLike = 0.0
    switch_prob: ScaleLike = 0.0

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Allocate the (N, 6) value and start every world."""
        state = {"value": _zeros(ctx, 6)}
        self.reset(state, _all_worlds(ctx), ctx)
        return state

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw targets for masked worlds; their current command starts at the heading-frame velocity."""
        v = heading_frame_xy(ctx.physics.qpos, ctx.physics.qvel[:, 0:3])
        vel = torch.hypot(v[:, 0], v[:, 1])
        yaw = torch.atan2(v[:, 1], v[:, 0])
        target_vel, target_yaw = self._sample_target(ctx)
        row = torch.stack([vel * torch.cos(yaw), vel * torch.sin(yaw), vel, yaw, target_vel, target_yaw], -1)
        masked_assign(state["value"], mask, row)

    def update(self, state: ComponentState, ctx: EnvContext) -> None:
        """Maybe switch the target, then ramp speed and direction toward it."""
        value = state["value"]
        if callable(self.switch_prob) or self.switch_prob > 0.0:
            switch = _bernoulli_scaled(self.switch_prob, ctx)
            target_vel, target_yaw = self._sample_target(ctx)
            masked_assign(value[:, self.TARGET_VEL], switch, target_vel)
            masked_assign(value[:, self.TARGET_YAW], switch, target_yaw)
        dt = _ctrl_dt(self.ctrl_dt, ctx)
        vel = _step_toward(value[:, self.VEL], value[:, self.TARGET_VEL], _scaled(self.linear_accel, ctx) * dt)
        yaw_error = wrap_angle(value[:, self.TARGET_YAW] - value[:, self.YAW])
        yaw = wrap_angle(value[:, self.YAW] + _step_toward(torch.zeros_like(yaw_error), yaw_error,
                                                           _scaled(self.angular_accel, ctx) * dt))
        value[:, self.VEL] = vel
        value[:, self.YAW] = yaw
        value[:, self.XVEL] = vel * torch.cos(yaw)
        value[:, self.YVEL] = vel * torch.sin(yaw)

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """Speeds stay, lateral components and directions change sign: ``yvel``, ``yaw`` and ``target_yaw``
        (a direction measured from forward, positive to the left) flip, ``xvel``, ``vel`` and ``target_vel``
        stay."""
        return Mirror(tuple(range(6)), (1.0, -1.0, 1.0, -1.0, 1.0, -1.0))

    def _sample_target(self, ctx: EnvContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Target speed (signed) and direction for every world, each (N,)."""
        n, gen, dev = ctx.num_envs, ctx.generator, ctx.device
        speed = uniform(_scaled(self.min_vel, ctx), _scaled(self.max_vel, ctx), (n,), gen, dev)
        speed = torch.where(_bernoulli_scaled(self.backward_prob, ctx), -speed, speed)
        zero = _bernoulli_scaled(self.zero_prob, ctx)
        max_yaw = _scaled(self.max_yaw, ctx)
        yaw = uniform(-max_yaw, max_yaw, (n,), gen, dev)
        return torch.where(zero, 0.0, speed), torch.where(zero, 0.0, yaw)


def _bernoulli_scaled(prob: ScaleLike, ctx: EnvContext) -> torch.Tensor:
    """Bool (N,) with a possibly curriculum-dependent probability."""
    p = _scaled(prob, ctx)
    if isinstance(p, float):
        return _bernoulli(p, ctx)
    return torch.rand(ctx.num_envs, generator=ctx.generator, device=ctx.device) < p


@dataclass(frozen=True, kw_only=True)
class AngularVelocityCommand(Command):
    """ksim's ramped yaw-rate command: ``value = [wz, target_wz]`` (rad/s), shape (N, 2).

    Targets: |wz| ~ U(min_vel, max_vel) with a random sign (each sign with probability 1/2), zero
    with probability ``zero_prob``; a world draws a new target with probability ``switch_prob``
    per control step. The current command moves toward the target by at most
    ``angular_accel * ctrl_dt`` per step. At reset it starts from the base's current yaw rate
    (``qvel[5]``, body-frame z angular velocity). Parameters may be floats or functions of the
    curriculum level, as in :class:`LinearVelocityCommand`.

    Inferred: the value layout (current, target) and the start from the measured yaw rate,
    mirroring :class:`LinearVelocityCommand`.
    """

    max_vel: ScaleLike = 1.0
    ctrl_dt: float | None = None
    angular_accel: ScaleLike = 1.0
    min_vel: ScaleLike = 0.0
    zero_prob: ScaleLike = 0.0
    switch_prob: ScaleLike = 0.0

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Allocate the (N, 2) value and start every world."""
        state = {"value": _zeros(ctx, 2)}
        self.reset(state, _all_worlds(ctx), ctx)
        return state

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw targets for masked worlds, starting from their measured yaw rate."""
        row = torch.stack([ctx.physics.qvel[:, 5], self._sample_target(ctx)], -1)
        masked_assign(state["value"], mask, row)

    def update(self, state: ComponentState, ctx: EnvContext) -> None:
        """Maybe switch the target, then ramp toward it."""
        value = state["value"]
        if callable(self.switch_prob) or self.switch_prob > 0.0:
            masked_assign(value[:, 1], _bernoulli_scaled(self.switch_prob, ctx), self._sample_target(ctx))
        dt = _ctrl_dt(self.ctrl_dt, ctx)
        value[:, 0] = _step_toward(value[:, 0], value[:, 1], _scaled(self.angular_accel, ctx) * dt)

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """A yaw rate changes sign in the mirror image: ``[wz, target_wz] -> [-wz, -target_wz]``."""
        return Mirror((0, 1), (-1.0, -1.0))

    def _sample_target(self, ctx: EnvContext) -> torch.Tensor:
        """Signed target yaw rates for every world, (N,)."""
        n, gen, dev = ctx.num_envs, ctx.generator, ctx.device
        mag = uniform(_scaled(self.min_vel, ctx), _scaled(self.max_vel, ctx), (n,), gen, dev)
        signed = torch.where(_bernoulli(0.5, ctx), -mag, mag)
        return torch.where(_bernoulli_scaled(self.zero_prob, ctx), 0.0, signed)


# --- start pose ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _StartQposCommand(Command):
    """A slice of the base's qpos captured at reset and held for the whole episode."""

    QPOS_SLICE: ClassVar[tuple[int, int]] = (0, 0)

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Capture the slice for every world."""
        lo, hi = self.QPOS_SLICE
        return {"value": ctx.physics.qpos[:, lo:hi].clone()}

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Capture the slice for the reset worlds."""
        lo, hi = self.QPOS_SLICE
        masked_assign(state["value"], mask, ctx.physics.qpos[:, lo:hi])


@dataclass(frozen=True, kw_only=True)
class StartPositionCommand(_StartQposCommand):
    """The base position (world xyz, m) at the start of the episode, held constant; (N, 3)."""

    QPOS_SLICE: ClassVar[tuple[int, int]] = (0, 3)


@dataclass(frozen=True, kw_only=True)
class StartQuaternionCommand(_StartQposCommand):
    """The base orientation (wxyz quaternion) at the start of the episode, held constant; (N, 4)."""

    QPOS_SLICE: ClassVar[tuple[int, int]] = (3, 7)


# --- gait clock ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SinusoidalGaitCommand(Command):
    """A gait clock: per-foot target swing heights (m) from a phase that advances with time; (N, num_feet).

    Each world has a phase ``phi`` in [0, 1) that advances by ``ctrl_dt / gait_period`` per
    control step and starts at a random value at reset (so worlds do not march in lockstep).
    Foot ``i`` runs at phase ``phi_i = (phi + i / num_feet) mod 1`` (two feet: antiphase). A foot
    is in stance for ``phi_i < stance_ratio`` and targets ``height_offset``; in swing, with
    progress ``s = (phi_i - stance_ratio) / (1 - stance_ratio)``, it targets
    ``height_offset + max_height * sin(pi * s)``, a half sine that lifts off and lands smoothly.
    With two feet and ``stance_ratio = 0.6`` each foot swings 40 % of the period and both feet
    are down 20 % of it.

    State: ``value`` heights, ``phase`` (N,) in [0, 1), ``gait_phase`` (N, 2) = [sin 2 pi phi,
    cos 2 pi phi] (a continuous clock a policy can observe).

    Stop reset (ksim's ``moving_threshold``; inferred, the reference says only "phase resets when
    the robot stops"): when ``moving_threshold`` is set, a world whose command
    ``ctx.commands[command_name]`` has a norm at or below the threshold holds phase 0 and all its
    feet target ``height_offset``.
    """

    gait_period: float = 0.8
    ctrl_dt: float | None = None
    max_height: float = 0.1
    height_offset: float = 0.0
    num_feet: int = 2
    stance_ratio: float = 0.6
    moving_threshold: float | None = None
    command_name: str = "velocity_command"

    def __post_init__(self) -> None:
        """Validate the period, foot count and stance ratio."""
        if not self.gait_period > 0:
            raise ValueError(f"gait_period must be > 0 seconds, got {self.gait_period}")
        if self.num_feet < 1:
            raise ValueError(f"num_feet must be >= 1, got {self.num_feet}")
        if not 0.0 <= self.stance_ratio < 1.0:
            raise ValueError(f"stance_ratio must be in [0, 1), got {self.stance_ratio}")

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Allocate the clock and start every world at a random phase."""
        state = {"value": _zeros(ctx, self.num_feet), "phase": _zeros(ctx), "gait_phase": _zeros(ctx, 2)}
        self.reset(state, _all_worlds(ctx), ctx)
        return state

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Random phase in [0, 1) for the masked worlds."""
        phase = torch.rand(ctx.num_envs, generator=ctx.generator, device=ctx.device)
        masked_assign(state["phase"], mask, phase)
        self._write_outputs(state, ctx, mask)

    def update(self, state: ComponentState, ctx: EnvContext) -> None:
        """Advance the phase one control step (held at 0 while stopped) and recompute the heights."""
        step = _ctrl_dt(self.ctrl_dt, ctx) / self.gait_period
        state["phase"].copy_(torch.remainder(state["phase"] + step, 1.0))
        self._write_outputs(state, ctx, _all_worlds(ctx))

    def mirror(self, model_mirror: ModelMirror) -> Mirror | None:
        """Two feet: the mirror image swaps them, so foot 0 gets foot 1's height and foot 1 foot 0's (exactly the
        clock half a period on, as the feet run in antiphase). This takes feet 0 and 1 to be each other's mirror
        image, as a biped's left and right feet are. One foot: the same height. More than two: unknown (None)."""
        if self.num_feet == 2:
            return Mirror((1, 0), (1.0, 1.0))
        return Mirror.identity(1) if self.num_feet == 1 else None

    def foot_heights(self, phase: torch.Tensor) -> torch.Tensor:
        """Per-foot target heights (N, num_feet) at clock phase ``phase`` (N,)."""
        offsets = torch.arange(self.num_feet, dtype=phase.dtype, device=phase.device) / self.num_feet
        foot_phase = torch.remainder(phase[:, None] + offsets, 1.0)
        progress = (foot_phase - self.stance_ratio) / (1.0 - self.stance_ratio)
        swing = torch.where(foot_phase >= self.stance_ratio, torch.sin(math.pi * progress), 0.0)
        return self.height_offset + self.max_height * swing

    def _write_outputs(self, state: ComponentState, ctx: EnvContext, mask: torch.Tensor) -> None:
        """Apply the stop rule, then write heights and the sin/cos clock for the rows in ``mask``."""
        stopped = self._stopped(ctx)
        if stopped is not None:
            masked_assign(state["phase"], mask & stopped, 0.0)
        phase = state["phase"]
        heights = self.foot_heights(phase)
        if stopped is not None:
            heights = torch.where(stopped[:, None], self.height_offset, heights)
        masked_assign(state["value"], mask, heights)
        angle = 2.0 * math.pi * phase
        masked_assign(state["gait_phase"], mask, torch.stack([torch.sin(angle), torch.cos(angle)], -1))

    def _stopped(self, ctx: EnvContext) -> torch.Tensor | None:
        """Bool (N,): worlds commanded to stand, or None when the stop rule is off."""
        if self.moving_threshold is None:
            return None
        if self.command_name not in ctx.commands:
            raise KeyError(f"SinusoidalGaitCommand reads command {self.command_name!r} to detect stops, but the "
                           f"environment's commands are {sorted(ctx.commands)}")
        return ctx.commands[self.command_name].norm(dim=-1) <= self.moving_threshold


# --- joint targets -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class JointPositionCommand(Command):
    """Moving joint-position targets (rad): ``value`` (N, J) and ``velocity`` (N, J) in rad/s.

    Each world moves its command along straight segments in joint space: from the segment's
    ``start`` to a ``target`` drawn uniformly inside the joints' ranges, over a duration
    ``T ~ U(min_time, max_time)`` seconds, ``value = start + (target - start) * min(t / T, 1)``
    with ``t`` the control steps since the segment began times ``ctrl_dt``. The target is
    reached after ``ceil(T / ctrl_dt)`` steps; at the next step a new segment starts from it.
    ``velocity = (target - start) / T`` is the rate along the current segment (ksim's
    ``current_velocity``). At reset the first segment starts from the robot's joint positions.

    Build with :meth:`create` to resolve joint names. Unlimited joints use [-pi, pi].
    """

    joint_names: tuple[str, ...] = ()
    qpos_indices: tuple[int, ...] = ()
    lower: tuple[float, ...] = ()
    upper: tuple[float, ...] = ()
    ctrl_dt: float | None = None
    min_time: float = 0.5
    max_time: float = 2.0

    def __post_init__(self) -> None:
        """Validate the segment durations and the per-joint tables."""
        if not 0.0 < self.min_time <= self.max_time:
            raise ValueError(f"need 0 < min_time <= max_time, got min_time={self.min_time}, max_time={self.max_time}")
        if not len(self.qpos_indices) == len(self.lower) == len(self.upper) > 0:
            raise ValueError("JointPositionCommand needs one qpos index and range per joint; build it with "
                             "JointPositionCommand.create(model, ...)")

    @classmethod
    def create(cls, model: mujoco.MjModel, ctrl_dt: float | None = None, joint_names: Sequence[str] | None = None,
               min_time: float = 0.5, max_time: float = 2.0) -> JointPositionCommand:
        """Resolve ``joint_names`` (default: every hinge/slide joint) to qpos indices and ranges."""
        if joint_names is None:
            ids = [j for j in range(model.njnt)
                   if int(model.jnt_type[j]) in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)]
            joint_names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in ids]
        ids = [name_to_id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in joint_names]
        limited = [bool(model.jnt_limited[j]) for j in ids]
        lower = tuple(float(model.jnt_range[j, 0]) if lim else -math.pi for j, lim in zip(ids, limited, strict=True))
        upper = tuple(float(model.jnt_range[j, 1]) if lim else math.pi for j, lim in zip(ids, limited, strict=True))
        return cls(joint_names=tuple(joint_names), qpos_indices=tuple(joint_qpos_indices(model, joint_names)),
                   lower=lower, upper=upper, ctrl_dt=ctrl_dt, min_time=min_time, max_time=max_time)

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Allocate the segment state and start every world."""
        j = len(self.qpos_indices)
        state = {"value": _zeros(ctx, j), "velocity": _zeros(ctx, j), "start": _zeros(ctx, j),
                 "target": _zeros(ctx, j), "duration": torch.ones(ctx.num_envs, device=ctx.device),
                 "elapsed_steps": _zeros(ctx, dtype=torch.long)}
        self.reset(state, _all_worlds(ctx), ctx)
        return state

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """First segment of the masked worlds: from their joint positions to a random target."""
        low, high = self._bounds(ctx.device)
        q = ctx.physics.qpos[:, index_tensor(self.qpos_indices, ctx.device)]
        start = torch.minimum(torch.maximum(q, low), high)
        masked_assign(state["start"], mask, start)
        masked_assign(state["value"], mask, start)
        self._new_segment(state, mask, ctx)

    def update(self, state: ComponentState, ctx: EnvContext) -> None:
        """Start a new segment where the last one ended, then advance the interpolation one step."""
        finished = self._fraction(state, ctx) >= 1.0
        masked_assign(state["start"], finished, state["target"])
        self._new_segment(state, finished, ctx)
        state["elapsed_steps"].add_(1)
        frac = self._fraction(state, ctx)
        state["value"].copy_(state["start"] + (state["target"] - state["start"]) * frac[:, None])

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """Each joint's target goes to its mirror joint's, with the joint's sign (the commanded joints must
        include each one's mirror image)."""
        model = model_mirror.model
        joint_of_qpos = {int(model.jnt_qposadr[j]): j for j in range(model.njnt)}
        return model_mirror.joints([joint_of_qpos[q] for q in self.qpos_indices])

    def _new_segment(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Random target and duration for the rows in ``mask``; their clocks restart."""
        low, high = self._bounds(ctx.device)
        target = uniform(low, high, (ctx.num_envs, len(self.qpos_indices)), ctx.generator, ctx.device)
        duration = uniform(self.min_time, self.max_time, (ctx.num_envs,), ctx.generator, ctx.device)
        masked_assign(state["target"], mask, target)
        masked_assign(state["duration"], mask, duration)
        masked_assign(state["elapsed_steps"], mask, 0)
        state["velocity"].copy_((state["target"] - state["start"]) / state["duration"][:, None])

    def _fraction(self, state: ComponentState, ctx: EnvContext) -> torch.Tensor:
        """Progress along the segment in [0, 1]; within 1e-5 of 1 counts as arrived (float rounding)."""
        t = state["elapsed_steps"].to(torch.float32) * _ctrl_dt(self.ctrl_dt, ctx)
        frac = torch.clamp(t / state["duration"], 0.0, 1.0)
        return torch.where(frac >= 1.0 - 1e-5, 1.0, frac)

    def _bounds(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint lower and upper limits as (J,) tensors."""
        return const_tensor(self.lower, device), const_tensor(self.upper, device)
