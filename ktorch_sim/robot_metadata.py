"""Typed joint and motor metadata for a robot, read from a TOML file.

The numbers that the actuator law and the policy need per joint (PD gains, torque limits, home
pose, policy index) live in a data file next to the robot's MJCF (for K-Bot:
``ktorch_sim/assets/kbot/joints.toml``), not as constants in Python. This module turns that file
into frozen dataclasses and checks it carefully: every problem is reported as a one-line
``ValueError`` that names the file, the table, the key and what was expected, because a wrong
gain silently trains a policy that will not transfer to the robot.

File layout::

    robot = "kbot-headless"
    control_frequency = 50

    [motors.robstride_04]          # one table per motor type
    peak_torque = 120.0            # N*m, also the MJCF ctrlrange / actuatorfrcrange
    rated_torque = 40.0            # N*m
    armature = 0.04                # kg*m^2
    frictionloss = 0.2             # N*m
    max_velocity = 17.488          # rad/s

    [joints.dof_left_hip_pitch_04] # one table per joint, in actuator order
    motor = "robstride_04"
    can_id = 31
    nn_id = 15                     # index in the policy's input/output vectors
    kp = 150.0                     # N*m/rad
    kd = 24.722                    # N*m*s/rad
    soft_torque_limit = 84.0       # N*m
    home_deg = 20.0
    range_deg = [-60.0, 127.0]     # what the MJCF enforces
    metadata_range_deg = [-60.0, 127.0]  # what the vendor's API reports
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

import mujoco
import numpy as np

from ktorch_sim.actuator_lookup import joint_actuator_id

__all__ = [
    "JointMetadata",
    "MotorMetadata",
    "RobotMetadata",
    "check_against_model",
    "load_robot_metadata",
]


@dataclass(frozen=True, kw_only=True)
class MotorMetadata:
    """Properties shared by every joint driven by one motor type."""

    name: str
    peak_torque: float  # N*m; MJCF ctrlrange and actuatorfrcrange are +-peak_torque
    rated_torque: float  # N*m, continuous
    armature: float  # kg*m^2, reflected rotor inertia
    frictionloss: float  # N*m, dry friction
    max_velocity: float  # rad/s; informational, MuJoCo does not enforce it


@dataclass(frozen=True, kw_only=True)
class JointMetadata:
    """One actuated joint: gains, limits and home pose (angles in radians)."""

    name: str
    motor: str
    can_id: int
    nn_id: int
    kp: float  # N*m/rad
    kd: float  # N*m*s/rad
    soft_torque_limit: float  # N*m, clip applied by the PD law before the motor's peak
    home: float  # rad
    range: tuple[float, float]  # rad, the limits the MJCF enforces
    metadata_range: tuple[float, float]  # rad, the limits the vendor's metadata reports
    peak_torque: float  # N*m, from the motor type
    armature: float  # kg*m^2, from the motor type
    frictionloss: float  # N*m, from the motor type


@dataclass(frozen=True, kw_only=True)
class RobotMetadata:
    """All joints of a robot, in file (actuator) order, plus its motor types.

    Iterating over it yields the joints; the array helpers return float64 arrays in the same
    order, so they line up with MuJoCo's actuators and with qpos[7:] for a floating-base robot.
    """

    robot: str
    control_frequency: float  # Hz
    joints: tuple[JointMetadata, ...]
    motors: Mapping[str, MotorMetadata]

    def __iter__(self) -> Iterator[JointMetadata]:
        return iter(self.joints)

    def __len__(self) -> int:
        return len(self.joints)

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Joint names in order."""
        return tuple(j.name for j in self.joints)

    @property
    def kp(self) -> np.ndarray:
        """Proportional gains, N*m/rad, shape (num_joints,)."""
        return self._array("kp")

    @property
    def kd(self) -> np.ndarray:
        """Derivative gains, N*m*s/rad, shape (num_joints,)."""
        return self._array("kd")

    @property
    def soft_torque_limit(self) -> np.ndarray:
        """PD-law torque clip, N*m, shape (num_joints,)."""
        return self._array("soft_torque_limit")

    @property
    def peak_torque(self) -> np.ndarray:
        """Motor peak torque (the MJCF ctrlrange), N*m, shape (num_joints,)."""
        return self._array("peak_torque")

    @property
    def home(self) -> np.ndarray:
        """Home pose, rad, shape (num_joints,)."""
        return self._array("home")

    def by_name(self, name: str) -> JointMetadata:
        """Return the joint called ``name``; ValueError listing the known names if there is none."""
        for joint in self.joints:
            if joint.name == name:
                return joint
        raise ValueError(f"{self.robot}: no joint named {name!r} (known: {', '.join(self.joint_names)})")

    def in_policy_order(self) -> RobotMetadata:
        """Return the same metadata with the joints sorted by ``nn_id`` (the policy's I/O order)."""
        return replace(self, joints=tuple(sorted(self.joints, key=lambda j: j.nn_id)))

    def _array(self, field: str) -> np.ndarray:
        return np.array([getattr(j, field) for j in self.joints], dtype=np.float64)


_MOTOR_KEYS = ("peak_torque", "rated_torque", "armature", "frictionloss", "max_velocity")
_JOINT_KEYS = (
    "motor",
    "can_id",
    "nn_id",
    "kp",
    "kd",
    "soft_torque_limit",
    "home_deg",
    "range_deg",
    "metadata_range_deg",
)


class _Reader:
    """Typed access to one TOML table that reports errors as '<file>: <where>.<key>: ...'."""

    def __init__(self, path: Path, where: str, table: Any, allowed: tuple[str, ...]) -> None:
        self.path = path
        self.where = where
        if not isinstance(table, dict):
            self.fail(f"expected a table, got {_describe(table)}")
        self.table: dict[str, Any] = table
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            self.fail(f"unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})")

    def fail(self, message: str, key: str | None = None) -> NoReturn:
        where = self.where if key is None else (f"{self.where}.{key}" if self.where else key)
        prefix = f"{self.path}: {where}: " if where else f"{self.path}: "
        raise ValueError(prefix + message)

    def get(self, key: str) -> Any:
        if key not in self.table:
            self.fail("missing required key", key)
        return self.table[key]

    def number(self, key: str, *, minimum: float | None = None, positive: bool = False) -> float:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"expected a number, got {_describe(value)}", key)
        if not math.isfinite(value):
            self.fail(f"expected a finite number, got {value}", key)
        if positive and value <= 0:
            self.fail(f"expected a number > 0, got {value}", key)
        if minimum is not None and value < minimum:
            self.fail(f"expected a number >= {minimum:g}, got {value}", key)
        return float(value)

    def integer(self, key: str) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(f"expected a non-negative integer, got {_describe(value)}", key)
        return value

    def string(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str) or not value:
            self.fail(f"expected a non-empty string, got {_describe(value)}", key)
        return value

    def interval_deg(self, key: str) -> tuple[float, float]:
        value = self.get(key)
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
        if not ok:
            self.fail(f"expected [low, high] in degrees, got {_describe(value)}", key)
        low, high = float(value[0]), float(value[1])
        if not low < high:
            self.fail(f"expected low < high, got [{low:g}, {high:g}]", key)
        return low, high


def _describe(value: Any) -> str:
    """Short 'value (type)' text for error messages."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _radians(interval_deg: tuple[float, float]) -> tuple[float, float]:
    return math.radians(interval_deg[0]), math.radians(interval_deg[1])


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"{path}: robot metadata file not found")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        first_line = str(err).splitlines()[0]
        raise ValueError(f"{path}: invalid TOML: {first_line}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read robot metadata: {err}") from None


def _parse_motor(path: Path, name: str, table: Any) -> MotorMetadata:
    r = _Reader(path, f"motors.{name}", table, _MOTOR_KEYS)
    return MotorMetadata(
        name=name,
        peak_torque=r.number("peak_torque", positive=True),
        rated_torque=r.number("rated_torque", positive=True),
        armature=r.number("armature", minimum=0.0),
        frictionloss=r.number("frictionloss", minimum=0.0),
        max_velocity=r.number("max_velocity", positive=True),
    )


def _parse_joint(path: Path, name: str, table: Any, motors: Mapping[str, MotorMetadata]) -> JointMetadata:
    r = _Reader(path, f"joints.{name}", table, _JOINT_KEYS)
    motor_name = r.string("motor")
    if motor_name not in motors:
        r.fail(
            f"unknown motor type {motor_name!r} (defined under [motors]: {', '.join(motors)})",
            "motor",
        )
    motor = motors[motor_name]
    range_deg = r.interval_deg("range_deg")
    home_deg = r.number("home_deg")
    if not range_deg[0] <= home_deg <= range_deg[1]:
        r.fail(f"expected a value inside range_deg {list(range_deg)}, got {home_deg:g}", "home_deg")
    soft_limit = r.number("soft_torque_limit", positive=True)
    if soft_limit > motor.peak_torque:
        r.fail(
            f"expected at most the {motor_name} peak torque {motor.peak_torque:g}, got {soft_limit:g}",
            "soft_torque_limit",
        )
    return JointMetadata(
        name=name,
        motor=motor_name,
        can_id=r.integer("can_id"),
        nn_id=r.integer("nn_id"),
        kp=r.number("kp", minimum=0.0),
        kd=r.number("kd", minimum=0.0),
        soft_torque_limit=soft_limit,
        home=math.radians(home_deg),
        range=_radians(range_deg),
        metadata_range=_radians(r.interval_deg("metadata_range_deg")),
        peak_torque=motor.peak_torque,
        armature=motor.armature,
        frictionloss=motor.frictionloss,
    )


def _check_ids(path: Path, joints: tuple[JointMetadata, ...]) -> None:
    """nn_id must be a permutation of 0..n-1 (it indexes the policy vector); can_id unique."""
    seen_nn: dict[int, str] = {}
    seen_can: dict[int, str] = {}
    for j in joints:
        if j.nn_id >= len(joints):
            raise ValueError(
                f"{path}: joints.{j.name}.nn_id: expected an index below {len(joints)} "
                f"(the number of joints), got {j.nn_id}"
            )
        if j.nn_id in seen_nn:
            raise ValueError(f"{path}: joints.{j.name}.nn_id: {j.nn_id} is already used by {seen_nn[j.nn_id]}")
        if j.can_id in seen_can:
            raise ValueError(f"{path}: joints.{j.name}.can_id: {j.can_id} is already used by {seen_can[j.can_id]}")
        seen_nn[j.nn_id] = j.name
        seen_can[j.can_id] = j.name


def load_robot_metadata(path: str | Path) -> RobotMetadata:
    """Read and validate a robot metadata TOML file.

    Raises ValueError (one line: file, table.key, what was expected) for a missing file,
    malformed TOML, a missing or unknown key, a value of the wrong type, or an unknown motor type.
    """
    path = Path(path)
    data = _read_toml(path)
    top = _Reader(path, "", data, ("robot", "control_frequency", "motors", "joints"))
    robot = top.string("robot")
    control_frequency = top.number("control_frequency", positive=True)

    motor_tables = top.get("motors")
    if not isinstance(motor_tables, dict) or not motor_tables:
        top.fail("expected at least one [motors.<type>] table", "motors")
    motors = {name: _parse_motor(path, name, t) for name, t in motor_tables.items()}

    joint_tables = top.get("joints")
    if not isinstance(joint_tables, dict) or not joint_tables:
        top.fail("expected at least one [joints.<name>] table", "joints")
    joints = tuple(_parse_joint(path, name, t, motors) for name, t in joint_tables.items())
    _check_ids(path, joints)

    return RobotMetadata(
        robot=robot,
        control_frequency=control_frequency,
        joints=joints,
        motors=MappingProxyType(motors),
    )


def check_against_model(meta: RobotMetadata, model: mujoco.MjModel) -> None:
    """Check that every metadata joint exists in ``model`` with an actuator.

    The actuator is the one named ``<joint>_ctrl``, or the one (possibly unnamed) actuator that
    drives the joint (:func:`ktorch_sim.actuator_lookup.joint_actuator_id`). Raises ValueError naming
    the first joint (in metadata order) that is missing, so a metadata file and an MJCF that
    drifted apart fail at load time rather than mid-training.
    """
    for joint in meta.joints:
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint.name) < 0:
            raise ValueError(f"{meta.robot}: joint {joint.name!r} from the metadata is not in the model")
        actuator = f"{joint.name}_ctrl"
        if joint_actuator_id(model, joint.name) < 0:
            raise ValueError(f"{meta.robot}: joint {joint.name!r} has no actuator named {actuator!r} in the model "
                             "and no actuator drives it")
