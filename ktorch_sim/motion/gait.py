"""A procedural walking gait for K-Bot: phase clock, foot paths, pelvis motion, arm swing, leg IK.

The gait is a function of time ``t`` and a velocity command ``(vx, vy, wz)`` (m/s, m/s, rad/s in
the heading frame), built in four layers (docs/motion.md has the figures):

1. **Heading path.** The base's heading frame moves with the commanded body-frame velocity:
   yaw ``wz t`` and the planar position that integrates ``R(yaw) (vx, vy)`` (a circular arc when
   turning), starting at the origin with yaw 0 (:func:`heading_pose`).
2. **Phase clock and feet.** Phase ``t / period``; the left foot's cycle starts at phase 0, the
   right one's half a period later. Each foot is on the ground for ``stance_fraction`` of its
   cycle and swings for the rest. Foothold k of a foot is where its nominal place beside the
   base (``nominal_feet``, in the heading frame) is at the middle of stance k, so a stance foot
   is fixed in the world (no skating) and the stride follows the command. A swing moves the foot
   from one foothold to the next along a quintic ``10s^3 - 15s^4 + 6s^5`` (zero velocity and
   acceleration at both ends, so nothing jumps at the stance/swing switches) and lifts it by
   ``clearance * 64 s^3 (1 - s)^3`` (apex at mid-swing). The foot's yaw follows its footholds.
   A zero command is standing: both feet stay down.
3. **Pelvis and arms.** The base (pelvis) height is ``pelvis_height`` plus a vertical bob at
   twice the step frequency (highest at each mid-stance); it sways sideways over the stance
   foot (``sway``, peak at mid-stance); roll and pitch are zero. Each shoulder pitch swings
   opposite to its own leg: ``arm_swing`` rad per metre that the same-side foot is ahead of its
   nominal place, arm forward while the foot is behind.
4. **Inverse kinematics.** Given the base pose and the arms, damped least squares on the MuJoCo
   model (``mj_jacSite``) solves the 5 leg joints per leg for the foot target: the sole-centre
   site's position and the foot's pitch and yaw (flat foot, heading as planned). K-Bot has no
   ankle roll, so foot roll is left free (it follows the hip roll; under 6 deg in the clip
   family). Joints are clipped to their ranges at every iteration; a target out of reach raises
   :class:`GaitError`.

Frames are sampled at ``fps`` (the control rate, 50 Hz); a clip holds whole periods and is
cyclic: its frame after the last is its first moved by the wrap transform (see
:mod:`ktorch_sim.motion.velocity`), and qvel comes from central differences across that wrap.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import mujoco
import numpy as np
import torch

from ktorch_sim.motion.clip import MotionClip
from ktorch_sim.motion.velocity import finite_difference_qvel, yaw_quaternion
from ktorch_sim.robots import kbot_home_qpos, load_kbot_model

__all__ = [
    "FEET",
    "GaitCommand",
    "GaitError",
    "GaitParams",
    "GaitSpec",
    "KbotLegIK",
    "default_family",
    "foot_target",
    "generate_gait",
    "heading_pose",
    "stance_mask",
]

FEET = ("left", "right")
PHASE_OFFSET = {"left": 0.0, "right": 0.5}
"""Where each foot's cycle (stance, then swing) starts, in periods."""
LEG_JOINTS = {side: tuple(f"dof_{side}_{j}" for j in ("hip_pitch_04", "hip_roll_03", "hip_yaw_03", "knee_04",
                                                        "ankle_02")) for side in FEET}
ARM_PITCH_JOINTS = {side: f"dof_{side}_shoulder_pitch_03" for side in FEET}
FOOT_SITES = {side: f"{side}_foot" for side in FEET}
GENERATOR = "ktorch_sim.motion.gait"
ZERO_COMMAND = 1e-9


class GaitError(ValueError):
    """Gait settings that cannot be generated (bad numbers, a foot out of reach); one line."""


@dataclass(frozen=True)
class GaitCommand:
    """Velocity command in the heading frame: forward ``vx`` and left ``vy`` (m/s), yaw rate ``wz`` (rad/s)."""

    vx: float = 0.0
    vy: float = 0.0
    wz: float = 0.0

    @property
    def standing(self) -> bool:
        """True for a zero command: the feet stay down."""
        return max(abs(self.vx), abs(self.vy), abs(self.wz)) < ZERO_COMMAND

    def as_list(self) -> list[float]:
        """``[vx, vy, wz]``."""
        return [float(self.vx), float(self.vy), float(self.wz)]


@dataclass(frozen=True)
class GaitParams:
    """Gait shape; lengths in metres, times in seconds, angles in radians."""

    period: float = 0.8  # one full cycle: a left and a right step
    stance_fraction: float = 0.6  # of a period each foot is down; > 0.5 gives double support
    clearance: float = 0.06  # swing apex above the stance sole height
    pelvis_height: float = 0.70  # base z (K-Bot's home keyframe: 0.7207, knees bent 50 deg)
    bob: float = 0.004  # vertical pelvis amplitude, at twice the step frequency
    sway: float = 0.015  # lateral pelvis amplitude towards the stance foot
    arm_swing: float = 1.5  # shoulder pitch rad per m of same-side foot displacement
    sole_height: float = 0.002  # stance sole (lowest foot-capsule point) above the floor
    fps: float = 50.0  # frames per second (the control rate)
    cycles: int = 1  # periods in the clip

    def check(self) -> None:
        """Raise :class:`GaitError` (one line) for a value the generator cannot use."""
        numbers = {k: v for k, v in asdict(self).items() if k != "cycles"}
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise GaitError(f"gait {name} is {value!r}; expected a finite number")
        for name in ("period", "fps", "pelvis_height"):
            if numbers[name] <= 0:
                raise GaitError(f"gait {name} is {numbers[name]}; expected > 0")
        for name in ("clearance", "bob", "sway", "arm_swing", "sole_height"):
            if numbers[name] < 0:
                raise GaitError(f"gait {name} is {numbers[name]}; expected >= 0")
        if not 0.5 <= self.stance_fraction < 1:
            raise GaitError(f"gait stance_fraction is {self.stance_fraction}; expected in [0.5, 1) (walking: a "
                            "foot is always down)")
        if isinstance(self.cycles, bool) or not isinstance(self.cycles, int) or self.cycles < 1:
            raise GaitError(f"gait cycles is {self.cycles!r}; expected a whole number >= 1")
        frames = self.period * self.fps
        if abs(frames - round(frames)) > 1e-6:
            raise GaitError(f"gait period {self.period} s is {frames:.4g} frames at {self.fps:g} fps; expected a "
                            f"whole number of frames (e.g. {round(frames) / self.fps:g} s)")

    @property
    def frames_per_period(self) -> int:
        """Frames in one period."""
        return round(self.period * self.fps)


@dataclass(frozen=True)
class GaitSpec:
    """One clip of a family: its file stem, command and gait shape."""

    name: str
    command: GaitCommand
    params: GaitParams = field(default_factory=GaitParams)


# --- layer 1 and 2: heading path, phase clock, foot paths (pure functions of time) ------------------------


def heading_pose(t: float, command: GaitCommand) -> tuple[float, float, float]:
    """Heading frame (x, y, yaw) at time ``t``: the command integrated from the origin, yaw 0."""
    yaw = command.wz * t
    if abs(command.wz) < ZERO_COMMAND:
        return command.vx * t, command.vy * t, yaw
    s, c = math.sin(yaw), math.cos(yaw)
    x = (command.vx * s + command.vy * (c - 1.0)) / command.wz
    y = (command.vx * (1.0 - c) + command.vy * s) / command.wz
    return x, y, yaw


def _to_world(pose: tuple[float, float, float], local: np.ndarray) -> np.ndarray:
    """Planar point ``local`` (x, y in the frame ``pose``) in world coordinates."""
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([x + c * local[0] - s * local[1], y + s * local[0] + c * local[1]])


def foot_phase(t: float, foot: str, period: float) -> tuple[int, float]:
    """(cycle index k, phase in [0, 1) within that cycle) of ``foot`` at time ``t``."""
    u = t / period - PHASE_OFFSET[foot]
    k = math.floor(u + 1e-9)
    return k, min(max(u - k, 0.0), 1.0 - 1e-12)


def in_stance(t: float, foot: str, params: GaitParams, command: GaitCommand) -> bool:
    """Tell whether ``foot`` is on the ground at ``t`` (always, when standing)."""
    return command.standing or foot_phase(t, foot, params.period)[1] < params.stance_fraction


def foothold(k: int, foot: str, params: GaitParams, command: GaitCommand,
             nominal: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """World (x, y) and yaw of ``foot`` during stance ``k``: its nominal place at mid-stance."""
    t_mid = (k + PHASE_OFFSET[foot] + 0.5 * params.stance_fraction) * params.period
    pose = heading_pose(t_mid, command)
    return _to_world(pose, nominal[foot]), pose[2]


def quintic(s: float) -> float:
    """Smooth step 0 -> 1 on [0, 1] with zero velocity and acceleration at both ends."""
    return s * s * s * (10.0 + s * (-15.0 + 6.0 * s))


def lift(s: float) -> float:
    """Swing height profile on [0, 1]: 0 at the ends (zero velocity and acceleration there), 1 at s = 0.5."""
    return 64.0 * (s * (1.0 - s)) ** 3


def foot_target(t: float, foot: str, params: GaitParams, command: GaitCommand,
                nominal: dict[str, np.ndarray], sole_site_height: float) -> tuple[np.ndarray, float]:
    """World position of ``foot``'s sole-centre site and the foot's yaw at time ``t``.

    ``sole_site_height`` is the site's height above the sole when the foot is flat.
    """
    k, phase = foot_phase(t, foot, params.period)
    stance_z = params.sole_height + sole_site_height
    if command.standing:
        return np.r_[_to_world((0.0, 0.0, 0.0), nominal[foot]), stance_z], 0.0
    start, start_yaw = foothold(k, foot, params, command, nominal)
    if phase < params.stance_fraction:
        return np.r_[start, stance_z], start_yaw
    s = (phase - params.stance_fraction) / (1.0 - params.stance_fraction)
    end, end_yaw = foothold(k + 1, foot, params, command, nominal)
    blend = quintic(s)
    xy = start + blend * (end - start)
    return np.r_[xy, stance_z + params.clearance * lift(s)], start_yaw + blend * (end_yaw - start_yaw)


def stance_mask(num_frames: int, params: GaitParams, command: GaitCommand) -> dict[str, np.ndarray]:
    """Per foot, a bool [num_frames] array: True on frames where the foot is on the ground."""
    times = np.arange(num_frames) / params.fps
    return {foot: np.array([in_stance(float(t), foot, params, command) for t in times]) for foot in FEET}


# --- layer 3: pelvis and arms -----------------------------------------------------------------------------


def _mid_stance_phase(foot: str, params: GaitParams) -> float:
    """Phase (periods) of ``foot``'s mid-stance."""
    return PHASE_OFFSET[foot] + 0.5 * params.stance_fraction


def base_pose(t: float, params: GaitParams, command: GaitCommand) -> tuple[np.ndarray, float]:
    """World base position and yaw at ``t``: heading path, sway to the stance side, vertical bob."""
    pose = heading_pose(t, command)
    angle = 2.0 * math.pi * (t / params.period - _mid_stance_phase("left", params))
    sway = params.sway * math.cos(angle)  # + (left) at left mid-stance, - at right mid-stance
    bob = 0.0 if command.standing else params.bob * math.cos(2.0 * angle)
    return np.r_[_to_world(pose, np.array([0.0, sway])), params.pelvis_height + bob], pose[2]


def arm_angles(t: float, params: GaitParams, command: GaitCommand, nominal: dict[str, np.ndarray],
               feet: dict[str, np.ndarray], home: dict[str, float], forward: dict[str, float]) -> dict[str, float]:
    """Shoulder pitch per side: home plus ``arm_swing`` rad per m that the same-side foot is behind its place.

    ``feet`` are the foot targets (world); ``forward`` is +1 or -1: the joint sign that moves the arm forward.
    """
    x, y, yaw = heading_pose(t, command)
    c, s = math.cos(yaw), math.sin(yaw)
    angles = {}
    for side in FEET:
        ahead = c * (feet[side][0] - x) + s * (feet[side][1] - y) - nominal[side][0]
        angles[side] = home[side] - forward[side] * params.arm_swing * ahead
    return angles


# --- layer 4: inverse kinematics --------------------------------------------------------------------------


class KbotLegIK:
    """Damped-least-squares IK of K-Bot's legs on the MuJoCo model (module docstring, layer 4).

    Each leg's 5 joints are solved for 5 targets: the foot site's position (3) and the foot body's
    pitch and yaw (2); roll is free. ``solve`` keeps the base and arm joints of the given qpos.
    """

    ROT_WEIGHT = 0.3  # m per rad: scales the orientation rows of the error and the Jacobian
    DAMPING = 1e-4
    MAX_STEP = 0.3  # rad per iteration and joint
    TOLERANCE = 1e-7  # of the weighted error, per row
    MAX_ITERATIONS = 100

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self.qpos_adr = np.array([model.jnt_qposadr[self._joint(n)] for side in FEET for n in LEG_JOINTS[side]])
        self.dof_adr = np.array([model.jnt_dofadr[self._joint(n)] for side in FEET for n in LEG_JOINTS[side]])
        ranges = np.array([model.jnt_range[self._joint(n)] for side in FEET for n in LEG_JOINTS[side]])
        self.lower, self.upper = ranges[:, 0], ranges[:, 1]
        self.sites = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, FOOT_SITES[side]) for side in FEET]
        self.bodies = [int(model.site_bodyid[s]) for s in self.sites]

    def _joint(self, name: str) -> int:
        """Joint id of ``name``; GaitError if the model lacks it."""
        joint = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if joint < 0:
            raise GaitError(f"the model has no joint {name!r}; the gait generator needs K-Bot's leg joints")
        return joint

    def _error_and_jacobian(self, targets: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
        """Weighted error [10] and Jacobian [10, 10] of both legs at ``self.data``'s current qpos."""
        error, jacobian = np.zeros(10), np.zeros((10, 10))
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        for leg, ((position, yaw), site, body) in enumerate(zip(targets, self.sites, self.bodies, strict=True)):
            rows, cols = slice(5 * leg, 5 * leg + 5), self.dof_adr[5 * leg:5 * leg + 5]
            mujoco.mj_jacSite(self.model, self.data, jacp, jacr, site)
            target = np.zeros(9)
            mujoco.mju_quat2Mat(target, yaw_quaternion(yaw))
            target = target.reshape(3, 3)
            rotation_error = _rotation_error(target @ self.data.xmat[body].reshape(3, 3).T)
            local_error = target.T @ rotation_error  # roll, pitch, yaw about the target foot's axes
            error[rows] = np.r_[position - self.data.site_xpos[site], self.ROT_WEIGHT * local_error[1:]]
            jacobian[rows, 5 * leg:5 * leg + 5] = np.r_[jacp[:, cols], self.ROT_WEIGHT * (target.T @ jacr[:, cols])[1:]]
        return error, jacobian

    def _forward(self, qpos: np.ndarray) -> None:
        """Positions, orientations and the quantities ``mj_jacSite`` needs, for ``qpos``."""
        self.data.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def solve(self, qpos: np.ndarray, targets: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, float]:
        """Return (qpos with the leg joints solved, final max error in m or weighted rad).

        ``qpos`` seeds the leg joints (the previous frame) and gives the base and the arms;
        ``targets`` are (site position, foot yaw) for the left and the right foot.
        """
        qpos = np.array(qpos, dtype=np.float64)
        for _ in range(self.MAX_ITERATIONS):
            self._forward(qpos)
            error, jacobian = self._error_and_jacobian(targets)
            if np.abs(error).max() < self.TOLERANCE:
                break
            normal = jacobian @ jacobian.T + self.DAMPING ** 2 * np.eye(10)
            step = jacobian.T @ np.linalg.solve(normal, error)
            step *= min(1.0, self.MAX_STEP / max(np.abs(step).max(), 1e-12))
            qpos[self.qpos_adr] = np.clip(qpos[self.qpos_adr] + step, self.lower, self.upper)
        self._forward(qpos)
        error, _ = self._error_and_jacobian(targets)
        return qpos, float(np.abs(error).max())


def _rotation_error(rotation: np.ndarray) -> np.ndarray:
    """Rotation vector (axis times angle) of the rotation matrix ``rotation``."""
    quat, vector = np.zeros(4), np.zeros(3)
    mujoco.mju_mat2Quat(quat, rotation.ravel())
    mujoco.mju_quat2Vel(vector, quat, 1.0)
    return vector


# --- the generator ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Robot:
    """What the generator reads from the model once: home pose, nominal feet, arm joints."""

    model: mujoco.MjModel
    home: np.ndarray
    nominal: dict[str, np.ndarray]  # foot site (x, y) in the heading frame at home
    sole_site_height: float  # foot site above the lowest point of the foot's collision geoms, flat foot
    arm_qpos: dict[str, int]
    arm_home: dict[str, float]
    arm_forward: dict[str, float]


def _read_robot(model: mujoco.MjModel) -> _Robot:
    """Measure the home pose's foot places and the arm joints on ``model``."""
    data = mujoco.MjData(model)
    home = kbot_home_qpos(model)
    data.qpos[:] = home
    mujoco.mj_kinematics(model, data)
    base = home[:2]
    nominal = {side: np.array(data.site(FOOT_SITES[side]).xpos[:2] - base) for side in FEET}
    site = data.site(FOOT_SITES["left"])
    sole_site_height = float(site.xpos[2] - foot_sole_heights(model, data)["left"])
    arm_joints = {side: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, ARM_PITCH_JOINTS[side]) for side in FEET}
    arm_qpos = {side: int(model.jnt_qposadr[j]) for side, j in arm_joints.items()}
    # Bodies are world-aligned at q = 0: a pitch axis along -y moves the arm forward for a positive angle.
    forward = {side: float(-np.sign(model.jnt_axis[j][1])) for side, j in arm_joints.items()}
    return _Robot(model, home, nominal, sole_site_height, arm_qpos,
                  {side: float(home[adr]) for side, adr in arm_qpos.items()}, forward)


def foot_geoms(model: mujoco.MjModel) -> dict[str, list[int]]:
    """Collision geom ids of each foot: the contact geoms on the body that carries the foot site."""
    out = {}
    for side in FEET:
        body = model.site_bodyid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, FOOT_SITES[side])]
        out[side] = [g for g in range(model.ngeom) if model.geom_bodyid[g] == body and
                     (model.geom_contype[g] or model.geom_conaffinity[g])]
    return out


def foot_sole_heights(model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, float]:
    """Lowest world z of each foot's collision capsules (after kinematics), m."""
    heights = {}
    for side, geoms in foot_geoms(model).items():
        lowest = math.inf
        for g in geoms:
            if model.geom_type[g] != mujoco.mjtGeom.mjGEOM_CAPSULE:
                raise GaitError(f"foot geom {g} of the {side} foot is not a capsule; the gait needs capsule feet")
            radius, half_length = model.geom_size[g][:2]
            axis_z = data.geom_xmat[g].reshape(3, 3)[2, 2]
            lowest = min(lowest, float(data.geom_xpos[g][2] - abs(axis_z) * half_length - radius))
        heights[side] = lowest
    return heights


def _frame(t: float, seed: np.ndarray, robot: _Robot, ik: KbotLegIK, params: GaitParams,
           command: GaitCommand) -> np.ndarray:
    """Return the qpos at time ``t``, the legs solved from ``seed``; GaitError if a foot is out of reach."""
    targets = {side: foot_target(t, side, params, command, robot.nominal, robot.sole_site_height) for side in FEET}
    qpos = np.array(seed, dtype=np.float64)
    position, yaw = base_pose(t, params, command)
    qpos[0:3], qpos[3:7] = position, yaw_quaternion(yaw)
    arms = arm_angles(t, params, command, robot.nominal, {s: targets[s][0] for s in FEET}, robot.arm_home,
                      robot.arm_forward)
    for side in FEET:
        qpos[robot.arm_qpos[side]] = arms[side]
    qpos, residual = ik.solve(qpos, [targets[side] for side in FEET])
    if residual > 1e-4:
        raise GaitError(f"leg IK misses its foot target by {residual * 1000:.2f} mm at t = {t:.3f} s (command "
                        f"{command.as_list()}, period {params.period} s): out of reach or at a joint limit; "
                        "lower the speed or pelvis_height, or shorten the period")
    return qpos


def _metadata(params: GaitParams, command: GaitCommand, wrap: tuple[float, float, float]) -> dict[str, object]:
    """Return the clip's metadata: the format's checked keys plus every generator setting."""
    return {"generator": GENERATOR, "cyclic": True, "wrap_transform": list(wrap), "command": command.as_list(),
            "period": params.period, "stance_fraction": params.stance_fraction, "gait": asdict(params),
            "phase_offsets": dict(PHASE_OFFSET)}


def generate_gait(command: GaitCommand, params: GaitParams | None = None,
                  model: mujoco.MjModel | None = None) -> MotionClip:
    """Generate a cyclic K-Bot clip of ``params.cycles`` periods performing ``command`` (module docstring).

    ``model`` defaults to K-Bot on its floor (``load_kbot_model()``). Raises :class:`GaitError`.
    """
    params = params or GaitParams()
    params.check()
    for name, value in zip(("vx", "vy", "wz"), command.as_list(), strict=True):
        if not math.isfinite(value):
            raise GaitError(f"gait command {name} is {value}; expected a finite number")
    robot = _read_robot(model if model is not None else load_kbot_model())
    ik = KbotLegIK(robot.model)
    frames = params.cycles * params.frames_per_period
    qpos = np.empty((frames, robot.model.nq))
    seed = robot.home
    for k in range(frames):
        seed = qpos[k] = _frame(k / params.fps, seed, robot, ik, params, command)
    x, y, yaw = heading_pose(frames / params.fps, command)
    wrap = (x, y, yaw)
    qvel = finite_difference_qvel(qpos, params.fps, wrap=wrap)
    movable = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    names = tuple(mujoco.mj_id2name(robot.model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(robot.model.njnt)
                  if int(robot.model.jnt_type[j]) in movable)
    return MotionClip(fps=params.fps, joint_names=names, qpos=torch.from_numpy(qpos), qvel=torch.from_numpy(qvel),
                      metadata=_metadata(params, command, wrap))


def frame_at(t: float, command: GaitCommand, params: GaitParams, model: mujoco.MjModel | None = None,
             seed: np.ndarray | None = None) -> np.ndarray:
    """Return the gait's qpos at any time ``t`` (legs solved from ``seed``, default the home pose): for checks."""
    robot = _read_robot(model if model is not None else load_kbot_model())
    return _frame(t, robot.home if seed is None else seed, robot, KbotLegIK(robot.model), params, command)


# --- the clip family ----------------------------------------------------------------------------------------

FAMILY_PERIODS = (0.7, 0.8, 1.0)
FAMILY_COMMANDS: dict[str, GaitCommand] = {
    "stand": GaitCommand(),
    "forward_0.2": GaitCommand(vx=0.2),
    "forward_0.4": GaitCommand(vx=0.4),
    "forward_0.6": GaitCommand(vx=0.6),
    "backward_0.2": GaitCommand(vx=-0.2),
    "backward_0.4": GaitCommand(vx=-0.4),
    "left_0.15": GaitCommand(vy=0.15),
    "right_0.15": GaitCommand(vy=-0.15),
    "turn_left_0.5": GaitCommand(wz=0.5),
    "turn_right_0.5": GaitCommand(wz=-0.5),
    "arc_left_0.3_0.4": GaitCommand(vx=0.3, wz=0.4),
    "arc_right_0.3_0.4": GaitCommand(vx=0.3, wz=-0.4),
}


def default_family(periods: tuple[float, ...] = FAMILY_PERIODS, fps: float = 50.0,
                   cycles: int = 1) -> Iterator[GaitSpec]:
    """Yield the shipped family: every command of :data:`FAMILY_COMMANDS` at every period (standing once)."""
    for name, command in FAMILY_COMMANDS.items():
        for period in periods[:1] if command.standing else periods:
            params = GaitParams(period=period, fps=fps, cycles=cycles)
            yield GaitSpec(f"{name}_T{period:g}", command, params)
