"""ksim's task API in PyTorch: ``RLTask`` with the same hooks, and its config dataclass.

A ksim task ports hook by hook: ``get_mujoco_model``, ``get_actuators``, ``get_observations``,
``get_rewards`` ... return the same component objects under the same names (``ks.X`` for
``ksim.X``), and :meth:`RLTask.make_env` builds the batched environment from them. The
learning hooks (``get_model``, ``get_optimizer``, ``get_initial_model_carry``,
``sample_action``) are overridden by a policy task (``PPOTask``). The config dataclass
(:class:`RLConfig`) and :func:`config_field` live in :mod:`ktorch_sim.task_config`, which imports
neither torch nor MuJoCo, so the config loader can check a config before the heavy imports.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import mujoco
import numpy as np
import torch

from ktorch_sim.actuators import Actuators
from ktorch_sim.components.base import (
    Command,
    Curriculum,
    Event,
    Observation,
    PhysicsRandomizer,
    Reset,
    Reward,
    Termination,
)
from ktorch_sim.env import Env, EnvSpec
from ktorch_sim.utils.resources import check_worlds_fit
from ktorch_sim.robot_metadata import RobotMetadata
from ktorch_sim.task_config import RLConfig, config_field  # noqa: F401 - re-exported: ktorch_sim.task.RLConfig

ConfigT = TypeVar("ConfigT", bound=RLConfig)


class RLTask(abc.ABC, Generic[ConfigT]):
    """A task: a robot, its components and (in subclasses) a policy. ksim's hooks, in torch.

    Required hooks: :meth:`get_mujoco_model`, :meth:`get_actuators`, :meth:`get_rewards` and
    :meth:`get_terminations`. The others default to "none".
    """

    def __init__(self, config: ConfigT) -> None:
        """Keep the config; nothing is built until :meth:`make_env`."""
        self.config = config

    # --- the robot ------------------------------------------------------------------------

    @abc.abstractmethod
    def get_mujoco_model(self) -> mujoco.MjModel:
        """The compiled MuJoCo model (robot and scene)."""

    def get_mujoco_model_metadata(self, model: mujoco.MjModel) -> RobotMetadata | None:
        """Joint metadata (gains, limits, home pose); None if the task needs none."""
        return None

    @abc.abstractmethod
    def get_actuators(self, model: mujoco.MjModel, metadata: RobotMetadata | None = None) -> Actuators:
        """How actions become actuator commands (e.g. ``PositionActuators.create(model, metadata)``)."""

    def get_initial_qpos(self, model: mujoco.MjModel) -> np.ndarray | None:
        """The pose new episodes start from before resets apply (default: the "home" keyframe)."""
        return None

    # --- components -----------------------------------------------------------------------

    def get_physics_randomizers(self, model: mujoco.MjModel) -> Sequence[PhysicsRandomizer]:
        """Model fields redrawn at every episode reset."""
        return ()

    def get_events(self, model: mujoco.MjModel) -> Sequence[Event]:
        """Disturbances during episodes."""
        return ()

    def get_resets(self, model: mujoco.MjModel) -> Sequence[Reset]:
        """How the initial state of an episode is drawn, in order."""
        return ()

    def get_observations(self, model: mujoco.MjModel) -> Sequence[Observation]:
        """What the policy and the critic observe."""
        return ()

    def get_commands(self, model: mujoco.MjModel) -> Sequence[Command]:
        """Commands the policy follows (velocities, gait clocks ...)."""
        return ()

    @abc.abstractmethod
    def get_rewards(self, model: mujoco.MjModel) -> Sequence[Reward]:
        """Reward terms (at least one)."""

    @abc.abstractmethod
    def get_terminations(self, model: mujoco.MjModel) -> Sequence[Termination]:
        """Episode ends (at least one)."""

    def get_curriculum(self, model: mujoco.MjModel) -> Curriculum:
        """The curriculum (default: constant level 1)."""
        from ktorch_sim.components.curriculum import ConstantCurriculum

        return ConstantCurriculum(level=1.0)

    # --- learning hooks (implemented by policy tasks) ---------------------------------------

    def get_model(self, spec: Any) -> torch.nn.Module:
        """The policy (actor and critic) as a torch module, built from ``spec`` (a
        :class:`~ktorch_sim.ppo_task.PolicySpec`: input and action sizes, the ``model`` settings)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_model(spec) to train a policy")

    def get_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The optimizer for ``model``."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_optimizer() to train a policy")

    def get_initial_model_carry(self, model: torch.nn.Module, batch_size: int) -> Any:
        """The recurrent carry of a fresh episode (None for feed-forward policies)."""
        return None

    def sample_action(self, model: torch.nn.Module, carry: Any, observations: Any, commands: Any,
                      generator: torch.Generator | None = None, argmax: bool = False) -> tuple[torch.Tensor, Any]:
        """The action (N, A) for the current observations, and the next carry."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample_action() to run a policy")

    # --- building ---------------------------------------------------------------------------

    def get_env_spec(self, model: mujoco.MjModel) -> EnvSpec:
        """Collect every component hook into an :class:`EnvSpec`."""
        metadata = self.get_mujoco_model_metadata(model)
        return EnvSpec(
            actuators=self.get_actuators(model, metadata),
            observations=tuple(self.get_observations(model)),
            commands=tuple(self.get_commands(model)),
            rewards=tuple(self.get_rewards(model)),
            terminations=tuple(self.get_terminations(model)),
            resets=tuple(self.get_resets(model)),
            events=tuple(self.get_events(model)),
            randomizers=tuple(self.get_physics_randomizers(model)),
            sim2real=self.config.sim2real_config(),
            initial_qpos=self.get_initial_qpos(model),
            recompute_constants=self.config.recompute_constants,
            clip_actions=self.config.clip_actions,
        )

    def make_env(self) -> Env:
        """Build the batched environment on the configured engine and device."""
        model = self.get_mujoco_model()
        spec = self.get_env_spec(model)
        if not spec.rewards:
            raise ValueError(f"{type(self).__name__}.get_rewards() returned no rewards; at least one is required")
        engine_config = self.config.engine_config()
        engine = self.config.engine
        if engine == "auto":
            engine = "warp" if engine_config.device.startswith("cuda") else "mujoco"
        # Refuse (one ConfigError line, key task.num_envs) worlds that cannot fit, before allocating any.
        check_worlds_fit(model, engine_config.num_envs, engine, engine_config.device,
                         randomized=any(r.fields for r in spec.randomizers))
        return Env(model, spec, engine_config, engine=self.config.engine, seed=self.config.seed)
