"""Tests of the self-authored K-Bot model (assets/kbot) and its joint metadata loader.

Expected numbers are K-Bot's published figures (masses, joint ranges, motor limits, gains), i.e.
those of the robot that ksim's K-Bot example trains on; MuJoCo's own kinematics and sensors are the
ground truth the model is measured with.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import mujoco
import numpy as np
import pytest

from ktorch_sim.robot_metadata import (
    RobotMetadata,
    check_against_model,
    load_robot_metadata,
)
from ktorch_sim.robots import (
    KBOT_JOINTS_TOML,
    KBOT_SCENE_XML,
    KBOT_XML,
    kbot_home_qpos,
    kbot_metadata,
    load_kbot_model,
)

FILE_BASE_Z = 0.762644  # base height written in kbot.xml (all joints 0: soles 2 mm up)
GRAVITY = 9.81

# body: (mass kg, world origin at q = 0 in m), facts section 3, columns 8 and 6.
BODIES: dict[str, tuple[float, tuple[float, float, float]]] = {
    "base": (0.0042, (0.0000, 0.0000, 0.7626)),
    "torso": (12.6069, (0.0000, 0.0259, 0.7626)),
    "KD_D_102L_L_Hip_Yoke_Drive": (0.5504, (-0.0009, 0.0560, 0.7350)),
    "L_Hip_Roll_RS03": (2.3970, (0.0274, 0.1270, 0.7050)),
    "KD_D_301L_L_Femur_Lower_Drive": (2.3493, (0.0021, 0.1270, 0.5620)),
    "KD_D_401L_L_Shin_Drive": (1.6847, (-0.0189, 0.1060, 0.3500)),
    "LFootBushing_GPF_1517_12": (0.6090, (0.0111, 0.1070, 0.0600)),
    "KD_D_102R": (0.5504, (-0.0009, -0.0560, 0.7350)),
    "L_Hip_Roll_RS03_2": (2.3969, (0.0274, -0.1270, 0.7050)),
    "KD_D_301R": (2.3493, (0.0021, -0.1270, 0.5620)),
    "KD_D_401R": (1.6847, (-0.0189, -0.1060, 0.3500)),
    "RFootBushing_GPF_1517_12": (0.6087, (0.0111, -0.1069, 0.0600)),
    "KC_C_101R_ShldYokeDrive": (0.5699, (-0.0009, -0.1210, 1.1455)),
    "RS03_3": (1.7892, (0.0234, -0.2010, 1.1455)),
    "KC_C_202R": (0.7532, (-0.0083, -0.2140, 1.0030)),
    "KC_C_401R_R_UpForearmDrive": (0.6419, (0.0017, -0.1950, 0.8660)),
    "PRT0001": (0.4624, (-0.0156, -0.2130, 0.7630)),
    "KD_C_101L_ShldYokeDrive": (0.5699, (-0.0009, 0.1210, 1.1455)),
    "RS03_4": (1.7892, (0.0234, 0.2010, 1.1455)),
    "KD_C_301L_LowerBicepDrive": (0.8668, (-0.0074, 0.2140, 1.0030)),
    "KC_C_401L_Up_Forearm_Drive": (0.6419, (0.0026, 0.1950, 0.8660)),
    "PRT0001_2": (0.4624, (-0.0147, 0.2130, 0.7630)),
    "imu": (0.0057, (0.0019, 0.0005, 1.2032)),
}

# Actuator order = qpos order (facts section 2).
JOINTS = (
    "dof_left_hip_pitch_04",
    "dof_left_hip_roll_03",
    "dof_left_hip_yaw_03",
    "dof_left_knee_04",
    "dof_left_ankle_02",
    "dof_right_hip_pitch_04",
    "dof_right_hip_roll_03",
    "dof_right_hip_yaw_03",
    "dof_right_knee_04",
    "dof_right_ankle_02",
    "dof_right_shoulder_pitch_03",
    "dof_right_shoulder_roll_03",
    "dof_right_shoulder_yaw_02",
    "dof_right_elbow_02",
    "dof_right_wrist_00",
    "dof_left_shoulder_pitch_03",
    "dof_left_shoulder_roll_03",
    "dof_left_shoulder_yaw_02",
    "dof_left_elbow_02",
    "dof_left_wrist_00",
)

SENSORS = (
    "base_site_pos",
    "base_site_quat",
    "base_site_linvel",
    "base_site_angvel",
    "base_site_vel",
    "imu_acc",
    "imu_gyro",
    "imu_mag",
    "imu_site_pos",
    "imu_site_quat",
    "imu_site_linvel",
    "imu_site_angvel",
    "imu_site_vel",
    "left_foot_force",
    "right_foot_force",
    "left_foot_touch",
    "right_foot_touch",
)

FOOT_CAPSULES = {
    "LFootBushing_GPF_1517_12": ("left_foot_collision_0", "left_foot_collision_1"),
    "RFootBushing_GPF_1517_12": ("right_foot_collision_0", "right_foot_collision_1"),
}


# ----------------------------------------------------------------------------- fixtures/helpers


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    """The robot alone (no floor), so contact settings of robot geoms can be checked."""
    return load_kbot_model(scene=False)


@pytest.fixture(scope="module")
def meta() -> RobotMetadata:
    return kbot_metadata()


def _data_at_zero(model: mujoco.MjModel) -> mujoco.MjData:
    """All joints 0, base at its file height and identity orientation, kinematics computed."""
    data = mujoco.MjData(model)
    data.qpos[:] = 0.0
    data.qpos[2] = FILE_BASE_Z
    data.qpos[3] = 1.0
    mujoco.mj_forward(model, data)
    return data


def _data_at_home(model: mujoco.MjModel) -> mujoco.MjData:
    data = mujoco.MjData(model)
    data.qpos[:] = kbot_home_qpos(model)
    mujoco.mj_forward(model, data)
    return data


def _capsule_bottoms(model: mujoco.MjModel, data: mujoco.MjData, name: str) -> np.ndarray:
    """Lowest z of the sphere at each end of a capsule: shape (2,)."""
    g = model.geom(name).id
    axis = data.geom_xmat[g].reshape(3, 3)[:, 2]
    radius, half_length = model.geom_size[g, :2]
    ends = data.geom_xpos[g] + np.outer([1.0, -1.0], axis * half_length)
    return ends[:, 2] - radius


def _lowest_sole(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    names = [n for pair in FOOT_CAPSULES.values() for n in pair]
    return float(min(_capsule_bottoms(model, data, n).min() for n in names))


def _geom_top(model: mujoco.MjModel, data: mujoco.MjData, g: int) -> float:
    """Highest world z of geom ``g`` from its bounding box (exact for boxes)."""
    rot = data.geom_xmat[g].reshape(3, 3)
    center, half = model.geom_aabb[g, :3], model.geom_aabb[g, 3:]
    return float((data.geom_xpos[g] + rot @ center)[2] + np.abs(rot[2]) @ half)


def _quat_about(axis: tuple[float, float, float], angle_deg: float) -> np.ndarray:
    quat = np.zeros(4)
    mujoco.mju_axisAngle2Quat(quat, np.array(axis, dtype=np.float64), math.radians(angle_deg))
    return quat


def _gravity_in_imu(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """World gravity rotated into the frame of ``imu_site_quat`` (the policy's projected gravity)."""
    quat = data.sensor("imu_site_quat").data.copy()
    inverse = np.zeros(4)
    mujoco.mju_negQuat(inverse, quat)
    out = np.zeros(3)
    mujoco.mju_rotVecQuat(out, np.array([0.0, 0.0, -GRAVITY]), inverse)
    return out


def _sensor_at_pose(model: mujoco.MjModel, base_quat: np.ndarray, base_angvel: np.ndarray, name: str) -> np.ndarray:
    data = mujoco.MjData(model)
    data.qpos[2] = FILE_BASE_Z
    data.qpos[3:7] = base_quat
    data.qvel[3:6] = base_angvel  # free-joint angular velocity is in the base frame
    mujoco.mj_forward(model, data)
    return data.sensor(name).data.copy()


# ----------------------------------------------------------------------------- structure


def test_sizes(model: mujoco.MjModel) -> None:
    assert (model.nq, model.nv, model.nu, model.njnt) == (27, 26, 20, 21)
    assert model.nbody == 24
    assert model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE
    assert model.joint(0).name == "floating_base"
    assert model.body(model.jnt_bodyid[0]).name == "base"


def test_names_present(model: mujoco.MjModel) -> None:
    assert [model.joint(i).name for i in range(1, model.njnt)] == list(JOINTS)
    assert [model.sensor(i).name for i in range(model.nsensor)] == list(SENSORS)
    for site in ("imu_site", "base_site", "left_foot", "right_foot"):
        assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site) >= 0, site
    assert [model.body(i).name for i in range(1, model.nbody)] == list(BODIES)


def test_total_mass(model: mujoco.MjModel) -> None:
    assert model.body_subtreemass[0] == pytest.approx(36.344, rel=0.005)


@pytest.mark.parametrize("body", list(BODIES))
def test_body_mass(model: mujoco.MjModel, body: str) -> None:
    assert model.body(body).mass[0] == pytest.approx(BODIES[body][0], rel=0.01)


def test_body_positions_at_zero(model: mujoco.MjModel) -> None:
    data = _data_at_zero(model)
    for body, (_, world) in BODIES.items():
        np.testing.assert_allclose(data.body(body).xpos, world, atol=1e-3, err_msg=body)


def test_actuator_order_is_qpos_order(model: mujoco.MjModel, meta: RobotMetadata) -> None:
    assert meta.joint_names == JOINTS
    for i, name in enumerate(JOINTS):
        assert model.actuator(i).name == f"{name}_ctrl"
        joint = model.actuator_trnid[i, 0]
        assert model.joint(joint).name == name
        assert model.jnt_qposadr[joint] == 7 + i
        assert model.jnt_dofadr[joint] == 6 + i
        assert model.actuator_gear[i, 0] == 1.0


def test_joint_properties_match_metadata(model: mujoco.MjModel, meta: RobotMetadata) -> None:
    for i, joint in enumerate(meta.joints):
        j = model.joint(joint.name)
        dof = model.jnt_dofadr[j.id]
        assert j.type[0] == mujoco.mjtJoint.mjJNT_HINGE, joint.name
        np.testing.assert_allclose(j.range, joint.range, atol=1e-9, err_msg=joint.name)
        assert model.dof_armature[dof] == pytest.approx(joint.armature, abs=1e-12), joint.name
        assert model.dof_frictionloss[dof] == pytest.approx(joint.frictionloss, abs=1e-12)
        assert model.dof_damping[dof] == 0.0 and model.jnt_stiffness[j.id] == 0.0, joint.name
        peak = (-joint.peak_torque, joint.peak_torque)
        np.testing.assert_allclose(model.jnt_actfrcrange[j.id], peak, err_msg=joint.name)
        np.testing.assert_allclose(model.actuator_ctrlrange[i], peak, err_msg=joint.name)
        assert model.actuator_ctrllimited[i] and model.jnt_actfrclimited[j.id], joint.name


BODY_COLLISION = {"torso_collision": "box", "pelvis_collision": "box", "left_thigh_collision": "capsule",
                  "right_thigh_collision": "capsule", "left_shin_collision": "capsule",
                  "right_shin_collision": "capsule", "left_hand_collision": "capsule",
                  "right_hand_collision": "capsule"}


def test_foot_capsules_and_body_geoms_are_the_only_colliders(model: mujoco.MjModel) -> None:
    robot = [g for g in range(model.ngeom) if model.geom_bodyid[g] != 0]
    colliding = {model.geom(g).name for g in robot if model.geom_contype[g] or model.geom_conaffinity[g]}
    feet = {n for pair in FOOT_CAPSULES.values() for n in pair}
    assert colliding == feet | set(BODY_COLLISION)
    for name in feet:
        g = model.geom(name)
        assert g.type[0] == mujoco.mjtGeom.mjGEOM_CAPSULE
        assert g.size[0] == pytest.approx(0.020)
        assert (g.contype[0], g.conaffinity[0], g.condim[0], g.priority[0]) == (0, 1, 3, 1)
        np.testing.assert_allclose(g.friction, (0.64, 0.02, 0.01))
        np.testing.assert_allclose(g.solref, (0.02, 0.8))
        np.testing.assert_allclose(g.solimp[:3], (0.98, 0.99, 0.1))
    for name, kind in BODY_COLLISION.items():
        g = model.geom(name)
        assert g.type[0] == getattr(mujoco.mjtGeom, f"mjGEOM_{kind.upper()}"), name
        assert (g.contype[0], g.conaffinity[0], g.condim[0], g.priority[0]) == (0, 1, 3, 0), name


def test_collision_geoms_touch_the_floor_but_never_each_other() -> None:
    model = load_kbot_model(scene=True)
    floor = model.geom("floor").id
    robot = [g for g in range(model.ngeom) if model.geom_bodyid[g] != 0 and model.geom_conaffinity[g]]

    def collide(a: int, b: int) -> bool:
        return bool((model.geom_contype[a] & model.geom_conaffinity[b])
                    | (model.geom_contype[b] & model.geom_conaffinity[a]))

    assert all(collide(g, floor) for g in robot)
    assert not any(collide(a, b) for a in robot for b in robot)
    data = mujoco.MjData(model)
    data.qpos[:] = kbot_home_qpos(model)
    mujoco.mj_forward(model, data)
    assert data.ncon == 0  # standing at home (soles 1 mm up), nothing touches


def test_foot_sites_contain_capsules(model: mujoco.MjModel) -> None:
    """ksim randomizes capsule size and warns that capsules must stay inside the touch sites."""
    data = _data_at_zero(model)
    for site, capsules in (
        ("left_foot", FOOT_CAPSULES["LFootBushing_GPF_1517_12"]),
        ("right_foot", FOOT_CAPSULES["RFootBushing_GPF_1517_12"]),
    ):
        rot = data.site(site).xmat.reshape(3, 3)
        half = model.site(site).size
        np.testing.assert_allclose(half, (0.138, 0.032, 0.043))
        for name in capsules:
            g = model.geom(name).id
            axis = data.geom_xmat[g].reshape(3, 3)[:, 2]
            radius, half_length = model.geom_size[g, :2]
            for end in (+1.0, -1.0):
                local = rot.T @ (data.geom_xpos[g] + end * half_length * axis - data.site(site).xpos)
                assert np.all(np.abs(local) + radius <= half + 1e-9), (site, name)
        # The box reaches below the sole so ground contacts are inside it.
        world_half_z = np.abs(rot[2]) @ half
        assert data.site(site).xpos[2] - world_half_z < _lowest_sole(model, data) - 0.005


def test_scene_loads_both_ways() -> None:
    for model in (
        mujoco.MjModel.from_xml_path(str(KBOT_SCENE_XML)),
        mujoco.MjSpec.from_file(str(KBOT_SCENE_XML)).compile(),
        mujoco.MjSpec.from_file(str(KBOT_XML)).compile(),
    ):
        assert model.nu == 20
    scene = load_kbot_model(scene=True)
    floor = scene.geom("floor")
    assert (floor.contype[0], floor.conaffinity[0]) == (1, 0)
    assert scene.opt.timestep == 0.002  # kbot.xml leaves the time step to the engines


# ----------------------------------------------------------------------------- geometry at q = 0


def test_standing_geometry_at_zero(model: mujoco.MjModel) -> None:
    data = _data_at_zero(model)
    assert _lowest_sole(model, data) == pytest.approx(0.002, abs=1e-3)
    for body in ("KC_C_101R_ShldYokeDrive", "KD_C_101L_ShldYokeDrive"):
        assert data.body(body).xpos[2] == pytest.approx(1.1455, abs=2e-3)
    torso = model.body("torso").id
    top = max(_geom_top(model, data, g) for g in range(model.ngeom) if model.geom_bodyid[g] == torso)
    assert top == pytest.approx(1.258, abs=5e-3)
    np.testing.assert_allclose(data.subtree_com[model.body("base").id], (-0.0023, 0.0007, 0.7376), atol=2e-3)


# ----------------------------------------------------------------------------- home keyframe


def test_home_keyframe_matches_metadata(model: mujoco.MjModel, meta: RobotMetadata) -> None:
    qpos = kbot_home_qpos(model)
    np.testing.assert_allclose(qpos[7:], meta.home, atol=1e-8)
    np.testing.assert_allclose(qpos[3:7], (1.0, 0.0, 0.0, 0.0))
    np.testing.assert_allclose(qpos[:2], 0.0)


def test_home_soles_flat_and_base_height(model: mujoco.MjModel) -> None:
    data = _data_at_home(model)
    for foot, capsules in FOOT_CAPSULES.items():
        z_axis = data.body(foot).xmat.reshape(3, 3)[:, 2]
        assert math.degrees(math.acos(min(1.0, z_axis[2]))) < 0.5, foot
        bottoms = np.concatenate([_capsule_bottoms(model, data, n) for n in capsules])
        np.testing.assert_allclose(bottoms, bottoms[0], atol=1e-6, err_msg=foot)
    sole = _lowest_sole(model, data)
    assert sole == pytest.approx(0.001, abs=2e-4)
    assert data.body("base").xpos[2] - sole == pytest.approx(0.7197, abs=2e-3)


# ----------------------------------------------------------------------------- IMU (facts §10)


@pytest.mark.parametrize(
    ("angvel", "expected"),
    [((1, 0, 0), (0, -1, 0)), ((0, 1, 0), (1, 0, 0)), ((0, 0, 1), (0, 0, 1))],
)
def test_imu_gyro_axes(model: mujoco.MjModel, angvel: tuple, expected: tuple) -> None:
    """The IMU frame is the base frame turned +90 deg about z: gyro = (w_y, -w_x, w_z)."""
    gyro = _sensor_at_pose(model, np.array([1.0, 0, 0, 0]), np.array(angvel, float), "imu_gyro")
    np.testing.assert_allclose(gyro, expected, atol=1e-9)


def test_imu_quat_at_rest(model: mujoco.MjModel) -> None:
    quat = _sensor_at_pose(model, np.array([1.0, 0, 0, 0]), np.zeros(3), "imu_site_quat")
    np.testing.assert_allclose(quat, (math.sqrt(0.5), 0, 0, math.sqrt(0.5)), atol=1e-6)


@pytest.mark.parametrize(
    ("axis", "expected"),
    [
        # +10 deg about +y: the x (forward) axis tips toward -z, i.e. nose down.
        ((0.0, 1.0, 0.0), (0.0, -1.70, -9.66)),
        # +10 deg about +x: the left side (+y) goes up, the robot leans to its right.
        ((1.0, 0.0, 0.0), (-1.70, 0.0, -9.66)),
    ],
)
def test_projected_gravity_in_imu_frame(model: mujoco.MjModel, axis: tuple, expected: tuple) -> None:
    data = mujoco.MjData(model)
    data.qpos[2] = FILE_BASE_Z
    data.qpos[3:7] = _quat_about(axis, 10.0)
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(_gravity_in_imu(model, data), expected, atol=0.01)


def test_imu_accelerometer_at_rest(model: mujoco.MjModel) -> None:
    """Held still (qacc = 0, no contact) the accelerometer reads +g along the IMU's z axis."""
    data = mujoco.MjData(model)
    data.qpos[2] = FILE_BASE_Z
    data.qpos[3] = 1.0
    data.qacc[:] = 0.0
    mujoco.mj_inverse(model, data)  # computes sensors for the given qacc
    np.testing.assert_allclose(data.sensor("imu_acc").data, (0.0, 0.0, GRAVITY), atol=1e-9)
    assert model.sensor("imu_acc").noise[0] == pytest.approx(0.01)
    assert model.sensor("imu_gyro").noise[0] == pytest.approx(0.01)
    assert model.sensor("imu_mag").noise[0] == pytest.approx(0.05)


# ----------------------------------------------------------------------------- metadata loader


def test_metadata_values(meta: RobotMetadata) -> None:
    assert meta.robot == "kbot-headless"
    assert meta.control_frequency == 50
    assert len(meta) == 20 and set(meta.motors) == {"robstride_04", "robstride_03", "robstride_02", "robstride_00"}
    hip = meta.by_name("dof_left_hip_pitch_04")
    assert (hip.kp, hip.kd, hip.soft_torque_limit, hip.can_id, hip.nn_id) == (150, 24.722, 84, 31, 15)
    assert hip.home == pytest.approx(math.radians(20))
    assert hip.range == pytest.approx((math.radians(-60), math.radians(127)))
    ankle = meta.by_name("dof_right_ankle_02")
    assert (ankle.kp, ankle.kd, ankle.soft_torque_limit, ankle.peak_torque) == (40, 0.99, 11.9, 17)
    assert ankle.metadata_range == pytest.approx((math.radians(-13), math.radians(72)))
    wrist = meta.by_name("dof_left_wrist_00")
    assert (wrist.kp, wrist.kd, wrist.armature, wrist.frictionloss) == (20, 0.295, 0.001, 0.1)
    elbow = meta.by_name("dof_left_elbow_02")
    assert elbow.home == pytest.approx(-math.pi / 2)
    assert meta.kp.shape == meta.kd.shape == meta.home.shape == (20,)
    np.testing.assert_allclose(meta.soft_torque_limit, 0.7 * meta.peak_torque, atol=1e-9)
    assert meta.motors["robstride_02"].max_velocity == pytest.approx(37.699)
    with pytest.raises(ValueError, match="no_such_joint"):
        meta.by_name("no_such_joint")


def test_policy_order(meta: RobotMetadata) -> None:
    ordered = meta.in_policy_order()
    assert [j.nn_id for j in ordered] == list(range(20))
    assert ordered.joint_names[:2] == ("dof_right_shoulder_pitch_03", "dof_right_shoulder_roll_03")
    assert ordered.joint_names[-1] == "dof_left_ankle_02"
    assert meta.joint_names == JOINTS  # the original is untouched


def test_check_against_model(model: mujoco.MjModel, meta: RobotMetadata) -> None:
    check_against_model(meta, model)
    renamed = dataclasses.replace(meta.joints[3], name="dof_left_knee_typo")
    bad = dataclasses.replace(meta, joints=meta.joints[:3] + (renamed,) + meta.joints[4:])
    with pytest.raises(ValueError, match="dof_left_knee_typo"):
        check_against_model(bad, model)
    spec = mujoco.MjSpec.from_file(str(KBOT_XML))
    spec.delete(spec.actuator("dof_right_elbow_02_ctrl"))
    with pytest.raises(ValueError, match="dof_right_elbow_02_ctrl"):
        check_against_model(meta, spec.compile())


def _write_variant(tmp_path: Path, old: str, new: str) -> Path:
    """The shipped joints.toml with the first ``old`` replaced by ``new``."""
    text = KBOT_JOINTS_TOML.read_text()
    assert old in text
    path = tmp_path / "joints.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("kp = 150.0\n", "", r"joints\.dof_left_hip_pitch_04\.kp: missing required key"),
        (
            'motor = "robstride_04"',
            'motor = "robstride_99"',
            r"joints\.dof_left_hip_pitch_04\.motor: unknown motor type 'robstride_99'",
        ),
        ("kd = 24.722", 'kd = "fast"', r"joints\.dof_left_hip_pitch_04\.kd: expected a number"),
        ("kd = 24.722", "kd = = 3", r"invalid TOML"),
        ("kd = 24.722", "kd = 24.722\nkpp = 1.0", r"joints\.dof_left_hip_pitch_04: unknown key 'kpp'"),
        ("range_deg = [-60.0, 127.0]", "range_deg = [127.0]", r"range_deg: expected \[low, high\]"),
        ("armature = 0.04", 'armature = "x"', r"motors\.robstride_04\.armature: expected a number"),
        ("nn_id = 15", "nn_id = 0", r"dof_right_shoulder_pitch_03\.nn_id: 0 is already used by dof_left_hip_pitch_04"),
        ("home_deg = 20.0", "home_deg = 200.0", r"home_deg: expected a value inside range_deg"),
    ],
)
def test_bad_metadata(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = _write_variant(tmp_path, old, new)
    with pytest.raises(ValueError, match=expected) as info:
        load_robot_metadata(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))


def test_missing_metadata_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ValueError, match="not found") as info:
        load_robot_metadata(path)
    assert str(path) in str(info.value)


def test_good_copy_loads(tmp_path: Path) -> None:
    path = tmp_path / "joints.toml"
    path.write_text(KBOT_JOINTS_TOML.read_text())
    assert load_robot_metadata(path) == load_robot_metadata(KBOT_JOINTS_TOML)
