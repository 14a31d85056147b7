"""Figures of merit of a K-Bot gait clip, measured with MuJoCo forward kinematics.

:func:`measure_clip` replays a clip's frames (qpos and qvel) through ``mj_forward`` and reports
what the tests bound and docs/motion.md lists per clip: stance-foot speed, foot heights, joint
margins and speeds against K-Bot's motor limits, continuity at the stance/swing switches and
across the cyclic wrap, and the clip's mean velocity against its command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np
import torch

from ktorch_sim.motion.clip import MotionClip
from ktorch_sim.motion.gait import FEET, FOOT_SITES, GaitCommand, GaitParams, foot_sole_heights, stance_mask
from ktorch_sim.motion.velocity import wrap_frame
from ktorch_sim.robot_metadata import RobotMetadata
from ktorch_sim.utils.rotations import quat_yaw

__all__ = ["ClipFigures", "measure_clip", "params_of"]


@dataclass(frozen=True)
class ClipFigures:
    """What :func:`measure_clip` measures (SI units; "stance" = frames where the gait puts a foot down)."""

    stance_foot_speed: float  # max world speed of a foot site on interior stance frames, from qvel (m/s)
    stance_foot_drift: float  # max foot-site displacement between consecutive stance frames, per second (m/s)
    min_sole_height: float  # lowest foot-capsule point over all frames (m; < 0 is below the floor)
    max_stance_sole_height: float  # highest sole of a stance foot (m): stance feet are on the floor
    max_swing_height: float  # highest sole over all frames (m)
    min_joint_margin: float  # smallest distance of a joint to its range limit (rad)
    max_joint_speed_ratio: float  # max |joint velocity| / the motor's max_velocity
    max_joint_speed: float  # rad/s
    max_joint_accel: float  # max |joint velocity change| per frame * fps (rad/s^2), whole clip incl. wrap
    switch_position_step: float  # max foot-site move over one frame at a stance/swing switch (m)
    switch_velocity_jump: float  # max change of foot-site velocity over one frame at a switch (m/s)
    max_foot_roll: float  # max |roll| of a foot body (rad): K-Bot has no ankle roll
    mean_velocity_error: float  # max |mean (vx, vy) in the heading frame - command| (m/s)
    mean_yaw_rate_error: float  # |mean yaw rate - commanded wz| (rad/s)
    wrap_position_error: float  # max |qpos| difference: frame after the last (given) vs the wrapped first frame
    wrap_velocity_jump: float  # max |qvel[0] - qvel[-1]| over the joints (rad/s)


def params_of(clip: MotionClip) -> tuple[GaitCommand, GaitParams]:
    """Return the command and gait settings stored in a generated clip's metadata; ValueError if it has none."""
    meta = clip.metadata or {}
    if "gait" not in meta or "command" not in meta:
        raise ValueError("the clip has no gait metadata ('gait', 'command'); it was not made by the gait generator")
    return GaitCommand(*meta["command"]), GaitParams(**meta["gait"])


def _replay(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame: foot-site positions, velocities (world), sole heights and foot roll, per foot."""
    data = mujoco.MjData(model)
    out: dict[str, list] = {f"{k}_{s}": [] for k in ("pos", "vel", "sole", "roll") for s in FEET}
    sites = {s: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, FOOT_SITES[s]) for s in FEET}
    velocity = np.zeros(6)
    for q, v in zip(qpos, qvel, strict=True):
        data.qpos[:], data.qvel[:] = q, v
        mujoco.mj_forward(model, data)
        soles = foot_sole_heights(model, data)
        for side, site in sites.items():
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_SITE, site, velocity, 0)
            out[f"pos_{side}"].append(data.site_xpos[site].copy())
            out[f"vel_{side}"].append(velocity[3:].copy())
            out[f"sole_{side}"].append(soles[side])
            foot_y_axis = data.xmat[model.site_bodyid[site]].reshape(3, 3)[:, 1]  # tilts up/down with roll
            out[f"roll_{side}"].append(math.asin(max(-1.0, min(1.0, float(foot_y_axis[2])))))
    return {k: np.asarray(v) for k, v in out.items()}


def _switch_frames(stance: np.ndarray) -> np.ndarray:
    """Return the indices k where the stance flag differs between frame k and k + 1."""
    return np.nonzero(stance[1:] != stance[:-1])[0]


def _mean_velocity(qpos: np.ndarray, qvel: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean base (vx, vy) in the heading frame and mean yaw rate (world z) over the frames."""
    planar, yaw_rates = [], []
    for q, v in zip(qpos, qvel, strict=True):
        yaw = float(quat_yaw(torch.as_tensor(q[3:7])))
        c, s = math.cos(yaw), math.sin(yaw)
        planar.append([c * v[0] + s * v[1], -s * v[0] + c * v[1]])
        rotation = np.zeros(9)
        mujoco.mju_quat2Mat(rotation, q[3:7])
        yaw_rates.append((rotation.reshape(3, 3) @ v[3:6])[2])
    return np.mean(planar, axis=0), float(np.mean(yaw_rates))


def measure_clip(clip: MotionClip, model: mujoco.MjModel, metadata: RobotMetadata,
                 next_frame: np.ndarray | None = None) -> ClipFigures:
    """Measure a generated cyclic clip (needs its gait metadata and qvel); ``metadata`` gives the motor limits.

    ``next_frame``: the generator's qpos one frame after the clip's end (``gait.frame_at``); when
    given, ``wrap_position_error`` compares it with the wrapped first frame, else it is 0.
    """
    if clip.qvel is None:
        raise ValueError("the clip has no qvel")
    command, params = params_of(clip)
    qpos, qvel = clip.qpos.double().numpy(), clip.qvel.double().numpy()
    replay = _replay(model, qpos, qvel)
    stance = stance_mask(clip.num_frames, params, command)
    speeds, drifts, steps, jumps, stance_soles = [0.0], [0.0], [0.0], [0.0], [0.0]
    for side in FEET:
        down, pos, vel = stance[side], replay[f"pos_{side}"], replay[f"vel_{side}"]
        interior = down & np.r_[down[1:], down[0]] & np.r_[down[-1], down[:-1]]
        speeds += list(np.linalg.norm(vel[interior], axis=1))
        both = down[1:] & down[:-1]
        drifts += list(np.linalg.norm(pos[1:] - pos[:-1], axis=1)[both] * clip.fps)
        stance_soles += list(replay[f"sole_{side}"][down])
        for k in _switch_frames(down):
            steps.append(float(np.linalg.norm(pos[k + 1] - pos[k])))
            jumps.append(float(np.linalg.norm(vel[k + 1] - vel[k])))
    joints, ranges = qpos[:, 7:], model.jnt_range[1:]
    limits = np.array([metadata.motors[joint.motor].max_velocity for joint in metadata])
    joint_speeds = np.abs(qvel[:, 6:])
    velocity_steps = np.diff(np.r_[qvel[:, 6:], qvel[:1, 6:]], axis=0)
    mean_planar, mean_yaw_rate = _mean_velocity(qpos, qvel)
    wrap = clip.wrap_transform or (0.0, 0.0, 0.0)
    wrap_error = 0.0 if next_frame is None else float(np.abs(next_frame - wrap_frame(qpos[0], wrap)).max())
    return ClipFigures(
        stance_foot_speed=float(max(speeds)),
        stance_foot_drift=float(max(drifts)),
        min_sole_height=float(min(replay[f"sole_{s}"].min() for s in FEET)),
        max_stance_sole_height=float(max(stance_soles)),
        max_swing_height=float(max(replay[f"sole_{s}"].max() for s in FEET)),
        min_joint_margin=float(np.minimum(joints - ranges[:, 0], ranges[:, 1] - joints).min()),
        max_joint_speed_ratio=float((joint_speeds / limits).max()),
        max_joint_speed=float(joint_speeds.max()),
        max_joint_accel=float(np.abs(velocity_steps).max() * clip.fps),
        switch_position_step=float(max(steps)),
        switch_velocity_jump=float(max(jumps)),
        max_foot_roll=float(max(np.abs(replay[f"roll_{s}"]).max() for s in FEET)),
        mean_velocity_error=float(np.abs(mean_planar - np.array([command.vx, command.vy])).max()),
        mean_yaw_rate_error=abs(mean_yaw_rate - command.wz),
        wrap_position_error=wrap_error,
        wrap_velocity_jump=float(np.abs(qvel[0, 6:] - qvel[-1, 6:]).max()),
    )
