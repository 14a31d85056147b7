"""Rewards and penalties, one (N,) term per control step.

Every class is a :class:`~ktorch_sim.components.base.Reward` with ksim's name and constructor
parameters. ``get_reward`` returns the *unscaled* term; the environment multiplies it by
``signed_scale``. A ``...Penalty`` returns a non-negative magnitude and is subtracted (its
``signed_scale`` is ``-abs(scale)``), a ``...Reward`` is added with ``scale`` as given.

Timing. Rewards run after the physics step and the terminations, before finished worlds are
reset (the step order in :mod:`ktorch_sim.env`). ``qpos``/``qvel`` describe the new state; ``xpos``, ``cvel``,
``actuator_force`` and contacts are what the last physics substep computed (one ``dt`` stale,
see :mod:`ktorch_sim.engines.base`); ``ctx.observations`` and ``ctx.commands`` are what the policy
saw before acting, as in ksim's trajectories.

Differences over time. ksim computes rewards over whole trajectories and takes finite differences
along time with ``done`` masks. Here each step sees ``ctx.action``, ``ctx.prev_action`` and
``ctx.prev_prev_action``; the environment zeroes the previous actions after a reset, so a
difference that reaches back before the episode start is masked out with ``ctx.episode_steps``.
The masks assume ``episode_steps`` counts the current step (1 on the first control step of an
episode); an environment that counts from 0 loses one more step to the mask but never sees a
reset spike.

Norms. ``norm="l1"`` means ``|x|`` and ``norm="l2"`` means ``x**2``, element-wise, as ksim's
``xax.get_norm``; each class says whether it then sums or averages over its elements.

Frames. ``qvel[0:3]`` is the base's linear velocity in the world frame and ``qvel[3:6]`` its
angular velocity in the base (body) frame (MuJoCo's free joint). Velocity commands are
``[vx, vy]`` or ``[vx, vy, wz]`` in the base's heading (yaw-only) frame.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import torch

from ktorch_sim.actuator_lookup import actuator_label
from ktorch_sim.components.base import (
    ComponentState,
    EnvContext,
    Reward,
    index_tensor,
    joint_qpos_indices,
    masked_assign,
    name_to_id,
)
from ktorch_sim.utils.rotations import heading_xy, normalized_quat, quat_rotate, quat_yaw, wrap_angle

__all__ = [
    "ActionAccelerationPenalty",
    "ActionInBoundsPenalty",
    "ActionNearPositionPenalty",
    "ActionSmoothnessPenalty",
    "ActionVelocityPenalty",
    "ActuatorRelativeForcePenalty",
    "AngularVelocityPenalty",
    "AngularVelocityReward",
    "AvoidLimitsPenalty",
    "BaseHeightRangeReward",
    "BaseHeightReward",
    "EnergyPenalty",
    "FeetAirTimeReward",
    "FeetSlipPenalty",
    "HealthyReward",
    "JointDeviationPenalty",
    "JointVelocityPenalty",
    "LinearVelocityPenalty",
    "PlanarVelocityPenalty",
    "LinearVelocityReward",
    "OffAxisVelocityReward",
    "SinusoidalGaitReward",
    "StayAliveReward",
    "TorquePenalty",
    "UprightReward",
    "exp_kernel",
    "exp_kernel_with_penalty",
]

NORMS = ("l1", "l2")
AXES = {"x": 0, "y": 1, "z": 2}


# --- helpers ---------------------------------------------------------------------------------


def exp_kernel(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``exp(-x^2 / (2 sigma^2))``: 1 at ``x = 0``, ``exp(-1/2)`` at ``|x| = sigma``."""
    return torch.exp(-torch.square(x) / (2.0 * sigma**2))


def exp_kernel_with_penalty(x: torch.Tensor, sigma: float, sq_scale: float, abs_scale: float) -> torch.Tensor:
    """Compute ksim's ``ekp``: ``exp_kernel(x, sigma) - sq_scale x^2 - abs_scale |x|``.

    The kernel gives a sharp peak near zero error; the quadratic and absolute terms keep a
    gradient far from it, where the kernel is flat.
    """
    return exp_kernel(x, sigma) - sq_scale * torch.square(x) - abs_scale * torch.abs(x)


def _apply_norm(x: torch.Tensor, norm: str) -> torch.Tensor:
    """Element-wise ``|x|`` (l1) or ``x^2`` (l2)."""
    return torch.abs(x) if norm == "l1" else torch.square(x)


def _check_norm(owner: object, norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"{type(owner).__name__}.norm must be one of {NORMS}, got {norm!r}")


def _axes(owner: object, index: str | Sequence[str]) -> tuple[int, ...]:
    """Column indices of ``index`` ("x", ("x", "y"), "xy" ...), with a clear error otherwise."""
    names = tuple(index)
    if not names or any(n not in AXES for n in names):
        raise ValueError(f"{type(owner).__name__}.index must be a non-empty subset of ('x', 'y', 'z'), got {index!r}")
    return tuple(AXES[n] for n in names)


@functools.cache
def _cached_floats(values: tuple[float, ...], device: str) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device)


def _float_tensor(values: Sequence[float], device: torch.device) -> torch.Tensor:
    """Return a float32 tensor of ``values`` on ``device``, built once per (values, device) and reused."""
    return _cached_floats(tuple(float(v) for v in values), str(device))


def _valid_history(ctx: EnvContext, steps: int) -> torch.Tensor:
    """Return bool (N,): true where the last ``steps`` actions all belong to the current episode."""
    return ctx.episode_steps >= steps


def _command(ctx: EnvContext, name: str, owner: object) -> torch.Tensor:
    if name not in ctx.commands:
        raise KeyError(f"{type(owner).__name__} needs command {name!r}; commands are {sorted(ctx.commands)}")
    return ctx.commands[name]


def _observation(ctx: EnvContext, name: str, owner: object) -> torch.Tensor:
    if name not in ctx.observations:
        known = sorted(ctx.observations)
        raise KeyError(f"{type(owner).__name__} needs observation {name!r}; observations are {known}")
    return ctx.observations[name]


def _actuator_joints(model: mujoco.MjModel, joint_names: Sequence[str] | None) -> tuple[list[int], list[int]]:
    """Return (action columns, joint ids) of the actuators that drive ``joint_names`` (all when None).

    Action column ``a`` is actuator ``a`` (the engine's ctrl order). Only joint-transmission
    actuators qualify.
    """
    act_ids, jnt_ids = [], []
    for a in range(model.nu):
        if int(model.actuator_trntype[a]) == mujoco.mjtTrn.mjTRN_JOINT:
            act_ids.append(a)
            jnt_ids.append(int(model.actuator_trnid[a, 0]))
    if joint_names is None:
        return act_ids, jnt_ids
    by_joint = dict(zip(jnt_ids, act_ids, strict=True))
    cols, joints = [], []
    for name in joint_names:
        j = name_to_id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if j not in by_joint:
            raise ValueError(f"joint {name!r} is not driven by any actuator")
        cols.append(by_joint[j])
        joints.append(j)
    return cols, joints


def _actuator_force_limits(model: mujoco.MjModel) -> tuple[float, ...]:
    """Return, per actuator, the largest force it can deliver.

    That is the tighter of its ``forcerange`` and its joint's ``actuatorfrcrange`` (both clamp),
    each as ``max(|lo|, |hi|)``.
    """
    limits = []
    for a in range(model.nu):
        candidates = []
        if model.actuator_forcelimited[a]:
            lo, hi = model.actuator_forcerange[a]
            candidates.append(max(abs(lo), abs(hi)))
        if int(model.actuator_trntype[a]) == mujoco.mjtTrn.mjTRN_JOINT:
            j = int(model.actuator_trnid[a, 0])
            if model.jnt_actfrclimited[j]:
                lo, hi = model.jnt_actfrcrange[j]
                candidates.append(max(abs(lo), abs(hi)) * abs(model.actuator_gear[a, 0]))
        if not candidates or min(candidates) <= 0:
            raise ValueError(f"actuator {actuator_label(model, a)!r} has no force limit (set its forcerange or its "
                             "joint's actuatorfrcrange)")
        limits.append(float(min(candidates)))
    return tuple(limits)


# --- survival and posture --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StayAliveReward(Reward):
    """ksim's survival term: ``+1/balance`` per step alive, ``-1`` on the failing step, times ``scale``.

    What it pays, before ``scale``: ``1/balance`` (0.01 by default) on every step that did not
    fail; ``-1`` on the step a termination returned -1 (or the physics broke); on a step that ended
    the episode without failure (a time limit or a +1 termination) ``success_reward``, or
    ``1/balance`` when that is None. A larger ``balance`` makes dying relatively more expensive.

    This is not Gymnasium's ``healthy_reward`` (Hopper, Walker2d, Ant, Humanoid), which pays a
    constant (``healthy_reward``, default 1) on every healthy step and nothing on the failing one:
    here the per-step amount is ``scale/balance``, not ``scale``, and the failing step costs
    ``-scale``. With ksim's ``scale=1.0`` an episode of 1000 steps earns 10, not 1000. Use
    :class:`HealthyReward` for the Gymnasium behaviour.

    Reads ``ctx.extras["terminated"]`` (bool (N,): a termination returned -1 this step) and
    ``ctx.extras["truncated"]`` (bool (N,): the episode ended without failure: time limit or a
    +1 termination). A world that is both counts as failed, as in ksim (success = done and no -1).
    """

    balance: float = 100.0
    success_reward: float | None = None

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) per-step survival term."""
        terminated, truncated = _done_flags(ctx, self)
        alive = 1.0 / self.balance
        success = alive if self.success_reward is None else self.success_reward
        value = torch.full((ctx.num_envs,), alive, device=ctx.device)
        value = torch.where(truncated, torch.full_like(value, success), value)
        return torch.where(terminated, torch.full_like(value, -1.0), value)


@dataclass(frozen=True, kw_only=True)
class HealthyReward(Reward):
    """Gymnasium's ``healthy_reward``: ``scale`` on every step that did not fail, 0 on the failing step.

    ``scale`` is the reward per step alive (Gymnasium's default is 1.0, as here). A step that ends
    the episode without failure (the time limit) still pays; the step a termination returned -1
    (or the physics broke) pays 0, like Gymnasium v5's Hopper and Walker2d, whose last,
    unhealthy step earns no healthy reward. ksim's :class:`StayAliveReward` differs: ``scale/balance``
    per step and ``-scale`` on the failing step.
    """

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) 1 where the step did not fail, 0 where it did (the environment multiplies by ``scale``)."""
        terminated, _ = _done_flags(ctx, self)
        return (~terminated).to(torch.float32)


def _done_flags(ctx: EnvContext, owner: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``ctx.extras`` terminated and truncated (bool (N,)), or one KeyError naming what is missing."""
    for key in ("terminated", "truncated"):
        if key not in ctx.extras:
            raise KeyError(f"{type(owner).__name__} needs ctx.extras[{key!r}] (bool (N,)) from the environment")
    return ctx.extras["terminated"], ctx.extras["truncated"]


@dataclass(frozen=True, kw_only=True)
class UprightReward(Reward):
    """Alignment of the base's z axis with world z: ``R[2, 2] = 1 - 2 (qx^2 + qy^2)``, in [-1, 1].

    The base orientation is ``qpos[3:7]`` (wxyz). Equivalently, minus the z component of the
    projected gravity direction: 1 upright, ``cos(tilt)`` when tilted, -1 upside down. ksim HEAD
    returns three kernel terms (pitch rate, vertical speed, pitch angle); this is the single
    alignment term of earlier ksim, without its ``- (g_x + g_y)`` part, which rewarded tilting
    towards one particular side.
    """

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) cosine of the base's tilt from vertical."""
        q = normalized_quat(ctx.physics.qpos[:, 3:7])
        return 1.0 - 2.0 * (q[:, 1] ** 2 + q[:, 2] ** 2)


# --- base velocity penalties -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _BaseVelocityPenalty(Reward):
    """Shared fields and formula of the base linear/angular velocity penalties."""

    index: str | tuple[str, ...] = ("x", "y", "z")
    norm: str = "l2"
    in_robot_frame: bool = True
    clip_min: float | None = None
    clip_max: float | None = None

    def __post_init__(self) -> None:
        """Validate ``norm`` and ``index``."""
        _check_norm(self, self.norm)
        _axes(self, self.index)

    def _velocity(self, ctx: EnvContext) -> torch.Tensor:
        raise NotImplementedError

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) summed norm of the selected velocity components."""
        v = self._velocity(ctx)[:, index_tensor(_axes(self, self.index), ctx.device)]
        if self.clip_min is not None or self.clip_max is not None:
            v = v.clamp(self.clip_min, self.clip_max)
        return _apply_norm(v, self.norm).sum(dim=-1)


@dataclass(frozen=True, kw_only=True)
class LinearVelocityPenalty(_BaseVelocityPenalty):
    """``sum_i norm(v_i)`` over the chosen components ``index`` of the base's linear velocity (m/s).

    With ``in_robot_frame`` (the default) the world-frame ``qvel[0:3]`` is rotated into the base
    frame (what a velocimeter on the base reads), otherwise it is used as is. Components are
    clipped to [``clip_min``, ``clip_max``] when given. Old ksim averaged the components *before*
    the norm, so opposite components cancelled; here each component is penalised on its own.
    """

    def _velocity(self, ctx: EnvContext) -> torch.Tensor:
        v = ctx.physics.qvel[:, 0:3]
        return quat_rotate(ctx.physics.qpos[:, 3:7], v, inverse=True) if self.in_robot_frame else v


@dataclass(frozen=True, kw_only=True)
class PlanarVelocityPenalty(LinearVelocityPenalty):
    """:class:`LinearVelocityPenalty` on the planar components (x and y by default), under its own name, so a
    task can weigh how fast the base drifts apart from how fast it bobs (ours; a standing task's brake)."""

    index: str | tuple[str, ...] = ("x", "y")


@dataclass(frozen=True, kw_only=True)
class AngularVelocityPenalty(_BaseVelocityPenalty):
    """``sum_i norm(w_i)`` over the chosen components ``index`` of the base's angular velocity (rad/s).

    ``qvel[3:6]`` is already in the base frame (MuJoCo's free joint), so ``in_robot_frame`` uses
    it directly and ``in_robot_frame=False`` rotates it into the world frame. (Old ksim rotated
    the already-local vector by the inverse orientation again.) Same ``clip_min``/``clip_max`` and
    summing as :class:`LinearVelocityPenalty`.
    """

    def _velocity(self, ctx: EnvContext) -> torch.Tensor:
        w = ctx.physics.qvel[:, 3:6]
        return w if self.in_robot_frame else quat_rotate(ctx.physics.qpos[:, 3:7], w)


@dataclass(frozen=True, kw_only=True)
class JointVelocityPenalty(Reward):
    """Mean over joints of ``norm(qdot_j)`` (rad/s for hinges).

    With ``freejoint_first`` the free joint's 6 velocities (``qvel[0:6]``) are skipped, otherwise
    all of ``qvel`` is used. The default norm is l2 (ksim's default was l1).
    """

    norm: str = "l2"
    freejoint_first: bool = True

    def __post_init__(self) -> None:
        """Validate ``norm``."""
        _check_norm(self, self.norm)

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) mean joint-velocity norm."""
        qvel = ctx.physics.qvel[:, 6:] if self.freejoint_first else ctx.physics.qvel
        return _apply_norm(qvel, self.norm).mean(dim=-1)


# --- joint limits and action targets ---------------------------------------------------------


def _outside(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Distance of ``x`` outside ``[lower, upper]`` (0 inside), element-wise."""
    return torch.relu(lower - x) + torch.relu(x - upper)


@dataclass(frozen=True, kw_only=True)
class ActionInBoundsPenalty(Reward):
    """``sum_j`` of how far each position-target action lies outside its joint's range (rad).

    Meaningful for PD position actuators, whose ``ctrl`` is a joint target: a target beyond the
    joint's range only pushes the joint into its limit. Action column ``a`` is actuator ``a``;
    :meth:`create` pairs each actuator with the range of the joint it drives (unlimited joints
    never contribute).
    """

    action_indices: tuple[int, ...] = ()
    lower: tuple[float, ...] = ()
    upper: tuple[float, ...] = ()

    @classmethod
    def create(cls, model: mujoco.MjModel, joint_names: Sequence[str] | None = None,
               scale: float = 1.0) -> ActionInBoundsPenalty:
        """Resolve the actuators of ``joint_names`` (all joint actuators when None) and their ranges."""
        cols, joints = _actuator_joints(model, joint_names)
        lower = [float(model.jnt_range[j, 0]) if model.jnt_limited[j] else -math.inf for j in joints]
        upper = [float(model.jnt_range[j, 1]) if model.jnt_limited[j] else math.inf for j in joints]
        return cls(action_indices=tuple(cols), lower=tuple(lower), upper=tuple(upper), scale=scale)

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) summed excess of the actions outside the joint ranges."""
        a = ctx.action[:, index_tensor(self.action_indices, ctx.device)]
        lo, hi = _float_tensor(self.lower, ctx.device), _float_tensor(self.upper, ctx.device)
        return _outside(a, lo, hi).sum(dim=-1)


@dataclass(frozen=True, kw_only=True)
class AvoidLimitsPenalty(Reward):
    """``sum_j`` of the distance of ``q_j`` outside its range widened by ``factor * range`` (rad).

    With a joint range [lo, hi] and ``d = factor (hi - lo)`` the allowed band is
    ``[lo - d, hi + d]``, as in ksim; only limited hinge/slide joints count. ksim HEAD averages
    over joints (its earlier versions, used in the K-Scale humanoid benchmark, summed); this sums,
    so the penalty does not shrink as joints are added.
    """

    qpos_indices: tuple[int, ...] = ()
    lower: tuple[float, ...] = ()
    upper: tuple[float, ...] = ()

    @classmethod
    def create(cls, model: mujoco.MjModel, factor: float = 0.05, scale: float = 1.0,
               joint_names: Sequence[str] | None = None) -> AvoidLimitsPenalty:
        """Widened limits of the limited joints among ``joint_names`` (all non-free joints when None)."""
        names = joint_names if joint_names is not None else [
            model.joint(j).name for j in range(model.njnt)
            if int(model.jnt_type[j]) in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)]
        ids = [name_to_id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in names]
        ids = [j for j in ids if model.jnt_limited[j]]
        lo, hi = model.jnt_range[ids, 0], model.jnt_range[ids, 1]
        pad = (hi - lo) * factor
        qpos = joint_qpos_indices(model, [model.joint(j).name for j in ids])
        return cls(qpos_indices=tuple(qpos), lower=tuple((lo - pad).tolist()), upper=tuple((hi + pad).tolist()),
                   scale=scale)

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) summed distance outside the widened joint ranges."""
        q = ctx.physics.qpos[:, index_tensor(self.qpos_indices, ctx.device)]
        lo, hi = _float_tensor(self.lower, ctx.device), _float_tensor(self.upper, ctx.device)
        return _outside(q, lo, hi).sum(dim=-1)


@dataclass(frozen=True, kw_only=True)
class ActionNearPositionPenalty(Reward):
    """``backoff_scale * sum_j norm(max(0, |a_j - q_j| - joint_threshold_j))``.

    Penalises position targets further than ``joint_threshold`` (rad, scalar or per joint) from
    the joint's current position; a target far from ``q`` means a saturated PD torque. Action
    column ``a`` is actuator ``a``, compared with the joint it drives. ksim applied the norm
    before the threshold and clipped the excess to at least the threshold, so it penalised every
    step by ``threshold`` even inside the band; here the excess is zero inside it.
    """

    action_indices: tuple[int, ...] = ()
    qpos_indices: tuple[int, ...] = ()
    joint_threshold: tuple[float, ...] = ()
    backoff_scale: float = 1.0
    norm: str = "l2"

    def __post_init__(self) -> None:
        """Validate ``norm`` and the index lengths."""
        _check_norm(self, self.norm)
        if len(self.action_indices) != len(self.qpos_indices) or \
                len(self.joint_threshold) not in (1, len(self.action_indices)):
            raise ValueError("ActionNearPositionPenalty: action_indices, qpos_indices and joint_threshold must match")

    @classmethod
    def create(cls, model: mujoco.MjModel, joint_threshold: float | Sequence[float] = 0.0,
               joint_names: Sequence[str] | None = None, backoff_scale: float = 1.0, norm: str = "l2",
               scale: float = 1.0) -> ActionNearPositionPenalty:
        """Pair each actuator of ``joint_names`` (all joint actuators when None) with its joint's qpos."""
        cols, joints = _actuator_joints(model, joint_names)
        thr = (float(joint_threshold),) if isinstance(joint_threshold, (int, float)) else \
            tuple(float(t) for t in joint_threshold)
        if any(t < 0 for t in thr):
            raise ValueError(f"joint_threshold must be >= 0, got {thr}")
        qpos = tuple(int(model.jnt_qposadr[j]) for j in joints)
        return cls(action_indices=tuple(cols), qpos_indices=qpos, joint_threshold=thr, backoff_scale=backoff_scale,
                   norm=norm, scale=scale)

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) summed norm of the target-position error beyond the threshold."""
        a = ctx.action[:, index_tensor(self.action_indices, ctx.device)]
        q = ctx.physics.qpos[:, index_tensor(self.qpos_indices, ctx.device)]
        excess = torch.relu(torch.abs(a - q) - _float_tensor(self.joint_threshold, ctx.device))
        return self.backoff_scale * _apply_norm(excess, self.norm).sum(dim=-1)


@dataclass(frozen=True, kw_only=True)
class JointDeviationPenalty(Reward):
    """``sum_j norm(w_j (q_j - target_j))`` over the chosen joints (rad)."""

    qpos_indices: tuple[int, ...] = ()
    joint_targets: tuple[float, ...] = ()
    joint_weights: tuple[float, ...] | None = None
    norm: str = "l2"

    def __post_init__(self) -> None:
        """Validate ``norm`` and that indices, targets and weights line up."""
        _check_norm(self, self.norm)
        n = len(self.qpos_indices)
        if len(self.joint_targets) != n or (self.joint_weights is not None and len(self.joint_weights) != n):
            raise ValueError(f"JointDeviationPenalty: {n} joints but {len(self.joint_targets)} targets and "
                             f"{None if self.joint_weights is None else len(self.joint_weights)} weights")

    @classmethod
    def create(cls, model: mujoco.MjModel, joint_names: Sequence[str], joint_targets: Sequence[float],
               joint_weights: Sequence[float] | None = None, norm: str = "l2",
               scale: float = 1.0) -> JointDeviationPenalty:
        """Resolve ``joint_names`` to qpos addresses."""
        if len(joint_names) != len(joint_targets):
            raise ValueError(f"joint_names ({len(joint_names)}) and joint_targets ({len(joint_targets)}) must match")
        return cls(qpos_indices=tuple(joint_qpos_indices(model, joint_names)),
                   joint_targets=tuple(float(t) for t in joint_targets),
                   joint_weights=None if joint_weights is None else tuple(float(w) for w in joint_weights),
                   norm=norm, scale=scale)

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) summed weighted deviation norm."""
        diff = ctx.physics.qpos[:, index_tensor(self.qpos_indices, ctx.device)] - \
            _float_tensor(self.joint_targets, ctx.device)
        if self.joint_weights is not None:
            diff = diff * _float_tensor(self.joint_weights, ctx.device)
        return _apply_norm(diff, self.norm).sum(dim=-1)


# --- action differences ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _ActionDifference(Reward):
    """A penalty on the ``order``-th finite difference of the actions, masked at episode starts."""

    norm: str = "l2"

    def __post_init__(self) -> None:
        """Validate ``norm``."""
        _check_norm(self, self.norm)

    def _difference(self, ctx: EnvContext) -> tuple[torch.Tensor, int]:
        """(difference (N, A), number of this episode's actions it needs)."""
        raise NotImplementedError

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) mean norm of the difference over action dims; 0 where it would reach before the reset."""
        diff, needed = self._difference(ctx)
        value = _apply_norm(diff, self.norm).mean(dim=-1)
        return torch.where(_valid_history(ctx, needed), value, torch.zeros_like(value))


@dataclass(frozen=True, kw_only=True)
class ActionVelocityPenalty(_ActionDifference):
    """Mean over action dims of ``norm(a_t - a_{t-1})``; zero on an episode's first step.

    The previous action is zero after a reset, so the difference is masked until both actions
    belong to the episode (``episode_steps >= 2``, see the module docstring).
    """

    def _difference(self, ctx: EnvContext) -> tuple[torch.Tensor, int]:
        return ctx.action - ctx.prev_action, 2


@dataclass(frozen=True, kw_only=True)
class ActionSmoothnessPenalty(ActionVelocityPenalty):
    """ksim's older name for :class:`ActionVelocityPenalty`: mean ``norm(a_t - a_{t-1})``.

    Masked on the first step of an episode (``episode_steps < 2``), so a reset never produces a
    spike; ksim padded with the first action, which has the same effect within a trajectory.
    """


@dataclass(frozen=True, kw_only=True)
class ActionAccelerationPenalty(_ActionDifference):
    """Mean over action dims of ``norm(a_t - 2 a_{t-1} + a_{t-2})``; zero on an episode's first two steps.

    Masked until three actions of the episode exist (``episode_steps >= 3``). There is no
    ``ActionJerkPenalty``: a third difference needs ``a_{t-3}``, which the
    :class:`~ktorch_sim.components.base.EnvContext` does not carry.
    """

    def _difference(self, ctx: EnvContext) -> tuple[torch.Tensor, int]:
        return ctx.action - 2.0 * ctx.prev_action + ctx.prev_prev_action, 3


# --- actuator effort -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ActuatorRelativeForcePenalty(Reward):
    """Mean over actuators of ``norm(tau_a / tau_max_a)``: effort as a fraction of each limit.

    ``tau`` is ``physics.actuator_force`` (N m for the PD actuators); ``tau_max`` the tighter of
    the actuator's ``forcerange`` and its joint's ``actuatorfrcrange``. ksim read an observation,
    divided the *normed* force by the limit (so l2 was not dimensionless) and floored the limit
    to an integer; here the ratio is taken first.
    """

    magnitudes: tuple[float, ...] = ()
    norm: str = "l1"

    def __post_init__(self) -> None:
        """Validate ``norm``."""
        _check_norm(self, self.norm)

    @classmethod
    def create(cls, model: mujoco.MjModel, norm: str = "l1", scale: float = 1.0) -> ActuatorRelativeForcePenalty:
        """Read every actuator's force limit from the model."""
        return cls(magnitudes=_actuator_force_limits(model), norm=norm, scale=scale)

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) mean relative actuator effort."""
        rel = ctx.physics.actuator_force / _float_tensor(self.magnitudes, ctx.device)
        return _apply_norm(rel, self.norm).mean(dim=-1)


@dataclass(frozen=True, kw_only=True)
class TorquePenalty(Reward):
    """Mean over actuators of ``|tau_a / ctrl_scale_a|``, the torque as a fraction of its limit.

    In ksim the MuJoCo ``ctrl`` *is* the torque (its PD law runs in JAX) and ``ctrl_scales`` is
    half the ctrlrange (the peak torque). Here PD actuators take joint targets as ``ctrl`` and
    MuJoCo computes the torque, so the term reads ``physics.actuator_force`` and the scales are
    the actuator force limits; for plain motor actuators the two agree.
    """

    ctrl_scales: tuple[float, ...] = ()
    dof_indices: tuple[int, ...] = ()

    @classmethod
    def create(cls, model: mujoco.MjModel, scale: float = 1.0) -> TorquePenalty:
        """Force limits of every actuator, and the dof each one drives (for :class:`EnergyPenalty`)."""
        dofs = tuple(int(model.jnt_dofadr[model.actuator_trnid[a, 0]]) for a in range(model.nu))
        return cls(ctrl_scales=_actuator_force_limits(model), dof_indices=dofs, scale=scale)

    def _normalized_torque(self, ctx: EnvContext) -> torch.Tensor:
        return ctx.physics.actuator_force / _float_tensor(self.ctrl_scales, ctx.device)

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) mean absolute normalised torque."""
        return torch.abs(self._normalized_torque(ctx)).mean(dim=-1)


@dataclass(frozen=True, kw_only=True)
class EnergyPenalty(TorquePenalty):
    """Mean over actuators of ``|tau_a / ctrl_scale_a * qdot_a|`` (normalised torque x rad/s).

    A mechanical-power proxy. ``qdot_a`` is the velocity of the dof the actuator drives (ksim
    assumed actuator order equals ``qvel[6:]`` order).
    """

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) mean absolute normalised power."""
        qdot = ctx.physics.qvel[:, index_tensor(self.dof_indices, ctx.device)]
        return torch.abs(self._normalized_torque(ctx) * qdot).mean(dim=-1)


# --- base height -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _BaseHeight(Reward):
    """Shared base-height measure: ``qpos z``, or relative to the feet when foot bodies are given."""

    foot_body_ids: tuple[int, ...] = ()
    base_body_id: int = 1
    foot_height_offset: float = 0.06

    def base_height(self, ctx: EnvContext) -> torch.Tensor:
        """(N,) base height in m.

        Without feet: the free joint's ``qpos[2]`` (height above z = 0, as ksim). With feet:
        ``z_base - min_f z_foot + foot_height_offset``, from body positions of the same substep,
        so it stays meaningful on uneven ground (ksim's K-Bot example; the foot body origin is at
        the ankle axis, 0.058 m above K-Bot's sole).
        """
        if not self.foot_body_ids:
            return ctx.physics.qpos[:, 2]
        z = ctx.physics.xpos[..., 2]
        feet = z[:, index_tensor(self.foot_body_ids, ctx.device)].amin(dim=-1)
        return z[:, self.base_body_id] - feet + self.foot_height_offset

    @classmethod
    def _foot_fields(cls, model: mujoco.MjModel, foot_body_names: Sequence[str] | None, base_body_name: str | None,
                     foot_height_offset: float) -> dict[str, object]:
        if not foot_body_names:
            return {}
        feet = tuple(name_to_id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in foot_body_names)
        if base_body_name is not None:
            base = name_to_id(model, mujoco.mjtObj.mjOBJ_BODY, base_body_name)
        else:
            free = [j for j in range(model.njnt) if int(model.jnt_type[j]) == mujoco.mjtJoint.mjJNT_FREE]
            if not free:
                raise ValueError("the model has no free joint; pass base_body_name")
            base = int(model.jnt_bodyid[free[0]])
        return {"foot_body_ids": feet, "base_body_id": base, "foot_height_offset": foot_height_offset}


@dataclass(frozen=True, kw_only=True)
class BaseHeightReward(_BaseHeight):
    """``exp_kernel(h - height_target, kernel_scale)`` with ``h`` the base height (m).

    ``h`` is ``qpos[2]`` by default; :meth:`create` with foot bodies measures it from the lowest
    foot instead (see :meth:`base_height`). ``norm`` is accepted for ksim compatibility and
    unused, as in ksim.
    """

    height_target: float
    norm: str = "l1"
    kernel_scale: float = 0.25

    @classmethod
    def create(cls, model: mujoco.MjModel, height_target: float, kernel_scale: float = 0.25,
               foot_body_names: Sequence[str] | None = None, base_body_name: str | None = None,
               foot_height_offset: float = 0.06, scale: float = 1.0) -> BaseHeightReward:
        """Build a base-height reward, measured from the lowest of ``foot_body_names`` when given."""
        return cls(height_target=height_target, kernel_scale=kernel_scale, scale=scale,
                   **cls._foot_fields(model, foot_body_names, base_body_name, foot_height_offset))

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) kernel of the height error."""
        return exp_kernel(self.base_height(ctx) - self.height_target, self.kernel_scale)


@dataclass(frozen=True, kw_only=True)
class BaseHeightRangeReward(_BaseHeight):
    """``max(0, 1 - dropoff * d)`` with ``d`` the distance of the base height outside [z_lower, z_upper] (m)."""

    z_lower: float
    z_upper: float
    dropoff: float

    @classmethod
    def create(cls, model: mujoco.MjModel, z_lower: float, z_upper: float, dropoff: float,
               foot_body_names: Sequence[str] | None = None, base_body_name: str | None = None,
               foot_height_offset: float = 0.06, scale: float = 1.0) -> BaseHeightRangeReward:
        """Build a height-band reward, measured from the lowest of ``foot_body_names`` when given."""
        return cls(z_lower=z_lower, z_upper=z_upper, dropoff=dropoff, scale=scale,
                   **cls._foot_fields(model, foot_body_names, base_body_name, foot_height_offset))

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) 1 inside the band, falling linearly outside it, never below 0."""
        h = self.base_height(ctx)
        outside = torch.relu(self.z_lower - h) + torch.relu(h - self.z_upper)
        return torch.relu(1.0 - self.dropoff * outside)


# --- velocity tracking -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LinearVelocityReward(Reward):
    """Planar velocity tracking: the sum of ksim's terms ``vel + yaw + x + y``.

    The command ``ctx.commands[cmd]`` has columns 0, 1 = desired ``vx, vy`` (m/s) in the base's
    heading frame. The robot's velocity is ``qvel[0:3]`` rotated by the base yaw into that frame
    (a full body-frame rotation, as ksim does, would also mix in vertical speed when the base
    pitches). With ``ekp = exp_kernel_with_penalty``:

    - ``vel = ekp(|v| - |c|, vel_length_scale)``, speed;
    - ``yaw = ekp(wrap(atan2(v) - atan2(c)), yaw_length_scale)``, direction of travel; the error
      is wrapped to [-pi, pi) (ksim does not wrap, so walking straight back scored ~2 pi error);
    - ``x = ekp(v_x - c_x, vel_length_scale)``, ``y = ekp(v_y - c_y, vel_length_scale)``.

    ``yaw``, ``x`` and ``y`` are zero when the command speed ``|c| < zero_threshold``. ksim
    returns the four as a dict and scales each by ``scale``; the total is this sum.
    :meth:`terms` gives them separately, for logging.
    """

    cmd: str
    vel_length_scale: float = 0.25
    yaw_length_scale: float = 0.25
    zero_threshold: float = 0.01
    sq_scale: float = 0.1
    abs_scale: float = 0.1

    def terms(self, ctx: EnvContext) -> dict[str, torch.Tensor]:
        """Return the four tracking terms, each (N,)."""
        c = _command(ctx, self.cmd, self)[:, 0:2]
        v = _heading_xy_of(ctx.physics.qpos[:, 3:7], ctx.physics.qvel[:, 0:3])
        speed_c = torch.linalg.vector_norm(c, dim=-1)
        speed_v = torch.linalg.vector_norm(v, dim=-1)
        yaw_err = wrap_angle(torch.atan2(v[:, 1], v[:, 0]) - torch.atan2(c[:, 1], c[:, 0]))

        def ekp(x: torch.Tensor, sigma: float) -> torch.Tensor:
            return exp_kernel_with_penalty(x, sigma, self.sq_scale, self.abs_scale)

        moving = speed_c >= self.zero_threshold
        zero = torch.zeros_like(speed_c)
        return {
            "vel": ekp(speed_v - speed_c, self.vel_length_scale),
            "yaw": torch.where(moving, ekp(yaw_err, self.yaw_length_scale), zero),
            "x": torch.where(moving, ekp(v[:, 0] - c[:, 0], self.vel_length_scale), zero),
            "y": torch.where(moving, ekp(v[:, 1] - c[:, 1], self.vel_length_scale), zero),
        }

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) sum of the tracking terms."""
        return torch.stack(list(self.terms(ctx).values()), dim=0).sum(dim=0)


@dataclass(frozen=True, kw_only=True)
class AngularVelocityReward(Reward):
    """Yaw-rate tracking: ``mag + dir`` (ksim's dict terms, summed).

    The command is column ``index`` of ``ctx.commands[cmd]`` (rad/s; 2 for ``[vx, vy, wz]``, 0 for
    ``AngularVelocityCommand``'s ``[wz, target_wz]``).
    The robot's yaw rate is the world-z component of the base angular velocity (``qvel[3:6]``
    rotated to the world frame; ksim used the body-z component ``qvel[5]``, equal when upright).

    - ``mag = exp_kernel_with_penalty(w_z - c, angvel_length_scale, sq_scale, abs_scale)``;
    - ``dir = +1`` when the signs of ``w_z`` and ``c`` agree, each taken as 0 inside
      ``+-zero_threshold``, else ``-1``.
    """

    cmd: str
    angvel_length_scale: float = 0.25
    sq_scale: float = 0.1
    abs_scale: float = 0.1
    zero_threshold: float = math.radians(5.0)
    index: int = 2

    def terms(self, ctx: EnvContext) -> dict[str, torch.Tensor]:
        """``mag`` and ``dir``, each (N,)."""
        c = _command(ctx, self.cmd, self)[:, self.index]
        wz = quat_rotate(ctx.physics.qpos[:, 3:7], ctx.physics.qvel[:, 3:6])[:, 2]
        mag = exp_kernel_with_penalty(wz - c, self.angvel_length_scale, self.sq_scale, self.abs_scale)

        def sign(x: torch.Tensor) -> torch.Tensor:
            return torch.where(torch.abs(x) < self.zero_threshold, torch.zeros_like(x), torch.sign(x))

        direction = torch.where(sign(wz) == sign(c), torch.ones_like(wz), -torch.ones_like(wz))
        return {"mag": mag, "dir": direction}

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) ``mag + dir``."""
        t = self.terms(ctx)
        return t["mag"] + t["dir"]


@dataclass(frozen=True, kw_only=True)
class OffAxisVelocityReward(Reward):
    """``exp_kernel(v_z, lin) + exp_kernel(w_x, ang) + exp_kernel(w_y, ang)``: no bobbing, rolling or pitching.

    ``v_z = qvel[2]`` (world), ``w_x, w_y = qvel[3], qvel[4]`` (base frame). ksim reads
    ``qvel[4], qvel[5]`` (pitch and *yaw* rate) under the names ``angx``/``angy``, which penalises
    the turning that :class:`AngularVelocityReward` asks for; this uses roll and pitch rate.
    """

    lin_length_scale: float = 0.25
    ang_length_scale: float = 0.25

    def terms(self, ctx: EnvContext) -> dict[str, torch.Tensor]:
        """``linz``, ``angx``, ``angy``, each (N,)."""
        qvel = ctx.physics.qvel
        return {
            "linz": exp_kernel(qvel[:, 2], self.lin_length_scale),
            "angx": exp_kernel(qvel[:, 3], self.ang_length_scale),
            "angy": exp_kernel(qvel[:, 4], self.ang_length_scale),
        }

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) sum of the three kernels, in [0, 3]."""
        t = self.terms(ctx)
        return t["linz"] + t["angx"] + t["angy"]


# --- feet ------------------------------------------------------------------------------------


def _foot_contacts(obs: torch.Tensor, num_feet: int) -> torch.Tensor:
    """Bool (N, F) from a contact observation (N, F) or (N, ..., F) (any over the middle axes)."""
    return (obs.reshape(obs.shape[0], -1, num_feet).float() > 0.5).any(dim=1)


@dataclass(frozen=True, kw_only=True)
class FeetAirTimeReward(Reward):
    """Touchdown air-time reward, legged_gym style: ``sum_f [first contact of f] (t_air,f - threshold)``.

    State ``air_time`` (N, num_feet), seconds. Each step, with ``contact`` from
    ``ctx.observations[contact_obs] > 0.5`` (N, num_feet):

    1. ``first = contact & (air_time > 0)`` (the foot lands this step);
    2. ``reward = sum_f where(first, air_time - threshold, 0)``;
    3. ``air_time = where(contact, 0, air_time + ctrl_dt)``.

    So ``air_time`` at touchdown is ``ctrl_dt`` times the number of control steps the foot was
    seen without contact (legged_gym adds the touchdown step too, one ``ctrl_dt`` more). Short
    steps (< threshold) are penalised, long ones rewarded. If ``linvel_cmd`` (norm of columns
    0, 1) or ``angvel_cmd`` (``|column angvel_index|``: 2 for ``[vx, vy, wz]``, 0 for
    ``AngularVelocityCommand``'s ``[wz, target_wz]``) is given, the reward is zero unless the
    commanded speed exceeds its moving threshold (either one, when both are given); the counters
    run regardless. ``air_time`` restarts at 0 on reset. ``ctrl_dt`` defaults to ``ctx.ctrl_dt``.
    ksim HEAD's version instead ramps three counters toward target air/ground durations of a
    gait period; this is the simpler touchdown term of legged_gym and ksim's K-Bot example.
    """

    contact_obs: str = "feet_contact_observation"
    num_feet: int = 2
    threshold: float = 0.4
    ctrl_dt: float | None = None
    linvel_cmd: str | None = None
    angvel_cmd: str | None = None
    angvel_index: int = 2
    linvel_moving_threshold: float = 0.1
    angvel_moving_threshold: float = math.radians(10.0)

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Air time per foot, zero."""
        return {"air_time": torch.zeros(ctx.num_envs, self.num_feet, device=ctx.device)}

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Zero the air time of reset worlds."""
        masked_assign(state["air_time"], mask, 0.0)

    def _moving(self, ctx: EnvContext) -> torch.Tensor | None:
        moving = None
        if self.linvel_cmd is not None:
            c = _command(ctx, self.linvel_cmd, self)[:, 0:2]
            moving = torch.linalg.vector_norm(c, dim=-1) > self.linvel_moving_threshold
        if self.angvel_cmd is not None:
            w = _command(ctx, self.angvel_cmd, self)[:, self.angvel_index]
            turning = torch.abs(w) > self.angvel_moving_threshold
            moving = turning if moving is None else moving | turning
        return moving

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) touchdown reward; advances the air-time counters in place."""
        contact = _foot_contacts(_observation(ctx, self.contact_obs, self), self.num_feet)
        air = state["air_time"]
        first = contact & (air > 0)
        value = torch.where(first, air - self.threshold, torch.zeros_like(air)).sum(dim=-1)
        dt = ctx.ctrl_dt if self.ctrl_dt is None else self.ctrl_dt
        air.copy_(torch.where(contact, torch.zeros_like(air), air + dt))
        moving = self._moving(ctx)
        return value if moving is None else torch.where(moving, value, torch.zeros_like(value))


@dataclass(frozen=True, kw_only=True)
class FeetSlipPenalty(Reward):
    """``sum_f [foot f in contact] (v_x^2 + v_y^2)`` of the foot body origin's world velocity (m^2/s^2).

    Both quantities come from the physics of the same substep. Contact: any collision geom of the
    foot body in a penetrating contact (``physics.geom_contact``). Velocity: MuJoCo's ``cvel``
    is the body's spatial velocity (angular; linear) at the centre of mass of its kinematic
    tree (``subtree_com`` of the root body), in world axes; the linear velocity at the body origin
    is ``v + w x (xpos - subtree_com[root])``, what ``mj_objectVelocity`` returns for ``mjOBJ_XBODY``. ksim
    took the norm of the 6-D ``cvel`` observation, which mixes rad/s with m/s and measures
    velocity at the tree's centre of mass rather than at the foot. :meth:`create` defaults to
    K-Bot's two foot bodies.
    """

    foot_body_ids: tuple[int, ...] = ()
    root_body_ids: tuple[int, ...] = ()
    foot_geom_ids: tuple[int, ...] = ()
    geom_foot: tuple[int, ...] = ()

    @classmethod
    def create(cls, model: mujoco.MjModel,
               foot_body_names: Sequence[str] = ("LFootBushing_GPF_1517_12", "RFootBushing_GPF_1517_12"),
               scale: float = 1.0) -> FeetSlipPenalty:
        """Resolve the foot bodies, their kinematic roots and their collision geoms."""
        bodies = tuple(name_to_id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in foot_body_names)
        geoms, owner = [], []
        for f, b in enumerate(bodies):
            ids = [g for g in range(model.ngeom)
                   if model.geom_bodyid[g] == b and (model.geom_contype[g] or model.geom_conaffinity[g])]
            if not ids:
                raise ValueError(f"foot body {foot_body_names[f]!r} has no collision geom")
            geoms += ids
            owner += [f] * len(ids)
        roots = tuple(int(model.body_rootid[b]) for b in bodies)
        return cls(foot_body_ids=bodies, root_body_ids=roots, foot_geom_ids=tuple(geoms), geom_foot=tuple(owner),
                   scale=scale)

    def foot_velocity(self, ctx: EnvContext) -> torch.Tensor:
        """World-frame linear velocity of each foot body origin, (N, F, 3)."""
        p = ctx.physics
        feet = index_tensor(self.foot_body_ids, ctx.device)
        cvel = p.cvel[:, feet]
        offset = p.xpos[:, feet] - p.subtree_com[:, index_tensor(self.root_body_ids, ctx.device)]
        return cvel[..., 3:6] + torch.linalg.cross(cvel[..., 0:3], offset, dim=-1)

    def foot_contact(self, ctx: EnvContext) -> torch.Tensor:
        """Bool (N, F): any collision geom of the foot is in contact."""
        touching = ctx.physics.geom_contact[:, index_tensor(self.foot_geom_ids, ctx.device)] > 0.5
        owner = index_tensor(self.geom_foot, ctx.device)
        counts = torch.zeros(ctx.num_envs, len(self.foot_body_ids), device=ctx.device)
        counts.index_add_(1, owner, touching.float())
        return counts > 0

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) summed squared planar speed of the feet that touch the ground."""
        v = self.foot_velocity(ctx)
        planar = torch.square(v[..., 0]) + torch.square(v[..., 1])
        return torch.where(self.foot_contact(ctx), planar, torch.zeros_like(planar)).sum(dim=-1)


@dataclass(frozen=True, kw_only=True)
class SinusoidalGaitReward(Reward):
    """``1 - sum_f |z_f - z_cmd,f| / max_height``: follow a commanded swing-height profile.

    ``z_f`` is the z of foot ``f`` from ``ctx.observations[pos_obs]`` (N, num_feet * 3, xyz per
    foot, or (N, num_feet, 3)); ``z_cmd`` is ``ctx.commands[pos_cmd]`` (N, num_feet), in the same
    height convention as the observation. 1 when every foot is at its commanded height; negative
    once the summed error exceeds ``max_height``. ``ctrl_dt`` is kept for ksim compatibility
    (ksim uses it only for its markers).
    """

    ctrl_dt: float
    max_height: float
    pos_obs: str = "feet_position_observation"
    pos_cmd: str = "sinusoidal_gait_command"
    num_feet: int = 2

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) gait-height tracking reward."""
        pos = _observation(ctx, self.pos_obs, self)
        z = pos.reshape(pos.shape[0], self.num_feet, 3)[..., 2]
        cmd = _command(ctx, self.pos_cmd, self)[:, : self.num_feet]
        return 1.0 - torch.abs(z - cmd).sum(dim=-1) / self.max_height


def _heading_xy_of(quat: torch.Tensor, v_world: torch.Tensor) -> torch.Tensor:
    """World-frame ``v_world`` (N, 3) -> its planar (x, y) part in the heading frame of ``quat``, (N, 2)."""
    return heading_xy(quat_yaw(quat), v_world)
