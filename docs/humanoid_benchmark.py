"""The K-Scale Humanoid Benchmark notebook, ported from ksim (JAX) to ktorch_sim (PyTorch).

Source: ``train.ipynb`` of kscalelabs/ksim-gym (commit d02e684). Every section of the notebook
is here, in the same order and with the same names, so a ksim user can read the two side by
side: the joint zeros, the custom penalties, the recurrent Actor / Critic / Model, the config
dataclass, the task with its hooks, and the launch call. ``ksim.X`` becomes ``ks.X``; the
equinox modules become ``torch.nn`` modules; a batch dimension leads every tensor (ksim vmaps
over environments, torch batches them).

Run it::

    python docs/humanoid_benchmark.py            # the notebook's settings (2048 envs) on a GPU
    python docs/humanoid_benchmark.py --tiny     # a CPU smoke run: 4 envs, 5 steps, one iteration
    HUMANOID_BENCHMARK_TINY=1 python docs/humanoid_benchmark.py   # the same, from the environment

Where this port differs from the notebook, a comment saying "Differs from the notebook" gives
the reason at that spot.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import mujoco
import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import nn

import ktorch_sim as ks
from ktorch_sim.components.base import ComponentState, EnvContext
from ktorch_sim.policies import MixtureOfGaussians

__all__ = [
    "ZEROS",
    "Actor",
    "BentArmPenalty",
    "Critic",
    "HumanoidWalkingTask",
    "HumanoidWalkingTaskConfig",
    "JointAccelerationPenalty",
    "JointJerkPenalty",
    "JointPositionPenalty",
    "LinkAccelerationPenalty",
    "LinkJerkPenalty",
    "Model",
    "NaiveForwardOrientationReward",
    "NaiveForwardReward",
    "StraightLegPenalty",
    "main",
    "notebook_config",
    "tiny_config",
]

TINY_ENV_VAR = "HUMANOID_BENCHMARK_TINY"

# --- joint zeros ----------------------------------------------------------------------------------

# The home pose, one entry per joint in the order of the network's outputs (= the action order).
ZEROS: list[tuple[str, float]] = [
    ("dof_right_shoulder_pitch_03", 0.0),
    ("dof_right_shoulder_roll_03", math.radians(-10.0)),
    ("dof_right_shoulder_yaw_02", 0.0),
    ("dof_right_elbow_02", math.radians(90.0)),
    ("dof_right_wrist_00", 0.0),
    ("dof_left_shoulder_pitch_03", 0.0),
    ("dof_left_shoulder_roll_03", math.radians(10.0)),
    ("dof_left_shoulder_yaw_02", 0.0),
    ("dof_left_elbow_02", math.radians(-90.0)),
    ("dof_left_wrist_00", 0.0),
    ("dof_right_hip_pitch_04", math.radians(-20.0)),
    ("dof_right_hip_roll_03", 0.0),
    ("dof_right_hip_yaw_03", 0.0),
    ("dof_right_knee_04", math.radians(-50.0)),
    ("dof_right_ankle_02", math.radians(30.0)),
    ("dof_left_hip_pitch_04", math.radians(20.0)),
    ("dof_left_hip_roll_03", 0.0),
    ("dof_left_hip_yaw_03", 0.0),
    ("dof_left_knee_04", math.radians(50.0)),
    ("dof_left_ankle_02", math.radians(-30.0)),
]

# --- rewards ----------------------------------------------------------------------------------------
# ``scale_by_curriculum`` works as in ksim: ks.Reward multiplies the term by the curriculum level.


@dataclass(frozen=True, kw_only=True)
class JointPositionPenalty(ks.JointDeviationPenalty):
    """``sum_j (q_j - zero_j)^2`` over the named joints (rad^2), the targets taken from :data:`ZEROS`."""

    @classmethod
    def create_from_names(cls, names: Sequence[str], physics_model: mujoco.MjModel, scale: float = -1.0,
                          scale_by_curriculum: bool = False) -> Self:
        """Resolve ``names`` to qpos addresses, with each joint's zero as its target."""
        zeros = dict(ZEROS)
        base = ks.JointDeviationPenalty.create(physics_model, joint_names=tuple(names),
                                               joint_targets=tuple(zeros[name] for name in names), scale=scale)
        return cls(qpos_indices=base.qpos_indices, joint_targets=base.joint_targets, scale=scale,
                   scale_by_curriculum=scale_by_curriculum)


@dataclass(frozen=True, kw_only=True)
class BentArmPenalty(JointPositionPenalty):
    """Keeps all ten arm joints near their zeros (the arms hang bent at the elbows)."""

    @classmethod
    def create_penalty(cls, physics_model: mujoco.MjModel, scale: float = -1.0,
                       scale_by_curriculum: bool = False) -> Self:
        """Penalise both arms' shoulder, elbow and wrist joints."""
        names = [f"dof_{side}_{joint}" for side in ("right", "left")
                 for joint in ("shoulder_pitch_03", "shoulder_roll_03", "shoulder_yaw_02", "elbow_02", "wrist_00")]
        return cls.create_from_names(names, physics_model, scale=scale, scale_by_curriculum=scale_by_curriculum)


@dataclass(frozen=True, kw_only=True)
class StraightLegPenalty(JointPositionPenalty):
    """Keeps the hip roll and yaw joints near zero (legs pointing straight ahead)."""

    @classmethod
    def create_penalty(cls, physics_model: mujoco.MjModel, scale: float = -1.0,
                       scale_by_curriculum: bool = False) -> Self:
        """Penalise both legs' hip roll and hip yaw joints."""
        names = ["dof_left_hip_roll_03", "dof_left_hip_yaw_03", "dof_right_hip_roll_03", "dof_right_hip_yaw_03"]
        return cls.create_from_names(names, physics_model, scale=scale, scale_by_curriculum=scale_by_curriculum)


# The notebook also uses six ksim rewards that ktorch_sim does not ship (they were removed from
# ksim after this notebook). They are written here as a ksim user would write a custom reward.


def _rotate_into_base(quat: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """World-frame vectors ``v`` (N, 3) expressed in the frame of the wxyz quaternions ``quat`` (N, 4)."""
    q = quat / torch.linalg.vector_norm(quat, dim=-1, keepdim=True).clamp_min(1e-12)
    w, u = q[:, :1], -q[:, 1:]  # the inverse rotation
    t = 2.0 * torch.linalg.cross(u, v, dim=-1)
    return v + w * t + torch.linalg.cross(u, t, dim=-1)


@dataclass(frozen=True, kw_only=True)
class NaiveForwardReward(ks.Reward):
    """Forward speed: the x component of the base's linear velocity (m/s), clipped to [clip_min, clip_max].

    ``qvel[0:3]`` is the free joint's world-frame velocity; with ``in_robot_frame`` it is first
    rotated into the base frame (what a velocimeter on the base reads).
    """

    clip_min: float | None = None
    clip_max: float | None = None
    in_robot_frame: bool = True

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) clipped forward velocity."""
        linvel = ctx.physics.qvel[:, 0:3]
        if self.in_robot_frame:
            linvel = _rotate_into_base(ctx.physics.qpos[:, 3:7], linvel)
        value = linvel[:, 0]
        if self.clip_min is not None or self.clip_max is not None:
            value = value.clamp(self.clip_min, self.clip_max)
        return value


@dataclass(frozen=True, kw_only=True)
class NaiveForwardOrientationReward(NaiveForwardReward):
    """Facing along world +x: with ``f`` = world x expressed in the base frame, ``f_x - ||(f_y, f_z)||``.

    1 when the base's x axis points along world +x, -1 when it points backwards; unitless.
    """

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) heading alignment with world +x."""
        quat = ctx.physics.qpos[:, 3:7]
        forward = _rotate_into_base(quat, torch.tensor([1.0, 0.0, 0.0], device=ctx.device).expand(ctx.num_envs, 3))
        value = forward[:, 0] - torch.linalg.vector_norm(forward[:, 1:], dim=-1)
        return value


@dataclass(frozen=True, kw_only=True)
class _FiniteDifferencePenalty(ks.Reward):
    """Mean over elements of ``norm(k-th finite difference over control steps)``; stateful.

    Keeps the last ``ORDER`` values of a per-world quantity (joint angles or link positions) in
    ``state["history"]`` ([N, ORDER, ...], most recent first), refilled with the new episode's
    first state at every reset. Differences are per control step, not per second, as in ksim. The
    term is 0 until the episode has ``ORDER`` steps of history, so it never differences across a
    reset (ksim pads the rollout start with its first frame and masks across ``done`` instead).
    """

    norm: str = "l2"

    ORDER: ClassVar[int] = 2

    def __post_init__(self) -> None:
        """Validate ``norm``."""
        if self.norm not in ("l1", "l2"):
            raise ValueError(f"{type(self).__name__}.norm must be 'l1' or 'l2', got {self.norm!r}")

    def _quantity(self, ctx: EnvContext) -> torch.Tensor:
        """Return the tracked quantity now, [N, ...]."""
        raise NotImplementedError

    def _difference(self, series: list[torch.Tensor]) -> torch.Tensor:
        """Return the difference at this step from ``series`` = [now, 1 step ago, ..., ORDER steps ago]."""
        raise NotImplementedError

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """History buffer [N, ORDER, ...], filled by :meth:`reset`."""
        now = self._quantity(ctx)
        return {"history": now.unsqueeze(1).repeat(1, self.ORDER, *([1] * (now.dim() - 1)))}

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Fill the history of new episodes with their first state."""
        history = state["history"]
        fresh = self._quantity(ctx).unsqueeze(1).expand_as(history)
        history.copy_(torch.where(mask.view(-1, *([1] * (history.dim() - 1))), fresh, history))

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) mean norm of the difference; 0 until the episode has ORDER steps; updates the history."""
        history = state["history"]
        now = self._quantity(ctx)
        diff = self._difference([now, *history.unbind(1)])
        value = (diff.abs() if self.norm == "l1" else diff.square()).flatten(1).mean(-1)
        value = torch.where(ctx.episode_steps >= self.ORDER, value, torch.zeros_like(value))
        history.copy_(torch.cat([now.unsqueeze(1), history[:, :-1]], dim=1))
        return value


def _joint_angles(ctx: EnvContext) -> torch.Tensor:
    """Every joint angle after the free joint, ``qpos[:, 7:]`` (rad), as ksim's joint penalties read it."""
    return ctx.physics.qpos[:, 7:]


def _link_positions(ctx: EnvContext) -> torch.Tensor:
    """World positions of every body but the world body, ``xpos[:, 1:]`` (m), [N, nbody - 1, 3]."""
    return ctx.physics.xpos[:, 1:]


def _link_speeds(series: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-link distance moved in each control step (m per step), newest first, from positions newest first."""
    return [torch.linalg.vector_norm(a - b, dim=-1) for a, b in zip(series[:-1], series[1:], strict=True)]


@dataclass(frozen=True, kw_only=True)
class JointAccelerationPenalty(_FiniteDifferencePenalty):
    """Mean over joints of ``norm(q_t - 2 q_{t-1} + q_{t-2})`` (rad per step^2); 0 on an episode's first step."""

    ORDER: ClassVar[int] = 2

    def _quantity(self, ctx: EnvContext) -> torch.Tensor:
        return _joint_angles(ctx)

    def _difference(self, series: list[torch.Tensor]) -> torch.Tensor:
        q0, q1, q2 = series
        return q0 - 2.0 * q1 + q2


@dataclass(frozen=True, kw_only=True)
class JointJerkPenalty(_FiniteDifferencePenalty):
    """Mean over joints of ``norm(q_t - 3 q_{t-1} + 3 q_{t-2} - q_{t-3})`` (rad per step^3); 0 for 2 steps."""

    ORDER: ClassVar[int] = 3

    def _quantity(self, ctx: EnvContext) -> torch.Tensor:
        return _joint_angles(ctx)

    def _difference(self, series: list[torch.Tensor]) -> torch.Tensor:
        q0, q1, q2, q3 = series
        return q0 - 3.0 * q1 + 3.0 * q2 - q3


@dataclass(frozen=True, kw_only=True)
class LinkAccelerationPenalty(_FiniteDifferencePenalty):
    """Mean over links of ``norm(s_t - s_{t-1})``, ``s_t = |x_t - x_{t-1}|`` each body's step length (m).

    The change of each body's speed between two control steps, in world coordinates.
    """

    ORDER: ClassVar[int] = 2

    def _quantity(self, ctx: EnvContext) -> torch.Tensor:
        return _link_positions(ctx)

    def _difference(self, series: list[torch.Tensor]) -> torch.Tensor:
        s0, s1 = _link_speeds(series)
        return s0 - s1


@dataclass(frozen=True, kw_only=True)
class LinkJerkPenalty(_FiniteDifferencePenalty):
    """Mean over links of ``norm(s_t - 2 s_{t-1} + s_{t-2})`` with ``s_t`` each body's step length (m)."""

    ORDER: ClassVar[int] = 3

    def _quantity(self, ctx: EnvContext) -> torch.Tensor:
        return _link_positions(ctx)

    def _difference(self, series: list[torch.Tensor]) -> torch.Tensor:
        s0, s1, s2 = _link_speeds(series)
        return s0 - 2.0 * s1 + s2


# --- actor-critic model ---------------------------------------------------------------------------------


class Actor(nn.Module):
    """Actor for the walking task: input projection, ``depth`` GRU cells, per-joint mixture of Gaussians.

    ``forward(obs [B, num_inputs], carry [B, depth, hidden])`` returns the action distribution over
    ``[B, num_outputs, num_mixtures]`` and the next carry (every cell's new state).
    """

    def __init__(self, *, num_inputs: int, num_outputs: int, min_std: float, max_std: float, var_scale: float,
                 hidden_size: int, num_mixtures: int, depth: int) -> None:
        super().__init__()
        # Project input to hidden size.
        self.input_proj = nn.Linear(num_inputs, hidden_size)
        # Create the RNN layers.
        self.rnns = nn.ModuleList(nn.GRUCell(hidden_size, hidden_size) for _ in range(depth))
        # Project to output: a mean, a raw std and a logit per joint and mixture component.
        self.output_proj = nn.Linear(hidden_size, num_outputs * 3 * num_mixtures)

        self.num_inputs = num_inputs
        self.num_outputs = num_outputs
        self.num_mixtures = num_mixtures
        self.min_std = min_std
        self.max_std = max_std
        self.var_scale = var_scale
        self.zeros: torch.Tensor
        self.register_buffer("zeros", torch.tensor([v for _, v in ZEROS], dtype=torch.float32))

    def forward(self, obs_n: torch.Tensor, carry: torch.Tensor) -> tuple[MixtureOfGaussians, torch.Tensor]:
        """One control step for a batch: (distribution over [B, A, K], next carry [B, depth, hidden])."""
        x_n = self.input_proj(obs_n)
        out_carries = []
        for i, rnn in enumerate(self.rnns):
            x_n = rnn(x_n, carry[:, i])
            out_carries.append(x_n)
        out_n = self.output_proj(x_n)

        # Reshape the output to be a mixture of Gaussians.
        shape = (*out_n.shape[:-1], self.num_outputs, self.num_mixtures)
        slice_len = self.num_outputs * self.num_mixtures
        mean_nm = out_n[..., :slice_len].reshape(shape)
        std_nm = out_n[..., slice_len : slice_len * 2].reshape(shape)
        logits_nm = out_n[..., slice_len * 2 :].reshape(shape)

        # Softplus and clip to ensure positive standard deviations.
        std_nm = ((F.softplus(std_nm) + self.min_std) * self.var_scale).clamp(max=self.max_std)

        # Apply bias to the means.
        mean_nm = mean_nm + self.zeros[:, None]

        return MixtureOfGaussians(mean_nm, std_nm, logits_nm), torch.stack(out_carries, dim=1)


class Critic(nn.Module):
    """Critic for the walking task: input projection, ``depth`` GRU cells, one value."""

    def __init__(self, *, num_inputs: int, hidden_size: int, depth: int) -> None:
        super().__init__()
        num_outputs = 1
        self.input_proj = nn.Linear(num_inputs, hidden_size)
        self.rnns = nn.ModuleList(nn.GRUCell(hidden_size, hidden_size) for _ in range(depth))
        self.output_proj = nn.Linear(hidden_size, num_outputs)
        self.num_inputs = num_inputs

    def forward(self, obs_n: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One control step for a batch: (value [B, 1], next carry [B, depth, hidden])."""
        x_n = self.input_proj(obs_n)
        out_carries = []
        for i, rnn in enumerate(self.rnns):
            x_n = rnn(x_n, carry[:, i])
            out_carries.append(x_n)
        return self.output_proj(x_n), torch.stack(out_carries, dim=1)


class Model(nn.Module):
    """The actor and the critic, so one optimizer and one checkpoint hold both."""

    def __init__(self, *, num_actor_inputs: int, num_actor_outputs: int, num_critic_inputs: int, min_std: float,
                 max_std: float, var_scale: float, hidden_size: int, num_mixtures: int, depth: int) -> None:
        super().__init__()
        self.actor = Actor(num_inputs=num_actor_inputs, num_outputs=num_actor_outputs, min_std=min_std,
                           max_std=max_std, var_scale=var_scale, hidden_size=hidden_size,
                           num_mixtures=num_mixtures, depth=depth)
        self.critic = Critic(num_inputs=num_critic_inputs, hidden_size=hidden_size, depth=depth)
        self.depth, self.hidden_size = depth, hidden_size

    def initial_carry(self, batch_size: int, device: torch.device | str | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (actor, critic) carries, each [batch_size, depth, hidden]."""
        device = device or self.actor.zeros.device
        shape = (batch_size, self.depth, self.hidden_size)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)


# --- config -------------------------------------------------------------------------------------------
# ksim's config class subclasses ksim.PPOConfig; here it subclasses both ks.RLConfig (physics and
# sim-to-real) and ks.PPOConfig, and ``launch`` takes every PPO (and model) field it defines.


@dataclass(kw_only=True)
class HumanoidWalkingTaskConfig(ks.RLConfig, ks.PPOConfig):
    """Config for the humanoid walking task."""

    # Physics: ksim's integrator (its RLConfig default), which keeps K-Bot's stiff PD actuators stable.
    integrator: str = ks.config_field("implicitfast", "The MuJoCo integrator.")

    # Model parameters.
    hidden_size: int = ks.config_field(128, "The hidden size for the RNNs.")
    depth: int = ks.config_field(5, "The number of stacked RNN cells.")
    num_mixtures: int = ks.config_field(5, "The number of mixtures for the actor.")
    var_scale: float = ks.config_field(0.5, "The scale for the standard deviations of the actor.")
    use_acc_gyro: bool = ks.config_field(True, "Whether to use the IMU acceleration and gyroscope observations.")

    # Curriculum parameters.
    num_curriculum_levels: int = ks.config_field(100, "The number of curriculum levels to use.")
    increase_threshold: float = ks.config_field(5.0, "Increase the curriculum level when the mean trajectory "
                                                     "length (s) is above this threshold.")
    decrease_threshold: float = ks.config_field(1.0, "Decrease the curriculum level when the mean trajectory "
                                                     "length (s) is below this threshold.")
    min_level_steps: int = ks.config_field(1, "The minimum number of steps to wait before changing the level.")

    # Optimizer parameters.
    learning_rate: float = ks.config_field(3e-4, "Learning rate for PPO.")
    adam_weight_decay: float = ks.config_field(1e-5, "Weight decay for the Adam optimizer.")


# --- task ---------------------------------------------------------------------------------------------


class HumanoidWalkingTask(ks.PPOTask[HumanoidWalkingTaskConfig]):
    """K-Bot walking forward: the notebook's components, model and PPO hooks."""

    config_class = HumanoidWalkingTaskConfig

    def get_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Adam, or AdamW when ``adam_weight_decay`` is non-zero."""
        c = self.config
        if c.adam_weight_decay == 0.0:
            return torch.optim.Adam(model.parameters(), lr=c.learning_rate)
        return torch.optim.AdamW(model.parameters(), lr=c.learning_rate, weight_decay=c.adam_weight_decay)

    def get_mujoco_model(self) -> mujoco.MjModel:
        """K-Bot on a flat floor.

        Differs from the notebook: it downloads K-Bot through the K-Scale API
        (``ksim.get_mujoco_model_path("kbot")``) and loads it into mujoco_scenes' "smooth" floor;
        that needs the network, so this port uses the K-Bot model shipped with ktorch_sim.
        """
        return ks.load_kbot_model()

    def get_mujoco_model_metadata(self, mj_model: mujoco.MjModel) -> ks.RobotMetadata:
        """K-Bot's joint metadata (gains, limits), in the network's joint order (shipped, not downloaded)."""
        metadata = ks.kbot_metadata().in_policy_order()
        if list(metadata.joint_names) != [name for name, _ in ZEROS]:
            raise ValueError(f"K-Bot's policy joint order {list(metadata.joint_names)} differs from ZEROS")
        return metadata

    def get_actuators(self, physics_model: mujoco.MjModel, metadata: ks.RobotMetadata | None = None) -> ks.Actuators:
        """PD position control from the metadata's gains; actions are joint targets in ZEROS order."""
        assert metadata is not None, "Metadata is required"
        return ks.PositionActuators.create(physics_model, metadata)

    def get_physics_randomizers(self, physics_model: mujoco.MjModel) -> list[ks.PhysicsRandomizer]:
        """Friction, armature, mass, damping and joint zero positions."""
        return [
            ks.StaticFrictionRandomizer(),
            ks.ArmatureRandomizer(),
            ks.AllBodiesMassMultiplicationRandomizer(scale_lower=0.95, scale_upper=1.05),
            ks.JointDampingRandomizer(),
            ks.JointZeroPositionRandomizer(scale_lower=math.radians(-2), scale_upper=math.radians(2)),
        ]

    def get_events(self, physics_model: mujoco.MjModel) -> list[ks.Event]:
        """Velocity pushes on the base every 0.5-4 s."""
        return [
            ks.PushEvent(
                x_force=1.0,
                y_force=1.0,
                z_force=0.3,
                force_range=(0.5, 1.0),
                x_angular_force=0.0,
                y_angular_force=0.0,
                z_angular_force=0.0,
                interval_range=(0.5, 4.0),
            ),
        ]

    def get_resets(self, physics_model: mujoco.MjModel) -> list[ks.Reset]:
        """Joint angles around the zeros, random joint velocities."""
        return [
            ks.RandomJointPositionReset.create(physics_model, dict(ZEROS), scale=0.1),
            ks.RandomJointVelocityReset(),
        ]

    def get_observations(self, physics_model: mujoco.MjModel) -> list[ks.Observation]:
        """Everything the actor and the critic read (the noise is the actor's: see run_actor)."""
        return [
            ks.TimestepObservation(),
            ks.JointPositionObservation(noise=math.radians(2)),
            ks.JointVelocityObservation(noise=math.radians(10)),
            ks.ActuatorForceObservation(),
            ks.CenterOfMassInertiaObservation(),
            ks.CenterOfMassVelocityObservation(),
            ks.BasePositionObservation(),
            ks.BaseOrientationObservation(),
            ks.BaseLinearVelocityObservation(),
            ks.BaseAngularVelocityObservation(),
            ks.BaseLinearAccelerationObservation(),
            ks.BaseAngularAccelerationObservation(),
            ks.ActuatorAccelerationObservation(),
            ks.ProjectedGravityObservation.create(
                physics_model,
                framequat_name="imu_site_quat",
                lag_range=(0.0, 0.1),
                noise=math.radians(1),
            ),
            ks.SensorObservation.create(physics_model, sensor_name="imu_acc", noise=1.0),
            ks.SensorObservation.create(physics_model, sensor_name="imu_gyro", noise=math.radians(10)),
        ]

    def get_commands(self, physics_model: mujoco.MjModel) -> list[ks.Command]:
        """No commands: the robot always walks forward."""
        return []

    def get_rewards(self, physics_model: mujoco.MjModel) -> list[ks.Reward]:
        """Forward progress and survival, minus movement and smoothness penalties."""
        return [
            # Standard rewards.
            NaiveForwardReward(clip_max=1.25, in_robot_frame=False, scale=3.0),
            NaiveForwardOrientationReward(scale=1.0),
            ks.StayAliveReward(scale=1.0),
            ks.UprightReward(scale=0.5),
            # Avoid movement penalties.
            ks.AngularVelocityPenalty(index=("x", "y"), scale=-0.1),
            ks.LinearVelocityPenalty(index=("z",), scale=-0.1),
            # Normalization penalties.
            ks.AvoidLimitsPenalty.create(physics_model, scale=-0.01),
            JointAccelerationPenalty(scale=-0.01, scale_by_curriculum=True),
            JointJerkPenalty(scale=-0.01, scale_by_curriculum=True),
            LinkAccelerationPenalty(scale=-0.01, scale_by_curriculum=True),
            LinkJerkPenalty(scale=-0.01, scale_by_curriculum=True),
            ks.ActionAccelerationPenalty(scale=-0.01, scale_by_curriculum=True),
            # Bespoke rewards.
            BentArmPenalty.create_penalty(physics_model, scale=-0.1),
            StraightLegPenalty.create_penalty(physics_model, scale=-0.1),
        ]

    def get_terminations(self, physics_model: mujoco.MjModel) -> list[ks.Termination]:
        """Fallen (base outside 0.6-1.2 m) fails; walking 10 m from the origin ends the episode well."""
        return [
            ks.BadZTermination(unhealthy_z_lower=0.6, unhealthy_z_upper=1.2),
            ks.FarFromOriginTermination(max_dist=10.0),
        ]

    def get_curriculum(self, physics_model: mujoco.MjModel) -> ks.Curriculum:
        """Episode-length curriculum on the config's levels and thresholds.

        Differs from the notebook: it uses ``DistanceFromOriginCurriculum(min_level_steps=5)``, but
        ktorch_sim's trainer does not yet report the ``distance_from_origin`` metric that curriculum
        reads, so this port steps on the mean episode length (seconds) with the config's
        ``num_curriculum_levels`` / ``increase_threshold`` / ``decrease_threshold``, whose help
        texts describe exactly that rule.
        """
        c = self.config
        return ks.EpisodeLengthCurriculum(num_levels=c.num_curriculum_levels, increase_threshold=c.increase_threshold,
                                          decrease_threshold=c.decrease_threshold, min_level_steps=5)

    def get_model(self, spec: ks.PolicySpec) -> Model:
        """Build the notebook's Model; its input widths are the notebook's constants, checked against the env."""
        num_actor_inputs = 51 if self.config.use_acc_gyro else 45
        num_critic_inputs = 446
        measured = (spec.num_actor_inputs, spec.num_critic_inputs, spec.num_actions)
        if measured != (num_actor_inputs, num_critic_inputs, len(ZEROS)):
            raise ValueError(f"the environment gives (actor inputs, critic inputs, actions) = {measured}; the "
                             f"model expects {(num_actor_inputs, num_critic_inputs, len(ZEROS))}")
        return Model(
            num_actor_inputs=num_actor_inputs,
            num_actor_outputs=len(ZEROS),
            num_critic_inputs=num_critic_inputs,
            min_std=0.001,
            max_std=1.0,
            var_scale=self.config.var_scale,
            hidden_size=self.config.hidden_size,
            num_mixtures=self.config.num_mixtures,
            depth=self.config.depth,
        )

    # The input vectors. ktorch_sim measures the networks' input widths with these two hooks, so
    # run_actor / run_critic build their inputs through them.

    def actor_inputs(self, observations: TensorDict, commands: TensorDict) -> torch.Tensor:
        """Return the actor's input [..., 51] (45 without the IMU): time, joints, gravity, IMU; noisy readings.

        Differs from the notebook: ksim adds observation noise in place, so its actor and critic
        both read noisy values; ktorch_sim keeps clean values and ``noisy_*`` copies, and this port
        gives the noisy ones to the actor and the clean ones to the critic.
        """
        time_1 = observations["timestep_observation"]
        joint_pos_n = _noisy(observations, "joint_position_observation")
        joint_vel_n = _noisy(observations, "joint_velocity_observation")
        proj_grav_3 = _noisy(observations, "projected_gravity_observation")
        imu_acc_3 = _noisy(observations, "sensor_observation_imu_acc")
        imu_gyro_3 = _noisy(observations, "sensor_observation_imu_gyro")

        obs = [
            torch.sin(time_1),
            torch.cos(time_1),
            joint_pos_n,  # NUM_JOINTS
            joint_vel_n,  # NUM_JOINTS
            proj_grav_3,  # 3
        ]
        if self.config.use_acc_gyro:
            obs += [
                imu_acc_3,  # 3
                imu_gyro_3,  # 3
            ]
        return torch.cat(obs, dim=-1)

    def critic_inputs(self, observations: TensorDict, commands: TensorDict) -> torch.Tensor:
        """Return the critic's input [..., 446]: clean, privileged state (centre of mass, forces, base pose)."""
        time_1 = observations["timestep_observation"]
        dh_joint_pos_j = observations["joint_position_observation"]
        dh_joint_vel_j = observations["joint_velocity_observation"]
        com_inertia_n = observations["center_of_mass_inertia_observation"]
        com_vel_n = observations["center_of_mass_velocity_observation"]
        imu_acc_3 = observations["sensor_observation_imu_acc"]
        imu_gyro_3 = observations["sensor_observation_imu_gyro"]
        proj_grav_3 = observations["projected_gravity_observation"]
        act_frc_obs_n = observations["actuator_force_observation"]
        base_pos_3 = observations["base_position_observation"]
        base_quat_4 = observations["base_orientation_observation"]

        return torch.cat(
            [
                torch.sin(time_1),
                torch.cos(time_1),
                dh_joint_pos_j,  # NUM_JOINTS
                dh_joint_vel_j / 10.0,  # NUM_JOINTS
                com_inertia_n,  # (nbody - 1) * 10 = 230 on this K-Bot
                com_vel_n,  # (nbody - 1) * 6 = 138
                imu_acc_3,  # 3
                imu_gyro_3,  # 3
                proj_grav_3,  # 3
                act_frc_obs_n / 100.0,  # NUM_JOINTS
                base_pos_3,  # 3
                base_quat_4,  # 4
            ],
            dim=-1,
        )

    def run_actor(self, model: Actor, observations: TensorDict, commands: TensorDict, carry: torch.Tensor
                  ) -> tuple[MixtureOfGaussians, torch.Tensor]:
        """Return the action distribution [B, 20, K] for one step, and the next actor carry."""
        obs_n = self.actor_inputs(observations, commands)
        return model(obs_n, carry)

    def run_critic(self, model: Critic, observations: TensorDict, commands: TensorDict, carry: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the value [B, 1] for one step, and the next critic carry."""
        obs_n = self.critic_inputs(observations, commands)
        return model(obs_n, carry)

    def _model_scan_fn(self, actor_critic_carry: tuple[torch.Tensor, torch.Tensor], transition: TensorDict,
                       model: Model) -> tuple[tuple[torch.Tensor, torch.Tensor], ks.PPOVariables]:
        """One step of the replay: PPO variables [B] for ``transition``, and the carry for the next step."""
        actor_carry, critic_carry = actor_critic_carry
        actor_dist, next_actor_carry = self.run_actor(model.actor, transition["observation"],
                                                      transition["command"], actor_carry)

        # Gets the log probabilities of the action.
        log_probs = actor_dist.log_prob(transition["action"]).sum(-1)

        value, next_critic_carry = self.run_critic(model.critic, transition["observation"], transition["command"],
                                                   critic_carry)

        transition_ppo_variables = ks.PPOVariables(
            log_probs=log_probs,
            values=value.squeeze(-1),
            entropy=actor_dist.entropy().sum(-1),
            action_std=actor_dist.stddev.mean(-1),
        )

        # Episodes that ended at this step start the next one from a fresh carry.
        done = transition["next", "done"].reshape(-1, 1, 1)
        initial_actor, initial_critic = self.get_initial_model_carry(model, done.shape[0])
        next_carry = (torch.where(done, initial_actor, next_actor_carry),
                      torch.where(done, initial_critic, next_critic_carry))
        return next_carry, transition_ppo_variables

    def get_ppo_variables(self, model: Model, trajectory: TensorDict,
                          model_carry: tuple[torch.Tensor, torch.Tensor]
                          ) -> tuple[ks.PPOVariables, tuple[torch.Tensor, torch.Tensor]]:
        """Replay a [B, T] trajectory from ``model_carry`` (the scan of the notebook, as a loop over T)."""
        carry, steps = model_carry, []
        for t in range(trajectory.batch_size[1]):
            carry, variables = self._model_scan_fn(carry, trajectory[:, t], model)
            steps.append(variables)
        ppo_variables = ks.PPOVariables(
            log_probs=torch.stack([v.log_probs for v in steps], dim=1),
            values=torch.stack([v.values for v in steps], dim=1),
            entropy=torch.stack([v.entropy for v in steps], dim=1),
            action_std=torch.stack([v.action_std for v in steps], dim=1).mean().detach(),
        )
        return ppo_variables, carry

    def get_initial_model_carry(self, model: Model, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (actor, critic) carries, each [batch_size, depth, hidden_size]."""
        return model.initial_carry(batch_size)

    def sample_action(self, model: Model, model_carry: tuple[torch.Tensor, torch.Tensor], observations: TensorDict,
                      commands: TensorDict, generator: torch.Generator | None = None, argmax: bool = False
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
        """Return the action [B, 20] (the mode with ``argmax``), the next carry, and its log-prob and value [B].

        Differs from the notebook: ksim computes the rollout's values afterwards, so its
        ``sample_action`` passes the critic carry through unchanged. ktorch_sim's rollout records
        each step's value here, so the critic runs (and its carry advances) at every step too.
        """
        actor_carry_in, critic_carry_in = model_carry
        action_dist_j, actor_carry = self.run_actor(model.actor, observations, commands, actor_carry_in)
        value, critic_carry = self.run_critic(model.critic, observations, commands, critic_carry_in)
        action_j = action_dist_j.mode() if argmax else action_dist_j.sample(generator)
        extras = {"log_prob": action_dist_j.log_prob(action_j).sum(-1), "value": value[..., 0]}
        return action_j, (actor_carry, critic_carry), extras


def _noisy(observations: TensorDict, name: str) -> torch.Tensor:
    """Return the noisy reading of an observation when the environment made one, else the clean value."""
    noisy = f"noisy_{name}"
    return observations[noisy] if noisy in observations.keys() else observations[name]


# --- launching an experiment ------------------------------------------------------------------------------


def notebook_config(**overrides: object) -> HumanoidWalkingTaskConfig:
    """Return the launch cell's settings (``overrides`` replace any of them)."""
    settings: dict[str, object] = dict(
        # Training parameters.
        num_envs=2048,
        batch_size=256,
        num_passes=4,
        rollout_length_seconds=8.0,
        grad_clip=2.0,  # ksim: global_grad_clip
        # Simulation parameters.
        dt=0.002,
        ctrl_dt=0.02,
        iterations=8,
        ls_iterations=8,
        action_latency_range=(0.003, 0.01),  # Simulate 3-10 ms of latency.
        drop_action_prob=0.05,  # Drop 5% of commands.
    )
    settings.update(overrides)
    return HumanoidWalkingTaskConfig(**settings)


def tiny_config(**overrides: object) -> HumanoidWalkingTaskConfig:
    """Return a CPU smoke run of the same task: 4 envs, 5 control steps, small networks, one iteration."""
    settings: dict[str, object] = dict(num_envs=4, batch_size=4, num_passes=1, rollout_length_seconds=0.1,
                                       hidden_size=16, depth=2, device="cpu", engine="mujoco")
    settings.update(overrides)
    config = notebook_config(**settings)
    if "max_steps" not in overrides:
        config.max_steps = config.num_envs * max(1, round(config.rollout_length_seconds / config.ctrl_dt))
    return config


def main(argv: Sequence[str] | None = None) -> Path:
    """Train with the notebook's settings (``--tiny``: a one-iteration CPU smoke run); returns the run directory."""
    parser = argparse.ArgumentParser(description="K-Scale Humanoid Benchmark on ktorch_sim.")
    parser.add_argument("--tiny", action="store_true",
                        help=f"one-iteration CPU smoke run, wandb disabled (also: {TINY_ENV_VAR}=1)")
    parser.add_argument("--run-dir", default=None,
                        help="parent directory of the run (default: runs/, or a temporary directory with --tiny)")
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get(TINY_ENV_VAR, "") not in ("", "0")

    run_name = f"humanoid_walking_task-{time.strftime('%Y%m%d-%H%M%S')}"
    if tiny:
        config = tiny_config()
        run_dir = args.run_dir or tempfile.mkdtemp(prefix="humanoid_benchmark_")
        logging = ks.LoggingConfig(wandb_mode="disabled", run_dir=run_dir, run_name=run_name)
    else:
        config = notebook_config()
        if not torch.cuda.is_available():  # native MuJoCo on the CPU: 2048 worlds would take hours per iteration
            print("no GPU: training 32 environments on the CPU instead of the notebook's 2048", file=sys.stderr)
            config = notebook_config(num_envs=32, batch_size=8)
        logging = ks.LoggingConfig(run_dir=args.run_dir or "runs", run_name=run_name, log_every_iterations=1)

    # The notebook also sets render_track_body_id=0 (its viewer follows the base); ktorch_sim's
    # runs render no video by default, so there is nothing to set.
    return HumanoidWalkingTask.launch(
        config,
        logging=logging,  # ksim: epochs_per_log_step=1
        checkpoint=ks.CheckpointConfig(save_every_seconds=60),  # ksim: save_every_n_seconds=60
        progress=not tiny,
    )


if __name__ == "__main__":
    print(f"run directory: {main(sys.argv[1:])}")
