"""Load a trained policy back from a checkpoint, with the task and environment it was trained on.

The tools (``render``, ``play``, ``export``) all start here: a checkpoint holds the resolved
config it was trained with, so the task, the observation layout and the network's shape are
rebuilt from it, and only what a tool changes (number of worlds, engine, device, commands) is
overridden with the same ``--set section.key=value`` strings the trainer takes::

    policy = load_trained_policy("runs/2026-11-21-kbot_walk", overrides=["task.num_envs=4"])
    env = policy.env
    step = env.reset()
    carry = policy.initial_carry()
    for _ in range(100):
        action, carry = policy.act(step["observation"], step["command"], carry)
        step = env.step(action)["next"]
        carry = policy.reset_carry(carry, step["done"][:, 0])

A run directory resolves to its latest checkpoint; a checkpoint file is used as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict

from ktorch_sim.algorithms.carry import reset_carry
from ktorch_sim.checkpoint import CheckpointError, CheckpointManager, load_checkpoint, resolved_config
from ktorch_sim.config import TrainConfig, config_from_dict, resolve_task
from ktorch_sim.env import Env
from ktorch_sim.ppo_task import PolicySpec, PPOTask, build_policy

__all__ = ["TrainedPolicy", "load_trained_policy", "resolve_checkpoint"]


@dataclass
class TrainedPolicy:
    """A trained actor-critic with its task, config and a freshly built environment.

    Attributes:
        config: the training config, with the caller's overrides applied.
        task: the task instance (its normalizers loaded from the checkpoint).
        model: the actor-critic, in eval mode, on ``env.device``.
        spec: input/output sizes of the policy.
        env: the environment built from ``config`` (already reset once).
        first: the env's first observation/command TensorDict (from that reset).
        checkpoint: the file the weights came from.
        iteration: the training iteration the checkpoint was written at.

    """

    config: TrainConfig
    task: PPOTask
    model: torch.nn.Module
    spec: PolicySpec
    env: Env
    first: TensorDict
    checkpoint: Path
    iteration: int

    def initial_carry(self, num_envs: int | None = None) -> Any:
        """Return the zero recurrent carry for ``num_envs`` worlds (default: the env's)."""
        return self.task.get_initial_model_carry(self.model, num_envs or self.env.num_envs)

    @torch.no_grad()
    def act(self, observations: TensorDict, commands: TensorDict, carry: Any, deterministic: bool = True,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, Any]:
        """Return the action [N, A] and next carry; ``deterministic`` takes the distribution's ``deterministic()`` action.

        With the default ``PPOTask.sample_action`` only the actor runs (the critic's value and
        carry are not needed to act; its carry is passed through unchanged); a task that
        overrides ``sample_action`` is called as it is.
        """
        if type(self.task).sample_action is not PPOTask.sample_action:
            action, carry, _ = self.task.sample_action(self.model, carry, observations, commands, generator,
                                                       argmax=deterministic)
            return action, carry
        actor_carry, critic_carry = carry
        dist, actor_carry = self.task.run_actor(self.model, observations, commands, actor_carry)
        action = dist.deterministic() if deterministic else dist.sample(generator)
        return action, (actor_carry, critic_carry)

    @staticmethod
    def reset_carry(carry: Any, done: torch.Tensor) -> Any:
        """Zero the carry of worlds whose episode ended (``done`` [N] bool)."""
        return reset_carry(carry, done)


def resolve_checkpoint(path: str | Path) -> Path:
    """Return the checkpoint file for ``path``: a run directory's latest checkpoint, or the file itself.

    Raises :class:`CheckpointError` with one line when there is none.
    """
    path = Path(path)
    if path.is_dir():
        latest = CheckpointManager(path).latest()
        if latest is None:
            raise CheckpointError(f"no checkpoint in {path}: expected a run directory with checkpoints/ckpt_*.pt "
                                  "or a checkpoint file")
        return latest
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist: give a run directory or a ckpt_*.pt file")
    return path


def load_trained_policy(path: str | Path, overrides: Sequence[str] = (), device: str | None = None) -> TrainedPolicy:
    """Rebuild the task, environment and actor-critic saved in ``path`` (run directory or checkpoint).

    ``overrides`` are ``section.key=value`` strings applied on top of the checkpoint's config
    (e.g. ``task.num_envs=1``, ``task.engine=mujoco``); ``device`` sets ``task.device``. Raises
    :class:`CheckpointError` or :class:`ConfigError` with one line for unusable input.
    """
    file = resolve_checkpoint(path)
    state = load_checkpoint(file, map_location="cpu")
    # Batches only matter for training; 1 world and whole-rollout sequences fit any number of worlds a tool asks for.
    overrides = ["ppo.batch_size=1", "ppo.sequence_length=0", *overrides]
    overrides += [f"task.device={device}"] if device else []
    # The tools set worlds and episode lengths themselves: the CPU caps' training notes would mislead.
    config = config_from_dict(resolved_config(state), overrides, source=f"{file} (config)", note_caps=False)
    task_cls, _ = resolve_task(config.task_name)
    task = task_cls(config.task)
    if not isinstance(task, PPOTask):
        raise CheckpointError(f"{file}: task {config.task_name} is not a PPOTask; no policy to load")
    env = task.make_env()
    first = env.reset()
    model, spec = build_policy(task, env, first, config.model, config.ppo.normalize_observations)
    if task.normalizers is not None:
        _load(task.normalizers, state.get("normalizer"), file, "normalizer")
    _load(model, state["model"], file, "model")
    model.eval()
    return TrainedPolicy(config=config, task=task, model=model, spec=spec, env=env, first=first, checkpoint=file,
                         iteration=int(state["counters"]["iteration"]))


def _load(module: torch.nn.Module, weights: Any, file: Path, what: str) -> None:
    """Load ``weights`` into ``module``, turning a shape/key mismatch into one CheckpointError line."""
    if weights is None:
        raise CheckpointError(f"{file} has no {what} weights, but its config needs them")
    try:
        module.load_state_dict(weights)
    except RuntimeError as e:
        first_line = str(e).strip().splitlines()[1 if "\n" in str(e).strip() else 0].strip()
        raise CheckpointError(f"{file}: {what} weights do not fit the network its config builds "
                              f"({first_line}); was the task or model code changed since training?") from None
