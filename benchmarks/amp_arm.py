"""A small AMP learning check: a two-joint arm on a heavy floating base learns a swing from the style reward alone.

The model: a 100 t box on a free joint, in zero gravity (so it barely moves and never falls),
carrying a shoulder-elbow arm in the x-z plane driven by MuJoCo position actuators (the action is
the two joints' targets, rad). The reference: one clip of a swing,
``shoulder = 0.8 + 0.4 sin(2 pi t / 1 s)``, ``elbow = -0.6 + 0.3 cos(2 pi t / 1 s)``, base still. The
task reward is zero, so with ``amp.style_weight = 1`` the discriminator's style reward is the only
signal. Episodes start with the arm straight (joints at 0 +- 0.05 rad), far from every reference
frame, and last 5 s.

:func:`swing_distance` is the figure of merit: for each simulated (angle, speed) state, the distance
to the nearest reference state, speeds divided by the swing's 2 pi rad/s, averaged. Holding any
pose still scores at least the reference's typical speed term; tracing the reference swing scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import torch

import ktorch_sim as ks
from ktorch_sim.algorithms.amp_task import AMPTask
from ktorch_sim.motion.clip import MotionClip
from ktorch_sim.task import RLConfig, config_field

ARM_XML = """
<mujoco model="amp_arm">
  <compiler angle="radian"/>
  <option timestep="0.01" gravity="0 0 0"/>
  <worldbody>
    <body name="base" pos="0 0 1">
      <freejoint name="root"/>
      <geom type="box" size="0.2 0.2 0.2" mass="100000" contype="0" conaffinity="0"/>
      <body name="upper" pos="0 0 0.2">
        <joint name="shoulder" type="hinge" axis="0 1 0" range="-2.5 2.5" damping="3"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.4" size="0.03" mass="1" contype="0" conaffinity="0"/>
        <body name="lower" pos="0 0 0.4">
          <joint name="elbow" type="hinge" axis="0 1 0" range="-2.5 2.5" damping="0.6"/>
          <geom type="capsule" fromto="0 0 0 0 0 0.3" size="0.03" mass="0.5" contype="0" conaffinity="0"/>
          <site name="hand" pos="0 0 0.3"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position name="shoulder" joint="shoulder" kp="20" ctrlrange="-2.5 2.5" ctrllimited="true"/>
    <position name="elbow" joint="elbow" kp="10" ctrlrange="-2.5 2.5" ctrllimited="true"/>
  </actuator>
</mujoco>
"""

PERIOD = 1.0
OMEGA = 2 * math.pi / PERIOD


def reference_angles(t: torch.Tensor) -> torch.Tensor:
    """The swing's (shoulder, elbow) angles [..., 2] at times ``t`` (s)."""
    phase = OMEGA * t
    return torch.stack([0.8 + 0.4 * torch.sin(phase), -0.6 + 0.3 * torch.cos(phase)], dim=-1)


def reference_clip(fps: float) -> MotionClip:
    """One period of the swing at ``fps`` (cyclic, base still at (0, 0, 1)); qvel left to finite differences."""
    frames = round(PERIOD * fps)
    t = torch.arange(frames, dtype=torch.float64) / fps
    qpos = torch.zeros(frames, 9, dtype=torch.float64)
    qpos[:, 2], qpos[:, 3] = 1.0, 1.0
    qpos[:, 7:] = reference_angles(t)
    return MotionClip(fps=fps, joint_names=("shoulder", "elbow"), qpos=qpos,
                      metadata={"cyclic": True, "wrap_transform": [0.0, 0.0, 0.0]})


def swing_distance(angles: torch.Tensor, speeds: torch.Tensor, samples: int = 400) -> torch.Tensor:
    """Mean distance of (angle, speed / omega) states [..., 2] to the nearest of ``samples`` reference states."""
    t = torch.arange(samples, dtype=torch.float64) * PERIOD / samples
    ref_angles = reference_angles(t)
    phase = OMEGA * t
    ref_speeds = torch.stack([0.4 * OMEGA * torch.cos(phase), -0.3 * OMEGA * torch.sin(phase)], dim=-1)
    ref = torch.cat([ref_angles, ref_speeds / OMEGA], dim=-1)
    states = torch.cat([angles, speeds / OMEGA], dim=-1).reshape(-1, 4).double()
    return torch.cdist(states, ref).min(dim=1).values.mean()


@dataclass(frozen=True, kw_only=True)
class ArmStateObservation(ks.Observation):
    """The arm's joint angles and speeds (rad, rad/s)."""

    def observe(self, ctx, state):  # noqa: ANN001, ANN201 - the Observation signature
        """(N, 4): shoulder and elbow angle, then their speeds."""
        return torch.cat([ctx.physics.qpos[:, 7:9], ctx.physics.qvel[:, 6:8]], dim=-1)


@dataclass(frozen=True, kw_only=True)
class StraightArmReset(ks.Reset):
    """Arm joints at U(-0.05, 0.05) rad, at rest; the base as built."""

    def apply(self, qpos, qvel, mask, ctx):  # noqa: ANN001, ANN201 - the Reset signature
        """Write the masked rows."""
        noise = 0.1 * (torch.rand(qpos.shape[0], 2, generator=ctx.generator, device=ctx.device) - 0.5)
        qpos[:, 7:9] = torch.where(mask[:, None], noise, qpos[:, 7:9])
        qvel[:, 6:8] = torch.where(mask[:, None], 0.0, qvel[:, 6:8])


@dataclass(frozen=True, kw_only=True)
class ZeroReward(ks.Reward):
    """No task reward: the style reward is the whole signal."""

    def get_reward(self, ctx, state):  # noqa: ANN001, ANN201 - the Reward signature
        """Zeros (N,)."""
        return torch.zeros(ctx.num_envs, device=ctx.device)


@dataclass(kw_only=True)
class AMPArmConfig(RLConfig):
    """The arm check's settings."""

    num_envs: int = config_field(32, "Parallel worlds.")
    dt: float = config_field(0.01, "Physics timestep, s.")
    ctrl_dt: float = config_field(0.05, "Control period, s (the clip is sampled at 1 / ctrl_dt).")
    engine: str = config_field("mujoco", "Engine.")
    integrator: str = config_field("implicitfast", "MuJoCo integrator.")
    episode_length_seconds: float = config_field(5.0, "Time limit, s.")
    reference_state_init: float = config_field(0.0, "Share of episodes that start from a reference frame.")


class AMPArmTask(AMPTask[AMPArmConfig]):
    """The arm swing learned from the style reward alone (module docstring)."""

    config_class = AMPArmConfig

    def get_mujoco_model(self) -> mujoco.MjModel:
        """The arm on its floating base."""
        return mujoco.MjModel.from_xml_string(ARM_XML)

    def get_actuators(self, model: mujoco.MjModel, metadata: object = None) -> ks.Actuators:
        """The position actuators' targets are the action."""
        return ks.TorqueActuators.create(model)

    def get_reference_motions(self, model: mujoco.MjModel) -> Sequence[MotionClip]:
        """The one swing clip, at the control rate."""
        return [reference_clip(1.0 / self.config.ctrl_dt)]

    def get_amp_foot_sites(self, model: mujoco.MjModel) -> Sequence[str]:
        """The hand, relative to the base."""
        return ("hand",)

    def get_resets(self, model: mujoco.MjModel) -> Sequence[ks.Reset]:
        """Arm straight, at rest (or, for a ``reference_state_init`` share, a reference frame)."""
        share = self.config.reference_state_init
        return (StraightArmReset(), *((self.reference_state_reset(share),) if share > 0 else ()))

    def get_observations(self, model: mujoco.MjModel) -> Sequence[ks.Observation]:
        """Joint angles and speeds (plus the AMP features, added by AMPTask)."""
        return (ArmStateObservation(), *super().get_observations(model))

    def get_rewards(self, model: mujoco.MjModel) -> Sequence[ks.Reward]:
        """Zero: only the style reward teaches."""
        return (ZeroReward(),)

    def get_terminations(self, model: mujoco.MjModel) -> Sequence[ks.Termination]:
        """The time limit only."""
        return (ks.EpisodeLengthTermination(max_length_sec=self.config.episode_length_seconds),)
