"""Loading a user's MJCF model and joint-metadata files with one-line errors.

A task config may point at its own robot files (``task.model_path``, ``task.metadata_path``).
Anything wrong with them (a missing file, MuJoCo's multi-line XML parse error, a metadata file
that names a joint the model lacks or leaves out one the model has) becomes one
:class:`ModelFileError` line that names the config key, the file, the problem and what would be
right, so the training CLI can print it and exit before anything is written.
"""

from __future__ import annotations

import re
from pathlib import Path

import mujoco

from ktorch_sim.actuator_lookup import joint_actuator_id
from ktorch_sim.errors import ModelFileError
from ktorch_sim.robot_metadata import RobotMetadata, load_robot_metadata

__all__ = ["MOVABLE_JOINT_TYPES", "ModelFileError", "check_joint_sets", "load_metadata_file", "load_model_file"]

MOVABLE_JOINT_TYPES = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
"""Joint types that a metadata file must describe (free and ball joints are the base, not motors)."""


def _one_line(text: str) -> str:
    """Collapse MuJoCo's multi-line messages (an error, then "Element 'geom', line 3") into one line."""
    parts = [re.sub(r"\s+", " ", p).strip().rstrip(":") for p in str(text).splitlines()]
    return "; ".join(p for p in parts if p) or "no details"


def load_model_file(path: str | Path, key: str = "task.model_path") -> mujoco.MjModel:
    """Compile the MJCF at ``path``; raise :class:`ModelFileError` (one line) if it is missing or invalid."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelFileError(f"{path}: no such file; expected a MuJoCo MJCF (.xml) model file", key)
    if not path.is_file():
        raise ModelFileError(f"{path}: is a directory, not a file; expected a MuJoCo MJCF (.xml) model file", key)
    try:
        return mujoco.MjModel.from_xml_path(str(path))
    except ValueError as e:
        raise ModelFileError(f"{path}: invalid MuJoCo model: {_one_line(e)}; expected a valid MJCF file", key) from None


def check_joint_sets(meta: RobotMetadata, model: mujoco.MjModel, meta_path: str | Path, key: str) -> None:
    """Require the metadata's joints to be exactly the model's hinge and slide joints, each with an actuator.

    Raises :class:`ModelFileError` naming the first joint the metadata lacks, the first one the model
    lacks, or a joint without an actuator (one named ``<joint>_ctrl``, or the one unnamed actuator
    that drives the joint).
    """
    model_joints = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)
                    if int(model.jnt_type[j]) in MOVABLE_JOINT_TYPES]
    described = set(meta.joint_names)
    for name in model_joints:
        if name not in described:
            raise ModelFileError(f"{meta_path}: the model has joint {name!r} but the metadata does not; "
                                 f"add a [joints.{name}] table", key)
    present = set(model_joints)
    for name in meta.joint_names:
        if name not in present:
            raise ModelFileError(f"{meta_path}: joint {name!r} is not a hinge or slide joint of the model; "
                                 f"remove [joints.{name}] or use the model it was written for", key)
        actuator = f"{name}_ctrl"
        try:
            found = joint_actuator_id(model, name)
        except ValueError as e:  # several actuators on the joint, none named <joint>_ctrl
            raise ModelFileError(f"{meta_path}: {e}", key) from None
        if found < 0:
            raise ModelFileError(f"{meta_path}: joint {name!r} has no actuator (none named {actuator!r} and none "
                                 "drives the joint); add one to the MJCF", key)


def load_metadata_file(path: str | Path, model: mujoco.MjModel, key: str = "task.metadata_path") -> RobotMetadata:
    """Read the joint-metadata TOML at ``path`` and check it against ``model`` (see :func:`check_joint_sets`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "no such file"
        raise ModelFileError(f"{path}: {what}; expected a joint-metadata TOML file (like assets/kbot/joints.toml)", key)
    try:
        meta = load_robot_metadata(path)
    except ValueError as e:  # already one line: "<file>: <where>: <problem>"
        raise ModelFileError(str(e), key) from None
    check_joint_sets(meta, model, path, key)
    return meta
