"""Unitree G1 (29 joints) as mjlab sets it up, built at run time from mjlab's installed MJCF.

The G1 model is not shipped with ktorch_sim: :func:`find_g1_xml` locates the ``g1.xml`` of an
installed mjlab package (``pip install mjlab``), and :func:`build_g1_model` turns that robot-only
file into the scene mjlab's flat velocity task simulates: a ground plane, every ``*_collision``
capsule colliding (self collisions on; foot capsules condim 3, priority 1, friction 0.6, the rest
condim 1), one position actuator per joint with mjlab's reflected rotor inertia as armature, and a
pelvis-IMU orientation sensor for the projected-gravity observation.

PD gains follow mjlab's recipe for the G1: each joint's motor type gives a reflected inertia
``I`` (rotor inertias seen through a two-stage planetary gearbox), and the gains place the joint
as a critically over-damped second-order system at 10 Hz: ``kp = I w^2``, ``kd = 2 zeta I w``
with ``w = 2 pi 10 rad/s`` and ``zeta = 2``. Waist pitch/roll and the ankles are driven by two
5020 motors through a linkage, taken (as mjlab does) as twice one 5020 at a 1:1 ratio.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from ktorch_sim.errors import ConfigError

__all__ = [
    "G1_ENV_VAR",
    "G1_JOINT_MOTORS",
    "G1_KNEES_BENT_POSE",
    "G1Motor",
    "MOTORS",
    "build_g1_model",
    "find_g1_xml",
    "g1_gains",
    "g1_initial_qpos",
]

G1_ENV_VAR = "KTORCH_G1_XML"
"""Environment variable naming a G1 MJCF; checked before looking for an installed mjlab."""

_MJLAB_G1_RELATIVE = Path("asset_zoo") / "robots" / "unitree_g1" / "xmls" / "g1.xml"
NATURAL_FREQUENCY = 2.0 * math.pi * 10.0  # rad/s
DAMPING_RATIO = 2.0
FOOT_GEOM = re.compile(r"^(left|right)_foot[1-7]_collision$")
FOOT_FRICTION = 0.6
IMU_SITE = "imu_in_pelvis"
IMU_QUAT_SENSOR = "imu_quat"
FLOOR = "floor"


def _two_stage_planetary_inertia(rotor: tuple[float, float, float], stage_ratios: tuple[float, float]) -> float:
    """Inertia at the output of a two-stage planetary gearbox, kg m^2.

    The motor rotor turns ``r1 * r2`` times faster than the output, the first stage's carrier
    ``r2`` times, and the last stage's part moves with the output: I = I0 (r1 r2)^2 + I1 r2^2 + I2.
    """
    r1, r2 = stage_ratios
    return rotor[0] * (r1 * r2) ** 2 + rotor[1] * r2 ** 2 + rotor[2]


@dataclass(frozen=True)
class G1Motor:
    """One G1 joint drive: reflected inertia (armature, kg m^2) and continuous torque limit (N m)."""

    armature: float
    effort_limit: float

    @property
    def kp(self) -> float:
        """Stiffness placing the joint at the natural frequency, N m/rad."""
        return self.armature * NATURAL_FREQUENCY ** 2

    @property
    def kd(self) -> float:
        """Damping at the damping ratio, N m s/rad."""
        return 2.0 * DAMPING_RATIO * self.armature * NATURAL_FREQUENCY

    def doubled(self) -> G1Motor:
        """Two of these motors driving one joint through a 1:1 linkage."""
        return G1Motor(armature=2.0 * self.armature, effort_limit=2.0 * self.effort_limit)


# Unitree motor data (rotor inertias of motor, stage 1, stage 2; stage ratios), as mjlab uses them.
_M5020 = G1Motor(_two_stage_planetary_inertia((0.139e-4, 0.017e-4, 0.169e-4), (1 + 46 / 18, 1 + 56 / 16)), 25.0)
_M7520_14 = G1Motor(_two_stage_planetary_inertia((0.489e-4, 0.098e-4, 0.533e-4), (4.5, 1 + 48 / 22)), 88.0)
_M7520_22 = G1Motor(_two_stage_planetary_inertia((0.489e-4, 0.109e-4, 0.738e-4), (4.5, 5.0)), 139.0)
_M4010 = G1Motor(_two_stage_planetary_inertia((0.068e-4, 0.0, 0.0), (5.0, 5.0)), 5.0)

MOTORS: dict[str, G1Motor] = {"5020": _M5020, "7520_14": _M7520_14, "7520_22": _M7520_22, "4010": _M4010,
                              "2x5020": _M5020.doubled()}

# Joint-name pattern -> motor type (first match wins).
G1_JOINT_MOTORS: tuple[tuple[str, str], ...] = (
    (r".*_(elbow|shoulder_pitch|shoulder_roll|shoulder_yaw|wrist_roll)_joint$", "5020"),
    (r".*_(hip_pitch|hip_yaw)_joint$|^waist_yaw_joint$", "7520_14"),
    (r".*_(hip_roll|knee)_joint$", "7520_22"),
    (r".*_(wrist_pitch|wrist_yaw)_joint$", "4010"),
    (r"^waist_(pitch|roll)_joint$|.*_ankle_(pitch|roll)_joint$", "2x5020"),
)

# mjlab's "knees bent" start pose of the velocity task: base height and the non-zero joints (rad).
G1_KNEES_BENT_BASE_HEIGHT = 0.76
G1_KNEES_BENT_POSE: dict[str, float] = {
    "left_hip_pitch_joint": -0.312, "right_hip_pitch_joint": -0.312,
    "left_knee_joint": 0.669, "right_knee_joint": 0.669,
    "left_ankle_pitch_joint": -0.363, "right_ankle_pitch_joint": -0.363,
    "left_elbow_joint": 0.6, "right_elbow_joint": 0.6,
    "left_shoulder_pitch_joint": 0.2, "right_shoulder_pitch_joint": 0.2,
    "left_shoulder_roll_joint": 0.2, "right_shoulder_roll_joint": -0.2,
}


def _model_error(problem: str) -> ConfigError:
    """Return the one-line error for an unusable G1 model, under the config key ``task.model_path``."""
    return ConfigError(problem, key="task.model_path")


def find_g1_xml(model_path: str | Path | None = None) -> Path:
    """Return the G1 MJCF to use: ``model_path``, else $KTORCH_G1_XML, else the installed mjlab's ``g1.xml``.

    mjlab is located with ``importlib.util.find_spec`` (nothing is imported). Raises
    :class:`ktorch_sim.config.ConfigError` (one line) when the chosen file does not exist or mjlab is absent.
    """
    if model_path is not None:
        path, origin = Path(model_path).expanduser(), "task.model_path"
    elif os.environ.get(G1_ENV_VAR):
        path, origin = Path(os.environ[G1_ENV_VAR]).expanduser(), f"${G1_ENV_VAR}"
    else:
        spec = importlib.util.find_spec("mjlab")
        if spec is None or not spec.submodule_search_locations:
            raise _model_error(
                "no G1 model: mjlab is not installed in this Python; `pip install mjlab` (it ships "
                f"{_MJLAB_G1_RELATIVE}), or pass task.model_path=/path/to/g1.xml (or set ${G1_ENV_VAR})")
        path, origin = Path(next(iter(spec.submodule_search_locations))) / _MJLAB_G1_RELATIVE, "the installed mjlab"
    if not path.is_file():
        raise _model_error(f"{path} (from {origin}): no such file; expected mjlab's G1 MJCF, "
                                   f"<site-packages>/mjlab/{_MJLAB_G1_RELATIVE}")
    return path


def g1_joint_motor(joint_name: str) -> G1Motor:
    """Return the motor type driving ``joint_name`` (ValueError for a joint no pattern covers)."""
    for pattern, motor in G1_JOINT_MOTORS:
        if re.match(pattern, joint_name):
            return MOTORS[motor]
    raise ValueError(f"G1 joint {joint_name!r} matches no motor pattern; expected a Unitree G1 29-joint model")


def g1_gains(joint_names: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (kp, kd, effort_limit, armature) of ``joint_names``, float64 arrays in that order."""
    motors = [g1_joint_motor(n) for n in joint_names]
    return (np.array([m.kp for m in motors]), np.array([m.kd for m in motors]),
            np.array([m.effort_limit for m in motors]), np.array([m.armature for m in motors]))


def build_g1_model(xml_path: str | Path) -> mujoco.MjModel:
    """Compile the G1 scene of mjlab's flat velocity task from the robot-only ``xml_path``.

    Adds the ground plane, collision settings, joint armature, one ``<joint>_ctrl`` actuator per
    hinge (gear 1; the PD law and torque limits are written by
    :class:`ktorch_sim.actuators.PositionActuators`) and a ``framequat`` sensor at the pelvis IMU.
    """
    try:
        spec = mujoco.MjSpec.from_file(str(xml_path))
    except ValueError as e:
        problem = " ".join(str(e).split())
        raise _model_error(f"{xml_path}: invalid MuJoCo model: {problem}; expected mjlab's G1 MJCF") from None
    floor_body = spec.worldbody.add_body(name="terrain")
    floor_body.add_geom(name=FLOOR, type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0.0, 0.0, 0.01])
    for geom in spec.geoms:
        if not geom.name.endswith("_collision"):
            continue
        foot = bool(FOOT_GEOM.match(geom.name))
        geom.contype, geom.conaffinity = 1, 1
        geom.condim = 3 if foot else 1
        geom.priority = 1 if foot else 0
        if foot:
            geom.friction[0] = FOOT_FRICTION
    hinges = [j for j in spec.joints if j.type == mujoco.mjtJoint.mjJNT_HINGE]
    _, _, effort, armature = g1_gains([j.name for j in hinges])
    for joint, arm, limit in zip(hinges, armature, effort, strict=True):
        joint.armature = float(arm)
        spec.add_actuator(name=f"{joint.name}_ctrl", target=joint.name, trntype=mujoco.mjtTrn.mjTRN_JOINT,
                          forcelimited=True, forcerange=[-float(limit), float(limit)])
    spec.add_sensor(name=IMU_QUAT_SENSOR, type=mujoco.mjtSensor.mjSENS_FRAMEQUAT, objtype=mujoco.mjtObj.mjOBJ_SITE,
                    objname=IMU_SITE)
    return spec.compile()


def g1_initial_qpos(model: mujoco.MjModel) -> np.ndarray:
    """Return the qpos of mjlab's knees-bent start pose: base at 0.76 m, upright, the pose's joint angles."""
    qpos = np.array(model.qpos0, dtype=np.float64)
    qpos[:7] = (0.0, 0.0, G1_KNEES_BENT_BASE_HEIGHT, 1.0, 0.0, 0.0, 0.0)
    for name, angle in G1_KNEES_BENT_POSE.items():
        qpos[model.jnt_qposadr[model.joint(name).id]] = angle
    return qpos
