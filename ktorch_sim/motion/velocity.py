"""Velocities of a clip by finite differences, with wrap-around for cyclic clips.

A clip's frames are MuJoCo qpos vectors of a floating-base robot (base position, base quaternion
w, x, y, z, joint angles); the velocities follow MuJoCo's qvel convention: base linear velocity
in the world frame, base angular velocity in the base (body) frame, then joint velocities.

A *cyclic* clip repeats after its last frame, moved by a planar rigid motion of the whole robot
(the *wrap transform* ``(dx, dy, dyaw)``: rotate by ``dyaw`` about the world z axis through the
origin, then translate by ``(dx, dy)``): the frame after the last one is ``wrap_frame(qpos[0],
transform)``, and the frame before the first is the last one moved by the inverse transform. A
walking clip of whole gait periods is cyclic with the distance and the turn of those periods as
its transform; a standing clip has the transform ``(0, 0, 0)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["finite_difference_qvel", "looped_frame", "unwrap_frame", "wrap_frame", "yaw_quaternion"]

BASE_POS = slice(0, 3)
BASE_QUAT = slice(3, 7)
JOINTS_QPOS = 7
JOINTS_QVEL = 6


def yaw_quaternion(yaw: float) -> np.ndarray:
    """Return the unit quaternion (w, x, y, z) of a rotation by ``yaw`` rad about the world z axis."""
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of (w, x, y, z) quaternions (the rotation b, then a)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw])


def _quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Inverse rotation of a unit quaternion."""
    return np.array([q[0], -q[1], -q[2], -q[3]])


def _rotation_vector(q: np.ndarray) -> np.ndarray:
    """Axis times angle (rad, in [0, pi]) of unit quaternion ``q``."""
    q = q if q[0] >= 0 else -q
    sin_half = float(np.linalg.norm(q[1:]))
    if sin_half < 1e-12:
        return 2.0 * q[1:]
    angle = 2.0 * math.atan2(sin_half, float(q[0]))
    return q[1:] / sin_half * angle


def wrap_frame(frame: np.ndarray, transform: Sequence[float]) -> np.ndarray:
    """Return qpos ``frame`` moved by the planar rigid ``transform`` = (dx, dy, dyaw) (module docstring)."""
    dx, dy, dyaw = (float(v) for v in transform)
    out = np.array(frame, dtype=np.float64)
    c, s = math.cos(dyaw), math.sin(dyaw)
    x, y = out[0], out[1]
    out[0], out[1] = c * x - s * y + dx, s * x + c * y + dy
    out[BASE_QUAT] = quat_multiply(yaw_quaternion(dyaw), out[BASE_QUAT])
    return out


def unwrap_frame(frame: np.ndarray, transform: Sequence[float]) -> np.ndarray:
    """Inverse of :func:`wrap_frame`: move ``frame`` back by ``transform``."""
    dx, dy, dyaw = (float(v) for v in transform)
    out = np.array(frame, dtype=np.float64)
    c, s = math.cos(-dyaw), math.sin(-dyaw)
    x, y = out[0] - dx, out[1] - dy
    out[0], out[1] = c * x - s * y, s * x + c * y
    out[BASE_QUAT] = quat_multiply(yaw_quaternion(-dyaw), out[BASE_QUAT])
    return out


def looped_frame(qpos: np.ndarray, k: int, wrap: Sequence[float] | None) -> np.ndarray:
    """Return frame ``k >= 0`` of a clip played on and on.

    A cyclic clip (``wrap`` given) repeats, moved by ``wrap`` each time round; a clip that is not
    cyclic holds its last frame.
    """
    frames = qpos.shape[0]
    if wrap is None:
        return np.array(qpos[min(k, frames - 1)], dtype=np.float64)
    laps, index = divmod(k, frames)
    frame = np.array(qpos[index], dtype=np.float64)
    for _ in range(laps):
        frame = wrap_frame(frame, wrap)
    return frame


def _difference(q0: np.ndarray, q1: np.ndarray, dt: float) -> np.ndarray:
    """Return the qvel that takes qpos ``q0`` to ``q1`` in ``dt`` s (``mj_differentiatePos`` for a free base)."""
    qvel = np.empty(q0.shape[0] - 1)
    qvel[0:3] = (q1[BASE_POS] - q0[BASE_POS]) / dt
    relative = quat_multiply(_quat_conjugate(q0[BASE_QUAT]), q1[BASE_QUAT])  # body frame of q0
    qvel[3:6] = _rotation_vector(relative / np.linalg.norm(relative)) / dt
    qvel[JOINTS_QVEL:] = (q1[JOINTS_QPOS:] - q0[JOINTS_QPOS:]) / dt
    return qvel


def finite_difference_qvel(qpos: np.ndarray, fps: float, wrap: Sequence[float] | None = None) -> np.ndarray:
    """Return the qvel [T, nq - 1] of the qpos frames [T, nq] sampled at ``fps``, by central differences.

    With ``wrap`` (a cyclic clip's transform, module docstring) the first and the last frame
    use the wrapped neighbours, so the velocities are periodic; without it they use one-sided
    differences. Needs at least 2 frames.
    """
    qpos = np.asarray(qpos, dtype=np.float64)
    frames, dt = qpos.shape[0], 1.0 / fps
    if frames < 2:
        raise ValueError(f"finite differences need at least 2 frames, got {frames}")
    if wrap is not None:
        padded = np.concatenate([unwrap_frame(qpos[-1], wrap)[None], qpos, wrap_frame(qpos[0], wrap)[None]])
        return np.stack([_difference(padded[k], padded[k + 2], 2 * dt) for k in range(frames)])
    qvel = [_difference(qpos[0], qpos[1], dt)]
    qvel += [_difference(qpos[k - 1], qpos[k + 1], 2 * dt) for k in range(1, frames - 1)]
    qvel.append(_difference(qpos[-2], qpos[-1], dt))
    return np.stack(qvel)
