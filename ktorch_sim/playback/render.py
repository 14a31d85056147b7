"""Render a recorded rollout to RGB frames with a camera that tracks the robot, and write the video.

Camera: a MuJoCo tracking camera (``mjCAMERA_TRACKING``) on the base body (the free-floating
root, or the first body below the world of a model without a free joint): its look-at point
follows the body while its orientation (azimuth, elevation) and distance stay fixed, so the
robot stays in the middle of the image however far it walks.

Arrows (drawn :data:`ARROW_HEIGHT` m above the base; 1 m of arrow per m/s, 0.5 m per rad/s):

* green: the commanded planar velocity ``(vx, vy)``, turned from the heading frame to the world;
* blue: the measured planar velocity of the base;
* the yaw rates as vertical arrows (the angular velocity vector, right-hand rule: up = turning
  left): light green commanded ``wz``, light blue measured. Arrows shorter than 1 cm are skipped.

Timing: a video of ``seconds`` at ``fps`` has exactly ``round(seconds * fps)`` frames; frame k
shows the state nearest time ``k / fps``, i.e. control step ``round(k / (fps * ctrl_dt))``
(:func:`frame_steps`). At 50 fps with ``ctrl_dt = 0.02`` every control step is one frame; lower
rates skip steps, higher rates repeat them.

Videos are written with imageio (``.mp4`` through ffmpeg/libx264, ``.gif`` through Pillow) to a
temporary file that is renamed into place, so a failed write leaves nothing half-written.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from ktorch_sim.components.robot_base import base_body
from ktorch_sim.playback.offscreen import open_renderer
from ktorch_sim.playback.policy_rollout import RecordedRollout

__all__ = ["VIDEO_SUFFIXES", "Arrow", "FrameRenderer", "body_velocity_arrows", "frame_steps", "render_rollout",
           "velocity_arrows", "write_video"]

VIDEO_SUFFIXES = (".mp4", ".gif")
ARROW_HEIGHT = 0.6  # m above the base: clear of K-Bot's head (base 0.76 m, head ~1.3 m)
ARROW_WIDTH = 0.025  # m
MIN_ARROW_LENGTH = 0.01  # m
SHADOW_SIZE = 2048  # px; MuJoCo's default 4096 doubles the cost of a software-rendered frame
YAW_ARROW_SCALE = 0.5  # m of vertical arrow per rad/s of yaw rate
GREEN = (0.1, 0.85, 0.1, 1.0)
LIGHT_GREEN = (0.55, 1.0, 0.45, 1.0)
BLUE = (0.15, 0.35, 1.0, 1.0)
LIGHT_BLUE = (0.45, 0.75, 1.0, 1.0)


@dataclass(frozen=True)
class Arrow:
    """A straight arrow from ``start`` to ``end`` (world coordinates, m) in colour ``rgba``."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    rgba: tuple[float, float, float, float]


def _yaw(quat_wxyz: np.ndarray) -> float:
    """Heading (rad) of a wxyz quaternion."""
    w, x, y, z = quat_wxyz
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def velocity_arrows(qpos: np.ndarray, qvel: np.ndarray, command: np.ndarray | None) -> list[Arrow]:
    """Arrows for the commanded (``command`` = vx, vy, wz in the heading frame) and measured base velocity.

    ``qpos``/``qvel`` are one world's state with a free joint first (``qvel[0:3]`` world-frame
    linear velocity, ``qvel[3:6]`` body-frame angular velocity); :func:`body_velocity_arrows`
    draws the same arrows for any model.
    """
    rotation = np.zeros(9)
    mujoco.mju_quat2Mat(rotation, np.asarray(qpos[3:7], dtype=np.float64))
    measured_wz = float((rotation.reshape(3, 3) @ qvel[3:6])[2])
    return _arrows(np.asarray(qpos[0:3]), _yaw(np.asarray(qpos[3:7])), np.asarray(qvel[0:3]), measured_wz, command)


def body_velocity_arrows(model: mujoco.MjModel, data: mujoco.MjData, body: int,
                         command: np.ndarray | None) -> list[Arrow]:
    """:func:`velocity_arrows` for body ``body`` of any model, from ``data`` after ``mj_forward``.

    Position and heading are the body's ``xpos``/``xquat``; its velocity is MuJoCo's
    ``mj_objectVelocity`` in the world frame, so a base without a free joint (a planar walker)
    gets arrows too.
    """
    velocity = np.zeros(6)  # angular, then linear, world frame
    mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, body, velocity, 0)
    return _arrows(np.asarray(data.xpos[body]), _yaw(np.asarray(data.xquat[body])), velocity[3:6],
                   float(velocity[2]), command)


def _arrows(position: np.ndarray, yaw: float, v_world: np.ndarray, measured_wz: float,
            command: np.ndarray | None) -> list[Arrow]:
    """Return the arrows above ``position`` for a base with heading ``yaw``, velocity ``v_world`` and yaw rate."""
    origin = np.array([position[0], position[1], position[2] + ARROW_HEIGHT])
    vectors = [(np.array([v_world[0], v_world[1], 0.0]), BLUE),
               (np.array([0.0, 0.0, YAW_ARROW_SCALE * measured_wz]), LIGHT_BLUE)]
    if command is not None:
        c, s = math.cos(yaw), math.sin(yaw)
        vx, vy, wz = (float(v) for v in command[:3])
        vectors = [(np.array([c * vx - s * vy, s * vx + c * vy, 0.0]), GREEN),
                   (np.array([0.0, 0.0, YAW_ARROW_SCALE * wz]), LIGHT_GREEN), *vectors]
    arrows = []
    for i, (vector, rgba) in enumerate(vectors):
        if np.linalg.norm(vector) < MIN_ARROW_LENGTH:
            continue
        # Vertical (yaw-rate) arrows stand side by side next to the start of the planar ones.
        start = origin + (np.array([0.0, 0.06 * (i - 1.5), 0.0]) if vector[2] != 0.0 else 0.0)
        arrows.append(Arrow(tuple(start), tuple(start + vector), rgba))
    return arrows


def _root_body(model: mujoco.MjModel) -> int:
    """Return the base body (:func:`~ktorch_sim.components.robot_base.base_body`), or the world without one."""
    return base_body(model).body if model.nbody > 1 else 0


class FrameRenderer:
    """Renders one world's state (qpos) to an RGB image, camera tracking the base, arrows drawn.

    Args:
        model: the MjModel (copied; its offscreen buffer grows to the image size if needed).
        width, height: image size in pixels.
        distance: camera distance from the tracked body, m.
        azimuth, elevation: camera direction, degrees (MuJoCo's convention; elevation < 0 looks down).

    """

    def __init__(self, model: mujoco.MjModel, width: int = 640, height: int = 480, distance: float = 3.0,
                 azimuth: float = 135.0, elevation: float = -25.0) -> None:
        self.model = copy.copy(model)
        # Software OpenGL (no GPU) spends most of a frame on the shadow map and multisampling:
        # a 2048 shadow map and no MSAA measured ~0.23 s vs ~0.45-0.59 s per 640x480 frame (llvmpipe, 2 cores).
        self.model.vis.quality.shadowsize = min(int(self.model.vis.quality.shadowsize), SHADOW_SIZE)
        self.model.vis.quality.offsamples = 0
        self.data = mujoco.MjData(self.model)
        self.renderer = open_renderer(self.model, width, height)
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        self.camera.trackbodyid = _root_body(self.model)
        self.camera.distance, self.camera.azimuth, self.camera.elevation = distance, azimuth, elevation

    def render(self, qpos: np.ndarray, qvel: np.ndarray | None = None, command: np.ndarray | None = None,
               arrows: bool = True) -> np.ndarray:
        """Return the image [height, width, 3] uint8 of state ``qpos`` (``qvel``, ``command``: arrows)."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = 0.0 if qvel is None else qvel
        mujoco.mj_forward(self.model, self.data)
        self.renderer.update_scene(self.data, camera=self.camera)
        if arrows and qvel is not None:
            self._add_arrows(body_velocity_arrows(self.model, self.data, self.camera.trackbodyid, command))
        return self.renderer.render().copy()

    def _add_arrows(self, arrows: Sequence[Arrow]) -> None:
        """Append arrow geoms to the scene built by ``update_scene`` (as many as fit)."""
        scene = self.renderer.scene
        for arrow in arrows:
            if scene.ngeom >= scene.maxgeom:
                return
            geom = scene.geoms[scene.ngeom]
            mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_ARROW, np.zeros(3), np.zeros(3), np.eye(3).ravel(),
                                np.asarray(arrow.rgba, dtype=np.float32))
            mujoco.mjv_connector(geom, mujoco.mjtGeom.mjGEOM_ARROW, ARROW_WIDTH, np.asarray(arrow.start),
                                 np.asarray(arrow.end))
            scene.ngeom += 1

    def project(self, point: np.ndarray) -> tuple[float, float]:
        """Pixel (column, row) of world ``point`` in the last rendered image (row 0 at the top)."""
        gl_camera = self.renderer.scene.camera[0]
        position = np.asarray(gl_camera.pos)
        forward, up = np.asarray(gl_camera.forward), np.asarray(gl_camera.up)
        right = np.cross(forward, up)
        v = np.asarray(point, dtype=np.float64) - position
        depth = float(v @ forward)
        near = gl_camera.frustum_near
        x, y = near * float(v @ right) / depth, near * float(v @ up) / depth
        width, height = self.renderer.width, self.renderer.height
        # frustum_width 0 means "from the image's aspect ratio" (how mjr_render draws it)
        span = gl_camera.frustum_top - gl_camera.frustum_bottom
        half_width = gl_camera.frustum_width or 0.5 * span * width / height
        column = (x - gl_camera.frustum_center + half_width) / (2.0 * half_width) * width
        row = (gl_camera.frustum_top - y) / (gl_camera.frustum_top - gl_camera.frustum_bottom) * height
        return column, row

    def close(self) -> None:
        """Free the GL context."""
        self.renderer.close()

    def __enter__(self) -> FrameRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def num_frames(seconds: float, fps: float) -> int:
    """Frames in a video of ``seconds`` at ``fps``: ``round(seconds * fps)``, at least 1."""
    return max(1, round(seconds * fps))


def frame_steps(frames: int, fps: float, ctrl_dt: float) -> list[int]:
    """Control step shown by each frame: frame k shows the state nearest time k / fps."""
    return [round(k / (fps * ctrl_dt)) for k in range(frames)]


def steps_for(seconds: float, fps: float, ctrl_dt: float) -> int:
    """Control steps a rollout needs to fill a video of ``seconds`` at ``fps``."""
    return frame_steps(num_frames(seconds, fps), fps, ctrl_dt)[-1]


def render_rollout(model: mujoco.MjModel, rollout: RecordedRollout, seconds: float, fps: float, width: int = 640,
                   height: int = 480, arrows: bool = True) -> list[np.ndarray]:
    """Render the ``round(seconds * fps)`` frames of ``rollout`` (timing: see the module docstring)."""
    steps = frame_steps(num_frames(seconds, fps), fps, rollout.ctrl_dt)
    if steps[-1] > rollout.num_steps:
        raise ValueError(f"a {seconds} s video at {fps} fps needs {steps[-1]} control steps; the rollout has "
                         f"{rollout.num_steps}")
    with FrameRenderer(model, width, height) as renderer:
        return [renderer.render(rollout.qpos[k], rollout.qvel[k],
                                None if rollout.command is None else rollout.command[k], arrows=arrows)
                for k in steps]


def check_video_path(path: Path | str) -> Path:
    """Return ``path`` if its suffix is a video format we write; raise ValueError with one line if not."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"--out {path}: unknown video format {path.suffix or '(no suffix)'!r}; use "
                         f"{' or '.join(VIDEO_SUFFIXES)}")
    return path


def write_video(path: Path | str, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write ``frames`` ([H, W, 3] uint8) as an MP4 or GIF at ``fps``; atomic (temp file, then rename)."""
    try:
        import imageio.v2 as imageio
    except ImportError:
        message = 'writing videos needs imageio and imageio-ffmpeg: pip install -e ".[tools]"'
        raise ModuleNotFoundError(message) from None

    path = check_video_path(path)
    if not frames:
        raise ValueError("no frames to write")
    height, width = frames[0].shape[:2]
    suffix = path.suffix.lower()
    if suffix == ".mp4" and (width % 2 or height % 2):
        raise ValueError(f"MP4 (H.264) needs an even width and height, got {width}x{height}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        if suffix == ".mp4":
            imageio.mimwrite(partial, list(frames), fps=fps, codec="libx264", macro_block_size=1, quality=7,
                             ffmpeg_log_level="error")
        else:
            imageio.mimwrite(partial, list(frames), format="GIF", duration=1000.0 / fps, loop=0)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
