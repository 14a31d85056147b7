"""A task's config dataclass (:class:`RLConfig`) and :func:`config_field`, importable without torch or MuJoCo.

The config loader (:mod:`ktorch_sim.config`) reads and checks these before anything heavy is
imported, so that a mistyped key or a bad value is reported in well under a second. Only the
methods that build engine objects (:meth:`RLConfig.engine_config`, :meth:`RLConfig.sim2real_config`,
:meth:`RLConfig.resolved_device` with ``device = "auto"``) import torch and MuJoCo, when called.
``ktorch_sim.task`` re-exports both names, so ``from ktorch_sim.task import RLConfig`` keeps working.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ktorch_sim.engines.options import (  # noqa: F401 - re-exported: the names a task config may use
    CONE_NAMES,
    ENGINE_KINDS,
    INTEGRATOR_NAMES,
    SOLVER_NAMES,
    check_physics,
)
from ktorch_sim.errors import ConfigError, require
from ktorch_sim.utils.limits import C_INT_MAX, INT64_MAX  # noqa: F401 - re-exported for the config sections
from ktorch_sim.utils.toml_values import choice_problem, show_value

if TYPE_CHECKING:
    from ktorch_sim.engines import EngineConfig
    from ktorch_sim.sim2real import Sim2RealConfig

def config_field(default: Any, help: str, *, choices: Sequence[Any] | None = None,  # noqa: A002
                 allow_inf: bool = False) -> Any:
    """A dataclass field with a help text (shown by ``--help``) and optional allowed values.

    Mutable defaults are copied; with ``choices`` the config loader rejects any other value and
    suggests the closest allowed one. Float values must be finite: ``inf`` (or ``1e400``, which
    TOML reads as inf) and ``nan`` are refused, unless ``allow_inf`` is true (then the help text
    must say what infinity means; nan is refused still).
    """
    metadata: dict[str, Any] = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if allow_inf:
        metadata["allow_inf"] = True
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(kw_only=True)
class RLConfig:
    """Environment and physics settings of a task (ksim's RLConfig and EngineConfig)."""

    num_envs: int = config_field(16, "Number of parallel worlds, per process: under torchrun each of the K "
                                     "ranks runs this many (K times as many in all).")
    engine: str = config_field("auto", "Physics engine: auto (Warp on CUDA, native MuJoCo on CPU), mujoco or warp.")
    device: str = config_field("auto", "Torch device: auto (cuda if available), cpu or cuda[:k].")
    dt: float = config_field(0.004, "Physics timestep, seconds.")
    ctrl_dt: float = config_field(0.02, "Control period, seconds; a whole multiple of dt.")
    iterations: int = config_field(8, "Constraint solver iterations.")
    ls_iterations: int = config_field(8, "Solver line-search iterations.")
    integrator: str = config_field("model", "MuJoCo integrator: model (what the MJCF's <option> declares; MuJoCo's "
                                            "Euler if nothing), implicitfast (ksim's, for stiff PD actuators), euler, "
                                            "implicit, rk4 or discrete.", choices=INTEGRATOR_NAMES)
    solver: str = config_field("model", "Constraint solver: model (what the MJCF's <option> declares; Newton if "
                                        "nothing), newton, cg or pgs (native engine only).", choices=SOLVER_NAMES)
    cone: str = config_field("model", "Friction cone: model (what the MJCF's <option> declares; pyramidal if "
                                      "nothing), pyramidal or elliptic.", choices=CONE_NAMES)
    nconmax: int = config_field(16, "Warp: contacts allocated per world (pooled).")
    njmax: int = config_field(128, "Warp: constraint rows allocated per world.")
    num_threads: int = config_field(0, "Native MuJoCo engine: worker threads (0: one per core).")
    recompute_constants: bool = config_field(True, "After randomizing masses, inertias, armature or geometry at a "
                                                   "reset, recompute MuJoCo's derived constants (mj_setConst: "
                                                   "invweight0 for constraint softness, subtree masses). Exact but "
                                                   "costly on Warp, which recomputes every world; ksim and MuJoCo "
                                                   "Playground skip it (false).")
    clip_actions: float | None = config_field(
        None, "Clamp every policy action to +-this before the environment applies it, so the physics and the rewards "
              "see the clamped action while the rollout keeps the policy's sample for the PPO ratio (SB3 and "
              "CleanRL clip to the action space, Isaac Lab's rsl_rl wrapper takes clip_actions). none: no clamp.")
    action_latency_range: tuple[float, float] = config_field((0.0, 0.0), "Per-episode action latency range, s.")
    drop_action_prob: float = config_field(0.0, "Probability that an action dimension is dropped per step.")
    zero_offset_std: float = config_field(0.0, "Std of per-episode joint encoder zero offsets, rad.")
    zero_offset_mag: float = config_field(0.0, "Half-width of uniform per-episode joint zero offsets, rad.")
    actuator_update_dt: float | None = config_field(None, "Period at which motors take new targets, s (None: every substep).")
    seed: int = config_field(1337, "Random seed.")

    def resolved_device(self) -> str:
        """``device``, with "auto" resolved to cuda when available."""
        if self.device == "auto":
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def engine_config(self) -> EngineConfig:
        """The physics settings as an :class:`EngineConfig` (validated there)."""
        from ktorch_sim.engines import EngineConfig

        return EngineConfig(num_envs=self.num_envs, dt=self.dt, ctrl_dt=self.ctrl_dt, iterations=self.iterations,
                            ls_iterations=self.ls_iterations, integrator=self.integrator, solver=self.solver,
                            cone=self.cone,
                            device=self.resolved_device(), nconmax=self.nconmax, njmax=self.njmax,
                            num_threads=self.num_threads)

    def check(self) -> None:
        """Every range check of a task config: RLConfig's own fields, then :meth:`check_values`.

        Raises :class:`~ktorch_sim.errors.ConfigError` naming the key (``task.<field>``). The config
        loader calls it before anything heavy is imported.
        """
        _check_base_values(self)

    def check_values(self) -> None:
        """Check the ranges of this config class's own fields; the config loader calls it early.

        Runs before anything heavy is imported, so keep it to plain comparisons. Raise a
        ValueError whose message is one line, with a ``key`` attribute (e.g. "task.gait_period")
        naming the setting: :class:`ktorch_sim.config.ConfigError` has one. Finiteness of every
        float and the bounds of every int are checked for all fields already (the loader does it
        generically); the fields of RLConfig itself by :meth:`check`. The default checks
        nothing.
        """

    def check_inputs(self) -> None:
        """Check what types and ranges cannot (files the task will read); the config loader calls it.

        Raise a ValueError whose message is one line; a ``key`` attribute (e.g. "task.model_path")
        lets the loader name the setting and where it came from. The default checks nothing.
        """

    def sim2real_config(self) -> Sim2RealConfig:
        """The sim-to-real knobs as a :class:`Sim2RealConfig`."""
        from ktorch_sim.sim2real import Sim2RealConfig

        return Sim2RealConfig(action_latency_range=tuple(self.action_latency_range),
                              drop_action_prob=self.drop_action_prob, zero_offset_std=self.zero_offset_std,
                              zero_offset_mag=self.zero_offset_mag, actuator_update_dt=self.actuator_update_dt)


__all__ = ["CONE_NAMES", "ENGINE_KINDS", "INTEGRATOR_NAMES", "RLConfig", "SOLVER_NAMES", "config_field"]


DEVICE_RE = re.compile(r"auto|cpu(:\d+)?|cuda(:\d+)?")
"""The torch devices a config may name."""


def _check_base_values(t: RLConfig) -> None:
    """The checks of RLConfig's own fields (physics, sim2real, seed), then the subclass's ``check_values``."""
    check_physics(t, prefix="task.")
    require(t.engine in ENGINE_KINDS, "task.engine", choice_problem(t.engine, ENGINE_KINDS))
    require(DEVICE_RE.fullmatch(t.device) is not None, "task.device",
            f"expected auto, cpu or cuda[:k], got {show_value(t.device)}")
    require(t.clip_actions is None or t.clip_actions > 0, "task.clip_actions",
            f"must be > 0 or none, got {t.clip_actions}")
    lo, hi = t.action_latency_range
    require(0 <= lo <= hi, "task.action_latency_range", f"must satisfy 0 <= min <= max, got [{lo}, {hi}]")
    require(0 <= t.drop_action_prob < 1, "task.drop_action_prob", f"must be in [0, 1), got {t.drop_action_prob}")
    require(t.zero_offset_std >= 0, "task.zero_offset_std", f"must be >= 0, got {t.zero_offset_std}")
    require(t.zero_offset_mag >= 0, "task.zero_offset_mag", f"must be >= 0, got {t.zero_offset_mag}")
    require(t.actuator_update_dt is None or t.actuator_update_dt > 0, "task.actuator_update_dt",
             f"must be > 0 seconds or none, got {t.actuator_update_dt}")
    require(0 <= t.seed <= INT64_MAX, "task.seed", f"must be in [0, 2**63 - 1], got {t.seed}")
    try:  # the task config class's own fields
        t.check_values()
    except ValueError as e:
        raise ConfigError(getattr(e, "problem", str(e)), key=getattr(e, "key", "task")) from None
