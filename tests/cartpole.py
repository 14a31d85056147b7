"""A cart-pole balancing task, written for the learning test: small enough to learn on a CPU in
CI with the same PPO code path and the GRU mixture-of-Gaussians policy as K-Bot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import torch

import ktorch_sim as ks
from ktorch_sim.ppo_task import PPOTask
from ktorch_sim.task import RLConfig, config_field

CARTPOLE_XML = """
<mujoco model="cartpole">
  <option timestep="0.01"/>
  <worldbody>
    <light pos="0 0 3"/>
    <geom name="floor" type="plane" size="4 4 0.1" contype="0" conaffinity="0"/>
    <body name="cart" pos="0 0 1">
      <joint name="slider" type="slide" axis="1 0 0" range="-3 3" limited="true" damping="0.1"/>
      <geom name="cart" type="box" size="0.2 0.1 0.05" mass="1" contype="0" conaffinity="0"/>
      <body name="pole">
        <joint name="hinge" type="hinge" axis="0 1 0" damping="0.01"/>
        <geom name="pole" type="capsule" fromto="0 0 0 0 0 0.6" size="0.03" mass="0.2" contype="0" conaffinity="0"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="push" joint="slider" gear="10" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


@dataclass(frozen=True, kw_only=True)
class PoleAngleObservation(ks.Observation):
    """[cos, sin] of the pole angle (0 = upright)."""

    def observe(self, ctx, state):
        angle = ctx.physics.qpos[:, 1:2]
        return torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)


@dataclass(frozen=True, kw_only=True)
class CartObservation(ks.Observation):
    """Cart position, cart velocity and pole angular velocity."""

    def observe(self, ctx, state):
        return torch.stack([ctx.physics.qpos[:, 0], ctx.physics.qvel[:, 0], ctx.physics.qvel[:, 1]], dim=-1)


@dataclass(frozen=True, kw_only=True)
class UprightPoleReward(ks.Reward):
    """cos(angle): 1 upright."""

    def get_reward(self, ctx, state):
        return torch.cos(ctx.physics.qpos[:, 1])


@dataclass(frozen=True, kw_only=True)
class PoleFellTermination(ks.Termination):
    """Fails when the pole tilts past ``max_angle`` or the cart leaves +-``max_x``."""

    max_angle: float = 0.8
    max_x: float = 2.5

    def check(self, ctx):
        q = ctx.physics.qpos
        fell = (q[:, 1].abs() > self.max_angle) | (q[:, 0].abs() > self.max_x)
        return torch.where(fell, -1, 0).to(torch.int8)


@dataclass(frozen=True, kw_only=True)
class RandomPoleReset(ks.Reset):
    """Pole angle and velocities uniformly within +-``scale``."""

    scale: float = 0.1

    def apply(self, qpos, qvel, mask, ctx):
        n = qpos.shape[0]
        noise = self.scale * (2 * torch.rand(n, 2, generator=ctx.generator, device=ctx.device) - 1)
        qpos[:, 1] = torch.where(mask, noise[:, 0], qpos[:, 1])
        qvel[:, 1] = torch.where(mask, noise[:, 1], qvel[:, 1])


@dataclass(kw_only=True)
class CartpoleConfig(RLConfig):
    """Cart-pole settings."""

    num_envs: int = config_field(32, "Parallel worlds.")
    dt: float = config_field(0.01, "Physics timestep, s.")
    ctrl_dt: float = config_field(0.02, "Control period, s.")
    engine: str = config_field("mujoco", "Engine.")
    integrator: str = config_field("implicitfast", "MuJoCo integrator (the value these tests were tuned with).")
    episode_length_seconds: float = config_field(10.0, "Time limit, s.")


class CartpoleTask(PPOTask[CartpoleConfig]):
    """Balance a pole on a cart with a force on the cart."""

    config_class = CartpoleConfig

    def get_mujoco_model(self) -> mujoco.MjModel:
        return mujoco.MjModel.from_xml_string(CARTPOLE_XML)

    def get_actuators(self, model, metadata=None):
        return ks.TorqueActuators.create(model)

    def get_resets(self, model) -> Sequence[ks.Reset]:
        return (RandomPoleReset(scale=0.1),)

    def get_observations(self, model) -> Sequence[ks.Observation]:
        return (PoleAngleObservation(), CartObservation())

    def get_rewards(self, model) -> Sequence[ks.Reward]:
        return (UprightPoleReward(scale=1.0),)

    def get_terminations(self, model) -> Sequence[ks.Termination]:
        return (PoleFellTermination(), ks.EpisodeLengthTermination(max_length_sec=self.config.episode_length_seconds))
