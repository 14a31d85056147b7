"""Gymnasium's MuJoCo locomotion tasks (v5 defaults) as ktorch_sim PPOTasks, for the learning benchmark.

The benchmark compares ktorch_sim's PPO with Stable-Baselines3's at equal environment steps, so
both must learn the same MDP. Each task here reproduces the default configuration of Gymnasium's
``Walker2d-v5``, ``Hopper-v5``, ``HalfCheetah-v5`` and ``Ant-v5``, and of two smaller tasks,
``Swimmer-v5`` and ``InvertedPendulum-v5`` (written from Gymnasium's documented semantics, not copied
from its source):

- **Physics**: Gymnasium's own MJCF, read at run time from the installed ``gymnasium`` package
  (never copied here), with the model's own timestep, integrator (Euler for HalfCheetah, RK4 for
  the others), fluid (Swimmer) and solver settings (100 iterations, 50 line-search iterations,
  tolerance 1e-8: MuJoCo's defaults, which these XMLs keep), on the native MuJoCo engine. One
  control step is ``frame_skip`` physics steps: ``ctrl_dt = frame_skip * timestep`` (Walker2d and
  Hopper 4 x 0.002 s, HalfCheetah and Ant 5 x 0.01 s, Swimmer 4 x 0.01 s, InvertedPendulum 2 x 0.02 s).
- **Actions** are the raw motor controls (``ks.TorqueActuators``). MuJoCo clamps them to each
  motor's ``ctrlrange`` inside the step (``ctrllimited``), exactly as in Gymnasium; the control
  cost uses the unclipped action, as Gymnasium's does.
- **Observations, rewards, terminations, the 1000-step time limit (a truncation) and the reset
  noise** as in Gymnasium; each task's docstring lists them.

``tests/test_gym_tasks.py`` steps each task and Gymnasium's environment from the same state with
the same actions and checks that observations, rewards and flags agree.

What differs from Gymnasium, and why:

- **Ant's contact forces.** Gymnasium's default Ant-v5 appends the clipped external contact
  forces ``cfrc_ext`` of every body to the observation and subtracts a contact cost
  (``5e-4 * sum(clip(cfrc_ext, -1, 1)^2)``) from the reward. The engines' batched state
  (:class:`ktorch_sim.engines.base.PhysicsState`) does not expose ``cfrc_ext``, so :class:`AntTask`
  is Ant-v5 with ``include_cfrc_ext_in_observation=False`` and ``contact_cost_weight=0``;
  :func:`gymnasium_env_args` gives the Gymnasium environment that equals it.
- **Float32 state.** The engines publish the state as float32 (MuJoCo still integrates in
  float64), so observations are float32, a reset state is rounded to float32, and the forward
  velocity is a difference of float32 positions: its rounding error is ``ulp(x) / ctrl_dt``,
  about 2e-4 m/s at x = 20 m for Walker2d (1e-5 near the origin).
- **Terminated and truncated at once.** When an episode fails on its last allowed step,
  Gymnasium's ``TimeLimit`` reports both flags; ktorch_sim's environment reports only
  ``terminated`` (the step is not bootstrapped either way).
- **Random streams.** The reset noise has Gymnasium's distributions, drawn from torch's
  generator instead of NumPy's.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import mujoco
import numpy as np
import torch

import ktorch_sim as ks
from ktorch_sim.components.base import ComponentState, EnvContext, masked_assign, name_to_id, uniform
from ktorch_sim.engines import EngineConfig
from ktorch_sim.ppo_task import PPOTask
from ktorch_sim.task import ConfigT, RLConfig, config_field

INSTALL_HINT = 'pip install -e ".[benchmark]"'

__all__ = [
    "GYM_TASKS",
    "AntConfig",
    "AntTask",
    "ControlCostPenalty",
    "ForwardVelocityReward",
    "GymTaskConfig",
    "HalfCheetahConfig",
    "HalfCheetahNoVelocityTask",
    "HalfCheetahTask",
    "Health",
    "HealthyReward",
    "InvertedPendulumConfig",
    "InvertedPendulumTask",
    "HopperConfig",
    "HopperTask",
    "QposObservation",
    "QvelObservation",
    "StateNoiseReset",
    "SwimmerConfig",
    "SwimmerTask",
    "UnhealthyTermination",
    "Walker2dConfig",
    "Walker2dNoVelocityTask",
    "Walker2dTask",
    "gymnasium_asset",
    "gymnasium_env_args",
    "load_gymnasium_model",
    "task_name",
]


# --- the MJCF, from the installed gymnasium package ----------------------------------------------


def gymnasium_asset(xml_file: str) -> Path:
    """Path of one of Gymnasium's MuJoCo assets, e.g. ``walker2d_v5.xml``, in the installed package.

    The package is located without importing it. Raises ModuleNotFoundError naming the install
    command when gymnasium is missing, FileNotFoundError when it lacks the file (gymnasium < 1.0).
    """
    spec = importlib.util.find_spec("gymnasium")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the Gymnasium benchmark tasks read their MuJoCo models from the gymnasium "
                                  f"package, which is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "envs" / "mujoco" / "assets" / xml_file
    if not path.is_file():
        raise FileNotFoundError(f"gymnasium has no MuJoCo asset {xml_file} ({path}); the benchmark needs "
                                f"gymnasium[mujoco]>=1.0: {INSTALL_HINT}")
    return path


def load_gymnasium_model(xml_file: str) -> mujoco.MjModel:
    """Compile one of Gymnasium's MJCFs, naming its unnamed actuators after the joint each drives.

    Walker2d's, Hopper's and Ant's motors have no names, and ``ks.TorqueActuators.create`` looks
    actuators up by name (it fails with "actuator '' is not in the model" on unnamed ones, a bug
    being fixed in ktorch_sim/actuators.py). Names change nothing in the physics.
    """
    spec = mujoco.MjSpec.from_file(str(gymnasium_asset(xml_file)))
    taken = {a.name for a in spec.actuators if a.name}
    for i, actuator in enumerate(spec.actuators):
        if not actuator.name:
            name = actuator.target if actuator.target and actuator.target not in taken else f"actuator_{i}"
            actuator.name = name
            taken.add(name)
    with warnings.catch_warnings():  # half_cheetah.xml uses the deprecated settotalmass; it still applies
        warnings.filterwarnings("ignore", message=".*settotalmass.*")
        return spec.compile()


# --- configs ---------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class GymTaskConfig(RLConfig):
    """Settings shared by the Gymnasium tasks: one world on native MuJoCo and the XML's solver settings.

    ``dt``, ``ctrl_dt`` and ``integrator`` default, per task, to the XML's timestep and
    integrator and Gymnasium's ``frame_skip``; changing them changes the MDP.
    """

    xml_file: ClassVar[str]

    num_envs: int = config_field(1, "Number of parallel worlds.")
    engine: str = config_field("mujoco", "Physics engine: mujoco (native, as Gymnasium), warp or auto.")
    iterations: int = config_field(100, "Constraint solver iterations (MuJoCo's default, which the XMLs keep).")
    ls_iterations: int = config_field(50, "Solver line-search iterations (MuJoCo's default).")
    tolerance: float = config_field(1e-8, "Solver early-exit tolerance (MuJoCo's default; Warp clamps it to 1e-6).")
    max_episode_steps: int = config_field(1000, "Time limit in control steps (Gymnasium's TimeLimit); a truncation.")
    forward_reward_weight: float = config_field(1.0, "Weight of the forward velocity reward.")
    ctrl_cost_weight: float = config_field(1e-3, "Weight of the control cost sum(action^2).")
    reset_noise_scale: float = config_field(5e-3, "Scale of the reset noise on qpos and qvel.")

    @property
    def frame_skip(self) -> int:
        """Physics steps per control step (Gymnasium's ``frame_skip``)."""
        return round(self.ctrl_dt / self.dt)

    def engine_config(self) -> EngineConfig:
        """RLConfig's physics settings plus the solver tolerance (RLConfig has no field for it)."""
        return super().engine_config().replace(tolerance=self.tolerance)

    def check_inputs(self) -> None:
        """Gymnasium (the MJCF's source) must be installed; the limits must be positive."""
        try:
            gymnasium_asset(self.xml_file)
        except (ModuleNotFoundError, FileNotFoundError) as e:
            raise ValueError(str(e)) from None
        if self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {self.max_episode_steps}")
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")


@dataclass(kw_only=True)
class HealthyGymConfig(GymTaskConfig):
    """Settings of the tasks that end when the robot becomes unhealthy (Walker2d, Hopper, Ant)."""

    healthy_reward: float = config_field(1.0, "Reward per step while healthy.")
    terminate_when_unhealthy: bool = config_field(True, "End the episode (a failure) when unhealthy.")
    healthy_z_range: tuple[float, float] = config_field((0.8, 2.0), "Healthy range of the torso height, m.")


@dataclass(kw_only=True)
class Walker2dConfig(HealthyGymConfig):
    """Walker2d-v5's defaults: ``walker2d_v5.xml``, RK4 at 2 ms, frame_skip 4."""

    xml_file: ClassVar[str] = "walker2d_v5.xml"

    dt: float = config_field(0.002, "Physics timestep, s (the XML's).")
    ctrl_dt: float = config_field(4 * 0.002, "Control period, s: frame_skip 4 x dt.")
    integrator: str = config_field("rk4", "MuJoCo integrator (the XML's RK4).")
    healthy_angle_range: tuple[float, float] = config_field((-1.0, 1.0), "Healthy range of the torso pitch, rad.")


@dataclass(kw_only=True)
class HopperConfig(HealthyGymConfig):
    """Hopper-v5's defaults: ``hopper.xml``, RK4 at 2 ms, frame_skip 4."""

    xml_file: ClassVar[str] = "hopper.xml"

    dt: float = config_field(0.002, "Physics timestep, s (the XML's).")
    ctrl_dt: float = config_field(4 * 0.002, "Control period, s: frame_skip 4 x dt.")
    integrator: str = config_field("rk4", "MuJoCo integrator (the XML's RK4).")
    healthy_z_range: tuple[float, float] = config_field((0.7, math.inf), "Healthy range of the torso height, m.")
    healthy_angle_range: tuple[float, float] = config_field((-0.2, 0.2), "Healthy range of the torso pitch, rad.")
    healthy_state_range: tuple[float, float] = config_field(
        (-100.0, 100.0), "Healthy range of every entry of qpos[2:] and qvel.")


@dataclass(kw_only=True)
class HalfCheetahConfig(GymTaskConfig):
    """HalfCheetah-v5's defaults: ``half_cheetah.xml``, Euler at 10 ms, frame_skip 5."""

    xml_file: ClassVar[str] = "half_cheetah.xml"

    dt: float = config_field(0.01, "Physics timestep, s (the XML's).")
    ctrl_dt: float = config_field(5 * 0.01, "Control period, s: frame_skip 5 x dt.")
    integrator: str = config_field("euler", "MuJoCo integrator (the XML's default, Euler).")
    ctrl_cost_weight: float = config_field(0.1, "Weight of the control cost sum(action^2).")
    reset_noise_scale: float = config_field(0.1, "Scale of the reset noise on qpos (uniform) and qvel (normal).")


@dataclass(kw_only=True)
class AntConfig(HealthyGymConfig):
    """Ant-v5's defaults (without contact forces, see the module docstring): ``ant.xml``, RK4 at 10 ms, frame_skip 5."""

    xml_file: ClassVar[str] = "ant.xml"

    dt: float = config_field(0.01, "Physics timestep, s (the XML's).")
    ctrl_dt: float = config_field(5 * 0.01, "Control period, s: frame_skip 5 x dt.")
    integrator: str = config_field("rk4", "MuJoCo integrator (the XML's RK4).")
    ctrl_cost_weight: float = config_field(0.5, "Weight of the control cost sum(action^2).")
    healthy_z_range: tuple[float, float] = config_field((0.2, 1.0), "Healthy range of the torso height, m.")
    reset_noise_scale: float = config_field(0.1, "Scale of the reset noise on qpos (uniform) and qvel (normal).")


@dataclass(kw_only=True)
class SwimmerConfig(GymTaskConfig):
    """Swimmer-v5's defaults: ``swimmer.xml`` (a viscous fluid), RK4 at 10 ms, frame_skip 4."""

    xml_file: ClassVar[str] = "swimmer.xml"

    dt: float = config_field(0.01, "Physics timestep, s (the XML's).")
    ctrl_dt: float = config_field(4 * 0.01, "Control period, s: frame_skip 4 x dt.")
    integrator: str = config_field("rk4", "MuJoCo integrator (the XML's RK4).")
    ctrl_cost_weight: float = config_field(1e-4, "Weight of the control cost sum(action^2).")
    reset_noise_scale: float = config_field(0.1, "Scale of the (uniform) reset noise on qpos and qvel.")


@dataclass(kw_only=True)
class InvertedPendulumConfig(GymTaskConfig):
    """InvertedPendulum-v5's defaults: ``inverted_pendulum.xml``, RK4 at 20 ms, frame_skip 2."""

    xml_file: ClassVar[str] = "inverted_pendulum.xml"

    dt: float = config_field(0.02, "Physics timestep, s (the XML's).")
    ctrl_dt: float = config_field(2 * 0.02, "Control period, s: frame_skip 2 x dt.")
    integrator: str = config_field("rk4", "MuJoCo integrator (the XML's RK4).")
    reset_noise_scale: float = config_field(0.01, "Scale of the (uniform) reset noise on qpos and qvel.")
    max_pole_angle: float = config_field(0.2, "The episode fails once the pole's hinge angle exceeds this, rad.")

    def check_inputs(self) -> None:
        """The shared checks; a positive pole limit; and no forward or control weights, which this reward has not."""
        super().check_inputs()
        if not self.max_pole_angle > 0:
            raise ValueError(f"max_pole_angle must be > 0 rad, got {self.max_pole_angle}")
        unused = {name: getattr(self, name) for name in ("forward_reward_weight", "ctrl_cost_weight")
                  if getattr(self, name) != type(self).__dataclass_fields__[name].default}
        if unused:
            raise ValueError(f"InvertedPendulum-v5's reward is 1 per step with the pole up; it has no forward or "
                             f"control term, so {unused} would change nothing: leave them unset")


# --- components that Gymnasium's semantics need ---------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class QposObservation(ks.Observation):
    """Generalised positions ``qpos[skip:]``, (N, nq - skip).

    Gymnasium leaves out the root's x (and y for Ant, ``skip=2``) so that the policy cannot see
    where it is; Ant's free-joint quaternion is included as MuJoCo stores it.
    """

    skip: int = 1

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``qpos[:, skip:]``, a copy."""
        return ctx.physics.qpos[:, self.skip:].clone()


@dataclass(frozen=True, kw_only=True)
class QvelObservation(ks.Observation):
    """Generalised velocities ``qvel``, (N, nv), clipped to ``+-clip`` when set (Walker2d, Hopper: 10)."""

    clip: float | None = None

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """``qvel``, clipped, a copy."""
        qvel = ctx.physics.qvel
        return qvel.clone() if self.clip is None else qvel.clamp(-self.clip, self.clip)


@dataclass(frozen=True, kw_only=True)
class ForwardVelocityReward(ks.Reward):
    """Forward progress over the control step, ``(x_after - x_before) / ctrl_dt``, m/s.

    ``x`` is ``qpos[0]``, the root's slide joint along x (Walker2d, Hopper, HalfCheetah), or with
    ``body_id`` set that body's ``xpos`` x (Ant's torso, as Gymnasium reads it). After a step
    ``xpos`` is what MuJoCo's last physics substep computed, not yet updated to the final state
    (the engines' documented timing), and Gymnasium uses it as it is, both before and after the
    step; so this reward remembers the position it read at its previous call, or right after the
    reset (when ``xpos`` is exact), which is the value Gymnasium's "before" holds.
    """

    body_id: int | None = None

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Allocate the position read last, (N,)."""
        return {"x": torch.zeros(ctx.num_envs, device=ctx.device)}

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Remember the reset position of new episodes (``xpos`` is exact after a reset)."""
        masked_assign(state["x"], mask, self._x(ctx))

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """Velocity since the previous call; remembers the new position."""
        x = self._x(ctx)
        velocity = (x - state["x"]) / ctx.ctrl_dt
        state["x"].copy_(x)
        return velocity

    def _x(self, ctx: EnvContext) -> torch.Tensor:
        if self.body_id is None:
            return ctx.physics.qpos[:, 0]
        return ctx.physics.xpos[:, self.body_id, 0]


@dataclass(frozen=True, kw_only=True)
class ControlCostPenalty(ks.Reward):
    """``sum(action^2)`` of the raw (unclipped) action; the env subtracts ``scale`` times it (``ctrl_cost_weight``)."""

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) squared norm of the action."""
        return ctx.action.square().sum(-1)


@dataclass(frozen=True)
class Health:
    """Gymnasium's ``is_healthy`` of one task: ranges on qpos entries, optionally on the whole state.

    Attributes:
        z_index: qpos address of the torso height (Walker2d, Hopper: 1, the root's z slide; Ant: 2).
        z_range: healthy (min, max) torso height, m.
        inclusive: ``min <= value <= max`` (Ant) instead of strict inequalities (Walker2d, Hopper).
        angle_index: qpos address of the torso pitch (Walker2d, Hopper: 2), or None.
        angle_range: healthy (min, max) pitch, rad.
        state_range: Hopper: healthy (min, max) of every entry of ``qpos[2:]`` and ``qvel``, strict.
        finite: Ant: qpos and qvel must be finite.

    """

    z_index: int
    z_range: tuple[float, float]
    inclusive: bool = False
    angle_index: int | None = None
    angle_range: tuple[float, float] = (-math.inf, math.inf)
    state_range: tuple[float, float] | None = None
    finite: bool = False

    def healthy(self, qpos: torch.Tensor, qvel: torch.Tensor) -> torch.Tensor:
        """Bool (N,): the state is healthy."""
        ok = self._within(qpos[:, self.z_index], self.z_range)
        if self.angle_index is not None:
            ok &= self._within(qpos[:, self.angle_index], self.angle_range)
        if self.state_range is not None:
            low, high = self.state_range
            state = torch.cat([qpos[:, 2:], qvel], dim=-1)
            ok &= ((state > low) & (state < high)).all(-1)
        if self.finite:
            ok &= torch.isfinite(qpos).all(-1) & torch.isfinite(qvel).all(-1)
        return ok

    def _within(self, value: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
        low, high = bounds
        if self.inclusive:
            return (value >= low) & (value <= high)
        return (value > low) & (value < high)


@dataclass(frozen=True, kw_only=True)
class HealthyReward(ks.Reward):
    """1 while the state after the step is healthy, else 0 (Gymnasium's ``healthy_reward``; ``scale`` is its value)."""

    health: Health

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N,) 1.0 where healthy."""
        return self.health.healthy(ctx.physics.qpos, ctx.physics.qvel).to(torch.float32)


@dataclass(frozen=True, kw_only=True)
class UnhealthyTermination(ks.Termination):
    """Fails (-1) when the state after the step is not healthy (Gymnasium's ``terminate_when_unhealthy``)."""

    health: Health

    def check(self, ctx: EnvContext) -> torch.Tensor:
        """-1 where unhealthy, else 0."""
        return -(~self.health.healthy(ctx.physics.qpos, ctx.physics.qvel)).to(torch.int8)


@dataclass(frozen=True, kw_only=True)
class StateNoiseReset(ks.Reset):
    """Gymnasium's ``reset_model``: noise on every coordinate of the initial ``qpos`` and ``qvel``.

    ``qpos += U(-scale, scale)`` on all of qpos: the root's x too, and Ant's free-joint quaternion,
    which is left unnormalised as in Gymnasium (MuJoCo normalises it when it integrates);
    joint ranges are not enforced. ``qvel += U(-scale, scale)`` (Walker2d, Hopper) or
    ``scale * N(0, 1)`` (HalfCheetah, Ant). The environment's reset targets start from ``qpos0``
    and zero velocity (Gymnasium's ``init_qpos``/``init_qvel``).
    """

    scale: float
    qvel_noise: Literal["uniform", "normal"] = "uniform"

    def __post_init__(self) -> None:
        """Reject an unknown velocity-noise distribution."""
        if self.qvel_noise not in ("uniform", "normal"):
            raise ValueError(f"qvel_noise must be 'uniform' or 'normal', got {self.qvel_noise!r}")

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Add the noise to the masked rows of the reset targets."""
        s = self.scale
        masked_assign(qpos, mask, qpos + uniform(-s, s, qpos.shape, ctx.generator, ctx.device))
        if self.qvel_noise == "uniform":
            noise = uniform(-s, s, qvel.shape, ctx.generator, ctx.device)
        else:
            noise = s * torch.randn(qvel.shape, generator=ctx.generator, device=ctx.device)
        masked_assign(qvel, mask, qvel + noise)


# --- tasks -------------------------------------------------------------------------------------------


class GymLocomotionTask(PPOTask[ConfigT]):
    """What the four tasks share: Gymnasium's MJCF, raw motor actions, reset noise and the time limit.

    Subclasses set ``config_class`` and ``qvel_noise`` and give the observations and rewards.
    """

    qvel_noise: ClassVar[Literal["uniform", "normal"]] = "uniform"

    def __init__(self, config: ConfigT) -> None:
        """Keep the config; fail here, with the install command, when gymnasium is missing."""
        super().__init__(config)
        gymnasium_asset(config.xml_file)

    def get_mujoco_model(self) -> mujoco.MjModel:
        """Gymnasium's MJCF for this task, compiled (its physics options are applied by the engine)."""
        return load_gymnasium_model(self.config.xml_file)

    def get_actuators(self, model: mujoco.MjModel, metadata: Any = None) -> ks.Actuators:
        """Every motor, in model order; actions are its raw ``ctrl`` (MuJoCo clamps to ctrlrange)."""
        return ks.TorqueActuators.create(model)

    def get_initial_qpos(self, model: mujoco.MjModel) -> np.ndarray:
        """``qpos0``, Gymnasium's ``init_qpos`` (these models have no keyframe)."""
        return np.array(model.qpos0)

    def get_resets(self, model: mujoco.MjModel) -> Sequence[ks.Reset]:
        """Gymnasium's reset noise."""
        return (StateNoiseReset(scale=self.config.reset_noise_scale, qvel_noise=self.qvel_noise),)

    def time_limit(self) -> ks.EpisodeLengthTermination:
        """``max_episode_steps`` control steps, then a truncation (+1), as Gymnasium's TimeLimit."""
        return ks.EpisodeLengthTermination(max_length_sec=self.config.max_episode_steps * self.config.ctrl_dt)


class _HealthyTask(GymLocomotionTask[ConfigT]):
    """Forward velocity + healthy reward - control cost; the episode fails when unhealthy."""

    def health(self, model: mujoco.MjModel) -> Health:
        """Return the task's ``is_healthy`` condition."""
        raise NotImplementedError

    def forward_reward(self, model: mujoco.MjModel) -> ForwardVelocityReward:
        """Return the forward velocity term (default: from ``qpos[0]``)."""
        return ForwardVelocityReward(scale=self.config.forward_reward_weight)

    def get_rewards(self, model: mujoco.MjModel) -> Sequence[ks.Reward]:
        """``forward_reward_weight * v_x + healthy_reward * healthy - ctrl_cost_weight * sum(a^2)``."""
        c = self.config
        return (self.forward_reward(model), HealthyReward(health=self.health(model), scale=c.healthy_reward),
                ControlCostPenalty(scale=c.ctrl_cost_weight))

    def unhealthy_termination(self, model: mujoco.MjModel) -> ks.Termination:
        """Return the failure condition (default: not :meth:`health`)."""
        return UnhealthyTermination(health=self.health(model))

    def get_terminations(self, model: mujoco.MjModel) -> Sequence[ks.Termination]:
        """Unhealthy (when ``terminate_when_unhealthy``), and the time limit."""
        unhealthy = (self.unhealthy_termination(model),) if self.config.terminate_when_unhealthy else ()
        return (*unhealthy, self.time_limit())


class _ForwardProgressTask(GymLocomotionTask[ConfigT]):
    """Forward velocity - control cost; only the time limit ends an episode (HalfCheetah, Swimmer)."""

    def get_rewards(self, model: mujoco.MjModel) -> Sequence[ks.Reward]:
        """``forward_reward_weight * v_x - ctrl_cost_weight * sum(a^2)``."""
        c = self.config
        return (ForwardVelocityReward(scale=c.forward_reward_weight), ControlCostPenalty(scale=c.ctrl_cost_weight))

    def get_terminations(self, model: mujoco.MjModel) -> Sequence[ks.Termination]:
        """End episodes by the time limit only."""
        return (self.time_limit(),)


class Walker2dTask(_HealthyTask[Walker2dConfig]):
    """Gymnasium's Walker2d-v5: a planar biped (6 motors, gear 100) walking forward.

    Observation (17): ``qpos[1:]`` (torso z, pitch, 6 joint angles), then ``qvel`` clipped to
    +-10. Reward: ``v_x + 1 * healthy - 1e-3 * sum(a^2)``. Healthy: torso z in (0.8, 2.0) and
    pitch in (-1, 1), strictly. Reset: ``qpos0 + U(+-5e-3)``, ``qvel = U(+-5e-3)``.
    """

    config_class = Walker2dConfig

    def get_observations(self, model: mujoco.MjModel) -> Sequence[ks.Observation]:
        """``qpos[1:]`` and clipped ``qvel``."""
        return (QposObservation(skip=1), QvelObservation(clip=10.0))

    def health(self, model: mujoco.MjModel) -> Health:
        """Torso height and pitch within their ranges."""
        c = self.config
        return Health(z_index=1, z_range=c.healthy_z_range, angle_index=2, angle_range=c.healthy_angle_range)


class Walker2dNoVelocityTask(Walker2dTask):
    """Walker2d-v5 observed without any velocity (``qpos[1:]`` only): a partially observed task.

    Everything else (physics, reward, terminations, resets) is :class:`Walker2dTask`'s; a policy
    must infer velocities from its history, which is what the recurrent policy is benchmarked on.
    """

    def get_observations(self, model: mujoco.MjModel) -> Sequence[ks.Observation]:
        """``qpos[1:]`` only."""
        return (QposObservation(skip=1),)


class HopperTask(_HealthyTask[HopperConfig]):
    """Gymnasium's Hopper-v5: a planar one-legged hopper (3 motors, gear 200) hopping forward.

    Observation (11): ``qpos[1:]``, then ``qvel`` clipped to +-10. Reward: ``v_x + 1 * healthy -
    1e-3 * sum(a^2)``. Healthy, strictly: every entry of ``qpos[2:]`` and ``qvel`` in (-100, 100),
    torso z > 0.7, pitch in (-0.2, 0.2). Reset: ``qpos0 + U(+-5e-3)``, ``qvel = U(+-5e-3)``.
    """

    config_class = HopperConfig

    def get_observations(self, model: mujoco.MjModel) -> Sequence[ks.Observation]:
        """``qpos[1:]`` and clipped ``qvel``."""
        return (QposObservation(skip=1), QvelObservation(clip=10.0))

    def health(self, model: mujoco.MjModel) -> Health:
        """State, torso height and pitch within their ranges."""
        c = self.config
        return Health(z_index=1, z_range=c.healthy_z_range, angle_index=2, angle_range=c.healthy_angle_range,
                      state_range=c.healthy_state_range)


class HalfCheetahTask(_ForwardProgressTask[HalfCheetahConfig]):
    """Gymnasium's HalfCheetah-v5: a planar quadruped-like body (6 motors) running forward; never fails.

    Observation (17): ``qpos[1:]``, then ``qvel`` (unclipped). Reward: ``v_x - 0.1 * sum(a^2)``.
    Only the time limit ends an episode. Reset: ``qpos0 + U(+-0.1)``, ``qvel = 0.1 * N(0, 1)``.
    """

    config_class = HalfCheetahConfig
    qvel_noise = "normal"

    def get_observations(self, model: mujoco.MjModel) -> Sequence[ks.Observation]:
        """``qpos[1:]`` and ``qvel``."""
        return (QposObservation(skip=1), QvelObservation())


class HalfCheetahNoVelocityTask(HalfCheetahTask):
    """HalfCheetah-v5 observed without any velocity (``qpos[1:]`` only): a second partially observed task.

    The reward is the forward velocity, which a memoryless policy cannot read, and a pose alone does not say
    which way each leg is swinging; physics, reward and resets are :class:`HalfCheetahTask`'s.
    """

    def get_observations(self, model: mujoco.MjModel) -> Sequence[ks.Observation]:
        """``qpos[1:]`` only."""
        return (QposObservation(skip=1),)


class AntTask(_HealthyTask[AntConfig]):
    """Gymnasium's Ant-v5 without contact forces: a 3-D quadruped (8 motors, gear 150) walking along +x.

    Observation (27): ``qpos[2:]`` (torso z, quaternion, 8 joint angles), then ``qvel``
    (unclipped); Gymnasium's default also appends 78 clipped contact forces, which the engines do
    not expose (module docstring). Reward: ``v_x + 1 * healthy - 0.5 * sum(a^2)``, with ``v_x``
    from the torso's ``xpos`` as Gymnasium computes it (:class:`ForwardVelocityReward`); no
    contact cost. Healthy: torso z in [0.2, 1.0] and a finite state; the z check is
    ``ks.BadZTermination`` and a non-finite state is terminated by the environment itself.
    Reset: ``qpos0 + U(+-0.1)`` on every coordinate, ``qvel = 0.1 * N(0, 1)``.
    """

    config_class = AntConfig
    qvel_noise = "normal"

    def get_observations(self, model: mujoco.MjModel) -> Sequence[ks.Observation]:
        """``qpos[2:]`` and ``qvel``."""
        return (QposObservation(skip=2), QvelObservation())

    def health(self, model: mujoco.MjModel) -> Health:
        """Torso height within its range (inclusive) and a finite state."""
        return Health(z_index=2, z_range=self.config.healthy_z_range, inclusive=True, finite=True)

    def forward_reward(self, model: mujoco.MjModel) -> ForwardVelocityReward:
        """``v_x`` of the torso body's ``xpos`` (Gymnasium's ``main_body``)."""
        torso = name_to_id(model, mujoco.mjtObj.mjOBJ_BODY, "torso")
        return ForwardVelocityReward(scale=self.config.forward_reward_weight, body_id=torso)

    def unhealthy_termination(self, model: mujoco.MjModel) -> ks.Termination:
        """Torso height outside [min, max] (non-finite states are the environment's own failures)."""
        low, high = self.config.healthy_z_range
        return ks.BadZTermination(min_z=low, max_z=high)


class SwimmerTask(_ForwardProgressTask[SwimmerConfig]):
    """Gymnasium's Swimmer-v5: a three-link swimmer (2 motors) in a viscous fluid, swimming along +x; never fails.

    Observation (8): ``qpos[2:]`` (heading and 2 joint angles), then ``qvel``. Reward: ``v_x - 1e-4 * sum(a^2)``,
    ``v_x`` from the root's x slide. Only the time limit ends an episode. Reset: ``qpos0 + U(+-0.1)``,
    ``qvel = U(+-0.1)``. Its optimum needs a long horizon (SB3's tuned setting uses gamma 0.9999); the benchmark
    runs every library's default gamma of 0.99.
    """

    config_class = SwimmerConfig

    def get_observations(self, model: mujoco.MjModel) -> Sequence[ks.Observation]:
        """``qpos[2:]`` and ``qvel``."""
        return (QposObservation(skip=2), QvelObservation())


class InvertedPendulumTask(GymLocomotionTask[InvertedPendulumConfig]):
    """Gymnasium's InvertedPendulum-v5: a cart (1 motor, ctrlrange +-3) balancing a pole.

    Observation (4): ``qpos`` (cart position, pole angle), then ``qvel``. Reward: 1 for every step after which
    the pole's angle is within +-0.2 rad and the state is finite, else 0, and the episode fails there.
    Reset: ``qpos0 + U(+-0.01)``, ``qvel = U(+-0.01)``.
    """

    config_class = InvertedPendulumConfig

    def get_observations(self, model: mujoco.MjModel) -> Sequence[ks.Observation]:
        """``qpos`` and ``qvel``."""
        return (QposObservation(skip=0), QvelObservation())

    def health(self) -> Health:
        """The pole's angle within +-``max_pole_angle`` (inclusive) and a finite state."""
        limit = self.config.max_pole_angle
        return Health(z_index=1, z_range=(-limit, limit), inclusive=True, finite=True)

    def get_rewards(self, model: mujoco.MjModel) -> Sequence[ks.Reward]:
        """1 per step that leaves the pole up (Gymnasium v5: ``int(not terminated)``)."""
        return (HealthyReward(health=self.health(), scale=1.0),)

    def get_terminations(self, model: mujoco.MjModel) -> Sequence[ks.Termination]:
        """The pole down (a failure), and the time limit."""
        return (UnhealthyTermination(health=self.health()), self.time_limit())


# --- registry --------------------------------------------------------------------------------------


GYM_TASKS: dict[str, type[GymLocomotionTask]] = {
    "Walker2d-v5": Walker2dTask,
    "Walker2d-v5-novel": Walker2dNoVelocityTask,
    "Hopper-v5": HopperTask,
    "HalfCheetah-v5": HalfCheetahTask,
    "HalfCheetah-v5-novel": HalfCheetahNoVelocityTask,
    "Ant-v5": AntTask,
    "Swimmer-v5": SwimmerTask,
    "InvertedPendulum-v5": InvertedPendulumTask,
}
"""The ported tasks by benchmark id: Gymnasium's id, or Gymnasium's id + ``-novel`` for a variant without velocities."""

_GYMNASIUM_ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "Walker2d-v5": ("Walker2d-v5", {}),
    "Walker2d-v5-novel": ("Walker2d-v5", {}),
    "Hopper-v5": ("Hopper-v5", {}),
    "HalfCheetah-v5": ("HalfCheetah-v5", {}),
    "HalfCheetah-v5-novel": ("HalfCheetah-v5", {}),
    "Ant-v5": ("Ant-v5", {"include_cfrc_ext_in_observation": False, "contact_cost_weight": 0.0}),
    "Swimmer-v5": ("Swimmer-v5", {}),
    "InvertedPendulum-v5": ("InvertedPendulum-v5", {}),
}


def _check_id(env_id: str) -> None:
    if env_id not in GYM_TASKS:
        raise KeyError(f"no ported Gymnasium task {env_id!r}; tasks are {sorted(GYM_TASKS)}")


def task_name(env_id: str) -> str:
    """Return the ``task.name`` of a benchmark id, e.g. ``benchmarks.gym_tasks:Walker2dTask``."""
    _check_id(env_id)
    cls = GYM_TASKS[env_id]
    return f"{cls.__module__}:{cls.__qualname__}"


def gymnasium_env_args(env_id: str) -> tuple[str, dict[str, Any]]:
    """``(gymnasium id, gym.make kwargs)`` of the Gymnasium environment that equals the ported task.

    Ant-v5 needs ``include_cfrc_ext_in_observation=False, contact_cost_weight=0`` (the port has no
    contact forces). A ``-novel`` id maps to its Gymnasium task: same dynamics and rewards, but
    Gymnasium's observations include the velocities.
    """
    _check_id(env_id)
    gym_id, kwargs = _GYMNASIUM_ENVS[env_id]
    return gym_id, dict(kwargs)
