"""The engine contract: batched MuJoCo physics behind one interface.

Every engine steps ``N`` copies ("worlds") of one MuJoCo model and exposes their state as
``[N, ...]`` float32 torch tensors that are updated in place. A task or component never knows
which engine runs it; the parity test in ``tests/test_engine_parity.py`` holds the engines to
the same numbers.

Timing convention (the same as ksim and mjlab): after :meth:`Engine.step`, ``qpos``, ``qvel``
and ``time`` describe the new state, while every derived quantity (``xpos``, ``cvel``,
sensors, contacts, ``qacc``, ``actuator_force`` ...) is what the last physics substep computed
from its starting state, i.e. one physics substep (``dt``) stale. :meth:`Engine.reset` and
:meth:`Engine.forward` recompute all derived quantities from the current state in every world,
so observations taken after a reset are exact.

The actuator law lives in the MuJoCo model itself (see :mod:`ktorch_sim.actuators`): a PD
position actuator is a ``general`` actuator whose force ``kp*ctrl - kp*q - kd*qd`` MuJoCo
evaluates at every physics substep, clipped to its ``forcerange``. ``step(targets)`` writes the
targets into ``ctrl`` and holds them for ``ctrl_dt / dt`` substeps.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass

import mujoco
import numpy as np
import torch

from ktorch_sim.engines.options import FROM_MODEL, OPTION_NAMES, check_physics

# The names (ktorch_sim.engines.options, where they are checked) mapped to MuJoCo's enums; None for "model":
# keep what the model's own <option> declares (MuJoCo's defaults where it declares nothing).
INTEGRATORS = {
    FROM_MODEL: None,
    "euler": mujoco.mjtIntegrator.mjINT_EULER,
    "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
    "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
    "rk4": mujoco.mjtIntegrator.mjINT_RK4,  # 4th-order Runge-Kutta (Gymnasium's Walker2d/Hopper/Ant); Warp has it too
    "discrete": mujoco.mjtIntegrator.mjINT_DISCRETE,
}
# PGS runs on the native engine only; MuJoCo Warp has Newton and CG (see check_warp_options).
SOLVERS = {FROM_MODEL: None, "newton": mujoco.mjtSolver.mjSOL_NEWTON, "cg": mujoco.mjtSolver.mjSOL_CG,
           "pgs": mujoco.mjtSolver.mjSOL_PGS}
CONES = {FROM_MODEL: None, "pyramidal": mujoco.mjtCone.mjCONE_PYRAMIDAL, "elliptic": mujoco.mjtCone.mjCONE_ELLIPTIC}
_OPTION_TABLES = {"integrator": INTEGRATORS, "solver": SOLVERS, "cone": CONES}
assert {k: tuple(v) for k, v in _OPTION_TABLES.items()} == OPTION_NAMES, "engines.options names its enums"

# Model fields whose derived constants MuJoCo must recompute (mj_setConst) after a change.
FIELDS_NEEDING_SET_CONST = frozenset(
    {"body_mass", "body_inertia", "body_ipos", "body_iquat", "body_pos", "body_quat", "dof_armature", "qpos0",
     "geom_size", "geom_pos", "geom_quat"}  # geometry: MuJoCo's bounding volumes are rebuilt by mj_setConst
)
# Derived fields that mj_setConst writes; batched alongside the fields above.
DERIVED_CONST_FIELDS = ("body_subtreemass", "body_invweight0", "dof_invweight0", "actuator_acc0")


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Physics settings shared by every engine.

    Attributes:
        num_envs: number of worlds stepped in parallel.
        dt: physics timestep in seconds.
        ctrl_dt: control period in seconds; must be a whole multiple of ``dt``.
        iterations: constraint solver iterations.
        ls_iterations: line-search iterations of the Newton/CG solver.
        tolerance: solver early-exit tolerance; MuJoCo Warp clamps it to >= 1e-6, so both
            engines use the same value for parity.
        integrator: "model" (default: what the model's ``<option integrator>`` says; MuJoCo's
            default is Euler, K-Bot's MJCF says implicitfast), "implicitfast", "euler", "implicit",
            "rk4" or "discrete" (both engines run all of them; RK4 evaluates the dynamics four
            times per substep).
        solver: "model" (default: the model's ``<option solver>``, Newton unless it says
            otherwise), "newton", "cg" or "pgs". MuJoCo Warp has no PGS: the Warp engine refuses
            it (:func:`check_warp_options`), the native engine runs it.
        cone: friction cone: "model" (default: the model's ``<option cone>``, pyramidal unless it
            says otherwise), "pyramidal" or "elliptic". Why K-Bot keeps pyramidal:
            docs/engine_fidelity.md.
        device: torch device of the state tensors ("cpu" or "cuda[:k]").
        nconmax: contacts allocated per world (Warp; a pooled average across worlds).
        njmax: constraint rows allocated per world (Warp; a hard per-world limit).
        num_threads: worker threads of the native MuJoCo engine; 0 means one per CPU core.
        capture: replay the control step as a captured Warp graph (Warp engine).
        batched_fields: MuJoCo model fields that get one value per world, for randomization.
    """

    num_envs: int = 16
    dt: float = 0.002
    ctrl_dt: float = 0.02
    iterations: int = 8
    ls_iterations: int = 8
    tolerance: float = 1e-6
    integrator: str = FROM_MODEL
    solver: str = FROM_MODEL
    cone: str = FROM_MODEL
    device: str = "cpu"
    nconmax: int = 16
    njmax: int = 128
    num_threads: int = 0
    capture: bool = True
    batched_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Reject settings no engine can run, naming the field and what is allowed (one ConfigError line,
        a ValueError; :func:`ktorch_sim.engines.options.check_physics`, which the config loader runs too)."""
        check_physics(self)

    @property
    def substeps(self) -> int:
        """Physics substeps per control step."""
        return int(round(self.ctrl_dt / self.dt))

    def replace(self, **changes: object) -> EngineConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def apply_physics_options(model: mujoco.MjModel, config: EngineConfig) -> None:
    """Write the config's timestep and solver settings into ``model`` (in place).

    Integrator, solver and cone set to "model" leave the model's own ``<option>`` values alone.
    """
    model.opt.timestep = config.dt
    model.opt.iterations = config.iterations
    model.opt.ls_iterations = config.ls_iterations
    model.opt.tolerance = config.tolerance
    for name, table in _OPTION_TABLES.items():
        value = table[getattr(config, name)]
        if value is not None:
            setattr(model.opt, name, value)


def option_name(model: mujoco.MjModel, name: str) -> str:
    """The config name ("rk4", "pgs", "elliptic", ...) of the model's integrator, solver or cone."""
    value = int(getattr(model.opt, name))
    return next(key for key, enum in _OPTION_TABLES[name].items() if enum is not None and int(enum) == value)


def check_warp_options(model: mujoco.MjModel, config: EngineConfig) -> None:
    """Refuse, in one ValueError, an integrator, solver or cone that MuJoCo Warp does not implement.

    ``model`` carries the options the engine will run (after :func:`apply_physics_options`);
    the message says whether the value came from the model's ``<option>`` or from the config,
    what MuJoCo Warp supports, and the two ways out. What Warp supports is read from the
    installed ``mujoco_warp`` (4.0: every integrator and both cones, the Newton and CG solvers).
    """
    import mujoco_warp as mjw

    supported = {"integrator": mjw.IntegratorType, "solver": mjw.SolverType, "cone": mjw.ConeType}
    problems = []
    for name, kinds in supported.items():
        values = {int(k) for k in kinds}
        if int(getattr(model.opt, name)) in values:
            continue
        chosen = option_name(model, name)
        source = f"the model's <option {name}>" if getattr(config, name) == FROM_MODEL else f"EngineConfig.{name}"
        allowed = sorted(key for key, enum in _OPTION_TABLES[name].items() if enum is not None and int(enum) in values)
        problems.append((name, f"{name} {chosen!r} (from {source}); it supports {name} {', '.join(allowed)}"))
    if problems:
        names = " and ".join(name for name, _ in problems)
        raise ValueError(f"MuJoCo Warp cannot run {'; '.join(text for _, text in problems)}. Set {names} to one of "
                         f"those (EngineConfig or task.{problems[0][0]}) or use the native MuJoCo engine "
                         f"(engine \"mujoco\"), which runs every MuJoCo option.")


def batched_field_names(config: EngineConfig) -> tuple[str, ...]:
    """The configured per-world fields plus the derived constants they require."""
    names = list(config.batched_fields)
    if FIELDS_NEEDING_SET_CONST.intersection(names):
        names += [f for f in DERIVED_CONST_FIELDS if f not in names]
    return tuple(names)


@dataclass
class PhysicsState:
    """Batched physics state, ``[N, ...]`` float32 tensors updated in place by the engine.

    Never rebind these attributes; write with ``copy_`` or slicing. The Warp engine's tensors
    are zero-copy views of the arrays its captured graph reads and writes.

    Attributes:
        qpos: joint positions, shape (N, nq); free joint first: xyz, then quaternion wxyz.
        qvel: joint velocities, shape (N, nv); free joint: world linear, then local angular.
        qacc: joint accelerations of the last substep, shape (N, nv).
        ctrl: actuator controls (PD targets for position actuators), shape (N, nu).
        actuator_force: actuator forces of the last substep, shape (N, nu).
        xpos: body frame positions in world, shape (N, nbody, 3).
        xquat: body frame orientations (wxyz), shape (N, nbody, 4).
        cvel: com-based body velocities (rot:lin), shape (N, nbody, 6).
        cinert: com-based body inertias and masses, shape (N, nbody, 10).
        subtree_com: subtree centres of mass, shape (N, nbody, 3).
        site_xpos: site positions in world, shape (N, nsite, 3).
        sensordata: all sensor outputs in MuJoCo's layout, shape (N, nsensordata).
        geom_contact: 1.0 where the geom is in a penetrating contact, else 0.0, shape (N, ngeom).
        time: simulation time of each world in seconds, shape (N,).
        xfrc_applied: external wrench per body (force, torque) in world, shape (N, nbody, 6);
            an input: write pushes here, they act on every substep until cleared.
    """

    qpos: torch.Tensor
    qvel: torch.Tensor
    qacc: torch.Tensor
    ctrl: torch.Tensor
    actuator_force: torch.Tensor
    xpos: torch.Tensor
    xquat: torch.Tensor
    cvel: torch.Tensor
    cinert: torch.Tensor
    subtree_com: torch.Tensor
    site_xpos: torch.Tensor
    sensordata: torch.Tensor
    geom_contact: torch.Tensor
    time: torch.Tensor
    xfrc_applied: torch.Tensor

    @classmethod
    def field_shapes(cls, model: mujoco.MjModel) -> dict[str, tuple[int, ...]]:
        """Per-world shape of every field for ``model``."""
        return {
            "qpos": (model.nq,),
            "qvel": (model.nv,),
            "qacc": (model.nv,),
            "ctrl": (model.nu,),
            "actuator_force": (model.nu,),
            "xpos": (model.nbody, 3),
            "xquat": (model.nbody, 4),
            "cvel": (model.nbody, 6),
            "cinert": (model.nbody, 10),
            "subtree_com": (model.nbody, 3),
            "site_xpos": (model.nsite, 3),
            "sensordata": (model.nsensordata,),
            "geom_contact": (model.ngeom,),
            "time": (),
            "xfrc_applied": (model.nbody, 6),
        }


class Engine(abc.ABC):
    """N worlds of one MuJoCo model, stepped together; see the module docstring for timing."""

    def __init__(self, model: mujoco.MjModel, config: EngineConfig) -> None:
        """Copy ``model``, apply the config's physics options, and keep both."""
        self.config = config
        self.model = _copy_model(model)
        apply_physics_options(self.model, config)
        self.num_envs = config.num_envs
        self.substeps = config.substeps
        self.device = torch.device(config.device)
        self.batched_fields = batched_field_names(config)
        self._defaults = {name: torch.as_tensor(np.array(getattr(self.model, name)), dtype=torch.float32)
                          for name in self.batched_fields}
        self.state: PhysicsState

    @property
    def dt(self) -> float:
        """Physics timestep in seconds."""
        return self.config.dt

    @property
    def ctrl_dt(self) -> float:
        """Control period in seconds."""
        return self.config.ctrl_dt

    @abc.abstractmethod
    def step(self, targets: torch.Tensor) -> None:
        """Advance every world one control step of ``substeps`` physics steps.

        ``targets`` is either [N, nu], held in ``ctrl`` for every substep, or [N, substeps, nu],
        one ``ctrl`` per substep (used for action latency, drops and update-rate modelling).
        """

    def _check_targets(self, targets: torch.Tensor) -> None:
        nu = self.model.nu
        if tuple(targets.shape) not in ((self.num_envs, nu), (self.num_envs, self.substeps, nu)):
            raise ValueError(f"targets must have shape {(self.num_envs, nu)} or {(self.num_envs, self.substeps, nu)}, "
                             f"got {tuple(targets.shape)}")

    @abc.abstractmethod
    def forward(self) -> None:
        """Recompute every derived quantity from the current qpos/qvel in every world."""

    @abc.abstractmethod
    def _write_state(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Set qpos/qvel of masked worlds, zero their time, ctrl, qacc, warmstart and pushes."""

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Reset the worlds where ``mask`` [N] is true to ``qpos`` [N, nq] / ``qvel`` [N, nv].

        Rows of ``qpos``/``qvel`` for unmasked worlds are ignored. Afterwards every world's
        derived quantities are recomputed (:meth:`forward`), so kinematics, sensors and
        contacts match the new state everywhere. Overflow flags of reset worlds are cleared.
        """
        self._check_batch("mask", mask, (), torch.bool)
        self._check_batch("qpos", qpos, (self.model.nq,))
        self._check_batch("qvel", qvel, (self.model.nv,))
        self._write_state(mask, qpos, qvel)
        self.forward()

    @abc.abstractmethod
    def bad_worlds(self) -> torch.Tensor:
        """Bool [N]: worlds whose state is not finite or whose contact/constraint buffers overflowed.

        Computed on the device without a host sync.
        """

    def overflowed_worlds(self) -> torch.Tensor:
        """Bool [N]: the subset of :meth:`bad_worlds` that lost contacts or constraint rows to a full buffer.

        Engines with fixed-size buffers override this; the default (buffers grow) is all False.
        """
        no_overflow = getattr(self, "_no_overflow", None)
        if no_overflow is None:
            no_overflow = self._no_overflow = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return no_overflow

    # --- per-world model fields (domain randomization) -------------------------------------

    def default_model_field(self, name: str) -> torch.Tensor:
        """The nominal (unrandomized) value of a batched model field, float32 on the CPU."""
        self._check_field(name)
        return self._defaults[name]

    @abc.abstractmethod
    def model_field(self, name: str) -> torch.Tensor:
        """Current per-world values of a batched model field, shape (N, *field_shape)."""

    @abc.abstractmethod
    def set_model_field(self, name: str, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Write per-world values (N, *field_shape) of a batched field into masked worlds.

        After changing mass, inertia, armature, body poses or qpos0, call
        :meth:`recompute_constants` before stepping.
        """

    @abc.abstractmethod
    def recompute_constants(self) -> None:
        """Recompute derived model constants (MuJoCo's mj_setConst) after field changes."""

    def buffer_usage(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (contacts [N] int32, constraint rows [N] int32) of every world after the last step.

        What :mod:`ktorch_sim.buffer_sizing` reads to size Warp's ``nconmax``/``njmax`` from
        measured peaks. Computed on the device without a host sync where the state lives there.
        """
        raise NotImplementedError(f"{type(self).__name__} does not report buffer usage")

    # --- helpers --------------------------------------------------------------------------

    def _check_field(self, name: str) -> None:
        if name not in self.batched_fields:
            raise KeyError(
                f"model field {name!r} is not batched; add it to EngineConfig.batched_fields "
                f"(batched now: {list(self.batched_fields)})"
            )

    def _check_batch(self, name: str, value: torch.Tensor, shape: tuple[int, ...],
                     dtype: torch.dtype | None = None) -> None:
        expected = (self.num_envs, *shape)
        if tuple(value.shape) != expected:
            raise ValueError(f"{name} must have shape {expected}, got {tuple(value.shape)}")
        if dtype is not None and value.dtype != dtype:
            raise ValueError(f"{name} must have dtype {dtype}, got {value.dtype}")


def _copy_model(model: mujoco.MjModel) -> mujoco.MjModel:
    """An independent copy of a compiled MjModel."""
    import copy

    return copy.copy(model)
