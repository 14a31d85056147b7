"""``kbot_stand``: the K-Scale humanoid benchmark task on K-Bot, with ksim's component list.

The K-Scale "humanoid benchmark" notebook trains K-Bot to stay up and balance under pushes:
every observation the notebook lists (its actor reads time, joint positions/velocities,
projected gravity and the IMU; the critic also gets the centre-of-mass inertia/velocity,
actuator forces and base pose), five physics randomizers, velocity pushes at random
intervals, joint-position and joint-velocity resets, and survival/posture rewards with
normalisation penalties. Weights are the notebook's where it lists the component; the rest
follow ksim's K-Bot example and are marked "ours" below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mujoco

import ktorch_sim.components as kc
from ktorch_sim.tasks.configs import KbotStandConfig  # defined there (importable without torch)
from ktorch_sim.tasks.kbot_base import ARM_JOINTS, KbotTask, home_pose


class KbotStandTask(KbotTask[KbotStandConfig]):
    """K-Bot balancing in place; see the module docstring."""

    config_class = KbotStandConfig
    ACTOR_OBSERVATIONS = ("timestep_observation", "joint_position_observation", "joint_velocity_observation",
                          "projected_gravity_observation", "sensor_observation_imu_acc", "sensor_observation_imu_gyro")

    def get_actor_observation_names(self, observation_names: Sequence[str]) -> list[str]:
        """The notebook's actor inputs, and the base-frame velocity with ``actor_base_velocity``."""
        names = super().get_actor_observation_names(observation_names)
        if self.config.actor_base_velocity:
            names.append("base_linear_velocity_observation")
        return names

    def get_physics_randomizers(self, model: mujoco.MjModel) -> Sequence[kc.PhysicsRandomizer]:
        """The notebook's five randomizers."""
        return (
            kc.StaticFrictionRandomizer(),
            kc.ArmatureRandomizer(),
            kc.AllBodiesMassMultiplicationRandomizer(scale_lower=0.95, scale_upper=1.05),
            kc.JointDampingRandomizer(),
            kc.JointZeroPositionRandomizer(scale_lower=math.radians(-2), scale_upper=math.radians(2)),
        )

    def get_events(self, model: mujoco.MjModel) -> Sequence[kc.Event]:
        """Velocity pushes every 0.5-4 s (the notebook's settings)."""
        return (kc.PushEvent(x_force=1.0, y_force=1.0, z_force=0.3, force_range=(0.5, 1.0), interval_range=(0.5, 4.0)),)

    def get_resets(self, model: mujoco.MjModel) -> Sequence[kc.Reset]:
        """Joint positions around the home pose, joint velocities, and a random heading."""
        home = home_pose(self.robot_metadata())
        return (
            kc.RandomJointPositionReset.create(model, zeros=home, scale=0.1),
            kc.RandomJointVelocityReset(),
            kc.RandomHeadingReset(),
        )

    def get_observations(self, model: mujoco.MjModel) -> Sequence[kc.Observation]:
        """The notebook's observations, with its noise levels (and the actor's base-frame velocity when asked)."""
        actor_velocity = self.config.actor_base_velocity
        return (
            kc.TimestepObservation(),
            kc.JointPositionObservation(noise=math.radians(2)),
            kc.JointVelocityObservation(noise=math.radians(10)),
            kc.ActuatorForceObservation(),
            kc.CenterOfMassInertiaObservation(),
            kc.CenterOfMassVelocityObservation(),
            kc.BasePositionObservation(),
            kc.BaseOrientationObservation(),
            kc.BaseLinearVelocityObservation(in_robot_frame=actor_velocity, noise=0.1 if actor_velocity else 0.0),
            kc.BaseAngularVelocityObservation(),
            kc.BaseLinearAccelerationObservation(),
            kc.BaseAngularAccelerationObservation(),
            kc.ActuatorAccelerationObservation(),
            kc.ProjectedGravityObservation.create(model, framequat_name="imu_site_quat", lag_range=(0.0, 0.1),
                                                  noise=math.radians(1)),
            kc.SensorObservation.create(model, sensor_name="imu_acc", noise=1.0),
            kc.SensorObservation.create(model, sensor_name="imu_gyro", noise=math.radians(10)),
        )

    def get_rewards(self, model: mujoco.MjModel) -> Sequence[kc.Reward]:
        """Survival and posture, plus normalisation penalties."""
        home = home_pose(self.robot_metadata())
        drift = self.config.planar_velocity_penalty
        braking = (kc.PlanarVelocityPenalty(scale=-drift),) if drift > 0 else ()  # ours
        return (
            *braking,
            kc.StayAliveReward(balance=10.0, scale=1.0),  # ours: 0.1 per step alive, -1 on a fall
            kc.UprightReward(scale=0.5),
            kc.AngularVelocityPenalty(index=("x", "y"), scale=-0.01),  # ours: the notebook's 0.1 outweighs
            kc.LinearVelocityPenalty(index=("z",), scale=-0.01),  # staying alive for a flailing random policy
            kc.AvoidLimitsPenalty.create(model, scale=-0.01),
            kc.ActionInBoundsPenalty.create(model, scale=-0.01),  # ours
            kc.ActionNearPositionPenalty.create(model, joint_threshold=math.radians(30), scale=-0.01),  # ours
            kc.JointVelocityPenalty(scale=-0.001),  # ours
            kc.ActionSmoothnessPenalty(scale=-0.01),  # ours
            kc.ActuatorRelativeForcePenalty.create(model, scale=-0.01),  # ours
            kc.JointDeviationPenalty.create(model, joint_names=ARM_JOINTS,
                                            joint_targets=[home[j] for j in ARM_JOINTS], scale=-0.1),
        )

    def get_terminations(self, model: mujoco.MjModel) -> Sequence[kc.Termination]:
        """Fallen (base too low or too high), tipped over, blown up, wandered off (unless no limit), or out of time."""
        limit = self.config.max_distance_from_origin
        return (
            kc.BadZTermination(unhealthy_z_lower=0.4, unhealthy_z_upper=1.2),
            kc.NotUprightTermination(max_radians=math.radians(60)),
            kc.HighVelocityTermination(max_vel=100.0),
            *((kc.FarFromOriginTermination(max_dist=limit),) if limit > 0 else ()),
            kc.EpisodeLengthTermination(max_length_sec=self.config.episode_length_seconds),
        )

    def get_curriculum(self, model: mujoco.MjModel) -> kc.Curriculum:
        """Noise, pushes and randomization grow with training iterations or the episode length, or start full."""
        if self.config.curriculum == "full":
            return kc.ConstantCurriculum(level=1.0)
        if self.config.curriculum == "episode_length":
            up = self.config.curriculum_up_seconds
            return kc.EpisodeLengthCurriculum(num_levels=20, min_level_steps=5, increase_threshold=up,
                                              decrease_threshold=up / 2)
        return kc.LinearCurriculum(step_size=0.01, step_every_n_epochs=1)
