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

import mujoco
import numpy as np
import torch


def actuator_ids(model: mujoco.MjModel, names: Sequence[str]) -> np.ndarray:
    """Indices of actuators by name, with one clear error naming a missing one."""
    ids = []
    for name in names:
        idx = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name)
        if idx < 0:
            known = [model.actuator(i).name for i in range(model.nu)]
            raise ValueError(f"actuator {name!r} is not in the model; actuators are {known}")
        ids.append(idx)
    return np.asarray(ids, dtype=np.int64)


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
            raise ValueError(f"actuator {model.actuator(i).name!r} must drive a joint with gear 1 to be a PD actuator")
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
