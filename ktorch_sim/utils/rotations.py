"""Quaternion and heading math on batched torch tensors, quaternions in MuJoCo's (w, x, y, z) order.

One home for the helpers that observations, commands, resets, rewards and the robot-base
queries share. Inputs are broadcast over leading dimensions; quaternions are normalised where the
result depends on their norm, so float32 sensor quaternions of norm 1 +- 1e-7 give exact angles.
"""

from __future__ import annotations

import math

import torch


def normalized_quat(quat: torch.Tensor) -> torch.Tensor:
    """``quat`` (..., 4) divided by its norm (a zero quaternion stays finite)."""
    return quat / torch.linalg.vector_norm(quat, dim=-1, keepdim=True).clamp_min(1e-12)


def quat_rotate(quat: torch.Tensor, vec: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Rotate ``vec`` (..., 3) by the unit quaternion ``quat`` (..., 4).

    With ``inverse=True`` the conjugate rotation is applied: a world-frame vector is expressed
    in the frame whose orientation ``quat`` is.
    """
    q = normalized_quat(quat)
    w, u = q[..., :1], q[..., 1:]
    if inverse:
        u = -u
    t = 2.0 * torch.linalg.cross(u, vec.expand_as(u), dim=-1)
    return vec + w * t + torch.linalg.cross(u, t, dim=-1)


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a * b`` of (..., 4) quaternions."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack((
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ), dim=-1)


def axis_angle_quat(angle: torch.Tensor, axis: int) -> torch.Tensor:
    """Quaternions (..., 4) of rotations by ``angle`` (...) rad about the x (0), y (1) or z (2) axis."""
    q = torch.zeros(*angle.shape, 4, dtype=angle.dtype, device=angle.device)
    q[..., 0] = torch.cos(0.5 * angle)
    q[..., 1 + axis] = torch.sin(0.5 * angle)
    return q


def quat_yaw(quat: torch.Tensor) -> torch.Tensor:
    """Heading (yaw about world z, rad) of quaternions (..., 4), shape (...)."""
    w, x, y, z = normalized_quat(quat).unbind(-1)
    return torch.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def heading_xy(yaw: torch.Tensor, v_world: torch.Tensor) -> torch.Tensor:
    """Planar part (..., 2) of world vectors ``v_world`` (..., 3) in the heading (yaw-only) frame of ``yaw``."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    vx, vy = v_world[..., 0], v_world[..., 1]
    return torch.stack([c * vx + s * vy, -s * vx + c * vy], dim=-1)


def wrap_angle(angle: torch.Tensor) -> torch.Tensor:
    """Angles wrapped to [-pi, pi)."""
    return torch.remainder(angle + math.pi, 2.0 * math.pi) - math.pi
