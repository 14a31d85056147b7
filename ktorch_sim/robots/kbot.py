"""K-Bot ("kbot-headless"): paths to the model files shipped with ktorch_sim, and loaders.

The model (``assets/kbot/kbot.xml``), its floor scene (``scene.xml``) and the joint metadata
(``joints.toml``) are written by this project from public numbers; see the comments in the files.
"""

from __future__ import annotations

import functools
from pathlib import Path

import mujoco
import numpy as np

from ktorch_sim.actuators import actuator_ids, configure_pd_actuators
from ktorch_sim.model_files import load_metadata_file, load_model_file
from ktorch_sim.robot_metadata import RobotMetadata, check_against_model, load_robot_metadata

__all__ = [
    "KBOT_DIR",
    "KBOT_JOINTS_TOML",
    "KBOT_SCENE_XML",
    "KBOT_XML",
    "kbot_home_qpos",
    "kbot_metadata",
    "load_kbot_pd_model",
    "load_kbot_model",
]

KBOT_DIR: Path = Path(__file__).resolve().parent.parent / "assets" / "kbot"
KBOT_XML: Path = KBOT_DIR / "kbot.xml"
KBOT_SCENE_XML: Path = KBOT_DIR / "scene.xml"
KBOT_JOINTS_TOML: Path = KBOT_DIR / "joints.toml"
KBOT_LEFT_FOOT_GEOMS: tuple[str, ...] = ("left_foot_collision_0", "left_foot_collision_1")
KBOT_RIGHT_FOOT_GEOMS: tuple[str, ...] = ("right_foot_collision_0", "right_foot_collision_1")
KBOT_FOOT_GEOMS: tuple[str, ...] = KBOT_LEFT_FOOT_GEOMS + KBOT_RIGHT_FOOT_GEOMS
"""K-Bot's four foot collision capsules (geom priority 1: their friction, not the floor's, sets a foot contact)."""

_HOME_KEY = "home"


def _require_file(path: Path) -> Path:
    """Return ``path`` or raise a FileNotFoundError that says the install lacks its assets."""
    if not path.is_file():
        raise FileNotFoundError(
            f"K-Bot asset {path} is missing; the ktorch_sim install does not include its "
            "package data (assets/**/*.xml, assets/**/*.toml)"
        )
    return path


def load_kbot_model(scene: bool = True) -> mujoco.MjModel:
    """Compile K-Bot: on a flat floor (``scene=True``) or the robot alone (``scene=False``)."""
    path = _require_file(KBOT_SCENE_XML if scene else KBOT_XML)
    return mujoco.MjModel.from_xml_path(str(path))


@functools.cache
def kbot_metadata() -> RobotMetadata:
    """K-Bot joint metadata (gains, limits, home pose), loaded once; the result is immutable."""
    return load_robot_metadata(_require_file(KBOT_JOINTS_TOML))


def kbot_home_qpos(model: mujoco.MjModel) -> np.ndarray:
    """Return a copy of the ``home`` keyframe's qpos: knees bent, soles flat 1 mm above z = 0."""
    key_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, _HOME_KEY)
    if key_id < 0:
        raise ValueError(f"model has no keyframe named {_HOME_KEY!r}; load it with load_kbot_model()")
    return np.array(model.key_qpos[key_id], dtype=np.float64)


def load_kbot_pd_model(
    kp_scale: float = 1.0, kd_scale: float = 1.0, torque_limit_scale: float = 1.0, scene: bool = True
) -> mujoco.MjModel:
    """K-Bot with its 20 motors turned into MIT PD position actuators (ctrl = joint target, rad).

    Gains are the metadata's kp/kd times the scales; each torque is clipped to
    ``soft_torque_limit * torque_limit_scale`` and then to the motor's peak torque, as in ksim
    (its K-Bot example uses scales 1.4, 1.4 and 1.5).
    """
    model = load_kbot_model(scene=scene)
    meta = kbot_metadata()
    check_against_model(meta, model)
    ids = actuator_ids(model, [f"{name}_ctrl" for name in meta.joint_names])
    limit = np.minimum(meta.soft_torque_limit * torque_limit_scale, meta.peak_torque)
    configure_pd_actuators(model, ids, meta.kp * kp_scale, meta.kd * kd_scale, limit)
    return model


@functools.lru_cache(maxsize=4)
def load_kbot_robot(model_path: str | None, metadata_path: str | None) -> tuple[mujoco.MjModel, RobotMetadata]:
    """Load the K-Bot model and metadata a task config names (``model_path``, ``metadata_path``) (shipped ones for None), checked against each other.

    Cached, so checking the config and building the task compile a user's file once; callers
    copy the model before changing it.
    """
    if model_path is None and metadata_path is None:
        return load_kbot_model(), kbot_metadata()
    model = load_kbot_model() if model_path is None else load_model_file(model_path)
    meta = load_metadata_file(KBOT_JOINTS_TOML if metadata_path is None else metadata_path, model)
    return model, meta
