"""Roll a policy out in one world and record what a video (or an evaluation) needs, step by step.

:func:`record_rollout` steps ``policy.env`` (world 0 is recorded) for a number of control steps
and keeps the physics state and the velocity command the policy saw at every step. Episodes that
end (a fall, the time limit) are reset by the environment and the rollout goes on from the reset
state, so a recording always has the length asked for; ``done`` marks the resets.

A fixed command is held for the whole rollout with :meth:`ktorch_sim.env.Env.pin_command` on the
task's :class:`~ktorch_sim.components.VelocityCommand` (:func:`velocity_command_name`), e.g. from
``--command vx,vy,wz`` (:func:`parse_velocity_command`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ktorch_sim.components.commands import VelocityCommand

__all__ = ["RecordedRollout", "parse_velocity_command", "record_rollout", "velocity_command_name"]


class Policy(Protocol):
    """What :func:`record_rollout` needs (a :class:`ktorch_sim.playback.trained.TrainedPolicy` has it)."""

    env: Any

    def initial_carry(self, num_envs: int | None = None) -> Any: ...  # noqa: D102

    def act(self, observations: Any, commands: Any, carry: Any, deterministic: bool = True,  # noqa: D102
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, Any]: ...

    @staticmethod
    def reset_carry(carry: Any, done: torch.Tensor) -> Any: ...  # noqa: D102


@dataclass
class RecordedRollout:
    """World 0 of a rollout: the state at control steps 0..T and the command in force at each.

    Attributes:
        qpos: [T + 1, nq] positions; row k is the state at time ``k * ctrl_dt`` (row 0: after reset).
        qvel: [T + 1, nv] velocities (free joint: world-frame linear, body-frame angular).
        command: [T + 1, 3] the velocity command ``(vx, vy, wz)`` the policy saw at each state
            (heading frame, m/s and rad/s), or None when the task has no VelocityCommand.
        done: [T + 1] bool; True where the previous step ended an episode (the row is a reset state).
        ctrl_dt: seconds per control step.

    """

    qpos: np.ndarray
    qvel: np.ndarray
    command: np.ndarray | None
    done: np.ndarray
    ctrl_dt: float

    @property
    def num_steps(self) -> int:
        """Control steps taken (T)."""
        return len(self.qpos) - 1


def velocity_command_name(env: Any) -> str | None:
    """Name of the env's first :class:`VelocityCommand` (``[vx, vy, wz]``), or None if it has none."""
    return next((c.name for c in env.spec.commands if isinstance(c, VelocityCommand)), None)


def parse_velocity_command(text: str) -> tuple[float, float, float]:
    """``"vx,vy,wz"`` -> three floats; raises ValueError with one line saying what is expected."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(values)):
        raise ValueError(f"--command {text!r}: expected three numbers vx,vy,wz (m/s, m/s, rad/s), e.g. 0.5,0,0")
    return values  # type: ignore[return-value]


def pin_velocity_command(env: Any, command: Sequence[float] | torch.Tensor, current: Any = None) -> str:
    """Hold the env's velocity command at ``command`` = (vx, vy, wz) in every world; returns its name.

    Uses :meth:`ktorch_sim.env.Env.pin_command`, so the value holds through steps and resets.
    ``current``, when given, is the observation TensorDict the policy reads next: its command
    entry is overwritten too (it was observed before the pin). Raises ValueError when the task
    has no :class:`VelocityCommand`.
    """
    name = velocity_command_name(env)
    if name is None:
        names = [c.name for c in env.spec.commands]
        raise ValueError(f"--command needs a velocity command [vx, vy, wz] (VelocityCommand); this task's commands "
                         f"are {names or 'none'}")
    value = torch.as_tensor(command, dtype=torch.float32, device=env.device)
    env.pin_command(name, value)
    if current is not None:
        current.get(("command", name)).copy_(value.expand(env.num_envs, 3))
    return name


@torch.no_grad()
def record_rollout(policy: Policy, num_steps: int, command: Sequence[float] | None = None,
                   deterministic: bool = True, generator: torch.Generator | None = None) -> RecordedRollout:
    """Reset ``policy.env`` and run ``num_steps`` control steps, recording world 0.

    ``command`` pins the velocity command for the whole rollout (else the task samples it as in
    training). ``deterministic`` acts with the policy's mode; otherwise actions are sampled with
    ``generator``.
    """
    env = policy.env
    if command is not None:
        pin_velocity_command(env, command)
    command_key = velocity_command_name(env)
    step = env.reset()
    carry = policy.initial_carry(env.num_envs)
    qpos, qvel, commands, done = [], [], [], [False]
    state = env.engine.state
    for k in range(num_steps + 1):
        qpos.append(state.qpos[0].detach().cpu().numpy().astype(np.float64))
        qvel.append(state.qvel[0].detach().cpu().numpy().astype(np.float64))
        if command_key is not None:
            commands.append(step["command"][command_key][0].detach().cpu().numpy().astype(np.float64))
        if k == num_steps:
            break
        action, carry = policy.act(step["observation"], step["command"], carry, deterministic=deterministic,
                                   generator=generator)
        nxt = env.step(action)["next"]
        ended = nxt["done"][:, 0]
        carry = policy.reset_carry(carry, ended)
        done.append(bool(ended[0]))
        step = nxt
    return RecordedRollout(qpos=np.stack(qpos), qvel=np.stack(qvel),
                           command=np.stack(commands) if command_key is not None else None,
                           done=np.array(done, dtype=bool), ctrl_dt=float(env.ctrl_dt))
