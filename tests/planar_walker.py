"""A planar 2-D walker without a free joint, for the generality tests: its root hangs on slide-x,
slide-z and hinge-y joints (as Gymnasium's Walker2d), two legs with hip and knee, foot contacts
on a floor, and unnamed motors. Built only from ``ks`` components, so anything that assumes a
free joint (``qpos[2]`` is the height, ``qpos[3:7]`` the orientation) or named actuators fails here.

Here ``qpos`` is ``[root_x, root_z, root_pitch, left_hip, left_knee, right_hip, right_knee]``:
``qpos[2]`` is an angle, and the torso's height is ``1.05 + root_z`` m.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mujoco

import ktorch_sim as ks
from ktorch_sim.ppo_task import PPOTask
from ktorch_sim.task import RLConfig, config_field

TORSO_HEIGHT = 1.05  # m, the torso body's height at qpos0

PLANAR_WALKER_XML = """
<mujoco model="planar_walker">
  <option timestep="0.005"/>
  <worldbody>
    <light pos="0 0 4"/>
    <geom name="floor" type="plane" size="20 2 0.1"/>
    <body name="torso" pos="0 0 1.05">
      <joint name="root_x" type="slide" axis="1 0 0" damping="0.1"/>
      <joint name="root_z" type="slide" axis="0 0 1" damping="0.1"/>
      <joint name="root_pitch" type="hinge" axis="0 1 0" damping="0.1"/>
      <geom name="torso" type="capsule" fromto="0 0 -0.2 0 0 0.2" size="0.06" mass="5"/>
      <body name="left_thigh" pos="0 0.08 -0.2">
        <joint name="left_hip" type="hinge" axis="0 1 0" range="-1.5 1.5" damping="0.5"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.4" size="0.04" mass="1"/>
        <body name="left_shin" pos="0 0 -0.4">
          <joint name="left_knee" type="hinge" axis="0 1 0" range="-2.5 0" damping="0.5"/>
          <geom name="left_foot" type="capsule" fromto="0 0 0 0 0 -0.4" size="0.04" mass="1"/>
        </body>
      </body>
      <body name="right_thigh" pos="0 -0.08 -0.2">
        <joint name="right_hip" type="hinge" axis="0 1 0" range="-1.5 1.5" damping="0.5"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.4" size="0.04" mass="1"/>
        <body name="right_shin" pos="0 0 -0.4">
          <joint name="right_knee" type="hinge" axis="0 1 0" range="-2.5 0" damping="0.5"/>
          <geom name="right_foot" type="capsule" fromto="0 0 0 0 0 -0.4" size="0.04" mass="1"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="left_hip" gear="40" ctrlrange="-1 1" ctrllimited="true"/>
    <motor joint="left_knee" gear="40" ctrlrange="-1 1" ctrllimited="true"/>
    <motor joint="right_hip" gear="40" ctrlrange="-1 1" ctrllimited="true"/>
    <motor joint="right_knee" gear="40" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


def planar_walker_model() -> mujoco.MjModel:
    """The compiled planar walker."""
    return mujoco.MjModel.from_xml_string(PLANAR_WALKER_XML)


@dataclass(kw_only=True)
class PlanarWalkerConfig(RLConfig):
    """Planar walker settings (small: the tests train it for one iteration on the CPU)."""

    num_envs: int = config_field(4, "Parallel worlds.")
    dt: float = config_field(0.005, "Physics timestep, s.")
    ctrl_dt: float = config_field(0.02, "Control period, s.")
    engine: str = config_field("mujoco", "Engine.")
    integrator: str = config_field("implicitfast", "MuJoCo integrator (the value these tests were tuned with).")
    num_threads: int = config_field(1, "Native engine worker threads (the tests run single-threaded).")
    episode_length_seconds: float = config_field(1.0, "Time limit, s.")
    min_z: float = config_field(0.6, "The torso's lowest healthy height, m.")


class PlanarWalkerTask(PPOTask[PlanarWalkerConfig]):
    """Stay up: a constant healthy reward per step, until the torso drops or tilts too far."""

    config_class = PlanarWalkerConfig

    def get_mujoco_model(self) -> mujoco.MjModel:
        return planar_walker_model()

    def get_actuators(self, model, metadata=None):
        return ks.TorqueActuators.create(model)

    def get_observations(self, model) -> Sequence[ks.Observation]:
        return (ks.JointPositionObservation(), ks.JointVelocityObservation())

    def get_rewards(self, model) -> Sequence[ks.Reward]:
        return (ks.HealthyReward(scale=1.0),)

    def get_terminations(self, model) -> Sequence[ks.Termination]:
        return (ks.BadZTermination(min_z=self.config.min_z), ks.NotUprightTermination(max_radians=1.0),
                ks.EpisodeLengthTermination(max_length_sec=self.config.episode_length_seconds))
