"""Physics randomizers: per-world MuJoCo model fields drawn at episode resets (ksim's randomization module).

A randomizer lists the model fields it writes (:attr:`PhysicsRandomizer.fields`; the engine must
be built with them in ``EngineConfig.batched_fields``, see :func:`randomized_fields`) and, for the
worlds in ``mask``, draws new values **relative to the engine's nominal values**
(``engine.default_model_field``), never to the current ones, so resampling at every reset does not
compound. It replaces only its own entries (one body, the hinge dofs, one geom's sliding
friction ...) and keeps the rest of each world's current row, so randomizers that touch different
entries of one field compose; two randomizers writing the same entries are an error
(:func:`check_randomizers`).

After randomizers that change mass, inertia, centre of mass, armature, ``qpos0`` or collision
geometry (see :data:`FIELDS_NEEDING_RECOMPUTE`, :func:`needs_recompute`) the environment must call
``engine.recompute_constants()`` (MuJoCo's ``mj_setConst``) before stepping.

Difference from ksim (quirk #7): ksim draws each world's model once for the whole run; here the
environment resamples at every episode reset. Where ksim reuses one random key for two draws
(quirk #11) the draws here are independent.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import torch

from ktorch_sim.components.base import EnvContext, PhysicsRandomizer, index_tensor, name_to_id, uniform
from ktorch_sim.components.resets import axis_angle_quat, constant, quat_mul
from ktorch_sim.engines.base import FIELDS_NEEDING_SET_CONST

# Joint types a reset or randomizer treats as actuated joints (never the free or ball joint).
_MOVING_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))

__all__ = [
    "FIELDS_NEEDING_RECOMPUTE",
    "AllBodiesCOMRandomizer",
    "AllBodiesInertiaRandomizer",
    "AllBodiesMassMultiplicationRandomizer",
    "ArmatureRandomizer",
    "COMRandomizer",
    "CollisionBodyRandomizer",
    "FloorFrictionRandomizer",
    "FootFrictionRandomizer",
    "GeomFrictionRandomizer",
    "IMUAlignmentRandomizer",
    "JointDampingRandomizer",
    "JointZeroPositionRandomizer",
    "MassAdditionRandomizer",
    "MassMultiplicationRandomizer",
    "StaticFrictionRandomizer",
    "check_randomizers",
    "needs_recompute",
    "randomized_fields",
]

# Fields after whose change the engine must recompute derived constants (engine.recompute_constants()):
# the engine's mass/inertia/qpos0 set, plus geom shapes and placements, because native MuJoCo's mj_setConst
# also rebuilds each body's collision BVH (used by its mid-phase) from them; without it a grown geom is missed.
FIELDS_NEEDING_RECOMPUTE: frozenset[str] = FIELDS_NEEDING_SET_CONST | {"geom_size", "geom_pos", "geom_quat"}


# --- module helpers --------------------------------------------------------------------------


def randomized_fields(randomizers: Sequence[PhysicsRandomizer]) -> tuple[str, ...]:
    """Every field the randomizers write, in first-use order: pass it as ``EngineConfig.batched_fields``."""
    names: list[str] = []
    for r in randomizers:
        names += [f for f in r.fields if f not in names]
    return tuple(names)


def needs_recompute(randomizers: Sequence[PhysicsRandomizer]) -> bool:
    """Whether applying ``randomizers`` requires ``engine.recompute_constants()`` afterwards."""
    return bool(FIELDS_NEEDING_RECOMPUTE.intersection(randomized_fields(randomizers)))


def check_randomizers(randomizers: Sequence[PhysicsRandomizer], model: mujoco.MjModel) -> None:
    """Raise if two randomizers would write the same entries of a field (the later would undo the earlier).

    Randomizers without an ``entries(model)`` method are taken to own their whole fields.
    """
    owners: dict[tuple[str, tuple[int, ...]], str] = {}
    whole: dict[str, str] = {}
    for r in randomizers:
        entries = r.entries(model) if hasattr(r, "entries") else [(f, ()) for f in r.fields]
        for field, index in entries:
            clash = whole.get(field) or owners.get((field, index)) or \
                (next((o for (f, _), o in owners.items() if f == field), None) if index == () else None)
            if clash is not None:
                raise ValueError(f"randomizers {clash} and {r.name} both write {field}{list(index)}; keep one of them")
        for field, index in entries:
            if index == ():
                whole[field] = r.name
            owners[(field, index)] = r.name


def _hinge_dofs(model: mujoco.MjModel) -> list[int]:
    """Return the qvel addresses of hinge/slide joints (the free joint's six dofs excluded)."""
    return [int(model.jnt_dofadr[j]) for j in range(model.njnt)
            if int(model.jnt_type[j]) in _MOVING_JOINTS]


def _hinge_qpos(model: mujoco.MjModel) -> list[int]:
    """Return the qpos addresses of hinge/slide joints."""
    return [int(model.jnt_qposadr[j]) for j in range(model.njnt)
            if int(model.jnt_type[j]) in _MOVING_JOINTS]


def _body_id(model: mujoco.MjModel, name: str) -> int:
    return name_to_id(model, mujoco.mjtObj.mjOBJ_BODY, name)


_DEFAULTS: weakref.WeakKeyDictionary[object, dict[str, torch.Tensor]] = weakref.WeakKeyDictionary()


def _default(engine: object, name: str) -> torch.Tensor:
    """Return the nominal value of a field on the engine's device (copied there once per engine)."""
    cache = _DEFAULTS.setdefault(engine, {})
    if name not in cache:
        cache[name] = engine.default_model_field(name).to(engine.device)
    return cache[name]


def _write(engine: object, name: str, mask: torch.Tensor, index: tuple[object, ...], values: torch.Tensor) -> None:
    """Set ``field[world, *index] = values`` for masked worlds, keeping every other entry's current value."""
    new = engine.model_field(name).clone()
    new[(slice(None), *index)] = values.to(new.dtype)
    engine.set_model_field(name, new, mask)


@dataclass(frozen=True, kw_only=True)
class _Scaled(PhysicsRandomizer):
    """Shared validation for randomizers with a ``[scale_lower, scale_upper]`` range."""

    scale_lower: float
    scale_upper: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale_lower) and math.isfinite(self.scale_upper)
                and self.scale_lower <= self.scale_upper):
            raise ValueError(f"{type(self).__name__}: need scale_lower <= scale_upper, got "
                             f"({self.scale_lower}, {self.scale_upper})")

    def _draw(self, shape: tuple[int, ...], ctx: EnvContext) -> torch.Tensor:
        return uniform(self.scale_lower, self.scale_upper, shape, ctx.generator, ctx.device)

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """Return the (field, index) entries this randomizer writes, for :func:`check_randomizers`."""
        raise NotImplementedError


# --- joint (dof) parameters ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _DofScale(_Scaled):
    """``field[dof] = default[dof] * U(scale_lower, scale_upper)`` per hinge dof (free joint untouched)."""

    _field = ""

    @property
    def fields(self) -> tuple[str, ...]:
        """The one dof field this randomizer writes."""
        return (self._field,)

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """One entry per hinge dof."""
        return [(self._field, (d,)) for d in _hinge_dofs(model)]

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw one factor per world and hinge dof and write the scaled nominal values."""
        dofs = index_tensor(_hinge_dofs(engine.model), engine.device)
        nominal = _default(engine, self._field)[dofs]
        _write(engine, self._field, mask, (dofs,), nominal * self._draw((engine.num_envs, dofs.numel()), ctx))


@dataclass(frozen=True, kw_only=True)
class StaticFrictionRandomizer(_DofScale):
    """Joint dry friction: ``dof_frictionloss[j] = nominal * U(0.5, 2.0)`` per hinge dof (N·m)."""

    _field = "dof_frictionloss"
    scale_lower: float = 0.5
    scale_upper: float = 2.0


@dataclass(frozen=True, kw_only=True)
class ArmatureRandomizer(_DofScale):
    """Rotor inertia: ``dof_armature[j] = nominal * U(0.95, 1.05)`` per hinge dof (kg·m²); needs recompute."""

    _field = "dof_armature"
    scale_lower: float = 0.95
    scale_upper: float = 1.05


@dataclass(frozen=True, kw_only=True)
class JointDampingRandomizer(_DofScale):
    """Joint viscous damping: ``dof_damping[j] = nominal * U(0.9, 1.1)`` per hinge dof (N·m·s/rad).

    K-Bot's joints have no passive damping (the PD kd supplies it), so on K-Bot this is a no-op.
    """

    _field = "dof_damping"
    scale_lower: float = 0.9
    scale_upper: float = 1.1


@dataclass(frozen=True, kw_only=True)
class JointZeroPositionRandomizer(_Scaled):
    """Joint calibration error: ``qpos0[j] = nominal + U(scale_lower, scale_upper)`` rad per hinge joint.

    MuJoCo rotates a hinge by ``qpos - qpos0``, so shifting ``qpos0`` by ``d`` means the joint
    reads ``q + d`` in the pose it used to read ``q``: an encoder zero offset. ksim removed this
    class (#529) in favour of an engine-level zero offset; it is kept here for tasks that use it.
    Needs ``recompute_constants`` (constants are evaluated at ``qpos0``).
    """

    scale_lower: float = -0.01
    scale_upper: float = 0.01

    @property
    def fields(self) -> tuple[str, ...]:
        """``qpos0``."""
        return ("qpos0",)

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """One entry per hinge joint's qpos address."""
        return [("qpos0", (a,)) for a in _hinge_qpos(model)]

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw one offset per world and hinge joint."""
        adr = index_tensor(_hinge_qpos(engine.model), engine.device)
        nominal = _default(engine, "qpos0")[adr]
        _write(engine, "qpos0", mask, (adr,), nominal + self._draw((engine.num_envs, adr.numel()), ctx))


# --- contact friction ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GeomFrictionRandomizer(_Scaled):
    """Sliding friction of some geoms: ``geom_friction[g, 0] = U(scale_lower, scale_upper)`` (absolute).

    One value per world shared by all listed geoms (a floor or shoe property), or one per geom
    with ``per_geom=True``. MuJoCo uses the higher-priority geom's friction in a contact (the
    larger of the two at equal priority), so randomize the geoms that win: on K-Bot the feet
    (priority 1), see :class:`FootFrictionRandomizer`.
    """

    geom_ids: tuple[int, ...]
    scale_lower: float = 0.4
    scale_upper: float = 1.0
    per_geom: bool = False

    @classmethod
    def from_geom_names(cls, model: mujoco.MjModel, geom_names: Sequence[str], scale_lower: float = 0.4,
                        scale_upper: float = 1.0, per_geom: bool = False) -> GeomFrictionRandomizer:
        """Resolve geom names to ids once."""
        ids = tuple(name_to_id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in geom_names)
        return cls(geom_ids=ids, scale_lower=scale_lower, scale_upper=scale_upper, per_geom=per_geom)

    @property
    def fields(self) -> tuple[str, ...]:
        """``geom_friction``."""
        return ("geom_friction",)

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """Return the sliding-friction entry of every listed geom."""
        return [("geom_friction", (g, 0)) for g in self.geom_ids]

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw the friction coefficients and write column 0 of the listed geoms."""
        geoms = index_tensor(self.geom_ids, engine.device)
        count = len(self.geom_ids) if self.per_geom else 1
        values = self._draw((engine.num_envs, count), ctx).expand(engine.num_envs, len(self.geom_ids))
        _write(engine, "geom_friction", mask, (geoms, 0), values)


@dataclass(frozen=True, kw_only=True)
class FootFrictionRandomizer(GeomFrictionRandomizer):
    """Sliding friction of the feet, one value per world (``geom_friction[foot, 0] = U(lower, upper)``).

    This is the friction randomizer that acts on K-Bot: its foot geoms have priority 1, so their
    friction, not the floor's, sets every foot-floor contact. ``from_geom_names`` takes the
    robot's foot geoms (K-Bot's: :data:`ktorch_sim.robots.kbot.KBOT_FOOT_GEOMS`).
    """

    @classmethod
    def from_geom_names(cls, model: mujoco.MjModel, geom_names: Sequence[str],
                        scale_lower: float = 0.4, scale_upper: float = 1.0,
                        per_geom: bool = False) -> FootFrictionRandomizer:
        """Resolve the foot geom names to ids once."""
        ids = tuple(name_to_id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in geom_names)
        return cls(geom_ids=ids, scale_lower=scale_lower, scale_upper=scale_upper, per_geom=per_geom)


@dataclass(frozen=True, kw_only=True)
class FloorFrictionRandomizer(_Scaled):
    """Floor sliding friction: ``geom_friction[floor, 0] = U(0.4, 1.0)`` per world (absolute).

    Caution: a contact uses the friction of its higher-priority geom, and K-Bot's foot geoms
    have priority 1, so on K-Bot the floor's friction never reaches a foot contact and this
    randomizer has no effect. Use :class:`FootFrictionRandomizer` for K-Bot.
    """

    floor_geom_id: int
    scale_lower: float = 0.4
    scale_upper: float = 1.0

    @classmethod
    def from_geom_name(cls, model: mujoco.MjModel, floor_geom_name: str = "floor", scale_lower: float = 0.4,
                       scale_upper: float = 1.0) -> FloorFrictionRandomizer:
        """Resolve the floor geom's name to its id once."""
        geom = name_to_id(model, mujoco.mjtObj.mjOBJ_GEOM, floor_geom_name)
        return cls(floor_geom_id=geom, scale_lower=scale_lower, scale_upper=scale_upper)

    @property
    def fields(self) -> tuple[str, ...]:
        """``geom_friction``."""
        return ("geom_friction",)

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """Return the floor's sliding-friction entry."""
        return [("geom_friction", (self.floor_geom_id, 0))]

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw one friction coefficient per world."""
        _write(engine, "geom_friction", mask, (self.floor_geom_id, 0), self._draw((engine.num_envs,), ctx))


# --- mass properties -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AllBodiesMassMultiplicationRandomizer(_Scaled):
    """``body_mass[b] = nominal * U(0.98, 1.02)`` independently per body (the world body excluded).

    Inertias are not scaled (as ksim); see :class:`AllBodiesInertiaRandomizer` for a consistent
    change. Needs recompute.
    """

    scale_lower: float = 0.98
    scale_upper: float = 1.02

    @property
    def fields(self) -> tuple[str, ...]:
        """``body_mass``."""
        return ("body_mass",)

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """Every body but the world."""
        return [("body_mass", (b,)) for b in range(1, model.nbody)]

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw one factor per world and body."""
        nominal = _default(engine, "body_mass")[1:]
        factor = self._draw((engine.num_envs, nominal.numel()), ctx)
        _write(engine, "body_mass", mask, (slice(1, None),), nominal * factor)


@dataclass(frozen=True, kw_only=True)
class _OneBodyMass(_Scaled):
    """A randomizer of one body's mass, named once at creation. Needs recompute."""

    body_id: int

    @classmethod
    def from_body_name(cls, model: mujoco.MjModel, body_name: str, scale_lower: float = 0.95,
                       scale_upper: float = 1.05) -> _OneBodyMass:
        """Resolve the body's name to its id once."""
        return cls(body_id=_body_id(model, body_name), scale_lower=scale_lower, scale_upper=scale_upper)

    @property
    def fields(self) -> tuple[str, ...]:
        """``body_mass``."""
        return ("body_mass",)

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """Return the one body's mass entry."""
        return [("body_mass", (self.body_id,))]

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw one value per world and write it."""
        nominal = _default(engine, "body_mass")[self.body_id]
        _write(engine, "body_mass", mask, (self.body_id,), self._mass(nominal, self._draw((engine.num_envs,), ctx)))

    def _mass(self, nominal: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class MassMultiplicationRandomizer(_OneBodyMass):
    """One body's mass: ``body_mass[b] = nominal * U(0.95, 1.05)`` (kg). Needs recompute.

    ksim's ``from_body_name`` defaults to U(0, 1), which can make the mass (almost) zero; here it
    uses the class defaults.
    """

    scale_lower: float = 0.95
    scale_upper: float = 1.05

    def _mass(self, nominal: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        return nominal * draw


@dataclass(frozen=True, kw_only=True)
class MassAdditionRandomizer(_OneBodyMass):
    """One body's mass plus a payload: ``body_mass[b] = nominal + U(scale_lower, scale_upper)`` (kg).

    The result is clipped to at least 10 % of the nominal mass so a negative draw cannot give a
    zero or negative mass (ksim does not guard this). ``from_body_name`` defaults to a U(0, 1) kg
    payload, as ksim. Needs recompute.
    """

    scale_lower: float = -1.0
    scale_upper: float = 1.0

    @classmethod
    def from_body_name(cls, model: mujoco.MjModel, body_name: str, scale_lower: float = 0.0,
                       scale_upper: float = 1.0) -> MassAdditionRandomizer:
        """Resolve the body's name to its id once (default payload U(0, 1) kg, as ksim)."""
        return cls(body_id=_body_id(model, body_name), scale_lower=scale_lower, scale_upper=scale_upper)

    def _mass(self, nominal: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        return (nominal + draw).clamp(min=0.1 * float(nominal))


@dataclass(frozen=True, kw_only=True)
class COMRandomizer(PhysicsRandomizer):
    """One body's centre of mass: ``body_ipos[b] = nominal + U(-scale, scale)^3`` (m, body frame). Needs recompute."""

    body_id: int
    scale: float = 0.01

    @classmethod
    def from_body_name(cls, model: mujoco.MjModel, body_name: str, scale: float = 0.01) -> COMRandomizer:
        """Resolve the body's name to its id once."""
        return cls(body_id=_body_id(model, body_name), scale=scale)

    @property
    def fields(self) -> tuple[str, ...]:
        """``body_ipos``."""
        return ("body_ipos",)

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """Return the one body's three coordinates."""
        return [("body_ipos", (self.body_id, k)) for k in range(3)]

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw one offset per world."""
        nominal = _default(engine, "body_ipos")[self.body_id]
        offset = uniform(-self.scale, self.scale, (engine.num_envs, 3), ctx.generator, ctx.device)
        _write(engine, "body_ipos", mask, (self.body_id,), nominal + offset)


@dataclass(frozen=True, kw_only=True)
class AllBodiesCOMRandomizer(PhysicsRandomizer):
    """Every body's centre of mass: ``body_ipos[b] = nominal + U(-scale, scale)^3`` (m, body frame).

    The world body is excluded. Needs recompute.
    """

    scale: float = 0.01

    @property
    def fields(self) -> tuple[str, ...]:
        """``body_ipos``."""
        return ("body_ipos",)

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """Every coordinate of every body but the world."""
        return [("body_ipos", (b, k)) for b in range(1, model.nbody) for k in range(3)]

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw one offset per world and body."""
        nominal = _default(engine, "body_ipos")[1:]
        offset = uniform(-self.scale, self.scale, (engine.num_envs, *nominal.shape), ctx.generator, ctx.device)
        _write(engine, "body_ipos", mask, (slice(1, None),), nominal + offset)


@dataclass(frozen=True, kw_only=True)
class AllBodiesInertiaRandomizer(PhysicsRandomizer):
    """Mass and inertia of every body, kept consistent: the body is scaled, then its shape nudged.

    ``s ~ 1 + U(-scale, scale)`` per body, ``p ~ 1 + U(-scale, scale)`` per body and principal axis,
    drawn independently: ``body_mass = nominal * s``, ``body_inertia = nominal * s * p`` (a denser
    or lighter body of nearly the same shape). ksim draws ``s`` and the first column of ``p``
    from the same key (quirk #11), so its x-inertia moved with the mass squared; fixed here. The
    world body is excluded. Needs recompute.
    """

    scale: float = 0.02

    @property
    def fields(self) -> tuple[str, ...]:
        """``body_mass`` and ``body_inertia``."""
        return ("body_mass", "body_inertia")

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """Mass and the three principal inertias of every body but the world."""
        return [(f, (b,)) for f in self.fields for b in range(1, model.nbody)]

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw the mass factor and the shape factors per world and body."""
        mass = _default(engine, "body_mass")[1:]
        inertia = _default(engine, "body_inertia")[1:]
        n, gen, dev = engine.num_envs, ctx.generator, ctx.device
        s = 1.0 + uniform(-self.scale, self.scale, (n, mass.numel()), gen, dev)
        p = 1.0 + uniform(-self.scale, self.scale, (n, *inertia.shape), gen, dev)
        _write(engine, "body_mass", mask, (slice(1, None),), mass * s)
        _write(engine, "body_inertia", mask, (slice(1, None),), inertia * s.unsqueeze(-1) * p)


# --- sensors ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IMUAlignmentRandomizer(PhysicsRandomizer):
    """IMU mounting error: rotate (and optionally shift) the IMU site in its body.

    ``site_quat = q_z(rz) * q_y(ry) * q_x(rx) * nominal`` with ``rx, ry ~ N(0, tilt_std_rad^2)`` and
    ``rz ~ N(0, yaw_std_rad^2)`` (0 when None), as exact rotations (ksim uses the small-angle form);
    ``site_pos = nominal + N(0, translate_std_m^2)^3`` when ``translate_std_m`` is set. Every sensor
    on the site (accelerometer, gyro, frame quaternion) then reads in the tilted frame. Both are
    per-world fields in MuJoCo Warp (``site_quat``/``site_pos`` are batched "*" fields) and need
    no recompute.
    """

    site_name: str = "imu_site"
    tilt_std_rad: float = math.radians(2.0)
    yaw_std_rad: float | None = None
    translate_std_m: float | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """``site_quat`` (and ``site_pos`` when translating)."""
        return ("site_quat", "site_pos") if self.translate_std_m else ("site_quat",)

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """Return the site's orientation (and position)."""
        site = name_to_id(model, mujoco.mjtObj.mjOBJ_SITE, self.site_name)
        return [(f, (site,)) for f in self.fields]

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw one mounting error per world."""
        site = name_to_id(engine.model, mujoco.mjtObj.mjOBJ_SITE, self.site_name)
        n, gen, dev = engine.num_envs, ctx.generator, ctx.device
        tilt = torch.randn((n, 2), generator=gen, device=dev) * self.tilt_std_rad
        yaw = torch.randn((n,), generator=gen, device=dev) * (self.yaw_std_rad or 0.0)
        offset = quat_mul(axis_angle_quat(yaw, 2), quat_mul(axis_angle_quat(tilt[:, 1], 1),
                                                            axis_angle_quat(tilt[:, 0], 0)))
        quat = quat_mul(offset, _default(engine, "site_quat")[site].expand(n, 4))
        _write(engine, "site_quat", mask, (site,), quat / quat.norm(dim=-1, keepdim=True))
        if self.translate_std_m:
            shift = torch.randn((n, 3), generator=gen, device=dev) * self.translate_std_m
            _write(engine, "site_pos", mask, (site,), _default(engine, "site_pos")[site] + shift)


# --- collision geometry ----------------------------------------------------------------------

_SPHERE, _CAPSULE, _CYLINDER = (int(t) for t in (mujoco.mjtGeom.mjGEOM_SPHERE, mujoco.mjtGeom.mjGEOM_CAPSULE,
                                                 mujoco.mjtGeom.mjGEOM_CYLINDER))


@dataclass(frozen=True, kw_only=True)
class CollisionBodyRandomizer(PhysicsRandomizer):
    """Collision shapes of some geoms: radius, half-length and position jittered per world.

    ``geom_size[g, 0] = r * U(1 +- radius_scale)``, ``geom_size[g, 1] = h * U(1 +- length_scale)``
    (capsules and cylinders; a capsule grows symmetrically about its centre), and
    ``geom_pos[g] = nominal + U(+-position_jitter_{x,y,z})`` in the body frame (m). MuJoCo's
    collision broad phase also reads each geom's bounding sphere and box, which nothing
    recomputes at run time, so this randomizer writes them too (``geom_rbound``: ``r + h`` for a
    capsule, ``sqrt(r^2 + h^2)`` for a cylinder, ``r`` for a sphere; ``geom_aabb``: half-sizes
    ``(r, r, r + h)``, ``(r, r, h)`` or ``(r, r, r)`` about the geom centre). ksim changes only
    size and position, so a grown geom could be missed by the broad phase; fixed here. Native
    MuJoCo also culls contacts with a per-body BVH that only ``mj_setConst`` rebuilds, so this
    randomizer needs ``recompute_constants`` (see :data:`FIELDS_NEEDING_RECOMPUTE`).
    """

    geom_ids: tuple[int, ...]
    geom_types: tuple[int, ...]
    radius_scale: float = 0.05
    length_scale: float = 0.05
    position_jitter_x: float = 0.001
    position_jitter_y: float = 0.001
    position_jitter_z: float = 0.001

    @classmethod
    def from_geom_names(cls, model: mujoco.MjModel, geom_names: Sequence[str], radius_scale: float = 0.05,
                        length_scale: float = 0.05, position_jitter_x: float = 0.001, position_jitter_y: float = 0.001,
                        position_jitter_z: float = 0.001) -> CollisionBodyRandomizer:
        """Resolve the geoms (spheres, capsules or cylinders) once."""
        ids = tuple(name_to_id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in geom_names)
        types = tuple(int(model.geom_type[g]) for g in ids)
        for name, t in zip(geom_names, types, strict=True):
            if t not in (_SPHERE, _CAPSULE, _CYLINDER):
                raise ValueError(f"CollisionBodyRandomizer: geom {name!r} is a {mujoco.mjtGeom(t).name}; only "
                                 "spheres, capsules and cylinders can be resized")
        return cls(geom_ids=ids, geom_types=types, radius_scale=radius_scale, length_scale=length_scale,
                   position_jitter_x=position_jitter_x, position_jitter_y=position_jitter_y,
                   position_jitter_z=position_jitter_z)

    @property
    def fields(self) -> tuple[str, ...]:
        """Size, position and the two bounding volumes of the geoms."""
        return ("geom_size", "geom_pos", "geom_rbound", "geom_aabb")

    def entries(self, model: mujoco.MjModel) -> list[tuple[str, tuple[int, ...]]]:
        """Every listed geom's row in each field."""
        return [(f, (g,)) for f in self.fields for g in self.geom_ids]

    def apply(self, engine: object, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Draw new shapes and positions per world and geom and write them with their bounds."""
        geoms = index_tensor(self.geom_ids, engine.device)
        n, k, gen, dev = engine.num_envs, len(self.geom_ids), ctx.generator, ctx.device
        size = _default(engine, "geom_size")[geoms].expand(n, k, 3).clone()
        radius = size[..., 0] * uniform(1 - self.radius_scale, 1 + self.radius_scale, (n, k), gen, dev)
        half = size[..., 1] * uniform(1 - self.length_scale, 1 + self.length_scale, (n, k), gen, dev)
        types = constant(self.geom_types, dev).expand(n, k)
        half = torch.where(types == _SPHERE, size[..., 1], half)  # a sphere has no length
        size[..., 0], size[..., 1] = radius, half
        jitter = constant((self.position_jitter_x, self.position_jitter_y, self.position_jitter_z), dev)
        pos = _default(engine, "geom_pos")[geoms] + uniform(-1.0, 1.0, (n, k, 3), gen, dev) * jitter
        rbound = torch.where(types == _CAPSULE, radius + half,
                             torch.where(types == _CYLINDER, torch.sqrt(radius ** 2 + half ** 2), radius))
        extent_z = torch.where(types == _CAPSULE, radius + half, torch.where(types == _CYLINDER, half, radius))
        aabb = torch.zeros(n, k, 6, device=dev)  # (centre xyz, half-sizes xyz) about the geom frame
        aabb[..., 3], aabb[..., 4], aabb[..., 5] = radius, radius, extent_z
        for name, values in (("geom_size", size), ("geom_pos", pos), ("geom_rbound", rbound)):
            _write(engine, name, mask, (geoms,), values)
        # MuJoCo stores geom_aabb as (ngeom, 6), MuJoCo Warp as (ngeom, 2, 3): write through a flat view
        new = engine.model_field("geom_aabb").clone()
        new.view(n, -1, 6)[:, geoms] = aabb.to(new.dtype)
        engine.set_model_field("geom_aabb", new, mask)
