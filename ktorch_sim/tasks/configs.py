"""The config classes of the shipped tasks, importable without torch or MuJoCo.

The config loader resolves a registered task name to its config class (not its task class), so
``python -m ktorch_sim.train`` checks the whole config before torch, MuJoCo or Warp are imported.
The task modules (:mod:`ktorch_sim.tasks.kbot_walk` ...) re-export their config class from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ktorch_sim.task_config import CONE_NAMES, INTEGRATOR_NAMES, SOLVER_NAMES, RLConfig, config_field
from ktorch_sim.terrain.kinds import KINDS
from ktorch_sim.utils.limits import C_INT_MAX, INT64_MAX


class _RangeError(ValueError):
    """One config value out of range: ``problem`` about ``key`` (the config loader names its source)."""

    def __init__(self, problem: str, key: str) -> None:
        self.problem, self.key = problem, key
        super().__init__(f"{key}: {problem}")


def _require(ok: bool, name: str, problem: str) -> None:
    if not ok:
        raise _RangeError(problem, f"task.{name}")


def check_episode_length(config: Any) -> None:
    """``config.episode_length_seconds`` must be > 0 and at most 2**31 - 1 control steps of ``config.ctrl_dt``."""
    seconds = config.episode_length_seconds
    _require(seconds > 0, "episode_length_seconds", f"must be > 0 seconds, got {seconds}")
    steps = seconds / config.ctrl_dt
    _require(steps <= C_INT_MAX, "episode_length_seconds",
             f"must be at most {C_INT_MAX} control steps of task.ctrl_dt ({config.ctrl_dt}), got {seconds} "
             f"({steps:.3g} steps)")


@dataclass(kw_only=True)
class KbotConfig(RLConfig):
    """Actuator settings every K-Bot task has."""

    integrator: str = config_field("implicitfast", "MuJoCo integrator (ksim's K-Bot: implicitfast, which keeps its "
                                                   "stiff PD actuators stable; a user's model_path gets it too).",
                                   choices=INTEGRATOR_NAMES)
    kp_scale: float = config_field(1.0, "Multiplier on the metadata kp.")
    kd_scale: float = config_field(1.0, "Multiplier on the metadata kd.")
    torque_limit_scale: float = config_field(1.0, "Multiplier on the metadata soft torque limit.")
    action_noise: float = config_field(0.0, "Std of per-step action noise, rad.")
    # Sized from measured peaks (tools/size_buffers.py; docs/benchmarks.md): at most 8 contacts per
    # world (4 foot capsules x 2 on the floor) and 53 rows measured; 72 rows is the geometric bound
    # (8 contacts x 4 pyramid rows + 20 friction-loss dofs + 20 joint limits).
    nconmax: int = config_field(12, "Warp: contacts allocated per world (pooled); measured peak 8, x1.5.")
    njmax: int = config_field(80, "Warp: constraint rows allocated per world; measured peak 53, bound 72.")

    model_path: str | None = config_field(None, "MJCF scene to train in (robot and floor); none: the shipped "
                                                "K-Bot scene (assets/kbot/scene.xml).")
    metadata_path: str | None = config_field(None, "Joint metadata TOML (gains, limits, home pose) for the model's "
                                                   "joints; none: the shipped assets/kbot/joints.toml.")

    def check_values(self) -> None:
        """Check gain scales >= 0, the torque-limit scale > 0 and action noise >= 0."""
        for name in ("kp_scale", "kd_scale", "action_noise"):
            _require(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        _require(self.torque_limit_scale > 0, "torque_limit_scale", f"must be > 0, got {self.torque_limit_scale}")

    def check_inputs(self) -> None:
        """With a user model or metadata file: compile it and check that its joints match (one-line errors)."""
        if self.model_path is not None or self.metadata_path is not None:
            from ktorch_sim.robots.kbot import load_kbot_robot  # compiles MuJoCo models: imported when needed

            load_kbot_robot(self.model_path, self.metadata_path)


@dataclass(kw_only=True)
class KbotWalkConfig(KbotConfig):
    """Settings of the walking task (ksim's K-Bot example values)."""

    dt: float = config_field(0.004, "Physics timestep, seconds (ksim K-Bot: 0.004).")
    action_latency_range: tuple[float, float] = config_field((0.003, 0.01), "Per-episode action latency range, s.")
    drop_action_prob: float = config_field(0.05, "Probability that an action dimension is dropped per step.")
    zero_offset_mag: float = config_field(math.radians(3.0), "Half-width of per-episode joint zero offsets, rad.")
    kp_scale: float = config_field(1.4, "Multiplier on the metadata kp.")
    kd_scale: float = config_field(1.4, "Multiplier on the metadata kd.")
    torque_limit_scale: float = config_field(1.5, "Multiplier on the metadata soft torque limit.")
    action_noise: float = config_field(0.02, "Std of per-step action noise, rad.")
    max_forward_speed: float = config_field(1.0, "Largest commanded forward speed, m/s.")
    max_lateral_speed: float = config_field(0.3, "Largest commanded sideways speed, m/s.")
    max_yaw_rate: float = config_field(1.0, "Largest commanded yaw rate, rad/s.")
    gait_period: float = config_field(0.8, "Period of the sinusoidal gait clock, s.")
    max_foot_height: float = config_field(0.08, "Swing height of the gait command, m.")
    base_height_target: float = config_field(0.72, "Target base height above the feet, m (home pose: 0.72).")
    episode_length_seconds: float = config_field(24.0, "Time limit of an episode (a truncation), s.")

    def check_values(self) -> None:
        """Check command ranges and gait sizes >= 0, the gait period, base height and episode length > 0."""
        super().check_values()
        for name in ("max_forward_speed", "max_lateral_speed", "max_yaw_rate", "max_foot_height"):
            _require(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("gait_period", "base_height_target"):
            _require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        check_episode_length(self)


@dataclass(kw_only=True)
class KbotWalkRoughConfig(KbotWalkConfig):
    """Settings of the rough-terrain walking task (kbot_walk's, plus the terrain and its curriculum)."""

    terrain_kinds: tuple[str, ...] = config_field(KINDS, f"Terrain kinds, one grid column each; from {KINDS}.")
    terrain_levels: int = config_field(10, "Difficulty levels (grid rows), difficulty level / (levels - 1).")
    terrain_cell_size: float = config_field(8.0, "Side of one terrain cell, m.")
    terrain_horizontal_scale: float = config_field(0.1, "Height grid spacing, m.")
    terrain_seed: int = config_field(0, "Seed of the random terrain kinds (rough, obstacles).")
    terrain_max_init_level: int = config_field(0, "Worlds start on a level drawn from 0..this.")
    promote_distance: float = config_field(4.0, "An episode that ends this far (m) from its spawn point moves up.")
    actor_height_scan: bool = config_field(False, "Let the actor see the (noisy) height scan too, not only the critic.")
    height_scan_noise: float = config_field(0.02, "Std of the actor's height scan noise, m.")
    min_base_height: float = config_field(0.4, "Fall termination: base height above the ground under it, m.")
    # Height field contacts: up to 4 per capsule pair on MuJoCo Warp (docs/terrain.md, measured peaks).
    nconmax: int = config_field(32, "Warp: contacts allocated per world (pooled); see docs/terrain.md.")
    njmax: int = config_field(160, "Warp: constraint rows allocated per world; see docs/terrain.md.")

    def check_values(self) -> None:
        """kbot_walk's checks, then the terrain's (one line per problem)."""
        super().check_values()
        unknown = [k for k in self.terrain_kinds if k not in KINDS]
        _require(not unknown and bool(self.terrain_kinds), "terrain_kinds",
                 f"unknown kinds {unknown}; kinds are {list(KINDS)}")
        _require(self.terrain_levels >= 1, "terrain_levels", f"must be >= 1, got {self.terrain_levels}")
        _require(0 <= self.terrain_max_init_level < self.terrain_levels, "terrain_max_init_level",
                 f"must be in [0, terrain_levels), got {self.terrain_max_init_level}")
        _require(self.promote_distance > 0, "promote_distance", f"must be > 0, got {self.promote_distance}")
        _require(0 <= self.terrain_seed <= INT64_MAX, "terrain_seed", f"must be in [0, 2**63 - 1], got {self.terrain_seed}")
        _require(self.height_scan_noise >= 0, "height_scan_noise", f"must be >= 0 m, got {self.height_scan_noise}")
        _require(self.min_base_height > 0, "min_base_height", f"must be > 0 m, got {self.min_base_height}")
        h, cell = self.terrain_horizontal_scale, self.terrain_cell_size
        _require(0 < h <= 0.5, "terrain_horizontal_scale", f"must be in (0, 0.5] m, got {h}")
        _require(cell > 2.0 and abs(cell / h - round(cell / h)) < 1e-6, "terrain_cell_size",
                 f"must be > 2 m (the 2 m spawn platform) and a multiple of terrain_horizontal_scale ({h}), got {cell}")

    def terrain_config(self) -> Any:
        """Return the generator settings these values give (a :class:`ktorch_sim.terrain.TerrainConfig`)."""
        from ktorch_sim.terrain.generator import TerrainConfig

        return TerrainConfig(kinds=tuple(self.terrain_kinds), num_levels=self.terrain_levels,
                             cell_size=self.terrain_cell_size, horizontal_scale=self.terrain_horizontal_scale,
                             seed=self.terrain_seed)


@dataclass(kw_only=True)
class KbotAMPConfig(KbotWalkConfig):
    """Settings of ``kbot_amp``: walking on velocity commands with AMP's style reward from K-Bot gaits."""

    motion_dir: str | None = config_field(None, "Directory of reference clips (*.npz, docs/motion.md) for the style "
                                                "reward; none: generate the 34-clip gait family in memory "
                                                "(ktorch_sim.motion.gait.default_family).")
    reference_state_init: float = config_field(0.5, "Share of new episodes that start from a random reference-clip "
                                                    "frame (reference-state initialization), in [0, 1].")
    command_conditioned: bool = config_field(True, "The discriminator also sees the velocity command, and commands "
                                                   "are drawn from the clips' commands (the style is then the gait "
                                                   "of the commanded clip); false: kbot_walk's continuous commands "
                                                   "and an unconditional discriminator.")

    def check_values(self) -> None:
        """The walking task's checks, and reference_state_init in [0, 1]."""
        super().check_values()
        _require(0.0 <= self.reference_state_init <= 1.0, "reference_state_init",
                 f"must be in [0, 1], got {self.reference_state_init}")


@dataclass(kw_only=True)
class KbotStandConfig(KbotConfig):
    """Settings of the standing task (the notebook's launch settings where it has them)."""

    dt: float = config_field(0.002, "Physics timestep, seconds (notebook: 0.002).")
    episode_length_seconds: float = config_field(20.0, "Time limit of an episode (a truncation, not a failure).")
    curriculum: str = config_field("linear", "How noise, pushes and randomization grow: linear (the notebook: +0.01 per "
                                             "iteration, full after 100 iterations whatever their size), "
                                             "episode_length (+0.05 while episodes last over "
                                             "curriculum_up_seconds on average, -0.05 under half of it; for small "
                                             "CPU iterations) or full (level 1 from the first step).",
                                   choices=("linear", "episode_length", "full"))
    curriculum_up_seconds: float = config_field(8.0, "episode_length curriculum: mean episode length that raises "
                                                     "the level, seconds.")
    planar_velocity_penalty: float = config_field(
        0.0, "Weight of a penalty on the base's planar speed, -w * (vx^2 + vy^2) per step (m/s, base frame), so "
             "that a push is braked instead of carried off the map (ours; 0: off, the notebook's reward list). "
             "Without it the CPU config's policies drifted up to the 10 m far-from-origin limit under full pushes.")
    max_distance_from_origin: float = config_field(
        10.0, "Episodes end (a truncation, not a failure) once the base is this far from the origin, m (ksim: 10); "
              "0: no limit (e.g. to evaluate whether a policy that drifts under the pushes stays up).")
    actor_base_velocity: bool = config_field(
        False, "The actor also reads the base's linear velocity in the base frame (noise 0.1 m/s per step), as "
               "mjlab's and legged_gym's actors do; the critic then reads it in the base frame too instead of the "
               "world frame. Off: the notebook's actor, which measures only what K-Bot's IMU and encoders do (on "
               "hardware the velocity needs a state estimator).")

    def check_values(self) -> None:
        """Check the episode length and the curriculum threshold (both > 0), the distance limit and the penalty
        weight (>= 0)."""
        super().check_values()
        check_episode_length(self)
        _require(self.curriculum_up_seconds > 0, "curriculum_up_seconds",
                 f"must be > 0 seconds, got {self.curriculum_up_seconds}")
        _require(self.max_distance_from_origin >= 0, "max_distance_from_origin",
                 f"must be >= 0 m (0: no limit), got {self.max_distance_from_origin}")
        _require(self.planar_velocity_penalty >= 0, "planar_velocity_penalty",
                 f"must be >= 0 (a weight; the penalty's sign is built in), got {self.planar_velocity_penalty}")


@dataclass(kw_only=True)
class G1VelocityConfig(RLConfig):
    """Settings of the G1 velocity task; the physics defaults are mjlab's flat G1 values."""

    model_path: str | None = config_field(None, "G1 MJCF (robot only, as mjlab ships it); none: $KTORCH_G1_XML, "
                                                "else the installed mjlab's asset_zoo/robots/unitree_g1/xmls/g1.xml.")
    dt: float = config_field(0.005, "Physics timestep, seconds (mjlab G1: 0.005).")
    ctrl_dt: float = config_field(0.02, "Control period, seconds (mjlab: decimation 4).")
    iterations: int = config_field(10, "Constraint solver iterations (mjlab G1: 10).")
    ls_iterations: int = config_field(20, "Line-search iterations (mjlab G1: 20).")
    integrator: str = config_field("implicitfast", "MuJoCo integrator (mjlab's MujocoCfg: implicitfast).",
                                   choices=INTEGRATOR_NAMES)
    solver: str = config_field("newton", "Constraint solver (mjlab's MujocoCfg sets Newton, whatever the MJCF says).",
                               choices=SOLVER_NAMES)
    cone: str = config_field("pyramidal", "Friction cone (mjlab's MujocoCfg sets pyramidal, whatever the MJCF says).",
                             choices=CONE_NAMES)
    ccd_iterations: int = config_field(50, "Convex collision iterations (mjlab flat G1: 50).")
    nconmax: int = config_field(48, "Warp: contacts per world (MuJoCo Warp's default for this model, as mjlab "
                                    "flat G1 leaves it).")
    njmax: int = config_field(300, "Warp: constraint rows per world (mjlab flat G1: 300).")
    recompute_constants: bool = config_field(False, "Recompute derived constants after the centre-of-mass draw; "
                                                    "mjlab draws it once at start-up, so off to match its work.")
    episode_length_seconds: float = config_field(20.0, "Time limit of an episode (a truncation), s (mjlab: 20).")
    max_linear_speed: float = config_field(1.0, "Largest commanded |vx| and |vy|, m/s (mjlab: 1).")
    max_yaw_rate: float = config_field(0.5, "Largest commanded |wz|, rad/s (mjlab: 0.5).")
    push_velocity: float = config_field(0.5, "Largest planar velocity kick of a push, m/s (mjlab flat: 0.5).")

    def check_values(self) -> None:
        """Check CCD iterations in [1, 2**31 - 1], command and push sizes >= 0 and the episode length > 0."""
        _require(1 <= self.ccd_iterations <= C_INT_MAX, "ccd_iterations",
                 f"must be in [1, {C_INT_MAX}], got {self.ccd_iterations}")
        for name in ("max_linear_speed", "max_yaw_rate", "push_velocity"):
            _require(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        check_episode_length(self)

    def check_inputs(self) -> None:
        """Find the G1 model (one-line ConfigError naming task.model_path when there is none)."""
        from ktorch_sim.robots.g1 import find_g1_xml

        find_g1_xml(self.model_path)


__all__ = ["C_INT_MAX", "G1VelocityConfig", "KbotConfig", "KbotStandConfig", "KbotWalkConfig", "KbotWalkRoughConfig",
           "check_episode_length"]
