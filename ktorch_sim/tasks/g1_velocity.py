"""``g1_velocity``: the Unitree G1 on flat ground following velocity commands, matched to mjlab.

The counterpart of mjlab's ``Mjlab-Velocity-Flat-Unitree-G1``, for side-by-side throughput runs
(``tools/bench_mjlab.py``, docs/mjlab_comparison.md) and as a second robot for ktorch_sim. The
model is mjlab's own G1 MJCF, found at run time (``task.model_path``, ``$KTORCH_G1_XML`` or the
installed ``mjlab`` package; see :mod:`ktorch_sim.robots.g1`); nothing of it is copied here.

Matched to mjlab's flat G1 task: physics (dt 0.005 s, 4 substeps per 50 Hz control step, Newton,
pyramidal cone, implicitfast, 10 solver / 20 line-search iterations, 50 CCD iterations, contact
buffer 48 per world as MuJoCo Warp's default for this model, 300 constraint rows), the collision
set, PD gains from reflected inertia, the knees-bent start pose, 20 s episodes, and a component
set of the same size and kind:

- actor: IMU linear and angular velocity, projected gravity, joint positions and velocities
  (noisy), plus the (vx, vy, wz) command; critic: the same clean, plus foot contacts and positions;
- commands: vx, vy in [-1, 1] m/s, wz in [-0.5, 0.5] rad/s, 10 % standing, resampled about every
  5.5 s (mjlab: uniformly every 3-8 s, with a heading mode this port does not have);
- rewards: linear and yaw-rate tracking (x2), upright, posture, joint limits, action rate, body
  angular velocity and foot slip penalties;
- terminations: tipped beyond 70 deg, pelvis below 0.3 m, 20 s time limit;
- resets and events: random heading, start height +1-5 cm, velocity pushes every 1-3 s;
  randomized foot friction (0.3-1.2) and torso centre of mass (+-2.5 cm).

Differences that remain (documented in docs/mjlab_comparison.md): actions are joint targets in
radians around the start pose (mjlab scales them per joint by 0.25 effort/kp); no last-action
observation, foot-height sensors, swing-height/clearance/soft-landing terms or command curriculum;
friction and centre of mass are drawn per episode rather than once at start-up.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import mujoco
import numpy as np

import ktorch_sim.components as kc
from ktorch_sim.actuators import Actuators, PositionActuators
from ktorch_sim.ppo_task import PPOTask
from ktorch_sim.robots.g1 import (
    FLOOR,
    IMU_QUAT_SENSOR,
    build_g1_model,
    find_g1_xml,
    g1_gains,
    g1_initial_qpos,
)
from ktorch_sim.tasks.configs import G1VelocityConfig  # defined there (importable without torch)

COMMAND = "velocity_command"
FEET = ("left_ankle_roll_link", "right_ankle_roll_link")
LEFT_FOOT_GEOMS = tuple(f"left_foot{i}_collision" for i in range(1, 8))
RIGHT_FOOT_GEOMS = tuple(f"right_foot{i}_collision" for i in range(1, 8))


class G1VelocityTask(PPOTask[G1VelocityConfig]):
    """Unitree G1 velocity tracking on flat ground; see the module docstring."""

    config_class = G1VelocityConfig

    def get_actor_observation_names(self, observation_names: Sequence[str]) -> list[str]:
        """Return what the robot measures: IMU, gravity direction, joint encoders (the commands are added)."""
        actor = ("sensor_observation_imu_lin_vel", "sensor_observation_imu_ang_vel", "projected_gravity_observation",
                 "joint_position_observation", "joint_velocity_observation")
        return [n for n in actor if n in observation_names]

    def get_mujoco_model(self) -> mujoco.MjModel:
        """Build mjlab's G1 scene from the located MJCF, with mjlab's CCD iteration count."""
        model = build_g1_model(find_g1_xml(self.config.model_path))
        model.opt.ccd_iterations = self.config.ccd_iterations
        return model

    def get_initial_qpos(self, model: mujoco.MjModel) -> np.ndarray:
        """Return mjlab's knees-bent start pose."""
        return g1_initial_qpos(model)

    def get_actuators(self, model: mujoco.MjModel, metadata: object = None) -> Actuators:
        """PD position control of all 29 joints with mjlab's G1 gains and torque limits."""
        names = tuple(model.joint(i).name for i in range(model.njnt)
                      if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE)
        kp, kd, effort, _ = g1_gains(names)
        ids = tuple(model.actuator(f"{n}_ctrl").id for n in names)
        return PositionActuators(joint_names=names, actuator_ids=ids, num_actuators=model.nu,
                                 kp=tuple(kp.tolist()), kd=tuple(kd.tolist()), soft_torque_limit=tuple(effort.tolist()))

    def get_physics_randomizers(self, model: mujoco.MjModel) -> Sequence[kc.PhysicsRandomizer]:
        """Foot friction 0.3-1.2 (all foot capsules together) and the torso's centre of mass +-2.5 cm."""
        return (
            kc.FootFrictionRandomizer.from_geom_names(model, LEFT_FOOT_GEOMS + RIGHT_FOOT_GEOMS,
                                                      scale_lower=0.5, scale_upper=2.0),
            kc.COMRandomizer.from_body_name(model, "torso_link", scale=0.025),
        )

    def get_events(self, model: mujoco.MjModel) -> Sequence[kc.Event]:
        """Planar velocity kicks of up to ``push_velocity`` every 1-3 s."""
        return (kc.LinearPushEvent(interval_range=(1.0, 3.0), linvel=self.config.push_velocity),)

    def get_resets(self, model: mujoco.MjModel) -> Sequence[kc.Reset]:
        """Start pose at a random heading, 1-5 cm higher (mjlab's root-state reset)."""
        return (kc.RandomHeadingReset(), kc.RandomHeightReset(range=(0.01, 0.05)))

    def get_observations(self, model: mujoco.MjModel) -> Sequence[kc.Observation]:
        """IMU, gravity and joint state (with mjlab's noise widths as std), plus privileged foot state."""
        return (
            kc.SensorObservation.create(model, sensor_name="imu_lin_vel", noise=0.5),
            kc.SensorObservation.create(model, sensor_name="imu_ang_vel", noise=0.2),
            dataclasses.replace(  # gravity as a unit vector, as mjlab's
                kc.ProjectedGravityObservation.create(model, framequat_name=IMU_QUAT_SENSOR, noise=0.05),
                gravity=(0.0, 0.0, -1.0)),
            kc.JointPositionObservation(noise=0.01),
            kc.JointVelocityObservation(noise=1.5),
            kc.FeetContactObservation.create(model, foot_left_geom_names=LEFT_FOOT_GEOMS,
                                             foot_right_geom_names=RIGHT_FOOT_GEOMS, floor_geom_names=FLOOR),
            kc.FeetPositionObservation.create(model, foot_left_body_name=FEET[0], foot_right_body_name=FEET[1]),
        )

    def get_commands(self, model: mujoco.MjModel) -> Sequence[kc.Command]:
        """(vx, vy, wz) targets, 10 % standing, resampled on average every 5.5 s."""
        c = self.config
        return (kc.VelocityCommand(x_range=(-c.max_linear_speed, c.max_linear_speed),
                                   y_range=(-c.max_linear_speed, c.max_linear_speed),
                                   yaw_range=(-c.max_yaw_rate, c.max_yaw_rate), zero_prob=0.1,
                                   switch_prob=c.ctrl_dt / 5.5),)

    def get_rewards(self, model: mujoco.MjModel) -> Sequence[kc.Reward]:
        """Tracking, upright and posture terms; limit, action-rate, body-rotation and slip penalties."""
        start = g1_initial_qpos(model)
        names = [model.joint(i).name for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE]
        targets = [float(start[model.jnt_qposadr[model.joint(n).id]]) for n in names]
        return (
            kc.LinearVelocityReward(cmd=COMMAND, scale=2.0),
            kc.AngularVelocityReward(cmd=COMMAND, index=2, scale=2.0),
            kc.UprightReward(scale=1.0),
            kc.JointDeviationPenalty.create(model, joint_names=names, joint_targets=targets, scale=0.1),
            kc.AvoidLimitsPenalty.create(model, factor=0.05, scale=1.0),
            kc.ActionSmoothnessPenalty(scale=0.1),
            kc.AngularVelocityPenalty(index=("x", "y"), scale=0.05),
            kc.FeetSlipPenalty.create(model, foot_body_names=FEET, scale=0.1),
        )

    def get_terminations(self, model: mujoco.MjModel) -> Sequence[kc.Termination]:
        """Tipped beyond 70 deg (mjlab's fell_over), pelvis below 0.3 m, or out of time."""
        return (
            kc.NotUprightTermination(max_radians=math.radians(70.0)),
            kc.BadZTermination(min_z=0.3),
            kc.EpisodeLengthTermination(max_length_sec=self.config.episode_length_seconds),
        )
