"""Terminations: when an episode ends, and whether that is a failure or a time limit.

Each termination returns int8 (N,) in {-1, 0, +1}: -1 ends the episode as a failure (the value
target is 0 after it), +1 ends it without failure (a time limit or a goal reached: a truncation
that PPO bootstraps through), 0 lets it go on. They read the physics state after the control
step (see :mod:`ktorch_sim.engines.base` for its timing) and never synchronise with the host.

ksim's ``IllegalContactTermination`` returns a Python bool instead of an int array when no
contact exists in the world (its quirk 12); here every termination always returns int8 (N,).

The base terminations (height, tilt, distance) read the robot's base as
:mod:`ktorch_sim.components.robot_base` defines it: ``body_name``, else the first body below the
world. With a free joint that is ``qpos`` (ksim's ``qpos[2]``, ``qpos[3:7]``); without one (a
planar walker on slide and hinge joints) the body's ``xpos``/``xquat``, so they work on any model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import torch

from ktorch_sim.components.base import EnvContext, Termination, index_tensor, name_to_id
from ktorch_sim.components.robot_base import base_body, base_position, base_quat

__all__ = [
    "BadVelocityTermination",
    "BadZTermination",
    "EpisodeLengthTermination",
    "FarFromOriginTermination",
    "HighVelocityTermination",
    "IllegalContactTermination",
    "MinimumHeightTermination",
    "NotUprightTermination",
]


def _verdict(condition: torch.Tensor, positive: bool = False) -> torch.Tensor:
    """Map a bool (N,) condition to int8 -1 (or +1 when ``positive``) where true, else 0."""
    return condition.to(torch.int8) if positive else -condition.to(torch.int8)


@dataclass(frozen=True, kw_only=True)
class BadZTermination(Termination):
    """Fails (-1) when the base height (m, world z; ``qpos[2]`` for a free-joint base) leaves [lower, upper].

    ksim's parameters: ``min_z``/``max_z`` at curriculum level 0, moving linearly to
    ``final_min_z``/``final_max_z`` at level 1 (``lower = min_z + (final_min_z - min_z) * level``;
    without a final value the bound stays fixed). Older ksim spelled the fixed bounds
    ``unhealthy_z_lower``/``unhealthy_z_upper``; they are accepted as aliases of min_z/max_z. A
    missing bound (None) is not checked. Uses the per-world curriculum level. ``body_name`` picks
    the body whose height counts (default: the base, see the module docstring).
    """

    min_z: float | None = None
    max_z: float | None = None
    final_min_z: float | None = None
    final_max_z: float | None = None
    unhealthy_z_lower: float | None = None
    unhealthy_z_upper: float | None = None
    body_name: str | None = None

    def __post_init__(self) -> None:
        """Resolve the aliases and reject contradictory bounds."""
        for new, old in (("min_z", "unhealthy_z_lower"), ("max_z", "unhealthy_z_upper")):
            if getattr(self, old) is not None:
                if getattr(self, new) is not None:
                    raise ValueError(f"BadZTermination: give {new} or its alias {old}, not both")
                object.__setattr__(self, new, getattr(self, old))
        if self.min_z is None and self.max_z is None:
            raise ValueError("BadZTermination needs min_z (unhealthy_z_lower) or max_z (unhealthy_z_upper)")
        for final, start in (("final_min_z", "min_z"), ("final_max_z", "max_z")):
            if getattr(self, final) is not None and getattr(self, start) is None:
                raise ValueError(f"BadZTermination: {final} needs {start}")

    def check(self, ctx: EnvContext) -> torch.Tensor:
        """-1 where the base is below the lower or above the upper bound at this world's level."""
        z = base_position(ctx.physics, base_body(ctx.model, self.body_name))[:, 2]
        level = ctx.curriculum_level
        bad = torch.zeros_like(z, dtype=torch.bool)
        if self.min_z is not None:
            bad |= z < self._bound(self.min_z, self.final_min_z, level)
        if self.max_z is not None:
            bad |= z > self._bound(self.max_z, self.final_max_z, level)
        return _verdict(bad)

    @staticmethod
    def _bound(start: float, final: float | None, level: torch.Tensor) -> torch.Tensor | float:
        """Linear interpolation from ``start`` (level 0) to ``final`` (level 1)."""
        return start if final is None else start + (final - start) * level


@dataclass(frozen=True, kw_only=True)
class MinimumHeightTermination(Termination):
    """Fails (-1) when the base height (m, world z) is below ``min_height``: the robot fell.

    ``body_name`` picks the body (default: the base, ``qpos[2]`` for a free joint).
    """

    min_height: float
    body_name: str | None = None

    def check(self, ctx: EnvContext) -> torch.Tensor:
        """-1 where z < min_height."""
        return _verdict(base_position(ctx.physics, base_body(ctx.model, self.body_name))[:, 2] < self.min_height)


@dataclass(frozen=True, kw_only=True)
class NotUprightTermination(Termination):
    """Fails (-1) when the base's z axis tilts more than ``max_radians`` from world z.

    For the base quaternion (w, x, y, z) the world z component of the body z axis is
    ``cos(tilt) = 1 - 2 (x^2 + y^2)`` (after normalising), so the test is
    ``cos(tilt) < cos(max_radians)``; yaw does not matter. The quaternion is the free joint's
    ``qpos[3:7]``, or the base body's ``xquat`` without one; ``body_name`` picks another body.
    """

    max_radians: float
    body_name: str | None = None

    def __post_init__(self) -> None:
        """Check the angle is in [0, pi]."""
        if not 0.0 <= self.max_radians <= math.pi:
            raise ValueError(f"max_radians must be in [0, pi], got {self.max_radians}")

    def check(self, ctx: EnvContext) -> torch.Tensor:
        """-1 where the tilt exceeds max_radians."""
        quat = base_quat(ctx.physics, base_body(ctx.model, self.body_name))
        quat = quat / quat.norm(dim=-1, keepdim=True)
        cos_tilt = 1.0 - 2.0 * (quat[:, 1] ** 2 + quat[:, 2] ** 2)
        return _verdict(cos_tilt < math.cos(self.max_radians))


@dataclass(frozen=True, kw_only=True)
class BadVelocityTermination(Termination):
    """Fails (-1) when any generalized velocity ``|qvel|`` exceeds ``max_vel``.

    Compares every component of qvel (base linear m/s, base angular rad/s, joints rad/s) against
    the same bound: a guard against a blown-up simulation rather than a behaviour limit.
    """

    max_vel: float

    def check(self, ctx: EnvContext) -> torch.Tensor:
        """-1 where any |qvel| > max_vel."""
        return _verdict((ctx.physics.qvel.abs() > self.max_vel).any(dim=-1))


@dataclass(frozen=True, kw_only=True)
class HighVelocityTermination(BadVelocityTermination):
    """The same check as :class:`BadVelocityTermination`, under the name mjlab-style tasks use."""


@dataclass(frozen=True, kw_only=True)
class FarFromOriginTermination(Termination):
    """Ends the episode when the base is more than ``max_dist`` (m) from the world origin in the xy plane.

    Returns +1 (not a failure: the robot walked off the map) when ``pos_termination`` is true,
    as ksim does by default, else -1. The distance is horizontal (our reading: the base height
    should not count toward "far"). ``body_name`` picks the body (default: the base).
    """

    max_dist: float
    pos_termination: bool = True
    body_name: str | None = None

    def check(self, ctx: EnvContext) -> torch.Tensor:
        """+1 (or -1) where the xy distance exceeds max_dist."""
        xy = base_position(ctx.physics, base_body(ctx.model, self.body_name))[:, 0:2]
        far = torch.linalg.vector_norm(xy, dim=-1) > self.max_dist
        return _verdict(far, positive=self.pos_termination)


@dataclass(frozen=True, kw_only=True)
class EpisodeLengthTermination(Termination):
    """The time limit: ends the episode once ``episode_steps * ctrl_dt >= max_length_sec``.

    Returns +1 (a truncation, bootstrapped through) when ``pos_termination`` is true, as ksim
    does, else -1. With ``disable_at_curriculum_level`` set, worlds whose curriculum level has
    reached it never time out. The limit is compared in whole control steps,
    ``ceil(max_length_sec / ctrl_dt)`` (to within 1e-6 of a step), so float rounding cannot add
    or drop a step.
    """

    max_length_sec: float
    disable_at_curriculum_level: float | None = None
    pos_termination: bool = True

    def __post_init__(self) -> None:
        """Check the limit is positive."""
        if not self.max_length_sec > 0:
            raise ValueError(f"max_length_sec must be > 0 seconds, got {self.max_length_sec}")

    def max_steps(self, ctrl_dt: float) -> int:
        """Return the episode length in control steps."""
        return math.ceil(self.max_length_sec / ctrl_dt - 1e-6)

    def check(self, ctx: EnvContext) -> torch.Tensor:
        """+1 (or -1) where the episode has run its full length."""
        done = ctx.episode_steps >= self.max_steps(ctx.ctrl_dt)
        if self.disable_at_curriculum_level is not None:
            done &= ctx.curriculum_level < self.disable_at_curriculum_level
        return _verdict(done, positive=self.pos_termination)


@dataclass(frozen=True, kw_only=True)
class IllegalContactTermination(Termination):
    """Fails (-1) when any of the listed geoms is in contact (e.g. a knee, the torso or a hand on the floor).

    Reads the engine's per-geom contact flags (``physics.geom_contact``: 1 where a contact with
    negative distance, i.e. penetration, touches the geom). ksim's ``contact_eps`` (default
    -1e-3) counts only contacts deeper than 1 mm; the engine's flags count any penetration,
    so ``contact_eps`` is kept for signature compatibility and must be <= 0, and this check
    fires up to 1 mm earlier than ksim's. Build with :meth:`create` to resolve geom names.
    """

    geom_indices: tuple[int, ...] = ()
    geom_names: tuple[str, ...] = ()
    contact_eps: float = -1e-3

    def __post_init__(self) -> None:
        """Require at least one geom and a non-positive eps."""
        if not self.geom_indices:
            raise ValueError("IllegalContactTermination needs geoms; build it with "
                             "IllegalContactTermination.create(model, geom_names)")
        if self.contact_eps > 0:
            raise ValueError(f"contact_eps must be <= 0 (a penetration depth), got {self.contact_eps}")

    @classmethod
    def create(cls, model: mujoco.MjModel, geom_names: Sequence[str],
               contact_eps: float = -1e-3) -> IllegalContactTermination:
        """Resolve geom names to indices once."""
        ids = tuple(name_to_id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in geom_names)
        return cls(geom_indices=ids, geom_names=tuple(geom_names), contact_eps=contact_eps)

    def check(self, ctx: EnvContext) -> torch.Tensor:
        """-1 where any listed geom is in contact."""
        contact = ctx.physics.geom_contact[:, index_tensor(self.geom_indices, ctx.device)]
        return _verdict((contact > 0.5).any(dim=-1))
