"""Left-right symmetry of a robot model: how joints, actuators and sensor frames map onto their mirror images.

A humanoid is (nearly) symmetric about the sagittal plane: the left knee bending by q is the mirror
image of the right knee bending by +-q. PPO can use that (``ppo.symmetry``, rsl_rl's data
augmentation): every transition the rollout collected also teaches the policy its mirror image.
This module finds the mirror map from the model's geometry alone, so no joint list per robot is
written by hand:

- The mirror plane is the x-z plane of the root body (the free joint's body) at ``qpos0``.
- A hinge or slide joint's partner is the joint whose anchor and axis, at ``qpos0``, are the
  mirror image of its own (a joint on the plane, such as a waist yaw, is its own partner). The
  sign says whether ``q`` maps to ``+q`` or ``-q`` of the partner: a hinge axis is a
  pseudo-vector, so it mirrors as ``-S u`` (``S`` the reflection), a slide axis as ``S u``.
- A vector measured in a frame on the plane (an IMU site) mirrors by ``F = R^T S R`` (a polar
  vector: acceleration, velocity, force, gravity) or ``-F`` (an axial one: angular velocity,
  torque); the frame must be aligned with the plane, so that ``F`` only permutes and flips axes.

A :class:`Mirror` is that map on a vector: ``x[..., index] * sign``. Models that are not symmetric
within ``tolerance`` metres get an error naming the first joint or frame without a mirror image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import mujoco
import numpy as np
import torch

_SCALAR_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
_POLAR_SENSORS = {int(mujoco.mjtSensor.mjSENS_ACCELEROMETER), int(mujoco.mjtSensor.mjSENS_VELOCIMETER),
                  int(mujoco.mjtSensor.mjSENS_FORCE)}
_AXIAL_SENSORS = {int(mujoco.mjtSensor.mjSENS_GYRO), int(mujoco.mjtSensor.mjSENS_TORQUE)}
_JOINT_SENSORS = {int(mujoco.mjtSensor.mjSENS_JOINTPOS), int(mujoco.mjtSensor.mjSENS_JOINTVEL)}


class SymmetryError(ValueError):
    """The model, or a component's output, has no mirror image (names the joint, frame or component)."""


@dataclass(frozen=True)
class Mirror:
    """A signed permutation of a vector's last axis: ``mirror(x)[..., i] = sign[i] * x[..., index[i]]``."""

    index: tuple[int, ...]
    sign: tuple[float, ...]

    def __post_init__(self) -> None:
        """Check that ``index`` is a permutation and ``sign`` holds one +-1 per entry."""
        if sorted(self.index) != list(range(len(self.index))):
            raise SymmetryError(f"Mirror index {self.index} is not a permutation of 0..{len(self.index) - 1}")
        if len(self.sign) != len(self.index) or any(s not in (-1.0, 1.0) for s in self.sign):
            raise SymmetryError(f"Mirror sign {self.sign} must hold one +-1 per index entry ({len(self.index)})")

    @classmethod
    def identity(cls, size: int) -> Mirror:
        """The map that leaves ``size`` entries as they are (a scalar on the plane: time, height)."""
        return cls(tuple(range(size)), (1.0,) * size)

    @classmethod
    def concat(cls, mirrors: list[Mirror]) -> Mirror:
        """The map on the concatenation of the mirrors' vectors, each acting on its own slice."""
        index: list[int] = []
        sign: list[float] = []
        offset = 0
        for m in mirrors:
            index += [offset + i for i in m.index]
            sign += list(m.sign)
            offset += len(m)
        return cls(tuple(index), tuple(sign))

    def __len__(self) -> int:
        """The vector's size."""
        return len(self.index)

    @cached_property
    def _tensors(self) -> dict[torch.device, tuple[torch.Tensor, torch.Tensor]]:
        return {}

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The mirror image of ``x`` [..., len(self)] (a new tensor)."""
        if x.shape[-1] != len(self):
            raise SymmetryError(f"Mirror of size {len(self)} applied to a tensor of shape {tuple(x.shape)}")
        cached = self._tensors.get(x.device)
        if cached is None:
            cached = self._tensors[x.device] = (torch.tensor(self.index, device=x.device),
                                                torch.tensor(self.sign, dtype=torch.float32, device=x.device))
        index, sign = cached
        return x.index_select(-1, index) * sign.to(x.dtype)


class ModelMirror:
    """The mirror map of one MuJoCo model (see the module docstring), computed at ``qpos0``."""

    def __init__(self, model: mujoco.MjModel, tolerance: float = 0.01) -> None:
        """Locate the mirror plane and every scalar joint's partner; ``tolerance`` in metres (and 1 % on axes)."""
        self.model = model
        self.tolerance = tolerance
        data = mujoco.MjData(model)
        mujoco.mj_kinematics(model, data)
        self._data = data
        free = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
        root = int(model.jnt_bodyid[free[0]]) if free else 0
        self.origin = data.xpos[root].copy()
        base = data.xmat[root].reshape(3, 3)
        self.reflection = base @ np.diag([1.0, -1.0, 1.0]) @ base.T  # S, in world coordinates
        self._partners: dict[int, tuple[int, float]] = {}

    def partner(self, joint: int) -> tuple[int, float]:
        """The mirror joint of hinge/slide ``joint`` and the sign that maps its coordinate onto the partner's.

        A SymmetryError when there is none within the tolerance, or when the partner's own partner is
        another joint (the match is then not a mirror symmetry).
        """
        hit = self._partners.get(joint)
        if hit is None:
            if int(self.model.jnt_type[joint]) not in _SCALAR_JOINTS:
                raise SymmetryError(f"joint {self._name(joint)!r} is not a hinge or slide joint; only those mirror "
                                    "one coordinate onto another")
            hit = self._find_partner(joint)
            back = self._find_partner(hit[0])[0]
            if back != joint:
                raise SymmetryError(f"joint {self._name(joint)!r} mirrors onto {self._name(hit[0])!r}, which mirrors "
                                    f"onto {self._name(back)!r}: the model is not left-right symmetric about its root "
                                    "body's x-z plane")
            self._partners[joint] = hit
        return hit

    # --- joints and actuators ---------------------------------------------------------------

    def _name(self, joint: int) -> str:
        return self.model.joint(joint).name or f"#{joint}"

    def _reflect_point(self, x: np.ndarray) -> np.ndarray:
        return self.origin + self.reflection @ (x - self.origin)

    def _find_partner(self, j: int) -> tuple[int, float]:
        d, m = self._data, self.model
        hinge = int(m.jnt_type[j]) == mujoco.mjtJoint.mjJNT_HINGE
        axis = self.reflection @ d.xaxis[j] * (-1.0 if hinge else 1.0)
        anchor = self._reflect_point(d.xanchor[j])
        best, best_distance = None, np.inf
        for k in range(m.njnt):
            if int(m.jnt_type[k]) != int(m.jnt_type[j]) or abs(float(axis @ d.xaxis[k])) < 0.99:
                continue
            distance = float(np.linalg.norm(anchor - d.xanchor[k]))
            if distance < best_distance:
                best, best_distance = k, distance
        if best is None or best_distance > self.tolerance:
            raise SymmetryError(f"joint {self._name(j)!r} has no mirror image: no joint's anchor lies within "
                                f"{self.tolerance} m of its reflection about the root body's x-z plane with a "
                                "parallel axis (the model is not left-right symmetric)")
        return best, float(np.sign(axis @ d.xaxis[best]))

    def joints(self, joint_ids: list[int] | tuple[int, ...]) -> Mirror:
        """The mirror of a vector with one entry per joint of ``joint_ids`` (e.g. joint angles, in that order)."""
        position = {j: i for i, j in enumerate(joint_ids)}
        index, sign = [], []
        for j in joint_ids:
            partner, s = self.partner(int(j))
            if partner not in position:
                raise SymmetryError(f"joint {self._name(int(j))!r}'s mirror image {self._name(partner)!r} is not "
                                    "among the mirrored joints")
            index.append(position[partner])
            sign.append(s)
        return Mirror(tuple(index), tuple(sign))

    def actuators(self, actuator_ids: list[int] | tuple[int, ...]) -> Mirror:
        """The mirror of a vector with one entry per actuator of ``actuator_ids`` (ctrl, forces, actions).

        Each actuator must drive one joint (a joint transmission); its partner is the actuator of
        the partner joint, with the joint's sign times the ratio of the two gears' signs.
        """
        m = self.model
        joint_of = {}
        for a in actuator_ids:
            if int(m.actuator_trntype[a]) != mujoco.mjtTrn.mjTRN_JOINT:
                raise SymmetryError(f"actuator {m.actuator(int(a)).name or int(a)!r} does not drive a joint; "
                                    "only joint actuators have a mirror image here")
            joint_of[int(m.actuator_trnid[a, 0])] = int(a)
        position = {int(a): i for i, a in enumerate(actuator_ids)}
        index, sign = [], []
        for a in actuator_ids:
            joint = int(m.actuator_trnid[a, 0])
            partner, s = self.partner(joint)
            if partner not in joint_of:
                raise SymmetryError(f"actuator {m.actuator(int(a)).name or int(a)!r}: the mirror image of its joint "
                                    f"{self._name(joint)!r} has no actuator among the mirrored ones")
            other = joint_of[partner]
            index.append(position[other])
            sign.append(s * float(np.sign(m.actuator_gear[a, 0]) * np.sign(m.actuator_gear[other, 0])))
        return Mirror(tuple(index), tuple(sign))

    # --- frames and sensors -----------------------------------------------------------------

    def frame(self, position: np.ndarray, rotation: np.ndarray, what: str, axial: bool = False) -> Mirror:
        """The mirror of a 3-vector measured in a frame at ``position`` with ``rotation`` (world, at ``qpos0``).

        ``axial``: an angular velocity or torque (flips with the reflection's determinant). The frame's
        origin must lie on the plane and its axes along or across it, else a SymmetryError naming ``what``.
        """
        if np.linalg.norm(self._reflect_point(position) - position) > self.tolerance:
            raise SymmetryError(f"{what} is not on the mirror plane (the root body's x-z plane), so a vector it "
                                "measures has no mirror image in the same frame")
        f = rotation.T @ self.reflection @ rotation * (-1.0 if axial else 1.0)
        index = np.abs(f).argmax(axis=1)
        signed = np.rint(f)
        if not np.allclose(f, signed, atol=0.01) or sorted(index.tolist()) != [0, 1, 2]:
            raise SymmetryError(f"{what}'s axes are neither along nor across the mirror plane, so a vector it "
                                "measures does not mirror onto itself by flipping axes")
        return Mirror(tuple(int(i) for i in index), tuple(float(signed[r, i]) for r, i in enumerate(index)))

    def object_frame(self, objtype: int, objid: int, axial: bool = False) -> Mirror:
        """:meth:`frame` of a site, body or geom (``mjtObj``), e.g. the object a sensor is attached to."""
        d = self._data
        if objtype == mujoco.mjtObj.mjOBJ_SITE:
            pos, mat, kind = d.site_xpos[objid], d.site_xmat[objid], "site"
        elif objtype in (mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_XBODY):
            pos, mat, kind = d.xpos[objid], d.xmat[objid], "body"
        elif objtype == mujoco.mjtObj.mjOBJ_GEOM:
            pos, mat, kind = d.geom_xpos[objid], d.geom_xmat[objid], "geom"
        else:
            raise SymmetryError(f"object type {mujoco.mjtObj(objtype).name} has no frame to mirror in")
        name = mujoco.mj_id2name(self.model, objtype, objid) or f"#{objid}"
        return self.frame(pos, mat.reshape(3, 3), f"{kind} {name!r}", axial)

    def sensor(self, sensor_id: int) -> Mirror:
        """The mirror of one sensor's output: a polar or axial vector in a site frame, or a joint's scalar."""
        m = self.model
        kind, obj = int(m.sensor_type[sensor_id]), int(m.sensor_objid[sensor_id])
        name = m.sensor(sensor_id).name or f"#{sensor_id}"
        if kind in _POLAR_SENSORS or kind in _AXIAL_SENSORS:
            return self.object_frame(int(m.sensor_objtype[sensor_id]), obj, axial=kind in _AXIAL_SENSORS)
        if kind in _JOINT_SENSORS:
            partner, s = self.partner(obj)
            if partner == obj:
                return Mirror((0,), (s,))
            raise SymmetryError(f"sensor {name!r} measures joint {self._name(obj)!r}, whose mirror image is another "
                                "joint: a sensor that swaps with another has no mirror image on its own")
        raise SymmetryError(f"sensor {name!r} ({mujoco.mjtSensor(kind).name}) has no mirror image here (supported: "
                            "accelerometer, velocimeter, force, gyro, torque in a frame on the plane; jointpos and "
                            "jointvel of a joint on the plane)")
