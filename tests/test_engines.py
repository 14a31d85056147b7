"""Engine behaviour both engines share: stepping, masked resets, kinematics, contacts, NaN and
overflow flags, per-world model fields. Ground truth is MuJoCo's own mj_forward / mj_setConst."""

from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.engines import EngineConfig, make_engine
from tests.conftest import build_engine

N = 4


def _reset_all(engine, qpos: np.ndarray, qvel: np.ndarray | None = None) -> None:
    dev = engine.device
    qpos_t = torch.tensor(np.broadcast_to(qpos, (engine.num_envs, engine.model.nq)), dtype=torch.float32, device=dev)
    qvel_t = torch.zeros(engine.num_envs, engine.model.nv, device=dev) if qvel is None else \
        torch.tensor(qvel, dtype=torch.float32, device=dev)
    engine.reset(torch.ones(engine.num_envs, dtype=torch.bool, device=dev), qpos_t, qvel_t)


def _home_targets(engine, home: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.tile(home[7:], (engine.num_envs, 1)), dtype=torch.float32, device=engine.device)


def _mj_forward(model: mujoco.MjModel, qpos: np.ndarray) -> mujoco.MjData:
    d = mujoco.MjData(model)
    d.qpos[:] = qpos
    mujoco.mj_forward(model, d)
    return d


def test_step_advances_time_and_holds_targets(engine_spec, kbot_model, home_qpos):
    engine = build_engine(engine_spec, kbot_model, num_envs=N, dt=0.004, ctrl_dt=0.02)
    _reset_all(engine, home_qpos)
    targets = _home_targets(engine, home_qpos)
    for _ in range(3):
        engine.step(targets)
    torch.testing.assert_close(engine.state.time.cpu(), torch.full((N,), 0.06), atol=1e-6, rtol=0)
    torch.testing.assert_close(engine.state.ctrl, targets)
    assert engine.substeps == 5


def test_reset_touches_only_masked_worlds_and_recomputes_kinematics(engine_spec, kbot_model, home_qpos):
    engine = build_engine(engine_spec, kbot_model, num_envs=N)
    _reset_all(engine, home_qpos)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        engine.step((_home_targets(engine, home_qpos).cpu() + 0.2 * torch.randn(N, 20, generator=gen)).to(engine.device))
    before = {k: getattr(engine.state, k).clone() for k in ("qpos", "qvel", "time", "xpos")}

    new_qpos = np.tile(home_qpos, (N, 1))
    new_qpos[:, 0] = 1.5  # move the reset worlds 1.5 m along x
    new_qpos[:, 7:] += 0.1
    mask = torch.tensor([True, False, True, False], device=engine.device)
    engine.reset(mask, torch.tensor(new_qpos, dtype=torch.float32, device=engine.device),
                 torch.zeros(N, engine.model.nv, device=engine.device))

    s = engine.state
    want = _mj_forward(engine.model, new_qpos[0].astype(np.float32))
    for w in (0, 2):
        np.testing.assert_allclose(s.qpos[w].cpu().numpy(), new_qpos[w], atol=1e-6)
        assert float(s.qvel[w].abs().max()) == 0.0 and float(s.time[w]) == 0.0
        np.testing.assert_allclose(s.xpos[w].cpu().numpy(), want.xpos, atol=1e-5)
        np.testing.assert_allclose(s.xquat[w].cpu().numpy(), want.xquat, atol=1e-5)
        np.testing.assert_allclose(s.site_xpos[w].cpu().numpy(), want.site_xpos, atol=1e-5)
        np.testing.assert_allclose(s.subtree_com[w].cpu().numpy(), want.subtree_com, atol=1e-5)
    for w in (1, 3):
        for k in ("qpos", "qvel", "time"):
            torch.testing.assert_close(getattr(s, k)[w], before[k][w], atol=0, rtol=0)


def test_sensors_after_reset_match_mj_forward(engine_spec, kbot_model, home_qpos):
    """Position/velocity-stage sensors (frame pos/quat/vel, gyro) equal mj_forward's after a reset."""
    engine = build_engine(engine_spec, kbot_model, num_envs=N)
    qvel = np.zeros((N, kbot_model.nv))
    qvel[:, 3:6] = [0.3, -0.2, 0.5]  # base angular velocity (local frame)
    qpos = home_qpos.copy()
    qpos[2] += 0.5  # in the air: no contact forces in the accelerometer/touch readings
    _reset_all(engine, qpos, qvel)
    d = mujoco.MjData(engine.model)
    d.qpos[:], d.qvel[:] = qpos.astype(np.float32), qvel[0].astype(np.float32)
    mujoco.mj_forward(engine.model, d)
    np.testing.assert_allclose(engine.state.sensordata[0].cpu().numpy(), d.sensordata, atol=2e-4, rtol=1e-4)
    gyro = kbot_model.sensor("imu_gyro")
    np.testing.assert_allclose(engine.state.sensordata[0, gyro.adr[0]:gyro.adr[0] + 3].cpu().numpy(),
                               [-0.2, -0.3, 0.5], atol=1e-5)  # IMU frame: x = robot left, y = backwards


def test_geom_contact_marks_feet_on_floor(engine_spec, kbot_model, home_qpos):
    engine = build_engine(engine_spec, kbot_model, num_envs=2)
    qpos = np.tile(home_qpos, (2, 1))
    qpos[0, 2] -= 0.003  # soles 2 mm into the floor
    qpos[1, 2] += 0.5  # in the air
    _reset_all(engine, qpos)
    contact = engine.state.geom_contact.cpu().numpy()
    feet = [mujoco.mj_name2id(kbot_model, mujoco.mjtObj.mjOBJ_GEOM, f"{side}_foot_collision_{i}")
            for side in ("left", "right") for i in (0, 1)]
    floor = mujoco.mj_name2id(kbot_model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    assert set(np.flatnonzero(contact[0])) == set(feet) | {floor}
    assert not contact[1].any()


def test_bad_worlds_flags_nan_world_and_leaves_others_untouched(engine_spec, kbot_model, home_qpos):
    engine = build_engine(engine_spec, kbot_model, num_envs=N)
    reference = build_engine(engine_spec, kbot_model, num_envs=N)
    qpos = np.tile(home_qpos, (N, 1))
    _reset_all(reference, qpos)
    qpos[1, 9] = np.nan
    _reset_all(engine, qpos)
    targets = _home_targets(engine, home_qpos)
    for _ in range(3):
        engine.step(targets)
        reference.step(targets)
    assert engine.bad_worlds().cpu().tolist() == [False, True, False, False]
    for w in (0, 2, 3):
        torch.testing.assert_close(engine.state.qpos[w], reference.state.qpos[w], atol=0, rtol=0)


def test_body_mass_field_per_world_recomputes_constants(engine_spec, kbot_model, home_qpos):
    engine = build_engine(engine_spec, kbot_model, num_envs=N, batched_fields=("body_mass",))
    torso = mujoco.mj_name2id(kbot_model, mujoco.mjtObj.mjOBJ_BODY, "torso")
    mass = engine.default_model_field("body_mass").expand(N, -1).clone()
    mass[1, torso] *= 2.0
    engine.set_model_field("body_mass", mass.to(engine.device), torch.tensor([False, True, False, False]).to(engine.device))
    engine.recompute_constants()
    _reset_all(engine, home_qpos)

    heavy = copy.copy(engine.model)
    heavy.body_mass[torso] *= 2.0
    mujoco.mj_setConst(heavy, mujoco.MjData(heavy))
    subtree = engine.model_field("body_subtreemass").cpu().numpy()
    np.testing.assert_allclose(subtree[1], heavy.body_subtreemass, rtol=1e-5)
    np.testing.assert_allclose(subtree[0], engine.model.body_subtreemass, rtol=1e-5)
    cinert_mass = engine.state.cinert[:, torso, 9].cpu().numpy()  # cinert[9] is the body mass
    np.testing.assert_allclose(cinert_mass, [12.6069, 2 * 12.6069, 12.6069, 12.6069], rtol=1e-4)


def test_floor_friction_field_changes_sliding(engine_spec, kbot_model, home_qpos):
    """Feet with near-zero friction slide under a horizontal push on the base; normal ones stick."""
    engine = build_engine(engine_spec, kbot_model, num_envs=2, batched_fields=("geom_friction",))
    friction = engine.default_model_field("geom_friction").expand(2, -1, -1).clone()
    friction[0, :, 0] = 0.01
    engine.set_model_field("geom_friction", friction.to(engine.device))
    _reset_all(engine, home_qpos)
    base = mujoco.mj_name2id(kbot_model, mujoco.mjtObj.mjOBJ_BODY, "base")
    engine.state.xfrc_applied[:, base, 0] = 60.0
    for _ in range(10):
        engine.step(_home_targets(engine, home_qpos))
    foot = mujoco.mj_name2id(kbot_model, mujoco.mjtObj.mjOBJ_BODY, "LFootBushing_GPF_1517_12")
    dx = engine.state.xpos[:, foot, 0].cpu().numpy() - _mj_forward(engine.model, home_qpos).xpos[foot, 0]
    assert abs(dx[0]) > 0.004 and abs(dx[1]) < 0.001, dx


def test_unbatched_field_is_a_clear_error(kbot_model):
    engine = make_engine("mujoco", kbot_model, EngineConfig(num_envs=1))
    with pytest.raises(KeyError, match="batched_fields"):
        engine.model_field("body_mass")


def test_warp_contact_overflow_flags_every_world(kbot_model, home_qpos):
    # mujoco_warp 4.0 compares the pooled contact count with nconmax * nworld, so a contact
    # overflow flags every world (constraint-row overflow, nefc > njmax, is per world: see
    # tests/test_nan_handling.py and the WarpEngine docstring).
    engine = make_engine("warp", kbot_model, EngineConfig(num_envs=2, nconmax=1))
    _reset_all(engine, np.tile(home_qpos, (2, 1)) - np.eye(1, kbot_model.nq, 2) * 0.003)
    engine.step(_home_targets(engine, home_qpos))
    assert engine.bad_worlds().tolist() == [True, True]  # 8 foot contacts per world, pool of 2
    ok = make_engine("warp", kbot_model, EngineConfig(num_envs=2, nconmax=16))
    _reset_all(ok, home_qpos)
    ok.step(_home_targets(ok, home_qpos))
    assert ok.bad_worlds().tolist() == [False, False]


def test_warp_graph_replay_matches_eager(kbot_model, home_qpos):
    captured = make_engine("warp", kbot_model, EngineConfig(num_envs=2, capture=True))
    eager = make_engine("warp", kbot_model, EngineConfig(num_envs=2, capture=False))
    gen = torch.Generator().manual_seed(3)
    for engine in (captured, eager):
        _reset_all(engine, home_qpos)
    for _ in range(4):
        targets = _home_targets(captured, home_qpos) + 0.1 * torch.randn(2, 20, generator=gen)
        captured.step(targets)
        eager.step(targets)
    assert {"step", "reset", "forward"} <= set(captured._graphs)
    torch.testing.assert_close(captured.state.qpos, eager.state.qpos, atol=0, rtol=0)


@pytest.mark.parametrize(("changes", "message"), [
    ({"ctrl_dt": 0.025, "dt": 0.01}, "whole multiple"),
    ({"num_envs": 0}, "num_envs"),
    ({"integrator": "rk5"}, "integrator"),
    ({"dt": -0.001}, "dt"),
])
def test_engine_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig(**changes)


def test_mujoco_engine_rejects_cuda(kbot_model):
    with pytest.raises(ValueError, match="CPU only"):
        make_engine("mujoco", kbot_model, EngineConfig(device="cuda"))


def test_per_substep_targets_match_mj_step(engine_spec, kbot_model, home_qpos):
    """[N, substeps, nu] targets put a different ctrl in each substep, exactly as a plain loop does."""
    engine = build_engine(engine_spec, kbot_model, num_envs=2, dt=0.004, ctrl_dt=0.02, iterations=20, ls_iterations=20)
    qpos = home_qpos.copy()
    qpos[2] += 0.3  # in the air: smooth dynamics, so float32 and float64 stay close
    _reset_all(engine, qpos)
    rng = np.random.default_rng(0)
    seq = (home_qpos[7:] + 0.3 * rng.standard_normal((3, 2, 5, 20))).astype(np.float32)
    for t in range(3):
        engine.step(torch.tensor(seq[t], device=engine.device))
    m = copy.copy(engine.model)
    d = mujoco.MjData(m)
    d.qpos[:] = qpos.astype(np.float32)
    mujoco.mj_forward(m, d)
    for t in range(3):
        for k in range(5):
            d.ctrl[:] = seq[t, 0, k]
            mujoco.mj_step(m, d)
    np.testing.assert_allclose(engine.state.qpos[0].cpu().numpy(), d.qpos, atol=2e-5)
    np.testing.assert_allclose(engine.state.ctrl[0].cpu().numpy(), seq[2, 0, 4], atol=0)


def test_reset_wins_over_a_pending_state_write(engine_spec, kbot_model, home_qpos):
    """A velocity written by a component and then reset away must not reappear after the reset."""
    engine = build_engine(engine_spec, kbot_model, num_envs=2)
    _reset_all(engine, home_qpos)
    engine.state.qvel[0, 0] = 5.0
    engine.state.qvel[1, 0] = 3.0
    mask = torch.tensor([True, False], device=engine.device)
    engine.reset(mask, torch.tensor(np.tile(home_qpos, (2, 1)), dtype=torch.float32, device=engine.device),
                 torch.zeros(2, kbot_model.nv, device=engine.device))
    assert float(engine.state.qvel[0, 0]) == 0.0
    engine.step(_home_targets(engine, home_qpos))
    assert abs(float(engine.state.qvel[0, 0])) < 0.5 and float(engine.state.qvel[1, 0]) > 2.0
