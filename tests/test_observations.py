"""Observations against MuJoCo's own numbers (mj_forward on the engine's model) and hand values,
on both engines; noise/bias helpers statistically with a fixed seed."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.components import noise as nz
from ktorch_sim.components.observations import (
    ActuatorAccelerationObservation,
    ActuatorForceObservation,
    BaseAngularAccelerationObservation,
    BaseAngularVelocityObservation,
    BaseHeightObservation,
    BaseLinearAccelerationObservation,
    BaseLinearVelocityObservation,
    BaseOrientationObservation,
    BasePositionObservation,
    BodyPositionObservation,
    BodyVelocityObservation,
    CenterOfMassInertiaObservation,
    CenterOfMassVelocityObservation,
    ContactObservation,
    FeetContactObservation,
    FeetPositionObservation,
    JointPositionObservation,
    JointVelocityObservation,
    ProjectedGravityObservation,
    SensorObservation,
    TimestepObservation,
    init_bias_state,
    noisy,
    reset_bias,
)
from tests.conftest import build_engine, make_context, reset_engine

N = 3
LEFT_FOOT, RIGHT_FOOT = "LFootBushing_GPF_1517_12", "RFootBushing_GPF_1517_12"
LEFT_GEOMS, RIGHT_GEOMS = ("left_foot_collision_0", "left_foot_collision_1"), \
    ("right_foot_collision_0", "right_foot_collision_1")
G = 9.81


def _quat_axis_angle(axis: tuple[float, float, float], deg: float) -> np.ndarray:
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    h = math.radians(deg) / 2
    return np.concatenate([[math.cos(h)], math.sin(h) * a])


def _random_state(model: mujoco.MjModel, home: np.ndarray, seed: int, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Per-world poses near home, in the air (no contacts), random base orientation and velocities (float32)."""
    rng = np.random.default_rng(seed)
    qpos = np.tile(home, (n, 1))
    qpos[:, 0:3] += rng.uniform(-0.5, 0.5, (n, 3)) + [0, 0, 1.0]
    quat = rng.normal(size=(n, 4))
    qpos[:, 3:7] = quat / np.linalg.norm(quat, axis=1, keepdims=True)
    qpos[:, 7:] += rng.uniform(-0.1, 0.1, (n, model.nq - 7))
    qvel = rng.uniform(-1.0, 1.0, (n, model.nv))
    return qpos.astype(np.float32).astype(np.float64), qvel.astype(np.float32).astype(np.float64)


def _mj_forward(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray | None = None) -> mujoco.MjData:
    d = mujoco.MjData(model)
    d.qpos[:] = qpos
    if qvel is not None:
        d.qvel[:] = qvel
    mujoco.mj_forward(model, d)
    return d


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


@pytest.fixture
def random_engine(engine_spec, kbot_model, home_qpos):
    """An engine of N worlds reset to random airborne states, with those states and MuJoCo's answers."""
    engine = build_engine(engine_spec, kbot_model, num_envs=N)
    qpos, qvel = _random_state(kbot_model, home_qpos, seed=1)
    reset_engine(engine, qpos, qvel)
    refs = [_mj_forward(engine.model, qpos[w], qvel[w]) for w in range(N)]
    return engine, qpos, qvel, refs


# --- joints, actuators, whole body -------------------------------------------------------------


def test_joint_position_and_velocity_equal_qpos_qvel_minus_zero_offset(random_engine):
    engine, qpos, qvel, _ = random_engine
    ctx = make_context(engine)
    pos, vel = JointPositionObservation(), JointVelocityObservation()
    assert pos.name == "joint_position_observation" and vel.name == "joint_velocity_observation"
    np.testing.assert_allclose(_np(pos.observe(ctx, {})), qpos[:, 7:], atol=1e-6, rtol=0)
    np.testing.assert_allclose(_np(vel.observe(ctx, {})), qvel[:, 6:], atol=1e-6, rtol=0)

    offset = torch.linspace(-0.05, 0.05, N * 20).reshape(N, 20).to(engine.device)
    ctx_off = make_context(engine, extras={"joint_zero_offset": offset})
    np.testing.assert_allclose(_np(pos.observe(ctx_off, {})), qpos[:, 7:] - _np(offset), atol=1e-6, rtol=0)


def test_joint_position_offsets_follow_actuators_when_joints_outnumber_them():
    """A planar walker has 7 hinge/slide joints (3 unactuated root joints) and 4 motors, in another order."""
    from ktorch_sim.engines import EngineConfig, make_engine
    from tests.planar_walker import PLANAR_WALKER_XML

    # motors listed right leg first: actuator k does not drive joint column k
    xml = PLANAR_WALKER_XML.replace('<motor joint="left_hip"', '<motor joint="right_hip_"').replace(
        '<motor joint="right_hip"', '<motor joint="left_hip"').replace('right_hip_', 'right_hip')
    model = mujoco.MjModel.from_xml_string(xml)
    assert [int(model.actuator_trnid[a, 0]) for a in range(model.nu)] == [5, 4, 3, 6]
    engine = make_engine("mujoco", model, EngineConfig(num_envs=2, dt=0.005, ctrl_dt=0.02, num_threads=1))
    qpos = np.random.default_rng(0).uniform(-0.3, 0.3, (2, model.nq))
    reset_engine(engine, qpos)
    offset = torch.tensor([[0.1, 0.2, 0.3, 0.4], [-0.1, -0.2, -0.3, -0.4]])  # per actuator, ctrl order
    ctx = make_context(engine, extras={"joint_zero_offset": offset})
    expected = qpos.copy()
    for a, joint in enumerate([5, 4, 3, 6]):  # joint j's qpos column is j here
        expected[:, joint] -= offset[:, a].numpy()
    np.testing.assert_allclose(_np(JointPositionObservation().observe(ctx, {})), expected, atol=1e-6, rtol=0)


def test_com_inertia_and_velocity_match_mj_forward(random_engine, kbot_model):
    engine, _, _, refs = random_engine
    ctx = make_context(engine)
    cinert = CenterOfMassInertiaObservation().observe(ctx, {})
    cvel = CenterOfMassVelocityObservation().observe(ctx, {})
    nb = kbot_model.nbody - 1
    assert cinert.shape == (N, nb * 10) and cvel.shape == (N, nb * 6)
    for w, d in enumerate(refs):
        np.testing.assert_allclose(_np(cinert[w]), d.cinert[1:].ravel(), atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(_np(cvel[w]), d.cvel[1:].ravel(), atol=1e-4, rtol=1e-4)
    assert np.abs(_np(cvel)).max() > 0.5  # the random velocities really show up


def test_actuator_force_and_accelerations_match_mj_forward(random_engine):
    engine, _, _, refs = random_engine
    ctx = make_context(engine)
    force = _np(ActuatorForceObservation().observe(ctx, {}))
    joint_acc = _np(ActuatorAccelerationObservation().observe(ctx, {}))
    lin_acc = _np(BaseLinearAccelerationObservation().observe(ctx, {}))
    ang_acc = _np(BaseAngularAccelerationObservation().observe(ctx, {}))
    for w, d in enumerate(refs):
        np.testing.assert_allclose(force[w], d.actuator_force, atol=1e-3, rtol=1e-4)
        np.testing.assert_allclose(joint_acc[w], d.qacc[6:], atol=0.05, rtol=1e-3)
        np.testing.assert_allclose(lin_acc[w], d.qacc[0:3], atol=0.01, rtol=1e-3)
        np.testing.assert_allclose(ang_acc[w], d.qacc[3:6], atol=0.01, rtol=1e-3)
    assert np.abs(force).max() > 1.0 and np.abs(joint_acc).max() > 1.0


def test_timestep_counts_simulation_time(engine_spec, kbot_model, home_qpos):
    engine = build_engine(engine_spec, kbot_model, num_envs=2, dt=0.004, ctrl_dt=0.02)
    reset_engine(engine, home_qpos)
    obs = TimestepObservation()
    np.testing.assert_array_equal(_np(obs.observe(make_context(engine), {})), [[0.0], [0.0]])
    for _ in range(3):
        engine.step(torch.tensor(np.tile(home_qpos[7:], (2, 1)), dtype=torch.float32, device=engine.device))
    np.testing.assert_allclose(_np(obs.observe(make_context(engine), {})), [[0.06], [0.06]], atol=1e-6)


# --- floating base -----------------------------------------------------------------------------


def test_base_position_and_orientation_are_free_joint_qpos(random_engine):
    engine, qpos, _, _ = random_engine
    ctx = make_context(engine)
    np.testing.assert_allclose(_np(BasePositionObservation().observe(ctx, {})), qpos[:, 0:3], atol=1e-6, rtol=0)
    np.testing.assert_allclose(_np(BaseOrientationObservation().observe(ctx, {})), qpos[:, 3:7], atol=1e-6, rtol=0)


def test_base_velocity_frames_by_hand(engine_spec, kbot_model, home_qpos):
    """Base yawed +90°: world velocity (1, 0, 0) is (0, -1, 0) in the base frame; body-frame
    angular velocity (1, 0, 0) (MuJoCo's qvel[3:6]) is (0, 1, 0) in the world."""
    engine = build_engine(engine_spec, kbot_model, num_envs=1)
    qpos = home_qpos.copy()
    qpos[2] += 1.0
    qpos[3:7] = _quat_axis_angle((0, 0, 1), 90.0)
    qvel = np.zeros(kbot_model.nv)
    qvel[0:3] = [1.0, 0.0, 0.0]
    qvel[3:6] = [1.0, 0.0, 0.0]
    reset_engine(engine, qpos, qvel)
    ctx = make_context(engine)
    lin_body = BaseLinearVelocityObservation(in_robot_frame=True).observe(ctx, {})
    lin_world = BaseLinearVelocityObservation().observe(ctx, {})
    ang_body = BaseAngularVelocityObservation(in_robot_frame=True).observe(ctx, {})
    ang_world = BaseAngularVelocityObservation(in_robot_frame=False).observe(ctx, {})
    np.testing.assert_allclose(_np(lin_body[0]), [0.0, -1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(_np(lin_world[0]), [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(_np(ang_body[0]), [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(_np(ang_world[0]), [0.0, 1.0, 0.0], atol=1e-6)


def test_base_velocity_frames_match_mujoco_sensors(random_engine, kbot_model):
    """Random orientation and velocity: robot-frame linear velocity equals the velocimeter at the
    base site (base frame); world-frame angular velocity equals frameangvel at the base site."""
    engine, _, qvel, refs = random_engine
    ctx = make_context(engine)
    vel = kbot_model.sensor("base_site_vel")
    angvel = kbot_model.sensor("base_site_angvel")
    lin_body = _np(BaseLinearVelocityObservation(in_robot_frame=True).observe(ctx, {}))
    ang_world = _np(BaseAngularVelocityObservation().observe(ctx, {}))
    ang_body = _np(BaseAngularVelocityObservation(in_robot_frame=True).observe(ctx, {}))
    for w, d in enumerate(refs):
        np.testing.assert_allclose(lin_body[w], d.sensordata[vel.adr[0]:vel.adr[0] + 3], atol=1e-5)
        np.testing.assert_allclose(ang_world[w], d.sensordata[angvel.adr[0]:angvel.adr[0] + 3], atol=1e-5)
        np.testing.assert_allclose(ang_body[w], qvel[w, 3:6], atol=1e-6)


def test_base_height_at_home_and_invariant_to_lifting(engine_spec, kbot_model, home_qpos):
    engine = build_engine(engine_spec, kbot_model, num_envs=2)
    qpos = np.tile(home_qpos, (2, 1))
    qpos[1, 2] += 0.3  # the whole robot 0.3 m up: the height above the lowest sole is unchanged
    reset_engine(engine, qpos)
    obs = BaseHeightObservation.create(kbot_model, base_body_name="base", foot_left_body_name=LEFT_FOOT,
                                       foot_right_body_name=RIGHT_FOOT)
    h = _np(obs.observe(make_context(engine), {}))
    d = _mj_forward(engine.model, home_qpos)
    feet_z = min(d.body(LEFT_FOOT).xpos[2], d.body(RIGHT_FOOT).xpos[2])
    want = d.body("base").xpos[2] - (feet_z - 0.06)
    assert h.shape == (2, 1)
    np.testing.assert_allclose(h[:, 0], [want, want], atol=1e-5)
    assert abs(want - 0.722) < 1e-3  # kbot_facts §8: "home pose gives 0.722"


# --- sensors -----------------------------------------------------------------------------------


def test_sensor_observation_is_the_sensordata_slice(random_engine, kbot_model):
    engine, _, _, refs = random_engine
    obs = SensorObservation.create(kbot_model, sensor_name="imu_gyro")
    assert obs.name == "sensor_observation_imu_gyro"
    assert obs.sensor_idx_range == (19, 22)
    got = _np(obs.observe(make_context(engine), {}))
    assert got.shape == (N, 3)
    for w, d in enumerate(refs):
        np.testing.assert_allclose(got[w], d.sensordata[19:22], atol=1e-5)
    with pytest.raises(ValueError, match="imu_gyroscope"):
        SensorObservation.create(physics_model=kbot_model, sensor_name="imu_gyroscope")


def _gravity_obs(model: mujoco.MjModel, **kwargs: object) -> ProjectedGravityObservation:
    return ProjectedGravityObservation.create(model, framequat_name="imu_site_quat", **kwargs)


PITCHED = (0.0, -G * math.sin(math.radians(10)), -G * math.cos(math.radians(10)))  # kbot_facts §10
ROLLED = (-G * math.sin(math.radians(10)), 0.0, -G * math.cos(math.radians(10)))


def test_projected_gravity_in_imu_frame(engine_spec, kbot_model, home_qpos):
    """Upright, yawed, pitched 10° nose-down and rolled 10°: facts §10 values in the IMU frame."""
    engine = build_engine(engine_spec, kbot_model, num_envs=4)
    qpos = np.tile(home_qpos, (4, 1))
    qpos[1, 3:7] = _quat_axis_angle((0, 0, 1), 37.0)
    qpos[2, 3:7] = _quat_axis_angle((0, 1, 0), 10.0)  # +y rotation tips the nose (+x) down
    qpos[3, 3:7] = _quat_axis_angle((1, 0, 0), 10.0)
    reset_engine(engine, qpos)
    ctx = make_context(engine)
    obs = _gravity_obs(kbot_model)
    assert obs.name == "projected_gravity_observation" and obs.gravity == pytest.approx((0.0, 0.0, -G))
    got = _np(obs.observe(ctx, obs.init_state(ctx)))
    want = np.array([(0.0, 0.0, -G), (0.0, 0.0, -G), PITCHED, ROLLED])
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_projected_gravity_lag_moves_halfway_per_step(engine_spec, kbot_model, home_qpos):
    engine = build_engine(engine_spec, kbot_model, num_envs=2)
    reset_engine(engine, home_qpos)
    ctx = make_context(engine)
    obs = _gravity_obs(kbot_model, lag_range=(0.5, 0.5))
    state = obs.init_state(ctx)
    upright, pitched = np.array([0.0, 0.0, -G]), np.array(PITCHED)
    np.testing.assert_allclose(_np(obs.observe(ctx, state)), [upright] * 2, atol=1e-4)  # unlagged at reset

    tilted = home_qpos.copy()
    tilted[3:7] = _quat_axis_angle((0, 1, 0), 10.0)
    reset_engine(engine, tilted)  # sudden tilt in both worlds; the filter state is not reset
    step1 = 0.5 * upright + 0.5 * pitched
    step2 = 0.5 * step1 + 0.5 * pitched
    np.testing.assert_allclose(_np(obs.observe(ctx, state)), [step1] * 2, atol=1e-4)
    np.testing.assert_allclose(_np(obs.observe(ctx, state)), [step2] * 2, atol=1e-4)

    obs.reset(state, torch.tensor([True, False], device=engine.device), ctx)  # world 0 starts an episode
    step3 = 0.5 * step2 + 0.5 * pitched
    np.testing.assert_allclose(_np(obs.observe(ctx, state)), [pitched, step3], atol=1e-4)


def test_projected_gravity_lag_is_drawn_per_episode_in_range(kbot_model, home_qpos):
    engine = build_engine(("mujoco", "cpu"), kbot_model, num_envs=64)
    reset_engine(engine, home_qpos)
    ctx = make_context(engine)
    obs = _gravity_obs(kbot_model, min_lag=0.2, max_lag=0.7)  # ksim's parameter names
    assert (obs.min_lag, obs.max_lag) == (0.2, 0.7)
    state = obs.init_state(ctx)
    lag = _np(state["lag"][:, 0])
    assert lag.min() >= 0.2 and lag.max() <= 0.7 and lag.std() > 0.05
    before = lag.copy()
    mask = torch.arange(64) % 2 == 0
    obs.reset(state, mask, ctx)
    after = _np(state["lag"][:, 0])
    assert np.all(after[1::2] == before[1::2]) and np.all(after[0::2] != before[0::2])
    with pytest.raises(ValueError, match="max_lag"):
        _gravity_obs(kbot_model, lag_range=(0.5, 1.0))
    with pytest.raises(ValueError, match="framequat"):
        ProjectedGravityObservation.create(kbot_model, framequat_name="imu_gyro")


def test_projected_gravity_bias_is_a_bounded_per_episode_tilt(engine_spec, kbot_model, home_qpos):
    n, bound = 4, 0.1
    engine = build_engine(engine_spec, kbot_model, num_envs=n)
    reset_engine(engine, home_qpos)
    ctx = make_context(engine, seed=5)
    obs = _gravity_obs(kbot_model, imu_bias=bound)
    state = obs.init_state(ctx)
    tilt = _np(state["tilt"]).astype(np.float64)
    assert np.abs(tilt).max() <= bound and np.abs(tilt).min() > 0.0
    upright = _np(obs.observe(ctx, state)).astype(np.float64)
    # Hand formula: R_y(pitch) R_x(roll) (0, 0, -g) = (-g cos r sin p, g sin r, -g cos r cos p).
    r, p = tilt[:, 0], tilt[:, 1]
    want = np.stack([-G * np.cos(r) * np.sin(p), G * np.sin(r), -G * np.cos(r) * np.cos(p)], axis=1)
    np.testing.assert_allclose(upright, want, atol=1e-4)
    angle = np.arccos(np.clip(-upright[:, 2] / G, -1, 1))
    assert np.all(angle <= math.sqrt(2) * bound + 1e-6) and np.all(angle > 1e-3)

    tilted = home_qpos.copy()
    tilted[3:7] = _quat_axis_angle((0, 1, 0), 10.0)
    reset_engine(engine, tilted)
    obs.observe(ctx, state)
    reset_engine(engine, home_qpos)
    np.testing.assert_allclose(_np(obs.observe(ctx, state)), upright, atol=1e-4)  # same bias all episode

    obs.reset(state, torch.tensor([True, False, True, False], device=engine.device), ctx)
    redrawn = _np(obs.observe(ctx, state))
    np.testing.assert_allclose(redrawn[[1, 3]], upright[[1, 3]], atol=1e-4)
    assert np.abs(redrawn[[0, 2]] - upright[[0, 2]]).max() > 1e-3


# --- contacts ----------------------------------------------------------------------------------


def test_feet_contact_standing_one_foot_and_in_the_air(engine_spec, kbot_model, home_qpos):
    """World 0: both soles 2 mm into the floor; 1: 0.5 m up; 2/3: rolled 2° so only the right/left
    foot (the lower side) touches."""
    engine = build_engine(engine_spec, kbot_model, num_envs=4)
    qpos = np.tile(home_qpos, (4, 1))
    qpos[0, 2] -= 0.003
    qpos[1, 2] += 0.5
    qpos[2, 3:7] = _quat_axis_angle((1, 0, 0), 2.0)  # +x roll lowers the right (-y) foot
    qpos[3, 3:7] = _quat_axis_angle((1, 0, 0), -2.0)
    reset_engine(engine, qpos)
    ctx = make_context(engine)
    feet = FeetContactObservation.create(kbot_model, foot_left_geom_names=LEFT_GEOMS,
                                         foot_right_geom_names=RIGHT_GEOMS, floor_geom_names="floor")
    got = feet.observe(ctx, {})
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(_np(got), [[1, 1], [0, 0], [0, 1], [1, 0]])
    no_floor = FeetContactObservation.create(physics_model=kbot_model, foot_left_geom_names=LEFT_GEOMS,
                                             foot_right_geom_names=RIGHT_GEOMS)
    np.testing.assert_array_equal(_np(no_floor.observe(ctx, {})), _np(got))

    left = ContactObservation.create(kbot_model, geom_names=LEFT_GEOMS, contact_group="left_foot")
    assert left.name == "contact_observation_left_foot"
    np.testing.assert_array_equal(_np(left.observe(ctx, {})), [[1], [0], [0], [1]])
    with pytest.raises(ValueError, match="at least one"):
        ContactObservation.create(kbot_model, geom_names=[])


# --- bodies and sites --------------------------------------------------------------------------


def test_feet_and_body_positions_velocities_match_mj_forward(random_engine, kbot_model):
    engine, _, _, refs = random_engine
    ctx = make_context(engine)
    feet = FeetPositionObservation.create(kbot_model, foot_left_body_name=LEFT_FOOT, foot_right_body_name=RIGHT_FOOT)
    sites = FeetPositionObservation.create(kbot_model, foot_left_site_name="left_foot",
                                           foot_right_site_name="right_foot")
    bodies = ("torso", RIGHT_FOOT, "imu")
    pos = BodyPositionObservation.create(kbot_model, body_names=bodies)
    vel = BodyVelocityObservation.create(kbot_model, body_names=bodies)
    got = {k: _np(o.observe(ctx, {})) for k, o in (("feet", feet), ("sites", sites), ("pos", pos), ("vel", vel))}
    assert got["feet"].shape == (N, 6) and got["pos"].shape == (N, 9) and got["vel"].shape == (N, 18)
    for w, d in enumerate(refs):
        np.testing.assert_allclose(got["feet"][w], np.concatenate([d.body(LEFT_FOOT).xpos, d.body(RIGHT_FOOT).xpos]),
                                   atol=1e-5)
        np.testing.assert_allclose(got["sites"][w], np.concatenate([d.site("left_foot").xpos,
                                                                    d.site("right_foot").xpos]), atol=1e-5)
        np.testing.assert_allclose(got["pos"][w], np.concatenate([d.body(b).xpos for b in bodies]), atol=1e-5)
        np.testing.assert_allclose(got["vel"][w], np.concatenate([d.body(b).cvel for b in bodies]), atol=1e-4)
    with pytest.raises(ValueError, match="not a mix"):
        FeetPositionObservation.create(kbot_model, foot_left_body_name=LEFT_FOOT, foot_right_site_name="right_foot")
    with pytest.raises(ValueError, match="body 'nope'"):
        BodyPositionObservation.create(kbot_model, body_names=["nope"])


def test_every_observation_is_float32_n_by_d_and_owns_its_memory(random_engine, kbot_model):
    engine, _, _, _ = random_engine
    ctx = make_context(engine)
    all_obs = [
        JointPositionObservation(), JointVelocityObservation(), ActuatorForceObservation(),
        ActuatorAccelerationObservation(), CenterOfMassInertiaObservation(), CenterOfMassVelocityObservation(),
        BasePositionObservation(), BaseOrientationObservation(), BaseLinearVelocityObservation(),
        BaseAngularVelocityObservation(in_robot_frame=True), BaseLinearAccelerationObservation(),
        BaseAngularAccelerationObservation(), TimestepObservation(),
        SensorObservation.create(kbot_model, sensor_name="imu_acc"), _gravity_obs(kbot_model),
        ContactObservation.create(kbot_model, geom_names=LEFT_GEOMS),
        FeetContactObservation.create(kbot_model, foot_left_geom_names=LEFT_GEOMS, foot_right_geom_names=RIGHT_GEOMS),
        FeetPositionObservation.create(kbot_model, foot_left_body_name=LEFT_FOOT, foot_right_body_name=RIGHT_FOOT),
        BodyPositionObservation.create(kbot_model, body_names=["torso"]),
        BodyVelocityObservation.create(kbot_model, body_names=["torso"]),
        BaseHeightObservation.create(kbot_model, base_body_name="base", foot_left_body_name=LEFT_FOOT,
                                     foot_right_body_name=RIGHT_FOOT),
    ]
    physics_ptrs = {getattr(engine.state, f).untyped_storage().data_ptr() for f in vars(engine.state)}
    names = set()
    for obs in all_obs:
        out = obs.observe(ctx, obs.init_state(ctx))
        assert out.dtype == torch.float32 and out.dim() == 2 and out.shape[0] == N, obs.name
        assert out.untyped_storage().data_ptr() not in physics_ptrs, obs.name
        names.add(obs.name)
    assert len(names) == len(all_obs)  # every key is distinct


# --- noise and bias ----------------------------------------------------------------------------


@pytest.fixture
def cpu_ctx(kbot_model, home_qpos):
    engine = build_engine(("mujoco", "cpu"), kbot_model, num_envs=4)
    reset_engine(engine, home_qpos)
    return make_context(engine, seed=123)


def test_noise_has_the_configured_std_and_scales_with_curriculum(cpu_ctx):
    obs = JointVelocityObservation(noise=0.05)
    clean = torch.full((4, 5000), 2.0)
    bias = init_bias_state(obs, clean.shape, cpu_ctx)
    assert torch.count_nonzero(bias) == 0  # no bias configured
    d1, d2 = noisy(obs, clean, bias, cpu_ctx) - clean, noisy(obs, clean, bias, cpu_ctx) - clean
    for d in (d1, d2):
        assert abs(float(d.std()) - 0.05) < 0.05 * 0.03
        assert abs(float(d.mean())) < 5 * 0.05 / math.sqrt(d.numel())
    assert not torch.equal(d1, d2)  # drawn per step
    np.testing.assert_array_equal(_np(JointVelocityObservation().observe(cpu_ctx, {})), 0.0)

    cpu_ctx.curriculum_level = torch.tensor([0.0, 0.5, 1.0, 1.0])
    d = noisy(obs, clean, bias, cpu_ctx) - clean
    assert float(d[0].abs().max()) == 0.0
    assert abs(float(d[1].std()) - 0.025) < 0.025 * 0.05


def test_bias_is_constant_within_an_episode_and_redrawn_at_reset(cpu_ctx):
    obs = SensorObservation(sensor_name="x", sensor_idx_range=(0, 1), bias=0.1)
    clean = torch.zeros(4, 5000)
    bias = init_bias_state(obs, clean.shape, cpu_ctx)
    assert abs(float(bias.std()) - 0.1) < 0.1 * 0.03
    first = noisy(obs, clean, bias, cpu_ctx)
    assert torch.equal(first, bias)
    np.testing.assert_allclose(_np(noisy(obs, clean + 1.0, bias, cpu_ctx)), _np(bias + 1.0), atol=1e-6, rtol=0)

    before = bias.clone()
    reset_bias(obs, bias, torch.tensor([True, False, True, False]), cpu_ctx)
    assert torch.equal(bias[[1, 3]], before[[1, 3]])
    assert bool((bias[[0, 2]] != before[[0, 2]]).all())

    both = JointVelocityObservation(noise=0.02, bias=nz.MultiplicativeUniformBias(mag=0.2))
    b = init_bias_state(both, clean.shape, cpu_ctx)
    assert float(b.min()) >= 0.8 and float(b.max()) <= 1.2 and float(b.std()) > 0.1
    ones = torch.ones(4, 5000)
    residual = noisy(both, ones, b, cpu_ctx) / b - 1.0  # x (1 + noise) then x bias
    assert abs(float(residual.std()) - 0.02) < 0.02 * 0.03
