"""Events: disturbances during an episode (velocity kicks and force pushes), as in ksim's events module.

Every event keeps a per-world countdown ``time_remaining`` (seconds, shape (N,)). The environment
calls :meth:`Event.apply` once per control step, before the physics step: the countdown drops by
``ctrl_dt``, and the worlds whose countdown reached zero get their disturbance and a fresh
countdown drawn from ``interval_range`` (seconds). New episodes draw a fresh countdown too.

Two kinds of push exist, as the project's issue asks:

- velocity kicks (:class:`PushEvent`, :class:`LinearPushEvent`, :class:`AngularPushEvent`,
  :class:`JumpEvent`) add an instantaneous change to the base velocity ``qvel[0:6]``;
- force pushes (:class:`ForcePushEvent`) apply a wrench through ``xfrc_applied`` on one body for
  a random duration, which the engine holds on every physics substep until it is cleared.

Differences from ksim: ksim runs events on every physics substep; here they run once per control
step (a push lasts whole control steps, and a kick is applied at most once per control step).
ksim's ``scale`` (a curriculum ``Scale``) may be given as a float (constant, like ksim's
``ConstantScale``) or as any object with ``get_scale(level) -> Tensor``.

Frames: ``qvel[0:3]`` is the world-frame linear velocity of the base (m/s), ``qvel[3:6]`` its
body-frame angular velocity (rad/s); ``xfrc_applied`` is a world-frame (force, torque) at the
body's centre of mass (N, N·m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import torch

from ktorch_sim.components.base import ComponentState, EnvContext, Event, masked_assign, name_to_id, uniform
from ktorch_sim.components.resets import constant

__all__ = [
    "AngularPushEvent",
    "ForcePushEvent",
    "JumpEvent",
    "LinearPushEvent",
    "PushEvent",
]


def curriculum_scale(scale: object, level: torch.Tensor) -> torch.Tensor:
    """Per-world factor (N,): a float is constant (ksim's ConstantScale); a Scale maps the level."""
    if hasattr(scale, "get_scale"):
        return scale.get_scale(level).to(torch.float32)
    return torch.full_like(level, float(scale), dtype=torch.float32)


def _check_range(name: str, value: tuple[float, float]) -> None:
    """Reject a (low, high) pair that is not ordered and finite, naming the field."""
    low, high = value
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"{name} must be (low, high) with low <= high, got {value}")


@dataclass(frozen=True, kw_only=True)
class _IntervalEvent(Event):
    """An event that fires at random intervals (seconds) drawn from ``interval_range``, per world."""

    interval_range: tuple[float, float]

    def __post_init__(self) -> None:
        _check_range("interval_range", self.interval_range)
        if self.interval_range[0] < 0:
            raise ValueError(f"interval_range must be >= 0 seconds, got {self.interval_range}")

    def _draw_interval(self, n: int, ctx: EnvContext) -> torch.Tensor:
        return uniform(self.interval_range[0], self.interval_range[1], (n,), ctx.generator, ctx.device)

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Draw each world's countdown (N,) in seconds from ``interval_range``."""
        return {"time_remaining": self._draw_interval(ctx.num_envs, ctx)}

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Fresh countdowns for the masked worlds."""
        masked_assign(state["time_remaining"], mask, self._draw_interval(ctx.num_envs, ctx))

    def _tick(self, state: ComponentState, ctx: EnvContext) -> torch.Tensor:
        """Advance the countdown one control step; return the worlds that fire (bool (N,)) and re-arm them."""
        remaining = state["time_remaining"] - ctx.ctrl_dt
        fired = remaining <= 0.0
        state["time_remaining"].copy_(torch.where(fired, self._draw_interval(ctx.num_envs, ctx), remaining))
        return fired


@dataclass(frozen=True, kw_only=True)
class PushEvent(_IntervalEvent):
    """Velocity kicks on all six base axes (ksim's original PushEvent, as in the K-Scale notebooks).

    When a world's timer fires: ``qvel[k] += s_k * U(force_range) * (+-1) * c`` for k = 0..5 with
    ``s = (x_force, y_force, z_force, x_angular_force, y_angular_force, z_angular_force)`` (m/s for
    the linear part in the world frame, rad/s for the angular part in the body frame), an
    independent random sign per axis, and ``c = lo + level * (hi - lo)`` from
    ``curriculum_range = (lo, hi)``, so by default the kick grows with the curriculum.
    Despite their ksim names the ``*_force`` values are velocity changes, not forces; use
    :class:`ForcePushEvent` for a real force.
    """

    x_force: float
    y_force: float
    z_force: float = 0.0
    force_range: tuple[float, float] = (0.0, 1.0)
    x_angular_force: float = 0.0
    y_angular_force: float = 0.0
    z_angular_force: float = 0.0
    curriculum_range: tuple[float, float] = (0.0, 1.0)

    def apply(self, state: ComponentState, ctx: EnvContext) -> None:
        """Add the kick to ``qvel[:, 0:6]`` of the worlds whose timer fired."""
        fired = self._tick(state, ctx)
        n = ctx.num_envs
        scales = constant((self.x_force, self.y_force, self.z_force, self.x_angular_force, self.y_angular_force,
                           self.z_angular_force), ctx.device)
        magnitude = uniform(self.force_range[0], self.force_range[1], (n, 6), ctx.generator, ctx.device)
        sign = torch.where(torch.rand((n, 6), generator=ctx.generator, device=ctx.device) < 0.5, -1.0, 1.0)
        low, high = self.curriculum_range
        level = (low + ctx.curriculum_level.to(torch.float32) * (high - low)).unsqueeze(-1)
        kick = magnitude * sign * scales * level
        ctx.physics.qvel[:, 0:6] += torch.where(fired.unsqueeze(-1), kick, 0.0)


@dataclass(frozen=True, kw_only=True)
class LinearPushEvent(_IntervalEvent):
    """Planar velocity kick of the base in a uniformly random world direction.

    On firing: ``qvel[0:2] += (cos t, sin t) * U(vel_range) * linvel * scale(level)`` with
    ``t ~ U(0, 2 pi)``; ``linvel`` in m/s.
    """

    linvel: float
    vel_range: tuple[float, float] = (0.0, 1.0)
    scale: object = 1.0

    def apply(self, state: ComponentState, ctx: EnvContext) -> None:
        """Add the kick to ``qvel[:, 0:2]`` of the worlds whose timer fired."""
        fired = self._tick(state, ctx)
        n = ctx.num_envs
        theta = uniform(0.0, 2.0 * math.pi, (n,), ctx.generator, ctx.device)
        magnitude = uniform(self.vel_range[0], self.vel_range[1], (n,), ctx.generator, ctx.device) * self.linvel
        magnitude = magnitude * curriculum_scale(self.scale, ctx.curriculum_level)
        kick = torch.stack((torch.cos(theta), torch.sin(theta)), dim=-1) * magnitude.unsqueeze(-1)
        ctx.physics.qvel[:, 0:2] += torch.where(fired.unsqueeze(-1), kick, 0.0)


@dataclass(frozen=True, kw_only=True)
class AngularPushEvent(_IntervalEvent):
    """Yaw-rate kick: ``qvel[5] += (+-1) * U(vel_range) * angvel * scale(level)`` (rad/s, body z)."""

    angvel: float
    vel_range: tuple[float, float] = (0.0, 1.0)
    scale: object = 1.0

    def apply(self, state: ComponentState, ctx: EnvContext) -> None:
        """Add the kick to ``qvel[:, 5]`` of the worlds whose timer fired."""
        fired = self._tick(state, ctx)
        n = ctx.num_envs
        sign = torch.where(torch.rand((n,), generator=ctx.generator, device=ctx.device) < 0.5, -1.0, 1.0)
        magnitude = uniform(self.vel_range[0], self.vel_range[1], (n,), ctx.generator, ctx.device) * self.angvel
        kick = sign * magnitude * curriculum_scale(self.scale, ctx.curriculum_level)
        ctx.physics.qvel[:, 5] += torch.where(fired, kick, 0.0)


@dataclass(frozen=True, kw_only=True)
class JumpEvent(_IntervalEvent):
    """Vertical kick that would lift a point mass by ``h``: ``qvel[2] += sqrt(2 g h)``.

    ``h = U(jump_height_range) * scale(level)`` in metres, ``g`` the model's gravity magnitude
    along -z (m/s^2).
    """

    jump_height_range: tuple[float, float]
    scale: object = 1.0

    def apply(self, state: ComponentState, ctx: EnvContext) -> None:
        """Add the kick to ``qvel[:, 2]`` of the worlds whose timer fired."""
        fired = self._tick(state, ctx)
        low, high = self.jump_height_range
        height = uniform(low, high, (ctx.num_envs,), ctx.generator, ctx.device)
        height = (height * curriculum_scale(self.scale, ctx.curriculum_level)).clamp(min=0.0)
        g = -float(ctx.model.opt.gravity[2])
        ctx.physics.qvel[:, 2] += torch.where(fired, torch.sqrt(2.0 * g * height), 0.0)


@dataclass(frozen=True, kw_only=True)
class ForcePushEvent(_IntervalEvent):
    """A random wrench on one body for a random duration, through ``xfrc_applied`` (world frame).

    When the timer fires, a push is drawn: a uniformly random direction for the force and for
    the torque, one magnitude factor ``f ~ U(force_range)``, force ``f * max_force`` (N) and torque
    ``f * max_torque`` (N·m), and with equal chance force only, torque only or both (as ksim).
    Its duration is ``U(duration_range)`` seconds; the wrench times ``scale(level)`` is written into
    ``xfrc_applied[:, body_id]`` on every control step while the push lasts (``ceil(duration /
    ctrl_dt)`` steps) and that row is zeroed afterwards. The engine holds ``xfrc_applied`` on every
    physics substep, so the impulse is ``wrench * steps * ctrl_dt``.

    Differences from ksim: ksim multiplies the wrench by the curriculum scale twice; here once.
    ksim zeroes every body's ``xfrc_applied``; here only this event's body row is written, so
    events on different bodies compose.

    State: ``time_remaining`` (N,) s, ``push_remaining`` (N,) s, ``wrench`` (N, 6).
    """

    max_force: float
    max_torque: float
    force_range: tuple[float, float] = (0.0, 1.0)
    duration_range: tuple[float, float]
    body_id: int
    scale: object = 1.0

    @classmethod
    def from_body_name(cls, model: mujoco.MjModel, body_name: str, *, max_force: float, max_torque: float,
                       duration_range: tuple[float, float], interval_range: tuple[float, float],
                       force_range: tuple[float, float] = (0.0, 1.0), scale: object = 1.0) -> ForcePushEvent:
        """Resolve ``body_name`` to its MuJoCo body id once."""
        body_id = name_to_id(model, mujoco.mjtObj.mjOBJ_BODY, body_name)
        return cls(max_force=max_force, max_torque=max_torque, duration_range=duration_range,
                   interval_range=interval_range, force_range=force_range, body_id=body_id, scale=scale)

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Countdown, no push active, zero wrench."""
        state = super().init_state(ctx)
        state["push_remaining"] = torch.zeros(ctx.num_envs, device=ctx.device)
        state["wrench"] = torch.zeros(ctx.num_envs, 6, device=ctx.device)
        return state

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Fresh countdown, no push (the engine clears ``xfrc_applied`` of reset worlds itself)."""
        super().reset(state, mask, ctx)
        masked_assign(state["push_remaining"], mask, 0.0)
        masked_assign(state["wrench"], mask, 0.0)

    def apply(self, state: ComponentState, ctx: EnvContext) -> None:
        """Start pushes whose timer fired; write or clear this body's ``xfrc_applied`` row."""
        fired = self._tick(state, ctx)
        n = ctx.num_envs
        duration = uniform(self.duration_range[0], self.duration_range[1], (n,), ctx.generator, ctx.device)
        state["wrench"].copy_(torch.where(fired.unsqueeze(-1), self._draw_wrench(n, ctx), state["wrench"]))
        state["push_remaining"].copy_(torch.where(fired, duration, state["push_remaining"]))
        active = state["push_remaining"] > 0.0
        wrench = state["wrench"] * curriculum_scale(self.scale, ctx.curriculum_level).unsqueeze(-1)
        ctx.physics.xfrc_applied[:, self.body_id, :] = torch.where(active.unsqueeze(-1), wrench, 0.0)
        state["push_remaining"].sub_(ctx.ctrl_dt)

    def _draw_wrench(self, n: int, ctx: EnvContext) -> torch.Tensor:
        """Random (force, torque) rows (N, 6): force only, torque only or both, with equal chance."""
        gen, dev = ctx.generator, ctx.device
        factor = uniform(self.force_range[0], self.force_range[1], (n, 1), gen, dev)
        force = _unit(uniform(-1.0, 1.0, (n, 3), gen, dev)) * factor * self.max_force
        torque = _unit(uniform(-1.0, 1.0, (n, 3), gen, dev)) * factor * self.max_torque
        case = torch.randint(0, 3, (n, 1), generator=gen, device=dev)  # 0 force, 1 torque, 2 both
        return torch.cat((torch.where(case != 1, force, 0.0), torch.where(case != 0, torque, 0.0)), dim=-1)


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Rows of ``v`` scaled to unit length (a zero row stays zero)."""
    return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-12)
