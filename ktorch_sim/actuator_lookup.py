"""Actuators of a MuJoCo model found by name: labels for unnamed ones, the actuator driving a joint.

Only MuJoCo and NumPy are needed; the actuator laws (:mod:`ktorch_sim.actuators`), robot metadata
checks (:mod:`ktorch_sim.robot_metadata`) and reward components all look actuators up here.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np


def actuator_label(model: mujoco.MjModel, actuator: int) -> str:
    """Return a display name for actuator ``actuator``: its own name, else its joint's, else ``actuator_<i>``.

    MuJoCo actuators need not be named (``<motor joint="hip"/>``); code that shows, looks up or
    exports actuators uses this label so an unnamed one is still identifiable.
    """
    name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, actuator)
    if name:
        return name
    if int(model.actuator_trntype[actuator]) == mujoco.mjtTrn.mjTRN_JOINT:
        joint = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(model.actuator_trnid[actuator, 0]))
        if joint:
            return joint
    return f"actuator_{actuator}"


def actuator_labels(model: mujoco.MjModel) -> list[str]:
    """:func:`actuator_label` of every actuator, in the model's actuator (ctrl) order."""
    return [actuator_label(model, i) for i in range(model.nu)]


def actuator_ids(model: mujoco.MjModel, names: Sequence[str]) -> np.ndarray:
    """Return the indices of actuators by name or label (:func:`actuator_label`); one clear error if missing.

    A name the model defines wins; otherwise the label of an unnamed actuator (its joint's name
    or ``actuator_<i>``) identifies it, so models without actuator names work too.
    """
    labels = actuator_labels(model)
    ids = []
    for name in names:
        idx = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name) if name else -1
        if idx < 0:
            matches = [i for i, label in enumerate(labels) if label == name]
            if len(matches) != 1:
                problem = "is not in the model" if not matches else f"matches {len(matches)} unnamed actuators"
                raise ValueError(f"actuator {name!r} {problem}; actuators are {labels}")
            idx = matches[0]
        ids.append(idx)
    return np.asarray(ids, dtype=np.int64)


def joint_actuator_id(model: mujoco.MjModel, joint_name: str) -> int:
    """Return the actuator driving joint ``joint_name``: the one named ``<joint>_ctrl``, else the only one on it.

    Returns -1 when none does. K-Bot and G1 name their actuators ``<joint>_ctrl``; other models
    may leave them unnamed, so a single joint-transmission actuator on the joint is taken as its
    motor. Raises ValueError when several actuators drive the joint and none is named ``<joint>_ctrl``.
    """
    idx = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{joint_name}_ctrl")
    if idx >= 0:
        return idx
    joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint_name)
    if joint < 0:
        return -1
    on_joint = [a for a in range(model.nu) if int(model.actuator_trntype[a]) == mujoco.mjtTrn.mjTRN_JOINT
                and int(model.actuator_trnid[a, 0]) == joint]
    if len(on_joint) > 1:
        labels = [actuator_label(model, a) for a in on_joint]
        raise ValueError(f"joint {joint_name!r} is driven by {len(on_joint)} actuators {labels}; name the one "
                         f"the policy drives {joint_name}_ctrl")
    return on_joint[0] if on_joint else -1


def joint_actuator_ids(model: mujoco.MjModel, joint_names: Sequence[str]) -> np.ndarray:
    """:func:`joint_actuator_id` of each joint, with one clear error naming a joint without an actuator."""
    ids = []
    for name in joint_names:
        idx = joint_actuator_id(model, name)
        if idx < 0:
            raise ValueError(f"joint {name!r} has no actuator (none named {name}_ctrl and none drives the joint); "
                             f"actuators are {actuator_labels(model)}")
        ids.append(idx)
    return np.asarray(ids, dtype=np.int64)
