"""``kbot_walk``: K-Bot following velocity commands, in the style of ksim's K-Bot example.

The policy tracks body-frame (vx, vy, wz) commands drawn at random (20 % of them "stand
still") with a sinusoidal gait clock for the feet. The actor sees what the robot's sensors
give (joint encoders, IMU gyro, IMU-derived gravity with lag and a per-episode tilt bias) plus
the commands; the critic additionally sees privileged state (base velocity, height, foot
contact and positions, actuator forces). Sim-to-real: K-Bot example gains (kp, kd x1.4,
torque limit x1.5), action noise, 3-10 ms latency, 5 % dropped actions, 3 deg encoder
offsets, force pushes on the base, friction/armature/mass/CoM randomization, all scaled by an
episode-length curriculum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mujoco

import ktorch_sim.components as kc
from ktorch_sim.robots.kbot import KBOT_FOOT_GEOMS
from ktorch_sim.tasks.configs import KbotWalkConfig  # defined there (importable without torch)
from ktorch_sim.tasks.kbot_base import ARM_JOINTS, KbotTask, home_pose

FEET = ("LFootBushing_GPF_1517_12", "RFootBushing_GPF_1517_12")
LEFT_FOOT_GEOMS = ("left_foot_collision_0", "left_foot_collision_1")
RIGHT_FOOT_GEOMS = ("right_foot_collision_0", "right_foot_collision_1")
COMMAND = "velocity_command"


class KbotWalkTask(KbotTask[KbotWalkConfig]):
    """K-Bot velocity-command walking; see the module docstring."""

    config_class = KbotWalkConfig
    ACTOR_OBSERVATIONS = ("joint_position_observation", "joint_velocity_observation", "projected_gravity_observation",
                          "sensor_observation_imu_gyro")

    def get_physics_randomizers(self, model: mujoco.MjModel) -> Sequence[kc.PhysicsRandomizer]:
        """Friction, armature, mass and centre of mass."""
        return (
            kc.StaticFrictionRandomizer(scale_lower=0.5, scale_upper=2.0),
            kc.ArmatureRandomizer(scale_lower=0.95, scale_upper=1.05),
            kc.FootFrictionRandomizer.from_geom_names(model, KBOT_FOOT_GEOMS, scale_lower=0.5, scale_upper=1.5),
            kc.AllBodiesMassMultiplicationRandomizer(scale_lower=0.95, scale_upper=1.05),
            kc.AllBodiesCOMRandomizer(scale=0.01),
        )

    def get_events(self, model: mujoco.MjModel) -> Sequence[kc.Event]:
        """Force pushes on the base: up to 200 N and 10 N m for 0.1-0.5 s, every 2-6 s."""
        return (kc.ForcePushEvent.from_body_name(model, "base", max_force=200.0, max_torque=10.0,
                                                 duration_range=(0.1, 0.5), interval_range=(2.0, 6.0)),)

    def get_resets(self, model: mujoco.MjModel) -> Sequence[kc.Reset]:
        """Joints around the home pose, random joint and base velocities, random heading."""
        home = home_pose(self.robot_metadata())
        return (
            kc.RandomJointPositionReset.create(model, zeros=home, scale=0.1),
            kc.RandomJointVelocityReset(scale=0.5),
            kc.RandomBaseVelocityXYReset(scale=0.2),
            kc.RandomHeadingReset(),
        )

    def get_observations(self, model: mujoco.MjModel) -> Sequence[kc.Observation]:
        """Sensor-like actor inputs (noisy) and privileged critic inputs."""
        return (
            kc.JointPositionObservation(noise=math.radians(2)),
            kc.JointVelocityObservation(noise=math.radians(10)),
            kc.ProjectedGravityObservation.create(model, framequat_name="imu_site_quat", lag_range=(0.0, 0.5),
                                                  imu_bias=math.radians(4), noise=math.radians(3)),
            kc.SensorObservation.create(model, sensor_name="imu_gyro", noise=math.radians(10)),
            kc.BaseLinearVelocityObservation(in_robot_frame=True),
            kc.BaseAngularVelocityObservation(),
            kc.BaseHeightObservation.create(model, base_body_name="base", foot_left_body_name=FEET[0],
                                            foot_right_body_name=FEET[1]),
            kc.FeetContactObservation.create(model, foot_left_geom_names=LEFT_FOOT_GEOMS,
                                             foot_right_geom_names=RIGHT_FOOT_GEOMS, floor_geom_names="floor"),
            kc.FeetPositionObservation.create(model, foot_left_body_name=FEET[0], foot_right_body_name=FEET[1]),
            kc.ActuatorForceObservation(),
        )

    def get_commands(self, model: mujoco.MjModel) -> Sequence[kc.Command]:
        """Velocity targets (re-drawn about every 5 s) and the gait clock."""
        c = self.config
        return (
            kc.VelocityCommand(x_range=(-0.5 * c.max_forward_speed, c.max_forward_speed),
                               y_range=(-c.max_lateral_speed, c.max_lateral_speed),
                               yaw_range=(-c.max_yaw_rate, c.max_yaw_rate), zero_prob=0.2,
                               switch_prob=c.ctrl_dt / 5.0),
            kc.SinusoidalGaitCommand(gait_period=c.gait_period, ctrl_dt=c.ctrl_dt, max_height=c.max_foot_height,
                                     height_offset=0.06, command_name=COMMAND, moving_threshold=0.05),
        )

    def get_rewards(self, model: mujoco.MjModel) -> Sequence[kc.Reward]:
        """Velocity tracking and gait shaping, survival and posture, smoothness penalties."""
        c = self.config
        home = home_pose(self.robot_metadata())
        return (
            kc.LinearVelocityReward(cmd=COMMAND, scale=1.0),
            kc.AngularVelocityReward(cmd=COMMAND, index=2, scale=0.5),
            kc.OffAxisVelocityReward(scale=0.2),
            kc.StayAliveReward(balance=10.0, scale=1.0),
            kc.UprightReward(scale=0.5),
            kc.BaseHeightReward.create(model, height_target=c.base_height_target, foot_body_names=FEET, scale=0.5),
            kc.FeetAirTimeReward(ctrl_dt=c.ctrl_dt, threshold=0.3, linvel_cmd=COMMAND, scale=1.0),
            kc.SinusoidalGaitReward(ctrl_dt=c.ctrl_dt, max_height=c.max_foot_height, scale=0.5),
            kc.FeetSlipPenalty.create(model, foot_body_names=FEET, scale=0.1),
            kc.ActionSmoothnessPenalty(scale=0.01),
            kc.JointVelocityPenalty(scale=0.001),
            kc.AvoidLimitsPenalty.create(model, scale=0.01),
            kc.ActuatorRelativeForcePenalty.create(model, scale=0.01),
            kc.JointDeviationPenalty.create(model, joint_names=ARM_JOINTS,
                                            joint_targets=[home[j] for j in ARM_JOINTS], scale=0.1),
        )

    def get_terminations(self, model: mujoco.MjModel) -> Sequence[kc.Termination]:
        """Fallen (base below 0.4 m), tipped beyond 45 deg, or out of time."""
        return (
            kc.MinimumHeightTermination(min_height=0.4),
            kc.NotUprightTermination(max_radians=math.radians(45)),
            kc.EpisodeLengthTermination(max_length_sec=self.config.episode_length_seconds),
        )

    def get_curriculum(self, model: mujoco.MjModel) -> kc.Curriculum:
        """Raise disturbances as episodes get longer (seconds of survival)."""
        return kc.EpisodeLengthCurriculum(num_levels=10, increase_threshold=10.0, decrease_threshold=5.0,
                                          min_level_steps=5)
