"""Size MuJoCo Warp's contact and constraint buffers from measured peaks, not defaults.

MuJoCo Warp preallocates contacts (``nconmax`` per world, pooled across worlds) and constraint
rows (``njmax`` per world, a hard limit). Too small loses contacts (the world is flagged bad and
reset); too large wastes memory and time, since several kernels launch over the whole pool.
:func:`measure_buffer_peaks` steps a task's environment with random actions (falls included)
and records, on the device, the peak contacts per world, the peak of the pooled total and the
peak constraint rows per world; :func:`recommend` turns them into settings with a margin.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ktorch_sim.env import Env

__all__ = ["BufferPeaks", "measure_buffer_peaks", "recommend"]


@dataclass(frozen=True)
class BufferPeaks:
    """Measured peaks over a run of ``steps`` control steps of ``num_envs`` worlds."""

    num_envs: int
    steps: int
    contacts_per_world: int  # the most contacts any single world had
    contacts_mean_per_world: float  # the pooled total's peak divided by num_envs
    constraint_rows_per_world: int  # the most constraint rows any single world had

    def as_dict(self) -> dict[str, float]:
        """Plain dict for JSON."""
        return asdict(self)


def measure_buffer_peaks(env: Env, steps: int, action_noise: float = 0.5, seed: int = 0) -> BufferPeaks:
    """Step ``env`` for ``steps`` control steps with random actions and record buffer peaks.

    Actions are the start pose of the actuated joints plus Gaussian noise of ``action_noise``
    (rad for position actuators), redrawn every step, so the robot stumbles and falls: the
    peaks cover standing, stepping and fallen worlds. Peaks are kept as device tensors and read
    once at the end.
    """
    from ktorch_sim.actuators import PositionActuators
    from ktorch_sim.components.base import joint_qpos_indices

    generator = torch.Generator(device=env.device).manual_seed(seed)
    actuators = env.spec.actuators
    home = torch.zeros(env.num_actions, device=env.device)
    if isinstance(actuators, PositionActuators):
        home = env._initial_qpos[joint_qpos_indices(env.model, actuators.joint_names)].to(env.device)
    contacts_peak = torch.zeros((), dtype=torch.int32, device=env.device)
    total_peak = torch.zeros((), dtype=torch.int32, device=env.device)
    rows_peak = torch.zeros((), dtype=torch.int32, device=env.device)
    env.reset()
    for _ in range(steps):
        noise = torch.randn(env.num_envs, env.num_actions, generator=generator, device=env.device)
        env.step(home + action_noise * noise)
        contacts, rows = env.engine.buffer_usage()
        contacts, rows = contacts.to(env.device), rows.to(env.device)
        torch.maximum(contacts_peak, contacts.max(), out=contacts_peak)
        torch.maximum(total_peak, contacts.sum().to(torch.int32), out=total_peak)
        torch.maximum(rows_peak, rows.max(), out=rows_peak)
    return BufferPeaks(num_envs=env.num_envs, steps=steps, contacts_per_world=int(contacts_peak),
                       contacts_mean_per_world=float(total_peak) / env.num_envs,
                       constraint_rows_per_world=int(rows_peak))


def recommend(peaks: BufferPeaks, margin: float = 1.5) -> dict[str, int]:
    """``nconmax``/``njmax`` with ``margin`` over the peaks.

    ``nconmax`` is a pooled per-world average, so it is sized from the single-world peak (the
    safe bound when every world peaks at once, as in a synchronized start); ``njmax`` is a hard
    per-world limit, sized from the per-world peak of constraint rows.
    """
    return {"nconmax": max(1, math.ceil(margin * peaks.contacts_per_world)),
            "njmax": max(1, math.ceil(margin * peaks.constraint_rows_per_world))}
