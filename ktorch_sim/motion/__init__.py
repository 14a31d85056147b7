"""Reference motion for AMP and imitation: the clip format (:mod:`.clip`) and K-Bot's gait generator (:mod:`.gait`).

``from ktorch_sim.motion import MotionClip, MotionError, load_motion, save_motion`` is the stable
API; the generator lives in :mod:`ktorch_sim.motion.gait` (imported on use, since it needs the
K-Bot model).

Layering: this package imports only mujoco, numpy, torch, ``ktorch_sim.robots``,
``ktorch_sim.robot_metadata`` and ``ktorch_sim.errors``; never training, playback, config or tasks.
"""

from ktorch_sim.motion.clip import BASE_QPOS, BASE_QVEL, MotionClip, MotionError, load_motion, save_motion

__all__ = ["BASE_QPOS", "BASE_QVEL", "MotionClip", "MotionError", "load_motion", "save_motion"]
