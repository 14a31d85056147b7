"""Evaluate a policy on a batched environment: survival, tracking errors, air time, in one device pass.

:func:`evaluate` runs a policy, any callable ``policy(observations, commands, carry) -> (action,
carry)``, until every world has finished its share of the requested episodes, and returns the
summary ``tools/play.py`` prints. Definitions (docs/evaluation.md has the long form):

* **Which episodes count.** ``episodes`` are split over the ``N`` worlds: world ``i`` counts its
  first ``episodes // N + (i < episodes % N)`` episodes; a world that has finished its share keeps
  stepping (the batch steps together) but nothing it does is counted. Counting the first
  ``episodes`` to end over all worlds instead would over-sample short (failed) episodes.
* **Survival**: the fraction of counted episodes that ran to the time limit (an
  :class:`~ktorch_sim.components.terminations.EpisodeLengthTermination` returned +1 at the final
  step) without a failure. An episode ended early by another truncation (ksim's
  ``FarFromOriginTermination``: the robot left the map) is not a failure but did not last the
  time either, so it is not counted as survived: ``early_truncations`` counts those, and
  ``truncations_by_termination`` names the terminations that returned +1 at each episode's end.
  (A task without a time limit counts any truncation as survived.) **Falls**: the failures, in
  total and per termination that returned -1 at the final step (one fall may name two
  terminations); ``bad_physics`` counts episodes reset because the physics broke.
* **Episode length**: control steps per episode (and seconds, ``steps * ctrl_dt``); mean and
  population standard deviation. **Return**: the sum of the env's rewards over the episode.
* **Tracking errors.** Every control step of a counted episode is one sample, taken in the state
  the policy acts from (after a reset, before the step; the state an episode ends in is not
  seen): the command is the velocity command's ``[vx, vy, wz]`` (zero for a task without
  one: stand still), the measured linear velocity is the base's planar velocity
  ``qvel[0:3]`` in the heading (yaw-only) frame, and the measured yaw rate is the world-z
  component of the base angular velocity (what the velocity rewards compare). A model without
  a free joint (a planar walker on slide and hinge joints) has the same quantities from its
  root body's world pose and velocity (:mod:`ktorch_sim.components.robot_base`; one physics
  substep older than ``qvel`` after a step, as MuJoCo computes them). The errors are
  RMS over all samples: ``sqrt(mean(|c_xy - v_xy|^2))`` (m/s) and ``sqrt(mean((c_wz - w_z)^2))``
  (rad/s).
* **Foot air time**: per foot, a swing is a run of consecutive sampled states without foot-floor
  contact that starts after a contact in the same episode and ends at a touchdown (a contact).
  Its air time is the number of states in the run times ``ctrl_dt``; the mean is over every
  swing of both feet (NaN without touchdowns). Contact is the task's
  :class:`~ktorch_sim.components.observations.FeetContactObservation`, or K-Bot's foot geoms.

Everything accumulates on the env's device without a host sync per step. The loop reads one
boolean every ``check_every`` steps to stop once every world has finished its share (and never
runs past the bound from the episode time limit); the statistics are read once, at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mujoco
import torch
from tensordict import TensorDict

from ktorch_sim.algorithms.carry import reset_carry
from ktorch_sim.components.observations import FeetContactObservation
from ktorch_sim.components.robot_base import (
    base_angular_velocity,
    base_body,
    base_linear_velocity,
    base_quat,
    heading_xy,
    quat_yaw,
)
from ktorch_sim.components.terminations import EpisodeLengthTermination
from ktorch_sim.env import Env
from ktorch_sim.playback.policy_rollout import pin_velocity_command, velocity_command_name
from ktorch_sim.robots.kbot import KBOT_LEFT_FOOT_GEOMS, KBOT_RIGHT_FOOT_GEOMS

__all__ = ["EpisodeTallies", "EvalError", "Policy", "evaluate", "feet_contact_sensor", "measured_velocity"]

Policy = Callable[[TensorDict, TensorDict, Any], tuple[torch.Tensor, Any]]
"""``policy(observations, commands, carry) -> (action [N, A], next carry)``; the carry is zeroed per done world."""

# K-Bot's foot collision geoms, used when a task has no FeetContactObservation of its own (kbot_stand).
KBOT_FOOT_GEOMS = (KBOT_LEFT_FOOT_GEOMS, KBOT_RIGHT_FOOT_GEOMS)


class EvalError(ValueError):
    """An evaluation that cannot run as asked; one line naming the problem and what would work."""


# --- the command -----------------------------------------------------------------------------


# --- what is measured ------------------------------------------------------------------------


def feet_contact_sensor(env: Env) -> FeetContactObservation | None:
    """Return the task's FeetContactObservation, else one on K-Bot's foot geoms, else None (no air time)."""
    for obs in env.spec.observations:
        if isinstance(obs, FeetContactObservation):
            return obs
    names = {mujoco.mj_id2name(env.model, mujoco.mjtObj.mjOBJ_GEOM, i) for i in range(env.model.ngeom)}
    if all(g in names for foot in KBOT_FOOT_GEOMS for g in foot) and "floor" in names:
        return FeetContactObservation.create(env.model, foot_left_geom_names=KBOT_FOOT_GEOMS[0],
                                             foot_right_geom_names=KBOT_FOOT_GEOMS[1], floor_geom_names="floor")
    return None


def measured_velocity(env: Env) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the base planar velocity in the heading frame [N, 2] (m/s) and world-z yaw rate [N] (rad/s).

    The base is :func:`~ktorch_sim.components.robot_base.base_body` of the model: its free joint's
    ``qpos``/``qvel`` when it has one, else its world pose and velocity (any MuJoCo model).
    """
    physics, base = env.engine.state, base_body(env.model)
    yaw = quat_yaw(base_quat(physics, base))
    return heading_xy(yaw, base_linear_velocity(physics, base)), base_angular_velocity(physics, base)[:, 2]


# --- accumulation ----------------------------------------------------------------------------


@dataclass
class EpisodeTallies:
    """Device accumulators: per-world episode state [N] and sums over counted episodes (float64 scalars)."""

    share: torch.Tensor  # episodes each world counts [N]
    finished: torch.Tensor  # episodes each world has ended [N]
    steps: torch.Tensor  # steps into the current episode [N]
    episode_return: torch.Tensor  # return of the current episode [N]
    air_steps: torch.Tensor  # consecutive no-contact steps per foot [N, 2]
    seen_contact: torch.Tensor  # the foot touched down this episode [N, 2]
    sums: dict[str, torch.Tensor]
    time_limits: tuple[str, ...] = ()  # terminations whose +1 is the time limit (survival)

    @classmethod
    def create(cls, num_envs: int, episodes: int, terminations: list[str], device: torch.device,
               time_limits: list[str] | None = None) -> EpisodeTallies:
        """Zero tallies; world ``i`` counts ``episodes // num_envs + (i < episodes % num_envs)`` episodes.

        ``time_limits`` names the terminations whose +1 means "ran the full time" (the task's
        :class:`EpisodeLengthTermination` s); empty or None: any truncation counts as survived.
        """
        share = torch.full((num_envs,), episodes // num_envs, dtype=torch.long, device=device)
        share[: episodes % num_envs] += 1
        keys = ["episodes", "survived", "falls", "bad_physics", "length", "length_sq", "return", "return_sq",
                "samples", "linear_sq", "yaw_sq", "air_time", "touchdowns", "early_truncations",
                *(f"fall/{n}" for n in terminations), *(f"truncation/{n}" for n in terminations)]
        zero = torch.zeros((), dtype=torch.float64, device=device)
        return cls(share=share, finished=torch.zeros_like(share), steps=torch.zeros_like(share),
                   episode_return=torch.zeros(num_envs, dtype=torch.float64, device=device),
                   air_steps=torch.zeros(num_envs, 2, dtype=torch.long, device=device),
                   seen_contact=torch.zeros(num_envs, 2, dtype=torch.bool, device=device),
                   sums={k: zero.clone() for k in keys}, time_limits=tuple(time_limits or ()))

    def counting(self) -> torch.Tensor:
        """Worlds whose current episode counts [N] bool."""
        return self.finished < self.share

    def add(self, key: str, values: torch.Tensor, mask: torch.Tensor) -> None:
        """Add ``values`` [N] (or [N, k]) of the worlds in ``mask`` [N] to ``sums[key]``."""
        mask = mask.view(-1, *([1] * (values.dim() - 1)))
        self.sums[key] += torch.where(mask, values.to(torch.float64), 0.0).sum()

    def sample_state(self, error_xy: torch.Tensor, error_wz: torch.Tensor, contact: torch.Tensor | None) -> None:
        """Tally one sampled state: tracking errors and foot contact (touchdowns end swings)."""
        counting = self.counting()
        self.add("samples", torch.ones_like(error_wz), counting)
        self.add("linear_sq", error_xy.square().sum(-1), counting)
        self.add("yaw_sq", error_wz.square(), counting)
        if contact is None:
            return
        touchdown = contact & (self.air_steps > 0) & self.seen_contact
        self.add("air_time", torch.where(touchdown, self.air_steps, 0), counting)
        self.add("touchdowns", touchdown.long(), counting)
        self.air_steps.copy_(torch.where(contact, 0, self.air_steps + 1))
        self.seen_contact |= contact

    def end_step(self, reward: torch.Tensor, next_td: TensorDict) -> torch.Tensor:
        """Tally a step's reward and the episodes it ended; returns ``done`` [N]."""
        counting = self.counting()
        done = next_td["done"][:, 0]
        self.steps += 1
        self.episode_return += reward
        ended = done & counting
        length = self.steps.to(torch.float64)
        verdicts = next_td["terminations"]
        truncated = ended & next_td["truncated"][:, 0]
        if self.time_limits:
            full_time = torch.stack([verdicts[name] > 0 for name in self.time_limits]).any(0)
            survived = truncated & full_time
        else:
            survived = truncated
        self.add("episodes", torch.ones_like(length), ended)
        self.add("survived", torch.ones_like(length), survived)
        self.add("early_truncations", torch.ones_like(length), truncated & ~survived)
        self.add("falls", torch.ones_like(length), ended & next_td["terminated"][:, 0])
        self.add("bad_physics", torch.ones_like(length), ended & next_td["bad_physics"])
        self.add("length", length, ended)
        self.add("length_sq", length.square(), ended)
        self.add("return", self.episode_return, ended)
        self.add("return_sq", self.episode_return.square(), ended)
        for name, verdict in verdicts.items():
            self.add(f"fall/{name}", torch.ones_like(length), ended & (verdict < 0))
            self.add(f"truncation/{name}", torch.ones_like(length), truncated & (verdict > 0))
        self.finished += done.long()
        self.steps.masked_fill_(done, 0)
        self.episode_return.masked_fill_(done, 0.0)
        self.air_steps.masked_fill_(done[:, None], 0)
        self.seen_contact.masked_fill_(done[:, None], False)
        return done


# --- the loop --------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(env: Env, policy: Policy, episodes: int, *, carry: Any = None, command: torch.Tensor | None = None,
             check_every: int = 50, max_steps: int | None = None) -> dict[str, Any]:
    """Run ``policy`` on ``env`` until each world finished its share of ``episodes``; return the summary.

    Args:
        env: the environment (reset here first); its worlds run the episodes in parallel.
        policy: ``policy(observations, commands, carry) -> (action, carry)``.
        episodes: number of episodes to count, at least ``env.num_envs``.
        carry: the policy's initial carry for all worlds (zeroed per world at each episode end).
        command: ``[vx, vy, wz]`` pinned for the whole evaluation (see :func:`pin_velocity_command`).
        check_every: control steps between the (one-boolean) checks whether every world is done.
        max_steps: a bound on the control steps; default: the time limit times the largest share.

    Returns a flat dict of Python numbers (NaN where undefined, e.g. air time without a touchdown):
    see the module docstring for the definitions. Raises :class:`EvalError` for unusable input.

    """
    if episodes < env.num_envs:
        raise EvalError(f"{episodes} episodes over {env.num_envs} worlds leaves worlds without an episode; "
                        f"ask for at least {env.num_envs} episodes or use fewer worlds")
    if max_steps is None:
        limit = env.max_episode_steps
        if limit is None:
            raise EvalError("the task has no episode time limit (EpisodeLengthTermination); pass max_steps")
        max_steps = limit * math.ceil(episodes / env.num_envs)
    dev = env.device
    if command is not None:
        command = torch.as_tensor(command, dtype=torch.float32, device=dev)
    names = [t.name for t in env.spec.terminations]
    time_limits = [t.name for t in env.spec.terminations if isinstance(t, EpisodeLengthTermination)]
    tallies = EpisodeTallies.create(env.num_envs, episodes, names, dev, time_limits)
    contact_sensor = feet_contact_sensor(env)
    command_name = velocity_command_name(env)
    if command is not None:
        pin_velocity_command(env, command)
    current = env.reset()
    for step in range(max_steps):
        wanted = env.ctx.commands[command_name] if command_name else torch.zeros(env.num_envs, 3, device=dev)
        v_xy, w_z = measured_velocity(env)
        contact = contact_sensor.observe(env.ctx, {}) > 0.5 if contact_sensor is not None else None
        tallies.sample_state(wanted[:, 0:2] - v_xy, wanted[:, 2] - w_z, contact)

        action, carry = policy(current["observation"], current["command"], carry)
        nxt = env.step(action)["next"]
        done = tallies.end_step(nxt["reward"][:, 0], nxt)
        carry = reset_carry(carry, done)
        current = nxt.select("observation", "command")
        if (step + 1) % check_every == 0 and not bool(tallies.counting().any()):
            break
    if command is not None:
        env.pin_command(command_name, None)
    return _summary(tallies, names, env.ctrl_dt, contact_sensor is not None, unfinished=tallies.counting())


def _summary(tallies: EpisodeTallies, names: list[str], ctrl_dt: float, has_contact: bool,
             unfinished: torch.Tensor) -> dict[str, Any]:
    """Means and RMS errors from the sums: computed on the device, read with one transfer."""
    s = tallies.sums
    n = s["episodes"].clamp_min(1.0)
    nan = torch.full((), float("nan"), dtype=torch.float64, device=n.device)
    length_mean = s["length"] / n
    return_mean = s["return"] / n
    air = s["air_time"] * ctrl_dt / s["touchdowns"] if has_contact else nan
    values = {
        "episodes": s["episodes"],
        "survival_rate": s["survived"] / n,
        "falls": s["falls"],
        "early_truncations": s["early_truncations"],
        "bad_physics": s["bad_physics"],
        "episode_length_mean": length_mean,
        "episode_length_std": (s["length_sq"] / n - length_mean.square()).clamp_min(0.0).sqrt(),
        "return_mean": return_mean,
        "return_std": (s["return_sq"] / n - return_mean.square()).clamp_min(0.0).sqrt(),
        "linear_velocity_error_rms": (s["linear_sq"] / s["samples"]).sqrt(),
        "yaw_rate_error_rms": (s["yaw_sq"] / s["samples"]).sqrt(),
        "foot_air_time_mean": air,
        "foot_touchdowns": s["touchdowns"] if has_contact else nan,
        "samples": s["samples"],
        "unfinished_worlds": unfinished.sum(),
        **{f"fall/{name}": s[f"fall/{name}"] for name in names},
        **{f"truncation/{name}": s[f"truncation/{name}"] for name in names},
    }
    host = dict(zip(values, torch.stack([v.to(torch.float64) for v in values.values()]).cpu().tolist(), strict=True))
    counts = ("episodes", "falls", "early_truncations", "bad_physics", "samples", "unfinished_worlds",
              "foot_touchdowns")
    out: dict[str, Any] = {k: (int(v) if k in counts and not math.isnan(v) else v) for k, v in host.items()
                           if not k.startswith(("fall/", "truncation/"))}
    out["episode_seconds_mean"] = out["episode_length_mean"] * ctrl_dt
    out["episode_seconds_std"] = out["episode_length_std"] * ctrl_dt
    out["falls_by_termination"] = {name: int(host[f"fall/{name}"]) for name in names}
    out["truncations_by_termination"] = {name: int(host[f"truncation/{name}"]) for name in names}
    return out
