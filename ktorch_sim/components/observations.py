"""Observations: what the policy and the critic see, batched ``[N, D]`` float32 per control step.

Each class mirrors the ksim observation of the same name (``ksim/observation.py``), reading the
engine's :class:`~ktorch_sim.engines.base.PhysicsState` instead of one ``mjx.Data``. Every
``observe`` returns a new tensor (never a view of the engine's state), so a stored observation
stays valid after the next physics step.

Noise and bias (the ``noise=``/``bias=`` fields every observation has) are not applied inside
``observe``: the environment calls :func:`init_bias_state`, :func:`reset_bias` and :func:`noisy`
to produce ``noisy_<name>`` next to the clean value, exactly as ksim emits both.

Frames. MuJoCo's free joint stores ``qvel[0:3]`` as the base's linear velocity in the world frame
and ``qvel[3:6]`` as its angular velocity in the base (body) frame. ksim's
``BaseAngularVelocityObservation(in_robot_frame=True)`` rotates the already body-frame angular
velocity by the inverse base orientation once more (a bug). Here ``in_robot_frame=True`` gives
the body frame and ``False`` the world frame for both the linear and the angular velocity.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np
import torch

from ktorch_sim.components.base import (
    ComponentState,
    EnvContext,
    Observation,
    index_tensor,
    masked_assign,
    name_to_id,
    sensor_slice,
    snake_case,
    uniform,
)
from ktorch_sim.components.noise import as_bias, as_noise, is_active
from ktorch_sim.symmetry import Mirror, ModelMirror
from ktorch_sim.utils.rotations import quat_rotate

__all__ = [
    "ActuatorAccelerationObservation",
    "ActuatorForceObservation",
    "BaseAngularAccelerationObservation",
    "BaseAngularVelocityObservation",
    "BaseHeightObservation",
    "BaseLinearAccelerationObservation",
    "BaseLinearVelocityObservation",
    "BaseOrientationObservation",
    "BasePositionObservation",
    "BodyPositionObservation",
    "BodyVelocityObservation",
    "CenterOfMassInertiaObservation",
    "CenterOfMassVelocityObservation",
    "ContactObservation",
    "FeetContactObservation",
    "FeetPositionObservation",
    "JointPositionObservation",
    "JointVelocityObservation",
    "ProjectedGravityObservation",
    "SensorObservation",
    "TimestepObservation",
    "JOINT_ZERO_OFFSET_KEY",
    "init_bias_state",
    "noisy",
    "quat_rotate",
    "reset_bias",
    "tilt_xy",
]

# Key in ``EnvContext.extras`` of the per-episode joint encoder offsets, rad: (N, nu) in actuator
# order from the environment, or (N, num_joints) in joint order.
JOINT_ZERO_OFFSET_KEY = "joint_zero_offset"


# --- small helpers -----------------------------------------------------------------------------


def _resolve_model(model: mujoco.MjModel | None, physics_model: mujoco.MjModel | None) -> mujoco.MjModel:
    """Return the model given as ``model`` (this project's name) or ``physics_model`` (ksim's name)."""
    if (model is None) == (physics_model is None):
        raise TypeError("pass the MuJoCo model exactly once, as model=... or physics_model=...")
    return model if model is not None else physics_model


def _names(names: str | Iterable[str]) -> tuple[str, ...]:
    """Return a single name or a collection of names as a tuple."""
    return (names,) if isinstance(names, str) else tuple(names)


def _ids(model: mujoco.MjModel, obj: mujoco.mjtObj, names: str | Iterable[str], what: str = "") -> tuple[int, ...]:
    """Return MuJoCo ids of named objects (one clear error for a missing name, or for none when ``what`` is set)."""
    ids = tuple(name_to_id(model, obj, n) for n in _names(names))
    if what and not ids:
        raise ValueError(f"{what} needs at least one name")
    return ids


_JOINT_INDEX_CACHE: dict[int, tuple[mujoco.MjModel, tuple[int, ...], tuple[int, ...]]] = {}
_SCALAR_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


def _joint_indices(model: mujoco.MjModel) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(qpos, qvel) addresses of every hinge/slide joint (free and ball joints excluded), cached per model.

    The cache holds the model itself so that its ``id`` cannot be reused by another model.
    """
    hit = _JOINT_INDEX_CACHE.get(id(model))
    if hit is None or hit[0] is not model:
        joints = [j for j in range(model.njnt) if int(model.jnt_type[j]) in _SCALAR_JOINTS]
        hit = (model, tuple(int(model.jnt_qposadr[j]) for j in joints), tuple(int(model.jnt_dofadr[j]) for j in joints))
        _JOINT_INDEX_CACHE[id(model)] = hit
    return hit[1], hit[2]


@functools.cache
def _constant(values: tuple[float, ...], device: str) -> torch.Tensor:
    """Return a float32 constant tensor on ``device``, built once (no host-to-device copy per step)."""
    return torch.tensor(values, dtype=torch.float32, device=device)


_OFFSET_SOURCE_CACHE: dict[int, tuple[mujoco.MjModel, tuple[int, ...] | None]] = {}


def _offset_sources(model: mujoco.MjModel) -> tuple[int, ...] | None:
    """Per hinge/slide joint, the actuator whose encoder offset it reads (``nu`` for none); None for identity.

    The environment draws offsets per actuator (``(N, nu)``, in ctrl order); joint ``k`` gets the
    offset of the joint-transmission actuator that drives it. For K-Bot actuator ``k`` drives
    joint ``k`` (identity, None); a planar walker's unactuated root slides and hinge get 0.
    """
    hit = _OFFSET_SOURCE_CACHE.get(id(model))
    if hit is None or hit[0] is not model:
        driver = {int(model.actuator_trnid[a, 0]): a for a in reversed(range(model.nu))
                  if int(model.actuator_trntype[a]) == mujoco.mjtTrn.mjTRN_JOINT}
        joints = [j for j in range(model.njnt) if int(model.jnt_type[j]) in _SCALAR_JOINTS]
        sources = tuple(driver.get(j, model.nu) for j in joints)
        hit = (model, None if sources == tuple(range(model.nu)) else sources)
        _OFFSET_SOURCE_CACHE[id(model)] = hit
    return hit[1]


def _joint_offsets(model: mujoco.MjModel, offset: torch.Tensor) -> torch.Tensor:
    """Return encoder offsets as (N, num_joints) columns: per-actuator offsets (N, nu) moved to their joints."""
    sources = _offset_sources(model)
    if offset.shape[-1] != model.nu or sources is None:
        return offset  # already per joint, or actuator k drives joint k
    padded = torch.cat([offset, torch.zeros_like(offset[:, :1])], dim=1)  # column nu: unactuated joints
    return _cols(padded, sources)


def _scalar_joint_ids(model: mujoco.MjModel) -> tuple[int, ...]:
    """Ids of the hinge/slide joints, in the order of :func:`_joint_indices`."""
    return tuple(j for j in range(model.njnt) if int(model.jnt_type[j]) in _SCALAR_JOINTS)


def _base_frame_mirror(axial: bool) -> Mirror:
    """A vector in the free joint's (root body's) frame: the mirror plane is that frame's x-z plane."""
    return Mirror((0, 1, 2), (-1.0, 1.0, -1.0) if axial else (1.0, -1.0, 1.0))


def _cols(x: torch.Tensor, idx: Sequence[int]) -> torch.Tensor:
    """Columns ``idx`` of a (N, M) tensor, as a new tensor."""
    return x.index_select(1, index_tensor(idx, x.device))


def _any_contact(geom_contact: torch.Tensor, geoms: Sequence[int]) -> torch.Tensor:
    """Bool (N,): any of ``geoms`` is in a penetrating contact in that world."""
    return _cols(geom_contact, geoms).amax(dim=1) > 0.0


# --- joints and actuators ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class JointPositionObservation(Observation):
    """Hinge/slide joint positions, (N, num_joints), rad (m for slides), in qpos order.

    ``qpos`` of every non-free joint minus the per-episode encoder zero offset, when the
    environment provides one in ``ctx.extras["joint_zero_offset"]``: the real robot's encoders
    report the angle relative to a slightly wrong zero, and the policy must learn to live with
    that (ksim: ``qpos[7:] - zero_offset``). The environment's offsets are per actuator (N, nu);
    each joint reads its actuator's, and a joint no actuator drives (a planar walker's root
    slides) reads 0, so models with more joints than actuators work.
    """

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """Joint angles minus the zero offset, (N, num_joints)."""
        qpos_idx, _ = _joint_indices(ctx.model)
        q = _cols(ctx.physics.qpos, qpos_idx)
        offset = ctx.extras.get(JOINT_ZERO_OFFSET_KEY)
        return q if offset is None else q - _joint_offsets(ctx.model, offset)

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """Each joint's entry goes to its mirror joint's, with the joint's sign."""
        return model_mirror.joints(_scalar_joint_ids(model_mirror.model))


@dataclass(frozen=True, kw_only=True)
class JointVelocityObservation(Observation):
    """Hinge/slide joint velocities, (N, num_joints), rad/s, in qvel order (ksim: ``qvel[6:]``)."""

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """Joint velocities, (N, num_joints)."""
        _, dof_idx = _joint_indices(ctx.model)
        return _cols(ctx.physics.qvel, dof_idx)

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """Each joint's entry goes to its mirror joint's, with the joint's sign."""
        return model_mirror.joints(_scalar_joint_ids(model_mirror.model))


@dataclass(frozen=True, kw_only=True)
class ActuatorForceObservation(Observation):
    """Actuator forces of the last physics substep, (N, nu), N·m for K-Bot's motors (``actuator_force``)."""

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``actuator_force``, (N, nu)."""
        return ctx.physics.actuator_force.clone()

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """Each actuator's force goes to its mirror actuator's, with the joint's sign."""
        return model_mirror.actuators(tuple(range(model_mirror.model.nu)))


@dataclass(frozen=True, kw_only=True)
class ActuatorAccelerationObservation(Observation):
    """Joint accelerations of the hinge/slide joints, (N, num_joints), rad/s² (ksim: ``qacc[6:]``)."""

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``qacc`` of the non-free dofs, (N, num_joints)."""
        _, dof_idx = _joint_indices(ctx.model)
        return _cols(ctx.physics.qacc, dof_idx)

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """Each joint's entry goes to its mirror joint's, with the joint's sign."""
        return model_mirror.joints(_scalar_joint_ids(model_mirror.model))


# --- whole-body quantities ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CenterOfMassInertiaObservation(Observation):
    """``cinert`` of every body but the world, flattened, (N, (nbody - 1) * 10).

    MuJoCo's com-based inertia per body: 6 entries of the rotational inertia about the
    kinematic tree's subtree centre of mass (world axes), the mass times the CoM offset
    (3 entries) and the mass. Critic input, as in ksim.
    """

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``cinert[:, 1:]`` flattened."""
        return ctx.physics.cinert[:, 1:].reshape(ctx.num_envs, -1).clone()


@dataclass(frozen=True, kw_only=True)
class CenterOfMassVelocityObservation(Observation):
    """``cvel`` of every body but the world, flattened, (N, (nbody - 1) * 6).

    Each row is the body's spatial velocity (angular rad/s, then linear m/s) in MuJoCo's
    com-based frame: world axes, origin at the subtree CoM of the body's kinematic tree.
    """

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``cvel[:, 1:]`` flattened."""
        return ctx.physics.cvel[:, 1:].reshape(ctx.num_envs, -1).clone()


@dataclass(frozen=True, kw_only=True)
class TimestepObservation(Observation):
    """Simulation time since the episode's reset, (N, 1), seconds (``data.time``)."""

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``time`` as a column."""
        return ctx.physics.time.reshape(-1, 1).clone()

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """Time is the same in the mirror image."""
        return Mirror.identity(1)


# --- floating base -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BasePositionObservation(Observation):
    """Base position in the world, (N, 3), m (free joint ``qpos[0:3]``)."""

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``qpos[0:3]``."""
        return ctx.physics.qpos[:, 0:3].clone()


@dataclass(frozen=True, kw_only=True)
class BaseOrientationObservation(Observation):
    """Base orientation, (N, 4), unit quaternion wxyz, base frame relative to world (``qpos[3:7]``)."""

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``qpos[3:7]``."""
        return ctx.physics.qpos[:, 3:7].clone()


@dataclass(frozen=True, kw_only=True)
class BaseLinearVelocityObservation(Observation):
    """Base linear velocity, (N, 3), m/s: world frame, or the base frame with ``in_robot_frame``.

    MuJoCo stores the free joint's linear velocity ``qvel[0:3]`` in the world frame; in the
    robot frame it is rotated by the inverse base orientation, ``R(q)^T v``, which is what a
    velocity-tracking policy (forward = base x) needs.
    """

    in_robot_frame: bool = False

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """World- or base-frame linear velocity."""
        v = ctx.physics.qvel[:, 0:3]
        if self.in_robot_frame:
            return quat_rotate(ctx.physics.qpos[:, 3:7], v, inverse=True)
        return v.clone()

    def mirror(self, model_mirror: ModelMirror) -> Mirror | None:
        """In the base frame a polar vector; in the world frame none (the plane turns with the base)."""
        return _base_frame_mirror(axial=False) if self.in_robot_frame else None


@dataclass(frozen=True, kw_only=True)
class BaseAngularVelocityObservation(Observation):
    """Base angular velocity, (N, 3), rad/s: world frame, or the base frame with ``in_robot_frame``.

    MuJoCo stores the free joint's angular velocity ``qvel[3:6]`` in the **base** frame
    already, so the robot-frame value is ``qvel[3:6]`` itself and the world-frame value is
    ``R(q) w``. ksim rotates ``qvel[3:6]`` by the inverse orientation for ``in_robot_frame=True``
    (double rotation) and returns the body-frame value for ``False``; both are fixed here.
    """

    in_robot_frame: bool = False

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """World- or base-frame angular velocity."""
        w = ctx.physics.qvel[:, 3:6]
        if self.in_robot_frame:
            return w.clone()
        return quat_rotate(ctx.physics.qpos[:, 3:7], w)

    def mirror(self, model_mirror: ModelMirror) -> Mirror | None:
        """In the base frame a axial vector; in the world frame none (the plane turns with the base)."""
        return _base_frame_mirror(axial=True) if self.in_robot_frame else None


@dataclass(frozen=True, kw_only=True)
class BaseLinearAccelerationObservation(Observation):
    """Base linear acceleration ``qacc[0:3]``, (N, 3), m/s², world frame (ksim)."""

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``qacc[0:3]``."""
        return ctx.physics.qacc[:, 0:3].clone()


@dataclass(frozen=True, kw_only=True)
class BaseAngularAccelerationObservation(Observation):
    """Base angular acceleration ``qacc[3:6]``, (N, 3), rad/s², base frame (as MuJoCo's free joint)."""

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``qacc[3:6]``."""
        return ctx.physics.qacc[:, 3:6].clone()

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """An axial vector in the base frame."""
        return _base_frame_mirror(axial=True)


@dataclass(frozen=True, kw_only=True)
class BaseHeightObservation(Observation):
    """Base height above the ground under the feet, (N, 1), m, as ksim's K-Bot example measures it.

    ``height = z_base - (min(z_left_foot, z_right_foot) - foot_offset)``: the foot bodies'
    origins sit ``foot_offset`` above their soles (K-Bot: ankle axis 0.058 m, ksim uses 0.06),
    so this is the base height above the lowest sole. It needs no terrain height map and stays
    right on stairs or slopes under the standing foot. K-Bot's home pose gives about 0.722 m.
    """

    base_body: int
    foot_left: int
    foot_right: int
    foot_offset: float = 0.06

    @classmethod
    def create(cls, model: mujoco.MjModel | None = None, *, physics_model: mujoco.MjModel | None = None,
               base_body_name: str, foot_left_body_name: str, foot_right_body_name: str,
               foot_offset: float = 0.06, noise: object = 0.0, bias: object = 0.0) -> BaseHeightObservation:
        """Resolve the base and foot body names."""
        m = _resolve_model(model, physics_model)
        base, left, right = _ids(m, mujoco.mjtObj.mjOBJ_BODY, (base_body_name, foot_left_body_name,
                                                                 foot_right_body_name))
        return cls(base_body=base, foot_left=left, foot_right=right, foot_offset=foot_offset, noise=noise, bias=bias)

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """Return base z minus the lowest foot's sole z, (N, 1)."""
        z = ctx.physics.xpos[:, :, 2]
        feet = _cols(z, (self.foot_left, self.foot_right)).amin(dim=1)
        return (z[:, self.base_body] - (feet - self.foot_offset)).unsqueeze(1)


# --- sensors -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SensorObservation(Observation):
    """One MuJoCo sensor's output, (N, sensor_dim), in the sensor's own frame and units.

    Named ``sensor_observation_<sensor_name>``, so several sensors can be observed at once.
    MuJoCo's ``<sensor noise=...>`` attribute is metadata only; set ``noise=`` here instead.
    """

    sensor_name: str
    sensor_idx_range: tuple[int, int]

    @classmethod
    def create(cls, model: mujoco.MjModel | None = None, *, physics_model: mujoco.MjModel | None = None,
               sensor_name: str, noise: object = 0.0, bias: object = 0.0) -> SensorObservation:
        """Resolve ``sensor_name`` to its ``sensordata`` columns."""
        sl = sensor_slice(_resolve_model(model, physics_model), sensor_name)
        return cls(sensor_name=sensor_name, sensor_idx_range=(sl.start, sl.stop), noise=noise, bias=bias)

    @property
    def name(self) -> str:
        """``sensor_observation_<sensor_name>``."""
        return f"{snake_case(type(self).__name__)}_{self.sensor_name}"

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``sensordata[:, start:end]``."""
        start, end = self.sensor_idx_range
        return ctx.physics.sensordata[:, start:end].clone()

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """The sensor's own mirror (:meth:`ktorch_sim.symmetry.ModelMirror.sensor`)."""
        return model_mirror.sensor(name_to_id(model_mirror.model, mujoco.mjtObj.mjOBJ_SENSOR, self.sensor_name))


@dataclass(frozen=True, kw_only=True)
class ProjectedGravityObservation(Observation):
    """Gravity as an IMU's orientation filter reports it, (N, 3), m/s², in the sensor's frame.

    Per control step, with ``q`` the ``framequat`` sensor's orientation (frame -> world):

    1. ``g_frame = R(q)^T g``, gravity (``model.opt.gravity``, normally (0, 0, -9.81)) expressed
       in the sensor frame. K-Bot's ``imu_site_quat`` frame is the torso frame, +90° about z
       from the base, so pitching 10° nose-down reads (0, -1.70, -9.66), not (1.70, 0, -9.66).
    2. ``g_biased = R_y(b_pitch) R_x(b_roll) g_frame``, a per-episode mounting/estimation tilt
       with ``b_roll, b_pitch ~ U(-imu_bias, imu_bias)`` rad, drawn at reset. (ksim also draws
       a yaw angle; a rotation about the frame's z-axis is not a tilt and is left out.)
    3. ``x_t = lag x_{t-1} + (1 - lag) g_biased``, an EMA with a per-episode
       ``lag ~ U(min_lag, max_lag)``, approximating the IMU Kalman filter's smoothing delay.

    The EMA state starts at the first unlagged value of each episode. (ksim starts it at zero,
    so its first readings after every reset shrink towards zero, as if the robot were falling
    freely; the policy then sees a transient that the real robot never produces.)

    Stateful: call :meth:`observe` exactly once per control step; each call advances the filter.
    """

    framequat_idx_range: tuple[int, int]
    gravity: tuple[float, float, float] = (0.0, 0.0, -9.81)
    min_lag: float = 0.0
    max_lag: float = 0.0
    imu_bias: float = 0.0

    def __post_init__(self) -> None:
        """Check the lag range (EMA factors in [0, 1)) and the bias bound."""
        if not (0.0 <= self.min_lag <= self.max_lag < 1.0):
            raise ValueError(f"ProjectedGravityObservation needs 0 <= min_lag <= max_lag < 1, "
                             f"got min_lag={self.min_lag}, max_lag={self.max_lag}")
        if self.imu_bias < 0.0:
            raise ValueError(f"ProjectedGravityObservation imu_bias must be >= 0 rad, got {self.imu_bias}")
        if self.framequat_idx_range[1] - self.framequat_idx_range[0] != 4:
            raise ValueError(f"framequat_idx_range {self.framequat_idx_range} must span the 4 columns of a framequat")

    @classmethod
    def create(cls, model: mujoco.MjModel | None = None, *, physics_model: mujoco.MjModel | None = None,
               framequat_name: str, min_lag: float = 0.0, max_lag: float = 0.0,
               lag_range: tuple[float, float] | None = None, imu_bias: float = 0.0,
               noise: object = 0.0, bias: object = 0.0) -> ProjectedGravityObservation:
        """Resolve the framequat sensor and read gravity from the model.

        ``lag_range=(min, max)`` is a shorthand for ``min_lag``/``max_lag`` (ksim's names).
        """
        m = _resolve_model(model, physics_model)
        sid = name_to_id(m, mujoco.mjtObj.mjOBJ_SENSOR, framequat_name)
        if m.sensor_type[sid] != mujoco.mjtSensor.mjSENS_FRAMEQUAT:
            raise ValueError(f"sensor {framequat_name!r} is not a framequat sensor")
        if lag_range is not None:
            min_lag, max_lag = (float(v) for v in lag_range)
        sl = sensor_slice(m, framequat_name)
        gravity = tuple(float(g) for g in m.opt.gravity)
        return cls(framequat_idx_range=(sl.start, sl.stop), gravity=gravity, min_lag=min_lag, max_lag=max_lag,
                   imu_bias=imu_bias, noise=noise, bias=bias)

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """EMA value (N, 3), lag (N, 1), tilt angles roll/pitch (N, 2), fresh flag (N,); all drawn."""
        n, dev = ctx.num_envs, ctx.device
        state = {
            "x": torch.zeros(n, 3, device=dev),
            "lag": torch.zeros(n, 1, device=dev),
            "tilt": torch.zeros(n, 2, device=dev),
            "fresh": torch.zeros(n, dtype=torch.bool, device=dev),
        }
        self.reset(state, torch.ones(n, dtype=torch.bool, device=dev), ctx)
        return state

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw a new lag and tilt for the masked worlds; their next reading is unlagged."""
        n, dev, gen = ctx.num_envs, ctx.device, ctx.generator
        masked_assign(state["lag"], mask, uniform(self.min_lag, self.max_lag, (n, 1), gen, dev))
        masked_assign(state["tilt"], mask, uniform(-self.imu_bias, self.imu_bias, (n, 2), gen, dev))
        state["fresh"] |= mask

    def unlagged(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """Compute steps 1-2: gravity in the sensor frame, tilted by the episode's bias, (N, 3)."""
        start, end = self.framequat_idx_range
        quat = ctx.physics.sensordata[:, start:end]
        g = _constant(self.gravity, str(quat.device))
        return tilt_xy(quat_rotate(quat, g, inverse=True), state["tilt"])

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """Advance the EMA one step and return its value, (N, 3)."""
        g = self.unlagged(ctx, state)
        lag = state["lag"]
        x = torch.where(state["fresh"].unsqueeze(1), g, lag * state["x"] + (1.0 - lag) * g)
        state["x"].copy_(x)
        state["fresh"].zero_()
        return x

    def mirror(self, model_mirror: ModelMirror) -> Mirror:
        """Gravity is a polar vector in the framequat sensor's frame."""
        m = model_mirror.model
        sensor = int(np.flatnonzero(m.sensor_adr == self.framequat_idx_range[0])[0])
        return model_mirror.object_frame(int(m.sensor_objtype[sensor]), int(m.sensor_objid[sensor]))


def tilt_xy(vec: torch.Tensor, tilt: torch.Tensor) -> torch.Tensor:
    """``R_y(pitch) R_x(roll) vec`` for ``vec`` (N, 3) and ``tilt`` = (roll, pitch) (N, 2), rad."""
    cr, sr = torch.cos(tilt[:, 0]), torch.sin(tilt[:, 0])
    cp, sp = torch.cos(tilt[:, 1]), torch.sin(tilt[:, 1])
    x, y, z = vec.unbind(dim=1)
    y1, z1 = cr * y - sr * z, sr * y + cr * z  # about x
    return torch.stack((cp * x + sp * z1, y1, -sp * x + cp * z1), dim=1)  # about y


# --- contacts ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ContactObservation(Observation):
    """Whether any of the listed geoms is in a penetrating contact, (N, 1), 1.0 or 0.0.

    Read from the engine's per-geom contact flags (``geom_contact``), so a listed geom counts
    when it touches anything. (ksim counts only contacts between two listed geoms; for the
    usual use, a few robot geoms against the floor, list only the robot geoms and the result
    is the same: nothing else collides with them.) ``contact_group``, when set, is appended
    to the name, so several groups can be observed.
    """

    geom_idxs: tuple[int, ...]
    contact_group: str | None = None

    @classmethod
    def create(cls, model: mujoco.MjModel | None = None, *, physics_model: mujoco.MjModel | None = None,
               geom_names: str | Iterable[str], contact_group: str | None = None, noise: object = 0.0,
               bias: object = 0.0) -> ContactObservation:
        """Resolve the geom names."""
        ids = _ids(_resolve_model(model, physics_model), mujoco.mjtObj.mjOBJ_GEOM, geom_names, "ContactObservation")
        return cls(geom_idxs=ids, contact_group=contact_group, noise=noise, bias=bias)

    @property
    def name(self) -> str:
        """``contact_observation`` or ``contact_observation_<contact_group>``."""
        base = snake_case(type(self).__name__)
        return base if self.contact_group is None else f"{base}_{self.contact_group}"

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """1.0 where any listed geom touches something."""
        return _any_contact(ctx.physics.geom_contact, self.geom_idxs).unsqueeze(1).float()


@dataclass(frozen=True, kw_only=True)
class FeetContactObservation(Observation):
    """Left and right foot contact, (N, 2), 1.0 or 0.0.

    A foot is in contact when any of its geoms is in a penetrating contact; when floor geoms
    are given, one of them must be in a contact in that world as well. The engine marks both
    geoms of every penetrating contact, so with a robot whose only colliding geoms are its feet
    (K-Bot) this is exactly "foot touches floor".
    """

    foot_left: tuple[int, ...]
    foot_right: tuple[int, ...]
    floor_geom: tuple[int, ...] = ()

    @classmethod
    def create(cls, model: mujoco.MjModel | None = None, *, physics_model: mujoco.MjModel | None = None,
               foot_left_geom_names: str | Iterable[str], foot_right_geom_names: str | Iterable[str],
               floor_geom_names: str | Iterable[str] = (), noise: object = 0.0,
               bias: object = 0.0) -> FeetContactObservation:
        """Resolve the foot and floor geom names."""
        m = _resolve_model(model, physics_model)
        geom = mujoco.mjtObj.mjOBJ_GEOM
        what = "FeetContactObservation foot geoms"
        return cls(foot_left=_ids(m, geom, foot_left_geom_names, what),
                   foot_right=_ids(m, geom, foot_right_geom_names, what),
                   floor_geom=_ids(m, geom, floor_geom_names), noise=noise, bias=bias)

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(left, right) contact flags."""
        contact = ctx.physics.geom_contact
        feet = torch.stack((_any_contact(contact, self.foot_left), _any_contact(contact, self.foot_right)), dim=1)
        if self.floor_geom:
            feet = feet & _any_contact(contact, self.floor_geom).unsqueeze(1)
        return feet.float()


# --- bodies and sites --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FeetPositionObservation(Observation):
    """World positions of the two feet, (N, 6) = (left xyz, right xyz), m.

    Foot bodies' origins (``xpos``) or, with ``use_sites``, two sites (``site_xpos``). ksim
    removed this observation in 0.2.10, but foot-height and air-time rewards need it.
    """

    foot_left: int
    foot_right: int
    use_sites: bool = False

    @classmethod
    def create(cls, model: mujoco.MjModel | None = None, *, physics_model: mujoco.MjModel | None = None,
               foot_left_body_name: str | None = None, foot_right_body_name: str | None = None,
               foot_left_site_name: str | None = None, foot_right_site_name: str | None = None,
               noise: object = 0.0, bias: object = 0.0) -> FeetPositionObservation:
        """Resolve two body names, or two site names."""
        m = _resolve_model(model, physics_model)
        bodies = (foot_left_body_name, foot_right_body_name)
        sites = (foot_left_site_name, foot_right_site_name)
        if all(b is not None for b in bodies) and all(s is None for s in sites):
            left, right = _ids(m, mujoco.mjtObj.mjOBJ_BODY, bodies)
            return cls(foot_left=left, foot_right=right, use_sites=False, noise=noise, bias=bias)
        if all(s is not None for s in sites) and all(b is None for b in bodies):
            left, right = _ids(m, mujoco.mjtObj.mjOBJ_SITE, sites)
            return cls(foot_left=left, foot_right=right, use_sites=True, noise=noise, bias=bias)
        raise ValueError("FeetPositionObservation.create needs foot_left_body_name and foot_right_body_name, "
                         "or foot_left_site_name and foot_right_site_name (not a mix)")

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """Left and right positions, concatenated."""
        pos = ctx.physics.site_xpos if self.use_sites else ctx.physics.xpos
        idx = index_tensor((self.foot_left, self.foot_right), pos.device)
        return pos.index_select(1, idx).reshape(ctx.num_envs, 6)


@dataclass(frozen=True, kw_only=True)
class BodyPositionObservation(Observation):
    """World positions of the listed bodies' frames, (N, 3 * num_bodies), m (``xpos`` rows)."""

    body_idxs: tuple[int, ...]

    @classmethod
    def create(cls, model: mujoco.MjModel | None = None, *, physics_model: mujoco.MjModel | None = None,
               body_names: str | Iterable[str], noise: object = 0.0, bias: object = 0.0) -> BodyPositionObservation:
        """Resolve the body names."""
        ids = _ids(_resolve_model(model, physics_model), mujoco.mjtObj.mjOBJ_BODY, body_names, cls.__name__)
        return cls(body_idxs=ids, noise=noise, bias=bias)

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``xpos[:, ids]`` flattened."""
        xpos = ctx.physics.xpos
        return xpos.index_select(1, index_tensor(self.body_idxs, xpos.device)).reshape(ctx.num_envs, -1)


@dataclass(frozen=True, kw_only=True)
class BodyVelocityObservation(Observation):
    """Com-based spatial velocities of the listed bodies, (N, 6 * num_bodies) (``cvel`` rows).

    Per body: angular (rad/s) then linear (m/s) velocity, world axes, linear part taken at the
    subtree CoM of the body's kinematic tree (MuJoCo's ``cvel`` convention, as ksim).
    """

    body_idxs: tuple[int, ...]

    @classmethod
    def create(cls, model: mujoco.MjModel | None = None, *, physics_model: mujoco.MjModel | None = None,
               body_names: str | Iterable[str], noise: object = 0.0, bias: object = 0.0) -> BodyVelocityObservation:
        """Resolve the body names."""
        ids = _ids(_resolve_model(model, physics_model), mujoco.mjtObj.mjOBJ_BODY, body_names, cls.__name__)
        return cls(body_idxs=ids, noise=noise, bias=bias)

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``cvel[:, ids]`` flattened."""
        cvel = ctx.physics.cvel
        return cvel.index_select(1, index_tensor(self.body_idxs, cvel.device)).reshape(ctx.num_envs, -1)


# --- noise and bias, applied by the environment ------------------------------------------------


def _level(ctx: EnvContext, like: torch.Tensor) -> torch.Tensor:
    """Return the curriculum level (N,) shaped to broadcast against ``like`` (N, ...)."""
    return ctx.curriculum_level.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def init_bias_state(obs: Observation, clean_shape: Sequence[int], ctx: EnvContext) -> torch.Tensor:
    """Draw a per-episode bias for every world, shaped like the clean observation (N, ...).

    ``clean_shape`` is the full shape of ``obs.observe(...)``, leading dimension N. The draw is
    the bias model's raw sample (:meth:`Bias.sample`); :func:`noisy` scales it by the curriculum
    level at use time, as ksim does. An observation without a bias gets zeros.
    """
    return as_bias(obs.bias).sample(tuple(clean_shape), ctx.generator, ctx.device)


def reset_bias(obs: Observation, bias: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
    """Redraw the bias of the worlds in ``mask`` (N,), in place; the others keep theirs."""
    if is_active(obs.bias):
        masked_assign(bias, mask, as_bias(obs.bias).sample(tuple(bias.shape), ctx.generator, ctx.device))


def noisy(obs: Observation, clean: torch.Tensor, bias: torch.Tensor, ctx: EnvContext) -> torch.Tensor:
    """Return ``noisy_<name>``: per-step noise, then the episode's bias, both scaled by curriculum.

    As in ksim, noise is applied first and the bias second, and both deviations from the clean
    value are multiplied by the curriculum level (N,): level 0 gives the clean value, level 1
    the full configured noise/bias. For additive and multiplicative models this equals ksim's
    "std (or magnitude) times level". Random numbers come from ``ctx.generator``.
    """
    x = clean
    if is_active(obs.noise):
        x = x + _level(ctx, x) * (as_noise(obs.noise)(x, ctx.generator) - x)
    if is_active(obs.bias):
        x = x + _level(ctx, x) * (as_bias(obs.bias).apply(x, bias) - x)
    return x if x is not clean else clean.clone()

