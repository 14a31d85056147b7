"""What every component sees and the protocol each kind follows.

Components are small frozen dataclasses. Their calls map batched tensors to batched tensors,
``[N, ...]`` in and out, with no Python loop over worlds and no host synchronisation. Names
and constructor parameters follow ksim so that a ksim task ports line by line
(``ks.JointPositionObservation()`` replaces ``ksim.JointPositionObservation()``); ``create(...)``
factories resolve MuJoCo names to indices once.

Stateful components (a per-episode bias, an EMA filter, a command that ramps, an air-time
counter) keep their state in a dict of ``[N, ...]`` tensors that the environment allocates
with :meth:`Component.init_state` and hands back on every call; they update it in place and
re-initialise the rows of finished episodes in :meth:`Component.reset`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import mujoco
import torch

from ktorch_sim.engines.base import PhysicsState

if TYPE_CHECKING:
    from ktorch_sim.symmetry import Mirror, ModelMirror

ComponentState = dict[str, torch.Tensor]


@dataclass
class EnvContext:
    """Everything a component may read during one control step; tensors are ``[N, ...]``.

    Attributes:
        physics: the engine's state after the latest physics step (or reset).
        model: the nominal MuJoCo model (names, sizes, default parameters).
        ctrl_dt: control period in seconds.
        action: the action applied in this control step, shape (N, A), in action order.
        prev_action: the action of the previous control step (zero after a reset), (N, A).
        prev_prev_action: the one before that, (N, A); for second differences.
        commands: current command values by command name, each (N, D).
        observations: the clean observations the policy saw before this step, by name.
        curriculum_level: the curriculum level in [0, 1], shape (N,).
        episode_steps: control steps taken since each world's last reset, int64 (N,); the env
            counts the current step, so it is 1 when terminations and rewards see an episode's
            first step, and 0 in the observations right after a reset.
        generator: the environment's random generator (on the env's device).
        extras: per-step values the environment shares with components: ``terminated`` and
            ``truncated`` (bool (N,), set before rewards run) and ``joint_zero_offset``
            (per-episode encoder offsets, (N, nu) in actuator order).
    """

    physics: PhysicsState
    model: mujoco.MjModel
    ctrl_dt: float
    action: torch.Tensor
    prev_action: torch.Tensor
    prev_prev_action: torch.Tensor
    commands: dict[str, torch.Tensor]
    observations: dict[str, torch.Tensor]
    curriculum_level: torch.Tensor
    episode_steps: torch.Tensor
    generator: torch.Generator
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_envs(self) -> int:
        """Number of worlds N."""
        return self.physics.qpos.shape[0]

    @property
    def device(self) -> torch.device:
        """Device of every tensor in the context."""
        return self.physics.qpos.device


class Component:
    """Base of every component: a name and an optional per-world state."""

    @property
    def name(self) -> str:
        """ksim's key for this component: the class name in snake_case."""
        return snake_case(type(self).__name__)

    def init_state(self, ctx: EnvContext) -> ComponentState:
        """Allocate this component's ``[N, ...]`` state tensors (none by default)."""
        return {}

    def reset(self, state: ComponentState, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Re-initialise the state rows where ``mask`` [N] is true, in place (no-op by default)."""


@functools.cache
def snake_case(name: str) -> str:
    """``JointPositionObservation`` -> ``joint_position_observation``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def uniform(low: torch.Tensor | float, high: torch.Tensor | float, shape: Sequence[int], generator: torch.Generator,
            device: torch.device) -> torch.Tensor:
    """U(low, high) samples of ``shape`` drawn from ``generator`` on ``device``."""
    u = torch.rand(tuple(shape), generator=generator, device=device)
    return low + (high - low) * u


def masked_assign(target: torch.Tensor, mask: torch.Tensor, value: torch.Tensor | float) -> None:
    """``target[mask] = value`` without a host sync (``torch.where`` over the leading dim)."""
    m = mask.view(-1, *([1] * (target.dim() - 1)))
    target.copy_(torch.where(m, value, target))


@functools.cache
def _cached_index(indices: tuple[int, ...], device: str) -> torch.Tensor:
    return torch.tensor(indices, dtype=torch.long, device=device)


def index_tensor(indices: Sequence[int], device: torch.device) -> torch.Tensor:
    """A long tensor of ``indices`` on ``device``, built once per (indices, device) and reused."""
    return _cached_index(tuple(int(i) for i in indices), str(device))


def name_to_id(model: mujoco.MjModel, obj: mujoco.mjtObj, name: str) -> int:
    """MuJoCo id of a named object, or one clear error listing the names that exist."""
    idx = mujoco.mj_name2id(model, obj, name)
    if idx < 0:
        kind = obj.name.removeprefix("mjOBJ_").lower()
        count = {"body": model.nbody, "geom": model.ngeom, "site": model.nsite, "joint": model.njnt,
                 "sensor": model.nsensor, "actuator": model.nu}.get(kind, 0)
        names = [mujoco.mj_id2name(model, obj, i) for i in range(count)]
        raise ValueError(f"{kind} {name!r} is not in the model; {kind}s are {names}")
    return idx


def joint_qpos_indices(model: mujoco.MjModel, joint_names: Sequence[str] | None = None) -> list[int]:
    """qpos addresses of hinge/slide joints by name (all non-free joints when ``joint_names`` is None)."""
    return [int(model.jnt_qposadr[j]) for j in _joint_ids(model, joint_names)]


def joint_dof_indices(model: mujoco.MjModel, joint_names: Sequence[str] | None = None) -> list[int]:
    """qvel addresses of hinge/slide joints by name (all non-free joints when ``joint_names`` is None)."""
    return [int(model.jnt_dofadr[j]) for j in _joint_ids(model, joint_names)]


def _joint_ids(model: mujoco.MjModel, joint_names: Sequence[str] | None) -> list[int]:
    """Joint ids by name, or every hinge/slide joint (free and ball joints are not actuated joints)."""
    if joint_names is not None:
        return [name_to_id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in joint_names]
    scalar = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    return [j for j in range(model.njnt) if int(model.jnt_type[j]) in scalar]


def sensor_slice(model: mujoco.MjModel, sensor_name: str) -> slice:
    """The ``sensordata`` columns of a named sensor."""
    s = model.sensor(name_to_id(model, mujoco.mjtObj.mjOBJ_SENSOR, sensor_name))
    return slice(int(s.adr[0]), int(s.adr[0] + s.dim[0]))


# --- the component kinds ---------------------------------------------------------------------
# Each kind is a frozen, keyword-only dataclass; subclasses add their own fields.


@dataclass(frozen=True, kw_only=True)
class Observation(Component):
    """A named observation, (N, D) per control step.

    ``noise`` (per step) and ``bias`` (drawn once per episode) may be floats, read as the std of
    additive Gaussian noise/bias, or objects from :mod:`ktorch_sim.components.noise`. When
    either is set the environment also emits ``noisy_<name>`` next to the clean value, as ksim
    does (actors read the noisy one, critics the clean one).
    """

    noise: object = 0.0
    bias: object = 0.0

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """The clean observation, shape (N, D)."""
        raise NotImplementedError

    def mirror(self, model_mirror: ModelMirror) -> Mirror | None:
        """How this observation maps onto its left-right mirror image (``ppo.symmetry``), or None if it does not.

        None (the default) means unknown: a policy that reads it cannot be trained with ``ppo.symmetry``.
        """
        return None


@dataclass(frozen=True, kw_only=True)
class Reward(Component):
    """A reward term, (N,) per control step; the environment adds ``scale * value``.

    The sign is explicit, not inferred from a negative scale: a class whose name ends in
    ``Penalty`` returns a non-negative magnitude and contributes ``-abs(scale) * value``; a
    ``Reward`` contributes ``scale * value``. So ``AvoidLimitsPenalty(scale=0.1)`` and
    ``AvoidLimitsPenalty(scale=-0.1)`` mean the same, as ksim users write both.
    With ``scale_by_curriculum`` the contribution is also multiplied by the curriculum level.
    """

    scale: float = 1.0
    scale_by_curriculum: bool = False

    def get_reward(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """The unscaled term, shape (N,)."""
        raise NotImplementedError

    @property
    def signed_scale(self) -> float:
        """The factor the environment multiplies :meth:`get_reward` by."""
        return -abs(self.scale) if type(self).__name__.endswith("Penalty") else self.scale


@dataclass(frozen=True, kw_only=True)
class Termination(Component):
    """Ends episodes: int8 (N,) with -1 = failure, +1 = success/time limit (a truncation), 0 = go on."""

    def check(self, ctx: EnvContext) -> torch.Tensor:
        """Per-world verdict, int8 (N,) in {-1, 0, +1}."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Command(Component):
    """A command the policy follows; its current value is ``state["value"]``, shape (N, D).

    :meth:`Component.reset` samples a fresh command for new episodes, :meth:`update` advances it
    once per control step (resampling, ramps, clocks).
    """

    def update(self, state: ComponentState, ctx: EnvContext) -> None:
        """Advance the command one control step, in place (no-op by default)."""

    def mirror(self, model_mirror: ModelMirror) -> Mirror | None:
        """How this command maps onto its left-right mirror image (``ppo.symmetry``), or None if unknown."""
        return None


@dataclass(frozen=True, kw_only=True)
class Reset(Component):
    """Chooses the initial state of new episodes, applied in list order."""

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Modify rows ``mask`` of the reset targets ``qpos`` (N, nq) and ``qvel`` (N, nv) in place."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Event(Component):
    """A disturbance during an episode (pushes), applied once per control step before physics."""

    def apply(self, state: ComponentState, ctx: EnvContext) -> None:
        """Write into ``ctx.physics`` (``xfrc_applied``, ``qvel``) in place, for the worlds it hits."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class PhysicsRandomizer(Component):
    """Resamples per-world MuJoCo model fields at every episode reset.

    Values are drawn relative to the engine's cached defaults (``engine.default_model_field``),
    never to the current value, so repeated resets do not compound. (ksim draws them once per
    run; resampling per episode is the fix.)
    """

    @property
    def fields(self) -> tuple[str, ...]:
        """The model fields this randomizer writes; the engine must batch them."""
        raise NotImplementedError

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Write new values for the worlds in ``mask`` through ``engine.set_model_field``."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Curriculum(Component):
    """Sets the curriculum level in [0, 1] once per training iteration from rollout metrics.

    State: ``{"level": float32 scalar tensor, ...}``; :meth:`step` updates it in place.
    """

    def init_curriculum(self, device: torch.device) -> ComponentState:
        """The initial curriculum state (level and counters), scalar tensors."""
        raise NotImplementedError

    def step(self, state: ComponentState, metrics: dict[str, torch.Tensor]) -> None:
        """Update the level after an iteration. ``metrics`` holds scalar tensors such as
        ``episode_length`` (mean steps of finished episodes), ``episode_length_seconds``,
        ``deaths_per_episode`` (failed terminations / episodes) and ``num_steps`` (iterations
        so far)."""
        raise NotImplementedError

    def metrics(self, state: ComponentState) -> dict[str, torch.Tensor]:
        """Scalar tensors the trainer logs as ``curriculum/<name>`` every iteration (default: the level)."""
        return {"level": state["level"]}
