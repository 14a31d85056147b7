"""Evaluate a trained checkpoint on either engine: the library behind ``tools/play.py``.

:func:`evaluate_checkpoint` loads the policy with the worlds, engine, device, seed and episode
time limit asked for, sets the curriculum level (the checkpoint's by default: the conditions
the policy was trained under), runs :func:`ktorch_sim.playback.evaluate.evaluate` with the deterministic
policy (the mixture's mode) or a sampling one, and returns the summary with where it came
from. Running it with ``engine="warp"`` and ``engine="mujoco"`` on the same checkpoint is the
sim2sim check (docs/evaluation.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ktorch_sim.checkpoint import load_checkpoint
from ktorch_sim.config import ConfigError
from ktorch_sim.playback.evaluate import EvalError, evaluate
from ktorch_sim.playback.policy_rollout import velocity_command_name
from ktorch_sim.playback.trained import TrainedPolicy, load_trained_policy

__all__ = ["PlayOptions", "evaluate_checkpoint", "load_for_play"]


@dataclass(frozen=True, kw_only=True)
class PlayOptions:
    """What to evaluate and how.

    Attributes:
        engine: "mujoco" (native, CPU) or "warp".
        device: torch device; None: cpu for mujoco, cuda when available for warp.
        episodes: episodes to count (split over the worlds, see ktorch_sim.playback.evaluate).
        num_envs: parallel worlds; None: min(episodes, 64).
        command: [vx, vy, wz] pinned for the whole evaluation; None: the task's sampled commands.
        stochastic: sample actions instead of taking the policy's mode.
        seed: env (and action sampling) seed; None: the checkpoint config's seed.
        max_seconds: episode time limit (task.episode_length_seconds); None: the task's.
        curriculum_level: level in [0, 1]; None: the checkpoint's.
        overrides: further ``section.key=value`` config overrides.

    """

    engine: str = "mujoco"
    device: str | None = None
    episodes: int = 10
    num_envs: int | None = None
    command: tuple[float, float, float] | None = None
    stochastic: bool = False
    seed: int | None = None
    max_seconds: float | None = None
    curriculum_level: float | None = None
    overrides: Sequence[str] = ()

    def resolved_num_envs(self) -> int:
        """Return the number of worlds: the given one, else min(episodes, 64)."""
        return self.num_envs if self.num_envs is not None else min(self.episodes, 64)

    def resolved_device(self) -> str:
        """Return the device: the given one, else cpu (mujoco) or cuda-if-available (warp)."""
        if self.device is not None:
            return self.device
        return "cuda" if self.engine == "warp" and torch.cuda.is_available() else "cpu"


def load_for_play(path: str | Path, options: PlayOptions, num_envs: int | None = None) -> TrainedPolicy:
    """Load the checkpoint at ``path`` with the options' engine, device, seed and time limit."""
    device = torch.device(options.resolved_device())
    if options.engine == "mujoco" and device.type != "cpu":
        raise EvalError(f"--engine mujoco runs on the CPU; got --device {device} (use --engine warp for CUDA)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EvalError(f"--device {device}: no CUDA device is available here; use --device cpu")
    overrides = [f"task.num_envs={num_envs or options.resolved_num_envs()}", f"task.engine={options.engine}",
                 *([f"task.seed={options.seed}"] if options.seed is not None else []), *options.overrides]
    if options.max_seconds is not None:
        overrides.append(f"task.episode_length_seconds={options.max_seconds}")
    try:
        policy = load_trained_policy(path, overrides, device=options.resolved_device())
    except ConfigError as e:
        if e.key == "task.episode_length_seconds":
            raise EvalError(f"--max-seconds sets task.episode_length_seconds, which this task does not have ({e})"
                            ) from None
        raise
    level = options.curriculum_level
    if level is None:
        level = float(load_checkpoint(policy.checkpoint, map_location="cpu")["curriculum"].get("level", 1.0))
    policy.env.set_curriculum_level(level)
    return policy


def evaluate_checkpoint(path: str | Path, options: PlayOptions) -> dict[str, Any]:
    """Evaluate the checkpoint (or run directory's latest) at ``path``; return the JSON-ready summary.

    Raises CheckpointError, ConfigError or EvalError (one line each) for unusable input.
    """
    if options.episodes < 1:
        raise EvalError(f"--episodes must be at least 1, got {options.episodes}")
    num_envs = options.resolved_num_envs()
    if not 1 <= num_envs <= options.episodes:
        raise EvalError(f"--num-envs must be between 1 and --episodes ({options.episodes}), got {num_envs}")
    if options.curriculum_level is not None and not 0.0 <= options.curriculum_level <= 1.0:
        raise EvalError(f"--curriculum-level must be in [0, 1], got {options.curriculum_level}")
    if options.max_seconds is not None and not options.max_seconds > 0:
        raise EvalError(f"--max-seconds must be > 0, got {options.max_seconds}")
    policy = load_for_play(path, options, num_envs)
    env = policy.env
    if options.command is not None and velocity_command_name(env) is None:
        raise EvalError(f"--command needs a velocity command [vx, vy, wz]; task {policy.config.task_name} has "
                        f"commands {[c.name for c in env.spec.commands] or 'none'}")
    generator = torch.Generator(device=env.device).manual_seed(policy.config.task.seed)

    def act(observations: Any, commands: Any, carry: Any) -> tuple[torch.Tensor, Any]:
        return policy.act(observations, commands, carry, deterministic=not options.stochastic, generator=generator)

    command = None if options.command is None else torch.tensor(options.command, dtype=torch.float32)
    summary = evaluate(env, act, options.episodes, carry=policy.initial_carry(), command=command)
    limit = env.max_episode_steps
    return {
        **summary,
        "engine": options.engine,
        "device": str(env.device),
        "num_envs": env.num_envs,
        "task": policy.config.task_name,
        "checkpoint": str(policy.checkpoint),
        "iteration": policy.iteration,
        "command": list(options.command) if options.command is not None else "sampled",
        "deterministic": not options.stochastic,
        "seed": policy.config.task.seed,
        "curriculum_level": float(env.ctx.curriculum_level[0]),
        "ctrl_dt": env.ctrl_dt,
        "max_episode_seconds": None if limit is None else limit * env.ctrl_dt,
    }
