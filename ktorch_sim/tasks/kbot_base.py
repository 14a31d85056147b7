"""What every K-Bot task shares.

The model, its metadata in policy order, PD actuators, and the actor's view of the observations.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import mujoco

from ktorch_sim.actuators import Actuators, PositionActuators
from ktorch_sim.ppo_task import PPOTask
from ktorch_sim.robot_metadata import RobotMetadata
from ktorch_sim.robots import kbot_metadata
from ktorch_sim.robots.kbot import load_kbot_robot
from ktorch_sim.task import ConfigT
from ktorch_sim.tasks.configs import KbotConfig  # noqa: F401 - defined there (importable without torch)

ARM_JOINTS = tuple(f"dof_{side}_{joint}" for side in ("right", "left")
                   for joint in ("shoulder_pitch_03", "shoulder_roll_03", "shoulder_yaw_02", "elbow_02", "wrist_00"))


def home_pose(meta: RobotMetadata | None = None) -> dict[str, float]:
    """Home joint angles by joint name, radians (of ``meta``; default: the shipped K-Bot metadata)."""
    meta = meta or kbot_metadata()
    return dict(zip(meta.joint_names, meta.home, strict=True))


class KbotTask(PPOTask[ConfigT]):
    """A K-Bot PPO task on a flat floor; subclasses list ``ACTOR_OBSERVATIONS`` and the components."""

    ACTOR_OBSERVATIONS: tuple[str, ...] = ()

    def get_actor_observation_names(self, observation_names: Sequence[str]) -> list[str]:
        """Only what the real robot measures (noisy versions are used when present), plus commands."""
        return [n for n in self.ACTOR_OBSERVATIONS if n in observation_names]

    def get_mujoco_model(self) -> mujoco.MjModel:
        """K-Bot on a flat floor (or ``model_path``'s scene)."""
        model, _ = load_kbot_robot(self.config.model_path, self.config.metadata_path)
        return copy.copy(model)

    def robot_metadata(self) -> RobotMetadata:
        """Return the joint metadata (``metadata_path``, default K-Bot's), in file order."""
        return load_kbot_robot(self.config.model_path, self.config.metadata_path)[1]

    def get_mujoco_model_metadata(self, model: mujoco.MjModel) -> RobotMetadata:
        """Return the joint metadata, with actions in the deployed policy's joint order (nn_id)."""
        return self.robot_metadata().in_policy_order()

    def get_actuators(self, model: mujoco.MjModel, metadata: RobotMetadata | None = None) -> Actuators:
        """MIT PD position control from the metadata gains and the config's scales."""
        c = self.config
        return PositionActuators.create(model, metadata or self.get_mujoco_model_metadata(model), kp_scale=c.kp_scale,
                                        kd_scale=c.kd_scale, torque_limit_scale=c.torque_limit_scale,
                                        action_noise=c.action_noise)
