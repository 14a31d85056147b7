"""The robot's base: which body it is and its position, orientation and velocity, for any model.

A legged robot on a free joint keeps its base pose in ``qpos`` (xyz, then the wxyz quaternion)
and its velocity in ``qvel`` (world linear, then body-frame angular). Many MuJoCo models have no
free joint: a planar walker's root hangs on slide-x, slide-z and hinge-y joints, a cart on one
slide. Every model has a body below the world, though, and the engine keeps every body's world
pose (``xpos``, ``xquat``) and velocity (``cvel``). So the base is a body (:func:`base_body`):

* a named one, else the first body below the world with a free joint, else the first body
  below the world that has any joint, else the first body below the world;
* with a free joint, its state is read from ``qpos``/``qvel`` (the same numbers as before this
  module existed, current after a step);
* without one, from ``xpos``/``xquat``/``cvel``, which after :meth:`Engine.step` are one physics
  substep (``dt``) older than ``qpos`` (see :mod:`ktorch_sim.engines.base`), and exact after a
  reset.

The heading (yaw) is the rotation about world z that takes world x to the projection of the
body's x axis, ``atan2(2 (wz + xy), 1 - 2 (y^2 + z^2))``: 0 for a planar walker that leans
forward less than 90 degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
import torch

from ktorch_sim.components.base import name_to_id
from ktorch_sim.engines.base import PhysicsState
from ktorch_sim.utils.rotations import heading_xy, quat_rotate, quat_yaw

__all__ = [
    "BaseBody",
    "base_angular_velocity",
    "base_body",
    "base_linear_velocity",
    "base_position",
    "base_quat",
    "heading_xy",
    "quat_yaw",
]


@dataclass(frozen=True)
class BaseBody:
    """The body called the robot's base and where its state lives.

    Attributes:
        body: body id.
        name: the body's name, or ``body_<id>`` when it has none.
        root: the body at the root of its kinematic tree (whose subtree centre of mass ``cvel`` uses).
        qpos_adr: qpos address of the body's free joint (xyz, then wxyz), or None without one.
        dof_adr: qvel address of that free joint (world linear, then body angular), or None.

    """

    body: int
    name: str
    root: int
    qpos_adr: int | None = None
    dof_adr: int | None = None

    @property
    def has_free_joint(self) -> bool:
        """True when the base floats on a free joint (its pose is in qpos)."""
        return self.qpos_adr is not None


def base_body(model: mujoco.MjModel, body_name: str | None = None) -> BaseBody:
    """Return the base: body ``body_name``, else the first body below the world (see the module docstring).

    Raises ValueError with one line for an unknown name or a model without any body.
    """
    if body_name is not None:
        body = name_to_id(model, mujoco.mjtObj.mjOBJ_BODY, body_name)
    else:
        if model.nbody < 2:
            raise ValueError("the model has no body below the world, so it has no base to measure")
        top = [int(b) for b in np.flatnonzero(np.asarray(model.body_parentid)[1:] == 0) + 1]
        free = [b for b in top if _free_joint(model, b) is not None]
        moving = [b for b in top if model.body_jntnum[b] > 0]
        body = (free or moving or top)[0]
    name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body) or f"body_{body}"
    root, joint = int(model.body_rootid[body]), _free_joint(model, body)
    if joint is None:
        return BaseBody(body=body, name=name, root=root)
    return BaseBody(body=body, name=name, root=root, qpos_adr=int(model.jnt_qposadr[joint]),
                    dof_adr=int(model.jnt_dofadr[joint]))


def _free_joint(model: mujoco.MjModel, body: int) -> int | None:
    """Return the id of ``body``'s free joint, or None."""
    start = int(model.body_jntadr[body])
    for joint in range(start, start + int(model.body_jntnum[body])):
        if int(model.jnt_type[joint]) == mujoco.mjtJoint.mjJNT_FREE:
            return joint
    return None


def base_position(physics: PhysicsState, base: BaseBody) -> torch.Tensor:
    """World position of the base (N, 3), m: the free joint's xyz, else the body's ``xpos``."""
    if base.qpos_adr is not None:
        return physics.qpos[:, base.qpos_adr:base.qpos_adr + 3]
    return physics.xpos[:, base.body]


def base_quat(physics: PhysicsState, base: BaseBody) -> torch.Tensor:
    """World orientation of the base (N, 4), wxyz: the free joint's quaternion (as stored), else ``xquat``."""
    if base.qpos_adr is not None:
        return physics.qpos[:, base.qpos_adr + 3:base.qpos_adr + 7]
    return physics.xquat[:, base.body]


def base_linear_velocity(physics: PhysicsState, base: BaseBody) -> torch.Tensor:
    """World-frame velocity of the base's origin (N, 3), m/s.

    The free joint's linear velocity, else from ``cvel`` (angular w, linear v at the subtree
    centre of mass c of the body's tree): ``v + w x (xpos - c)``, what ``mj_objectVelocity`` gives.
    """
    if base.dof_adr is not None:
        return physics.qvel[:, base.dof_adr:base.dof_adr + 3]
    cvel = physics.cvel[:, base.body]
    lever = physics.xpos[:, base.body] - physics.subtree_com[:, base.root]
    return cvel[:, 3:6] + torch.linalg.cross(cvel[:, 0:3], lever, dim=-1)


def base_angular_velocity(physics: PhysicsState, base: BaseBody) -> torch.Tensor:
    """World-frame angular velocity of the base (N, 3), rad/s."""
    if base.dof_adr is not None:
        return quat_rotate(base_quat(physics, base), physics.qvel[:, base.dof_adr + 3:base.dof_adr + 6])
    return physics.cvel[:, base.body, 0:3]


