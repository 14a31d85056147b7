"""ksim's task API in PyTorch: ``RLTask`` with the same hooks, and its config dataclass.

A ksim task ports hook by hook: ``get_mujoco_model``, ``get_actuators``, ``get_observations``,
``get_rewards`` ... return the same component objects under the same names (``ks.X`` for
``ksim.X``), and :meth:`RLTask.make_env` builds the batched environment from them. The
learning hooks (``get_model``, ``get_optimizer``, ``get_initial_model_carry``,
``sample_action``) are overridden by a policy task (``PPOTask``).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
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
from ktorch_sim.engines import EngineConfig
from ktorch_sim.env import Env, EnvSpec
from ktorch_sim.robot_metadata import RobotMetadata
from ktorch_sim.sim2real import Sim2RealConfig


def config_field(default: Any, help: str, *, choices: Sequence[Any] | None = None) -> Any:  # noqa: A002
    """A dataclass field with a help text (shown by ``--help``) and optional allowed values.

    Mutable defaults are copied; with ``choices`` the config loader rejects any other value and
    suggests the closest allowed one.
    """
    metadata: dict[str, Any] = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(kw_only=True)
class RLConfig:
    """Environment and physics settings of a task (ksim's RLConfig and EngineConfig)."""

    num_envs: int = config_field(16, "Number of parallel worlds.")
    engine: str = config_field("auto", "Physics engine: auto (Warp on CUDA, native MuJoCo on CPU), mujoco or warp.")
    device: str = config_field("auto", "Torch device: auto (cuda if available), cpu or cuda[:k].")
    dt: float = config_field(0.004, "Physics timestep, seconds.")
    ctrl_dt: float = config_field(0.02, "Control period, seconds; a whole multiple of dt.")
    iterations: int = config_field(8, "Constraint solver iterations.")
    ls_iterations: int = config_field(8, "Solver line-search iterations.")
    integrator: str = config_field("implicitfast", "MuJoCo integrator: implicitfast, euler, implicit or rk4.")
    nconmax: int = config_field(16, "Warp: contacts allocated per world (pooled).")
    njmax: int = config_field(128, "Warp: constraint rows allocated per world.")
    num_threads: int = config_field(0, "Native MuJoCo engine: worker threads (0: one per core).")
    recompute_constants: bool = config_field(True, "After randomizing masses, inertias, armature or geometry at a "
                                                   "reset, recompute MuJoCo's derived constants (mj_setConst: "
                                                   "invweight0 for constraint softness, subtree masses). Exact but "
                                                   "costly on Warp, which recomputes every world; ksim and MuJoCo "
                                                   "Playground skip it (false).")
    action_latency_range: tuple[float, float] = config_field((0.0, 0.0), "Per-episode action latency range, s.")
    drop_action_prob: float = config_field(0.0, "Probability that an action dimension is dropped per step.")
    zero_offset_std: float = config_field(0.0, "Std of per-episode joint encoder zero offsets, rad.")
    zero_offset_mag: float = config_field(0.0, "Half-width of uniform per-episode joint zero offsets, rad.")
    actuator_update_dt: float | None = config_field(None, "Period at which motors take new targets, s (None: every substep).")
    seed: int = config_field(1337, "Random seed.")

    def resolved_device(self) -> str:
        """``device``, with "auto" resolved to cuda when available."""
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def engine_config(self) -> EngineConfig:
        """The physics settings as an :class:`EngineConfig` (validated there)."""
        return EngineConfig(num_envs=self.num_envs, dt=self.dt, ctrl_dt=self.ctrl_dt, iterations=self.iterations,
                            ls_iterations=self.ls_iterations, integrator=self.integrator,
                            device=self.resolved_device(), nconmax=self.nconmax, njmax=self.njmax,
                            num_threads=self.num_threads)

    def check_inputs(self) -> None:
        """Check what types and ranges cannot (files the task will read); the config loader calls it.

        Raise a ValueError whose message is one line; a ``key`` attribute (e.g. "task.model_path")
        lets the loader name the setting and where it came from. The default checks nothing.
        """

    def sim2real_config(self) -> Sim2RealConfig:
        """The sim-to-real knobs as a :class:`Sim2RealConfig`."""
        return Sim2RealConfig(action_latency_range=tuple(self.action_latency_range),
                              drop_action_prob=self.drop_action_prob, zero_offset_std=self.zero_offset_std,
                              zero_offset_mag=self.zero_offset_mag, actuator_update_dt=self.actuator_update_dt)


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

    def get_model(self) -> torch.nn.Module:
        """The policy (actor and critic) as a torch module."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_model() to train a policy")

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
        )

    def make_env(self) -> Env:
        """Build the batched environment on the configured engine and device."""
        model = self.get_mujoco_model()
        spec = self.get_env_spec(model)
        if not spec.rewards:
            raise ValueError(f"{type(self).__name__}.get_rewards() returned no rewards; at least one is required")
        return Env(model, spec, self.config.engine_config(), engine=self.config.engine, seed=self.config.seed)
