"""Actuator laws written into the MuJoCo model, so both engines evaluate them every substep.

ksim's MIT-style position control is ``tau = clip(kp (q* - q) - kd qd, +-limit)``, computed at
the physics rate with the target ``q*`` held over a control step. Computing it once per control
step instead makes K-Bot's light wrists diverge (kd dt / I ~ 6 > 2). MuJoCo's ``general``
actuator with a fixed gain and an affine bias computes exactly this force in C (and MuJoCo Warp
in its kernels) at every substep:

    force = gainprm[0] * ctrl + biasprm[1] * q + biasprm[2] * qd,   clipped to forcerange
          = kp * q* - kp * q - kd * qd

with ``ctrl = q*``. The joint's ``actuatorfrcrange`` (the motor's peak torque) still clamps the
result afterwards, as on the real motor. With the ``implicitfast`` integrator MuJoCo also
treats the ``-kd qd`` term implicitly, which keeps stiff PD stable at ksim's timesteps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np
import torch

from ktorch_sim.actuator_lookup import (  # noqa: F401 - re-exported: ktorch_sim.actuators.actuator_label ...
    actuator_ids,
    actuator_label,
    actuator_labels,
    joint_actuator_id,
    joint_actuator_ids,
)
from ktorch_sim.components.base import index_tensor
from ktorch_sim.robot_metadata import RobotMetadata


def configure_pd_actuators(
    model: mujoco.MjModel,
    ids: Sequence[int] | np.ndarray,
    kp: Sequence[float] | np.ndarray,
    kd: Sequence[float] | np.ndarray,
    torque_limit: Sequence[float] | np.ndarray,
) -> None:
    """Make actuators ``ids`` MIT-style PD position actuators (in place).

    Each actuator must drive one joint with gear 1: its ``ctrl`` becomes the joint-position
    target in radians. ``kp`` [N m/rad], ``kd`` [N m s/rad] and ``torque_limit`` [N m] are per
    actuator.
    """
    ids = np.asarray(ids, dtype=np.int64)
    kp, kd, limit = (np.broadcast_to(np.asarray(v, dtype=np.float64), ids.shape) for v in (kp, kd, torque_limit))
    for i in ids:
        if model.actuator_trntype[i] != mujoco.mjtTrn.mjTRN_JOINT or model.actuator_gear[i, 0] != 1.0:
            raise ValueError(f"actuator {actuator_label(model, int(i))!r} must drive a joint with gear 1 to be a "
                             "PD actuator")
    if np.any(kp < 0) or np.any(kd < 0) or np.any(limit <= 0):
        raise ValueError("PD gains must be >= 0 and torque limits > 0")
    model.actuator_gaintype[ids] = mujoco.mjtGain.mjGAIN_FIXED
    model.actuator_gainprm[ids] = 0.0
    model.actuator_gainprm[ids, 0] = kp
    model.actuator_biastype[ids] = mujoco.mjtBias.mjBIAS_AFFINE
    model.actuator_biasprm[ids] = 0.0
    model.actuator_biasprm[ids, 1] = -kp
    model.actuator_biasprm[ids, 2] = -kd
    model.actuator_ctrllimited[ids] = 0
    model.actuator_forcelimited[ids] = 1
    model.actuator_forcerange[ids, 0] = -limit
    model.actuator_forcerange[ids, 1] = limit


def pd_torque(target: torch.Tensor, q: torch.Tensor, qd: torch.Tensor, kp: torch.Tensor, kd: torch.Tensor,
              torque_limit: torch.Tensor) -> torch.Tensor:
    """The MIT PD law in torch, ``clip(kp (target - q) - kd qd, +-limit)``; a reference for tests."""
    return torch.clamp(kp * (target - q) - kd * qd, -torque_limit, torque_limit)


# --- actuator components: how a policy's action becomes the engine's ctrl ----------------------


@dataclass(frozen=True, kw_only=True)
class Actuators:
    """Maps actions (N, A), in action order, to ``ctrl`` (N, nu), in the model's actuator order."""

    def configure(self, model: mujoco.MjModel) -> None:
        """Write the actuator law into ``model`` before engines are built (no-op by default)."""

    @property
    def num_actions(self) -> int:
        """Action dimension A."""
        raise NotImplementedError

    def init_state(self, num_envs: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Per-episode actuator state (biases), [N, ...] tensors."""
        return {}

    def reset(self, state: dict[str, torch.Tensor], mask: torch.Tensor, generator: torch.Generator) -> None:
        """Redraw per-episode state for the worlds in ``mask``."""

    def ctrl(self, action: torch.Tensor, state: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """The engine ``ctrl`` (N, nu) for ``action`` (N, A)."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class TorqueActuators(Actuators):
    """ctrl = action (+ Gaussian noise of std ``noise``): the model's own motors apply it as torque.

    Attributes:
        actuator_ids: the actuator driven by each action dimension, in action order.
        noise: std of per-step additive action noise, N m.
    """

    actuator_ids: tuple[int, ...]
    num_actuators: int
    noise: float = 0.0

    @classmethod
    def create(cls, model: mujoco.MjModel, actuator_names: Sequence[str] | None = None, noise: float = 0.0
               ) -> TorqueActuators:
        """Torque control of the named actuators (all, in model order, by default).

        Names are actuator names or, for unnamed actuators, their labels (:func:`actuator_label`:
        the joint's name or ``actuator_<i>``); the default needs no names at all.
        """
        ids = range(model.nu) if actuator_names is None else actuator_ids(model, list(actuator_names))
        return cls(actuator_ids=tuple(int(i) for i in ids), num_actuators=model.nu, noise=noise)

    @property
    def num_actions(self) -> int:
        """One action per driven actuator."""
        return len(self.actuator_ids)

    def ctrl(self, action: torch.Tensor, state: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """Scatter the (noisy) action into actuator order."""
        if self.noise:
            action = action + self.noise * torch.randn(action.shape, generator=generator, device=action.device)
        return _scatter_actions(action, self.actuator_ids, self.num_actuators)


@dataclass(frozen=True, kw_only=True)
class PositionActuators(Actuators):
    """ksim's MIT-style PD position control, evaluated by MuJoCo at every physics substep.

    The action is a joint-position target in radians (ksim's K-Bot policies add the home pose
    inside the actor). ``target = action * action_scale + action_bias (+ noise)`` and the torque
    is ``clip(kp*kp_scale (target - q) - kd*kd_scale qd, +-soft_torque_limit*torque_limit_scale)``,
    then MuJoCo clips it again to the motor's peak (the joint's ``actuatorfrcrange``).

    Unlike ksim, which assumes the action order equals the joint order (its quirk #14), the
    action order is explicit: ``joint_names[i]`` is driven by action ``i`` through the actuator
    named ``<joint>_ctrl``, or, in a model without that name, the one actuator that drives the
    joint (:func:`joint_actuator_id`; unnamed actuators work).

    Attributes:
        joint_names: joints in action order.
        actuator_ids: actuator index of each action dimension.
        num_actuators: the model's nu.
        kp, kd, soft_torque_limit: per action dimension, from the robot metadata.
        kp_scale, kd_scale, torque_limit_scale: multipliers (ksim K-Bot: 1.4, 1.4, 1.5).
        action_scale: multiplies the action before it becomes a target.
        action_noise: std of per-step additive target noise, rad.
        action_bias: std of a per-episode, per-joint target bias, rad (drawn at reset).
    """

    joint_names: tuple[str, ...]
    actuator_ids: tuple[int, ...]
    num_actuators: int
    kp: tuple[float, ...]
    kd: tuple[float, ...]
    soft_torque_limit: tuple[float, ...]
    kp_scale: float = 1.0
    kd_scale: float = 1.0
    torque_limit_scale: float = 1.0
    action_scale: float = 1.0
    action_noise: float = 0.0
    action_bias: float = 0.0

    @classmethod
    def create(cls, model: mujoco.MjModel, metadata: RobotMetadata, joint_names: Sequence[str] | None = None,
               **kwargs: float) -> PositionActuators:
        """PD actuators for ``joint_names`` (default: the metadata's joints in file order)."""
        names = tuple(joint_names) if joint_names is not None else metadata.joint_names
        joints = [metadata.by_name(n) for n in names]
        ids = joint_actuator_ids(model, names)
        return cls(joint_names=names, actuator_ids=tuple(int(i) for i in ids), num_actuators=model.nu,
                   kp=tuple(j.kp for j in joints), kd=tuple(j.kd for j in joints),
                   soft_torque_limit=tuple(j.soft_torque_limit for j in joints), **kwargs)

    @property
    def num_actions(self) -> int:
        """One action per joint."""
        return len(self.joint_names)

    def configure(self, model: mujoco.MjModel) -> None:
        """Write the PD law with the scaled gains and torque limits into ``model``."""
        configure_pd_actuators(model, self.actuator_ids, np.asarray(self.kp) * self.kp_scale,
                               np.asarray(self.kd) * self.kd_scale,
                               np.asarray(self.soft_torque_limit) * self.torque_limit_scale)

    def init_state(self, num_envs: int, device: torch.device) -> dict[str, torch.Tensor]:
        """The per-episode target bias."""
        return {"action_bias": torch.zeros(num_envs, self.num_actions, device=device)}

    def reset(self, state: dict[str, torch.Tensor], mask: torch.Tensor, generator: torch.Generator) -> None:
        """Draw a new target bias for new episodes."""
        if self.action_bias:
            bias = state["action_bias"]
            fresh = self.action_bias * torch.randn(bias.shape, generator=generator, device=bias.device)
            bias.copy_(torch.where(mask[:, None], fresh, bias))

    def ctrl(self, action: torch.Tensor, state: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """Joint-position targets in actuator order."""
        target = action * self.action_scale + state["action_bias"]
        if self.action_noise:
            target = target + self.action_noise * torch.randn(target.shape, generator=generator, device=target.device)
        return _scatter_actions(target, self.actuator_ids, self.num_actuators)


MITPositionActuators = PositionActuators
"""ksim's earlier name for :class:`PositionActuators` (used by the K-Scale humanoid benchmark)."""


def _scatter_actions(values: torch.Tensor, ids: tuple[int, ...], num_actuators: int) -> torch.Tensor:
    """Place action-ordered columns at their actuator indices (identity when already in order)."""
    if ids == tuple(range(num_actuators)):
        return values
    out = torch.zeros(values.shape[0], num_actuators, device=values.device, dtype=values.dtype)
    return out.index_copy_(1, index_tensor(ids, values.device), values)
