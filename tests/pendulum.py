"""A torque-limited pendulum swing-up, written for the CI test that a weak learner fails.

The motor can hold at most a third of the torque gravity exerts on the horizontal pendulum, so
the pendulum cannot be lifted straight up: the policy must pump energy by swinging back and
forth, then catch and balance it upside down. Episodes start hanging down (angle pi, with a
little noise) and never fail; only the 5 s time limit ends them. Reward per step:
10 (cos(angle) - 0.01 speed^2 - 0.01 action^2), +10 upright, -10 hanging: returns of a
hundred-step episode span about -1000 (hanging still) to +400 (swung up), the size of the
returns of Gymnasium's locomotion tasks, so a learner whose critic cannot follow large returns
(the value loss clipped in raw reward units) fails it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import torch

import ktorch_sim as ks
from ktorch_sim.ppo_task import PPOTask
from ktorch_sim.task import RLConfig, config_field

# Gravity torque at horizontal: m g l = 1 kg * 9.81 * 0.5 m = 4.9 N m; the motor gives +-1.6 N m.
PENDULUM_XML = """
<mujoco model="pendulum">
  <option timestep="0.01"/>
  <worldbody>
    <body name="pole" pos="0 0 1">
      <joint name="hinge" type="hinge" axis="0 1 0" damping="0.05"/>
      <geom name="pole" type="capsule" fromto="0 0 0 0 0 0.5" size="0.02" mass="0" contype="0" conaffinity="0"/>
      <geom name="bob" type="sphere" pos="0 0 0.5" size="0.05" mass="1" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="torque" joint="hinge" gear="1.6" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


@dataclass(frozen=True, kw_only=True)
class PendulumObservation(ks.Observation):
    """[cos, sin] of the angle from upright and the angular velocity / 8."""

    def observe(self, ctx, state):
        angle, speed = ctx.physics.qpos[:, :1], ctx.physics.qvel[:, :1]
        return torch.cat([torch.cos(angle), torch.sin(angle), speed / 8.0], dim=-1)


@dataclass(frozen=True, kw_only=True)
class SwingUpReward(ks.Reward):
    """10 (cos(angle) - 0.01 speed^2 - 0.01 action^2)."""

    def get_reward(self, ctx, state):
        angle, speed = ctx.physics.qpos[:, 0], ctx.physics.qvel[:, 0]
        return 10.0 * (torch.cos(angle) - 0.01 * speed.square() - 0.01 * ctx.action.square().sum(-1))


@dataclass(frozen=True, kw_only=True)
class HangingReset(ks.Reset):
    """Angle pi + U(-0.1, 0.1), speed U(-0.1, 0.1)."""

    def apply(self, qpos, qvel, mask, ctx):
        noise = 0.1 * (2 * torch.rand(qpos.shape[0], 2, generator=ctx.generator, device=ctx.device) - 1)
        qpos[:, 0] = torch.where(mask, torch.pi + noise[:, 0], qpos[:, 0])
        qvel[:, 0] = torch.where(mask, noise[:, 1], qvel[:, 0])


@dataclass(kw_only=True)
class PendulumConfig(RLConfig):
    """Pendulum swing-up settings."""

    num_envs: int = config_field(32, "Parallel worlds.")
    dt: float = config_field(0.01, "Physics timestep, s.")
    ctrl_dt: float = config_field(0.05, "Control period, s.")
    engine: str = config_field("mujoco", "Engine.")
    integrator: str = config_field("implicitfast", "MuJoCo integrator (the value these tests were tuned with).")
    episode_length_seconds: float = config_field(5.0, "Time limit, s.")


class PendulumTask(PPOTask[PendulumConfig]):
    """Swing a torque-limited pendulum up and balance it."""

    config_class = PendulumConfig

    def get_mujoco_model(self) -> mujoco.MjModel:
        return mujoco.MjModel.from_xml_string(PENDULUM_XML)

    def get_actuators(self, model, metadata=None):
        return ks.TorqueActuators.create(model)

    def get_resets(self, model) -> Sequence[ks.Reset]:
        return (HangingReset(),)

    def get_observations(self, model) -> Sequence[ks.Observation]:
        return (PendulumObservation(),)

    def get_rewards(self, model) -> Sequence[ks.Reward]:
        return (SwingUpReward(scale=1.0),)

    def get_terminations(self, model) -> Sequence[ks.Termination]:
        return (ks.EpisodeLengthTermination(max_length_sec=self.config.episode_length_seconds),)
