"""Rewards and penalties against hand-computed values and MuJoCo's own numbers (mj_forward,
sensors, mj_objectVelocity), on both engines where a term reads physics."""

from __future__ import annotations

import copy
import math

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.components.base import sensor_slice
from ktorch_sim.components.rewards import (
    ActionAccelerationPenalty,
    ActionInBoundsPenalty,
    ActionNearPositionPenalty,
    ActionSmoothnessPenalty,
    ActionVelocityPenalty,
    ActuatorRelativeForcePenalty,
    AngularVelocityPenalty,
    AngularVelocityReward,
    AvoidLimitsPenalty,
    BaseHeightRangeReward,
    BaseHeightReward,
    EnergyPenalty,
    FeetAirTimeReward,
    FeetSlipPenalty,
    JointDeviationPenalty,
    JointVelocityPenalty,
    LinearVelocityPenalty,
    PlanarVelocityPenalty,
    LinearVelocityReward,
    OffAxisVelocityReward,
    SinusoidalGaitReward,
    StayAliveReward,
    TorquePenalty,
    UprightReward,
)
from tests.conftest import ENGINE_IDS, ENGINE_SPECS, build_engine, make_context, reset_engine

N = 4
ATOL = 1e-5
FEET = ("LFootBushing_GPF_1517_12", "RFootBushing_GPF_1517_12")


@pytest.fixture(scope="module", params=ENGINE_SPECS, ids=ENGINE_IDS)
def engine(request: pytest.FixtureRequest, kbot_model: mujoco.MjModel):
    """One engine per kind for the whole module; every test resets the state it needs."""
    return build_engine(request.param, kbot_model, num_envs=N)


@pytest.fixture(scope="module")
def cpu_engine(kbot_model: mujoco.MjModel):
    """A native engine for terms that read no physics (actions, observations, extras)."""
    return build_engine(("mujoco", "cpu"), kbot_model, num_envs=N)


def quat_axis_angle(axis: tuple[float, float, float], angle: float) -> np.ndarray:
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    return np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * a])


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, a, b)
    return out


def mj_data(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray | None = None) -> mujoco.MjData:
    """mj_forward at float32-rounded (qpos, qvel) with ctrl = 0, as the engines hold them after a reset."""
    d = mujoco.MjData(model)
    d.qpos[:] = qpos.astype(np.float32)
    if qvel is not None:
        d.qvel[:] = qvel.astype(np.float32)
    mujoco.mj_forward(model, d)
    return d


def tensor(x: np.ndarray | list, device: torch.device) -> torch.Tensor:
    return torch.tensor(np.asarray(x), dtype=torch.float32, device=device)


def value(reward, ctx, state=None) -> np.ndarray:
    return reward.get_reward(ctx, {} if state is None else state).cpu().numpy()


def ekp(x: float, sigma: float, sq: float = 0.1, ab: float = 0.1) -> float:
    return math.exp(-x * x / (2 * sigma * sigma)) - sq * x * x - ab * abs(x)


def test_signed_scale_negates_penalties_only():
    assert AvoidLimitsPenalty(scale=0.1).signed_scale == -0.1
    assert AvoidLimitsPenalty(scale=-0.1).signed_scale == -0.1
    assert LinearVelocityPenalty(scale=0.5).signed_scale == -0.5
    assert StayAliveReward(scale=2.0).signed_scale == 2.0
    assert UprightReward(scale=0.3).signed_scale == 0.3


def test_invalid_parameters_raise():
    with pytest.raises(ValueError, match="norm"):
        JointVelocityPenalty(norm="l3")
    with pytest.raises(ValueError, match="index"):
        LinearVelocityPenalty(index=("x", "w"))
    with pytest.raises(ValueError, match="targets"):
        JointDeviationPenalty(qpos_indices=(7, 8), joint_targets=(0.0,))


def test_stay_alive_alive_failed_success(cpu_engine):
    dev = cpu_engine.device
    extras = {"terminated": torch.tensor([False, True, False, True], device=dev),
              "truncated": torch.tensor([False, False, True, True], device=dev)}
    ctx = make_context(cpu_engine, extras=extras)
    np.testing.assert_allclose(value(StayAliveReward(), ctx), [0.01, -1.0, 0.01, -1.0], atol=1e-7)
    np.testing.assert_allclose(value(StayAliveReward(balance=10.0, success_reward=5.0), ctx), [0.1, -1.0, 5.0, -1.0],
                               atol=1e-7)
    with pytest.raises(KeyError, match="terminated"):
        StayAliveReward().get_reward(make_context(cpu_engine), {})


def test_healthy_reward_pays_scale_per_step_alive_and_nothing_on_the_failing_step(cpu_engine):
    import ktorch_sim as ks
    from ktorch_sim.components.rewards import HealthyReward

    assert ks.HealthyReward is HealthyReward
    dev = cpu_engine.device
    # worlds: alive, failed, time limit, failed at the time limit (a failure)
    extras = {"terminated": torch.tensor([False, True, False, True], device=dev),
              "truncated": torch.tensor([False, False, True, True], device=dev)}
    ctx = make_context(cpu_engine, extras=extras)
    reward = HealthyReward(scale=5.0)
    # the env adds get_reward * signed_scale: 5 per step alive (also on the time-limit step), 0 on failure
    np.testing.assert_allclose(value(reward, ctx) * reward.signed_scale, [5.0, 0.0, 5.0, 0.0])
    assert HealthyReward().signed_scale == 1.0  # Gymnasium's default healthy_reward
    # ksim's StayAliveReward with the same scale pays scale/balance alive and -scale on failure
    np.testing.assert_allclose(value(StayAliveReward(scale=5.0), ctx) * 5.0, [0.05, -5.0, 0.05, -5.0], atol=1e-6)
    with pytest.raises(KeyError, match="HealthyReward needs ctx.extras"):
        HealthyReward().get_reward(make_context(cpu_engine), {})


def test_upright_is_cosine_of_tilt(engine, home_qpos):
    tilts = [((1, 0, 0), 0.0), ((1, 0, 0), math.radians(30)), ((0, 1, 0), math.pi / 2), ((1, 0, 0), math.pi)]
    qpos = np.tile(home_qpos, (N, 1))
    for w, (axis, angle) in enumerate(tilts):
        qpos[w, 3:7] = quat_mul(quat_axis_angle((0, 0, 1), 0.7), quat_axis_angle(axis, angle))  # yaw is irrelevant
    reset_engine(engine, qpos)
    got = value(UprightReward(), make_context(engine))
    np.testing.assert_allclose(got, [1.0, math.cos(math.radians(30)), 0.0, -1.0], atol=ATOL)
    truth = [mj_data(engine.model, qpos[w]).xmat[1].reshape(3, 3)[2, 2] for w in range(N)]  # base z . world z
    np.testing.assert_allclose(got, truth, atol=ATOL)


def _yawed(home_qpos: np.ndarray, yaw: float) -> np.ndarray:
    qpos = np.tile(home_qpos, (N, 1))
    qpos[:, 3:7] = quat_axis_angle((0, 0, 1), yaw)
    return qpos


def test_linear_velocity_penalty_body_and_world_frame(engine, home_qpos, kbot_model):
    qpos = _yawed(home_qpos, math.pi / 2)  # body x = world y
    k = np.arange(1, N + 1, dtype=np.float64)[:, None]
    qvel = np.zeros((N, kbot_model.nv))
    qvel[:, 0:3] = k * np.array([0.3, -0.4, 0.5])  # body frame: k * (-0.4, -0.3, 0.5)
    reset_engine(engine, qpos, qvel)
    ctx = make_context(engine)
    k2 = (k[:, 0] ** 2)
    np.testing.assert_allclose(value(LinearVelocityPenalty(), ctx), 0.5 * k2, atol=ATOL)
    np.testing.assert_allclose(value(LinearVelocityPenalty(index="x"), ctx), 0.16 * k2, atol=ATOL)
    np.testing.assert_allclose(value(LinearVelocityPenalty(index="x", in_robot_frame=False), ctx), 0.09 * k2, atol=ATOL)
    np.testing.assert_allclose(value(LinearVelocityPenalty(index=("y", "z"), norm="l1"), ctx), 0.8 * k[:, 0],
                               atol=ATOL)
    np.testing.assert_allclose(value(LinearVelocityPenalty(index="x", clip_min=-0.1), ctx), np.full(N, 0.01),
                               atol=ATOL)
    # The base velocimeter reads the body-frame velocity: the penalty over x, y, z is its squared norm.
    velocimeter = engine.state.sensordata[:, sensor_slice(kbot_model, "base_site_vel")].cpu().numpy()
    np.testing.assert_allclose(velocimeter[:, 0], -0.4 * k[:, 0], atol=ATOL)
    np.testing.assert_allclose(value(LinearVelocityPenalty(), ctx), (velocimeter**2).sum(-1), atol=1e-4)
    # The planar penalty: the body-frame x and y only, (0.16 + 0.09) k^2, whatever the vertical speed.
    assert PlanarVelocityPenalty(scale=0.1).name == "planar_velocity_penalty"
    np.testing.assert_allclose(value(PlanarVelocityPenalty(), ctx), 0.25 * k2, atol=ATOL)


def test_angular_velocity_penalty_body_and_world_frame(engine, home_qpos, kbot_model):
    qpos = _yawed(home_qpos, math.pi / 2)
    qvel = np.zeros((N, kbot_model.nv))
    qvel[:, 3:6] = [0.1, -0.2, 0.3]  # body frame; world frame (0.2, 0.1, 0.3)
    reset_engine(engine, qpos, qvel)
    ctx = make_context(engine)
    np.testing.assert_allclose(value(AngularVelocityPenalty(index="x"), ctx), np.full(N, 0.01), atol=ATOL)
    np.testing.assert_allclose(value(AngularVelocityPenalty(index="x", in_robot_frame=False), ctx), np.full(N, 0.04),
                               atol=ATOL)
    np.testing.assert_allclose(value(AngularVelocityPenalty(index=("x", "y"), norm="l1"), ctx), np.full(N, 0.3),
                               atol=ATOL)
    world = engine.state.sensordata[:, sensor_slice(kbot_model, "base_site_angvel")].cpu().numpy()  # world frame
    np.testing.assert_allclose(value(AngularVelocityPenalty(index="y", in_robot_frame=False), ctx), world[:, 1] ** 2,
                               atol=ATOL)


def test_joint_velocity_penalty(engine, home_qpos, kbot_model):
    qvel = np.zeros((N, kbot_model.nv))
    qvel[:, 0:6] = 1.0
    qvel[:, 6:] = np.linspace(-1.0, 1.0, 20)[None] * np.arange(1, N + 1)[:, None]
    reset_engine(engine, np.tile(home_qpos, (N, 1)), qvel)
    ctx = make_context(engine)
    np.testing.assert_allclose(value(JointVelocityPenalty(), ctx), (qvel[:, 6:] ** 2).mean(-1), atol=ATOL)
    np.testing.assert_allclose(value(JointVelocityPenalty(norm="l1"), ctx), np.abs(qvel[:, 6:]).mean(-1), atol=ATOL)
    np.testing.assert_allclose(value(JointVelocityPenalty(freejoint_first=False), ctx), (qvel**2).mean(-1), atol=ATOL)


def test_action_in_bounds_penalty(cpu_engine, kbot_model):
    # actuator 3 drives the left knee [0, 2.705], actuator 4 the left ankle [-1.134, 0.262]
    action = torch.zeros(N, kbot_model.nu)
    action[0, 3] = -0.2
    action[0, 4] = 0.5
    action[2, 3] = 3.0
    ctx = make_context(cpu_engine, action=action)
    ankle_hi = kbot_model.jnt_range[5, 1]
    knee_hi = kbot_model.jnt_range[4, 1]
    np.testing.assert_allclose(value(ActionInBoundsPenalty.create(kbot_model), ctx),
                               [0.2 + 0.5 - ankle_hi, 0.0, 3.0 - knee_hi, 0.0], atol=1e-6)
    only_knee = ActionInBoundsPenalty.create(kbot_model, joint_names=["dof_left_knee_04"])
    assert only_knee.action_indices == (3,)
    np.testing.assert_allclose(value(only_knee, ctx), [0.2, 0.0, 3.0 - knee_hi, 0.0], atol=1e-6)


def test_avoid_limits_penalty_outside_widened_range(engine, home_qpos, kbot_model):
    lo, hi = kbot_model.jnt_range[4]  # left knee, qpos 10
    pad = 0.05 * (hi - lo)
    rlo, rhi = kbot_model.jnt_range[6]  # right hip pitch, qpos 12
    rpad = 0.05 * (rhi - rlo)
    qpos = np.tile(home_qpos, (N, 1))
    qpos[0, 10] = lo - pad - 0.1
    qpos[1, 12] = rhi + rpad + 0.2
    qpos[2, 10] = lo - 0.5 * pad  # outside the joint range but inside the widened band
    reset_engine(engine, qpos)
    penalty = AvoidLimitsPenalty.create(kbot_model)
    assert len(penalty.qpos_indices) == 20
    np.testing.assert_allclose(value(penalty, make_context(engine)), [0.1, 0.2, 0.0, 0.0], atol=ATOL)
    narrow = AvoidLimitsPenalty.create(kbot_model, factor=0.0)
    np.testing.assert_allclose(value(narrow, make_context(engine)), [pad + 0.1, rpad + 0.2, 0.5 * pad, 0.0], atol=ATOL)


def test_action_near_position_penalty(engine, home_qpos, kbot_model):
    reset_engine(engine, np.tile(home_qpos, (N, 1)))
    action = tensor(np.tile(home_qpos[7:], (N, 1)), engine.device)
    action[0, 3] += 0.3  # left knee target 0.3 rad from the joint
    action[1] += 0.05  # every target within the threshold
    action[2, 0] -= 0.25
    action[2, 19] += 0.15
    ctx = make_context(engine, action=action)
    l2 = ActionNearPositionPenalty.create(kbot_model, joint_threshold=0.1)
    np.testing.assert_allclose(value(l2, ctx), [0.04, 0.0, 0.0225 + 0.0025, 0.0], atol=ATOL)
    l1 = ActionNearPositionPenalty.create(kbot_model, joint_threshold=0.1, norm="l1", backoff_scale=2.0)
    np.testing.assert_allclose(value(l1, ctx), [0.4, 0.0, 0.4, 0.0], atol=ATOL)
    per_joint = ActionNearPositionPenalty.create(kbot_model, joint_threshold=[0.2] + [0.0] * 19, norm="l1")
    np.testing.assert_allclose(value(per_joint, ctx), [0.3, 0.05 * 19, 0.05 + 0.15, 0.0], atol=ATOL)


def test_joint_deviation_penalty(engine, home_qpos, kbot_model):
    qpos = np.tile(home_qpos, (N, 1))
    qpos[:, 10] += np.arange(N) * 0.1  # left knee
    reset_engine(engine, qpos)
    names, targets, weights = ["dof_left_knee_04", "dof_right_knee_04"], [0.5, -0.5], [2.0, 1.0]
    penalty = JointDeviationPenalty.create(kbot_model, names, targets, joint_weights=weights)
    want = (2.0 * (qpos[:, 10] - 0.5)) ** 2 + (qpos[:, 15] + 0.5) ** 2
    np.testing.assert_allclose(value(penalty, make_context(engine)), want, atol=ATOL)
    unweighted = JointDeviationPenalty.create(kbot_model, names, targets, norm="l1")
    np.testing.assert_allclose(value(unweighted, make_context(engine)),
                               np.abs(qpos[:, 10] - 0.5) + np.abs(qpos[:, 15] + 0.5), atol=ATOL)


def test_action_differences_are_masked_at_episode_start(cpu_engine):
    gen = torch.Generator().manual_seed(3)
    a, p, pp = (torch.randn(N, 20, generator=gen) for _ in range(3))
    steps = torch.tensor([0, 1, 2, 3])
    ctx = make_context(cpu_engine, action=a, prev_action=p, prev_prev_action=pp, episode_steps=steps)
    vel = ((a - p) ** 2).mean(-1).numpy()
    acc = ((a - 2 * p + pp) ** 2).mean(-1).numpy()
    np.testing.assert_allclose(value(ActionVelocityPenalty(), ctx), [0, 0, vel[2], vel[3]], rtol=1e-6)
    np.testing.assert_allclose(value(ActionSmoothnessPenalty(), ctx), [0, 0, vel[2], vel[3]], rtol=1e-6)
    np.testing.assert_allclose(value(ActionAccelerationPenalty(), ctx), [0, 0, 0, acc[3]], rtol=1e-6)
    np.testing.assert_allclose(value(ActionVelocityPenalty(norm="l1"), ctx)[3], (a - p).abs().mean(-1)[3].item(),
                               rtol=1e-6)
    # The first step after a reset: prev_action is zero, a large action must not produce a spike.
    ctx = make_context(cpu_engine, action=torch.full((N, 20), 2.0), episode_steps=torch.ones(N, dtype=torch.long))
    assert value(ActionSmoothnessPenalty(), ctx).max() == 0.0


def test_actuator_force_penalties_match_mujoco(engine, home_qpos, kbot_model):
    qpos = np.tile(home_qpos, (N, 1))
    qpos[:, 7:] += np.linspace(-0.3, 0.3, 20)[None] * np.arange(N)[:, None]
    qvel = np.zeros((N, kbot_model.nv))
    qvel[:, 6:] = np.linspace(2.0, -3.0, 20)[None] * np.arange(N)[:, None]  # large enough to saturate some
    reset_engine(engine, qpos, qvel)
    ctx = make_context(engine)
    force = np.stack([mj_data(engine.model, qpos[w], qvel[w]).actuator_force for w in range(N)])
    np.testing.assert_allclose(engine.state.actuator_force.cpu().numpy(), force, atol=1e-3)
    limit = kbot_model.actuator_forcerange[:, 1]
    assert np.any(np.isclose(np.abs(force), limit)), "no actuator saturates: the test would miss the clip"

    rel = ActuatorRelativeForcePenalty.create(kbot_model)
    assert rel.magnitudes == tuple(limit.tolist())
    np.testing.assert_allclose(value(rel, ctx), np.abs(force / limit).mean(-1), atol=1e-4)
    np.testing.assert_allclose(value(ActuatorRelativeForcePenalty.create(kbot_model, norm="l2"), ctx),
                               ((force / limit) ** 2).mean(-1), atol=1e-4)
    np.testing.assert_allclose(value(TorquePenalty.create(kbot_model), ctx), np.abs(force / limit).mean(-1), atol=1e-4)
    energy = np.abs(force / limit * qvel[:, 6:]).mean(-1)  # actuator a drives dof 6 + a on K-Bot
    np.testing.assert_allclose(value(EnergyPenalty.create(kbot_model), ctx), energy, atol=1e-4)


def test_force_limits_fall_back_to_joint_range(kbot_model):
    m = copy.copy(kbot_model)
    m.actuator_forcelimited[:] = 0
    m.jnt_actfrcrange[1:, :] *= 0.5
    rel = ActuatorRelativeForcePenalty.create(m)
    assert rel.magnitudes == tuple((0.5 * kbot_model.jnt_actfrcrange[1:, 1]).tolist())
    m.jnt_actfrclimited[3] = 0
    with pytest.raises(ValueError, match="dof_left_hip_yaw_03_ctrl"):
        TorquePenalty.create(m)


def test_base_height_rewards(engine, home_qpos, kbot_model):
    qpos = np.tile(home_qpos, (N, 1))
    qpos[:, 2] = [0.7, 0.76, 0.8, 0.9]
    reset_engine(engine, qpos)
    ctx = make_context(engine)
    want = [math.exp(-((z - 0.7) ** 2) / (2 * 0.25**2)) for z in qpos[:, 2]]
    np.testing.assert_allclose(value(BaseHeightReward(height_target=0.7), ctx), want, atol=ATOL)
    band = BaseHeightRangeReward(z_lower=0.75, z_upper=0.78, dropoff=10.0)
    np.testing.assert_allclose(value(band, ctx), [0.5, 1.0, 0.8, 0.0], atol=1e-4)

    # Foot-relative height: base z - lowest foot z + 0.06, from mj_forward body positions.
    feet_ids = [mujoco.mj_name2id(kbot_model, mujoco.mjtObj.mjOBJ_BODY, n) for n in FEET]
    qpos[1, 7:] = home_qpos[7:] + 0.1  # bends the legs: the feet move relative to the base
    reset_engine(engine, qpos)
    ctx = make_context(engine)
    heights = []
    for w in range(N):
        d = mj_data(engine.model, qpos[w])
        heights.append(d.xpos[1, 2] - d.xpos[feet_ids, 2].min() + 0.06)
    rel = BaseHeightReward.create(kbot_model, height_target=0.75, foot_body_names=FEET)
    assert rel.base_body_id == 1 and rel.foot_body_ids == tuple(feet_ids)
    np.testing.assert_allclose(value(rel, ctx), [math.exp(-((h - 0.75) ** 2) / 0.125) for h in heights], atol=ATOL)
    # Home pose, any base z: ankle axes 0.059 m above z = 0 when the base is at home z (kbot_facts 8: 0.722).
    np.testing.assert_allclose([heights[0], heights[2]], home_qpos[2] - 0.059 + 0.06, atol=1e-3)
    rel_band = BaseHeightRangeReward.create(kbot_model, z_lower=0.0, z_upper=0.70, dropoff=10.0, foot_body_names=FEET)
    np.testing.assert_allclose(value(rel_band, ctx), np.maximum(0.0, 1 - 10 * np.maximum(np.array(heights) - 0.7, 0)),
                               atol=1e-4)


def _heading(xmat: np.ndarray) -> float:
    """Heading of a body from its rotation matrix: the angle of its x axis projected on the ground."""
    r = xmat.reshape(3, 3)
    return math.atan2(r[1, 0], r[0, 0])


def test_linear_velocity_reward_tracks_heading_frame_velocity(engine, home_qpos, kbot_model):
    yaw = math.radians(60)
    qpos = _yawed(home_qpos, yaw)
    qpos[3, 3:7] = quat_mul(quat_axis_angle((0, 0, 1), yaw), quat_axis_angle((0, 1, 0), math.radians(20)))
    heading_vel = np.array([[0.5, 0.2], [0.3, 0.0], [-0.5, -0.001], [0.1, 0.3]])  # planar, heading frame
    cmd = np.array([[0.5, 0.2], [0.0, 0.0], [-0.5, 0.0], [0.4, 0.0]])
    qvel = np.zeros((N, kbot_model.nv))
    for w in range(N):
        h = _heading(mj_data(engine.model, qpos[w]).xmat[1])
        c, s = math.cos(h), math.sin(h)
        qvel[w, 0:2] = [c * heading_vel[w, 0] - s * heading_vel[w, 1], s * heading_vel[w, 0] + c * heading_vel[w, 1]]
        qvel[w, 2] = 0.2  # vertical speed must not leak into the planar velocity of the pitched base
    reset_engine(engine, qpos, qvel)
    reward = LinearVelocityReward(cmd="linvel")
    ctx = make_context(engine, commands={"linvel": tensor(np.c_[cmd, np.zeros(N)], engine.device)})

    want = []
    for v, c in zip(heading_vel, cmd, strict=True):
        moving = np.linalg.norm(c) >= 0.01
        yaw_err = math.atan2(v[1], v[0]) - math.atan2(c[1], c[0])
        yaw_err = (yaw_err + math.pi) % (2 * math.pi) - math.pi
        want.append(ekp(np.linalg.norm(v) - np.linalg.norm(c), 0.25)
                    + moving * (ekp(yaw_err, 0.25) + ekp(v[0] - c[0], 0.25) + ekp(v[1] - c[1], 0.25)))
    got = value(reward, ctx)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert abs(got[0] - 4.0) < 1e-4  # perfect tracking: every term is 1
    assert got[2] > 3.9  # walking straight back: the heading error wraps to ~0, not ~2 pi
    terms = reward.terms(ctx)
    assert float(terms["yaw"][1]) == 0.0 and float(terms["x"][1]) == 0.0  # zero command: only the speed term


def test_angular_velocity_reward(engine, home_qpos, kbot_model):
    qpos = _yawed(home_qpos, 0.3)
    qpos[3, 3:7] = quat_axis_angle((0, 1, 0), math.radians(30))
    qvel = np.zeros((N, kbot_model.nv))
    qvel[:, 5] = [0.5, 0.5, 0.05, 0.4]  # body-frame z rate
    cmd = np.zeros((N, 3))
    cmd[:, 2] = [0.5, -0.5, 0.0, 0.4 * math.cos(math.radians(30))]  # world 3: body z is tilted 30 degrees
    reset_engine(engine, qpos, qvel)
    ctx = make_context(engine, commands={"cmd": tensor(cmd, engine.device)})
    got = value(AngularVelocityReward(cmd="cmd"), ctx)
    np.testing.assert_allclose(got, [2.0, ekp(1.0, 0.25) - 1.0, ekp(0.05, 0.25) + 1.0, 2.0], atol=1e-4)
    world_rate = engine.state.sensordata[:, sensor_slice(kbot_model, "base_site_angvel")][:, 2].cpu().numpy()
    np.testing.assert_allclose(world_rate[3], cmd[3, 2], atol=ATOL)  # the frame choice, checked by MuJoCo
    one_col = make_context(engine, commands={"w": tensor(cmd[:, 2:], engine.device)})
    np.testing.assert_allclose(value(AngularVelocityReward(cmd="w", index=0), one_col), got, atol=1e-6)


def test_off_axis_velocity_reward_uses_roll_and_pitch_rates(engine, home_qpos, kbot_model):
    qvel = np.zeros((N, kbot_model.nv))
    qvel[:, 2:6] = [0.3, 0.2, -0.1, 0.0]
    qvel[1, 5] = 2.0  # turning is not off-axis
    reset_engine(engine, np.tile(home_qpos, (N, 1)), qvel)
    want = sum(math.exp(-(x**2) / 0.125) for x in (0.3, 0.2, -0.1))
    np.testing.assert_allclose(value(OffAxisVelocityReward(), make_context(engine)), np.full(N, want), atol=ATOL)


def test_feet_air_time_counts_swing_and_pays_at_touchdown(cpu_engine):
    dev = cpu_engine.device
    reward = FeetAirTimeReward(threshold=0.04)  # ctrl_dt = 0.02 from the context
    contacts = [  # world 0 (left, right); world 1 stands; worlds 2, 3 swing the left foot as world 0
        [1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [1, 0], [1, 1],
    ]
    want0 = [0, 0, 0, 0, 0.06 - 0.04, 0, 0.02 - 0.04]
    ctx = make_context(cpu_engine)
    state = reward.init_state(ctx)
    for c, w in zip(contacts, want0, strict=True):
        obs = torch.tensor([c, [1, 1], c, c], dtype=torch.float32, device=dev)
        ctx = make_context(cpu_engine, observations={"feet_contact_observation": obs})
        np.testing.assert_allclose(value(reward, ctx, state), [w, 0.0, w, w], atol=1e-6)

    # A reset clears the counter: a foot in the air before the reset earns nothing after it.
    air = torch.tensor([[0, 1]] * N, dtype=torch.float32, device=dev)
    for _ in range(3):
        value(reward, make_context(cpu_engine, observations={"feet_contact_observation": air}), state)
    reward.reset(state, torch.tensor([True, False, False, False], device=dev), ctx)
    assert state["air_time"][0].abs().max() == 0.0 and abs(float(state["air_time"][1, 0]) - 0.06) < 1e-6
    land = make_context(cpu_engine, observations={"feet_contact_observation": torch.ones(N, 2, device=dev)})
    np.testing.assert_allclose(value(reward, land, state), [0.0, 0.02, 0.02, 0.02], atol=1e-6)


def test_feet_air_time_is_zero_without_a_moving_command(cpu_engine):
    dev = cpu_engine.device
    reward = FeetAirTimeReward(threshold=0.0, linvel_cmd="cmd")
    cmd = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.05, 0.0], [0.0, 0.2, 0.0]], device=dev)
    state = reward.init_state(make_context(cpu_engine))
    for c in ([0, 1], [1, 1]):
        obs = torch.tensor([c] * N, dtype=torch.bool, device=dev)
        ctx = make_context(cpu_engine, observations={"feet_contact_observation": obs}, commands={"cmd": cmd})
        got = value(reward, ctx, state)
    np.testing.assert_allclose(got, [0.0, 0.02, 0.0, 0.02], atol=1e-6)
    turning = FeetAirTimeReward(threshold=0.0, linvel_cmd="cmd", angvel_cmd="cmd")
    cmd[0, 2] = 1.0  # turning on the spot counts as moving
    state = turning.init_state(ctx)
    for c in ([0, 1], [1, 1]):
        obs = torch.tensor([c] * N, dtype=torch.bool, device=dev)
        got = value(turning, make_context(cpu_engine, observations={"feet_contact_observation": obs},
                                          commands={"cmd": cmd}), state)
    np.testing.assert_allclose(got, [0.02, 0.02, 0.0, 0.02], atol=1e-6)


def test_feet_slip_penalty_matches_mj_object_velocity(engine, home_qpos, kbot_model):
    qpos = np.tile(home_qpos, (N, 1))
    qpos[:, 2] -= 0.004  # soles 3 mm into the floor: both feet in contact
    qpos[2, 2] += 0.05  # world 2 hovers: no contact, no penalty
    qvel = np.zeros((N, kbot_model.nv))
    qvel[:, 0:3] = [0.3, 0.4, 0.0]
    qvel[1, 3:6] = [0.2, -0.1, 0.5]
    qvel[3, 6:] = np.linspace(-1.0, 1.0, 20)
    reset_engine(engine, qpos, qvel)
    slip = FeetSlipPenalty.create(kbot_model)
    ctx = make_context(engine)

    feet = slip.foot_body_ids
    want, contact = [], []
    for w in range(N):
        d = mj_data(engine.model, qpos[w], qvel[w])
        touching = {int(kbot_model.geom_bodyid[g]) for i in range(d.ncon)
                    for g in (d.contact[i].geom1, d.contact[i].geom2) if d.contact[i].dist < 0}
        vel = np.zeros(6)
        total = 0.0
        for b in feet:
            # XBODY: the body frame's origin (mjOBJ_BODY would give the velocity at the body's CoM)
            mujoco.mj_objectVelocity(kbot_model, d, mujoco.mjtObj.mjOBJ_XBODY, b, vel, 0)  # (ang, lin), world
            total += (vel[3] ** 2 + vel[4] ** 2) if b in touching else 0.0
        want.append(total)
        contact.append([b in touching for b in feet])
    assert contact == [[True, True], [True, True], [False, False], [True, True]]
    np.testing.assert_array_equal(slip.foot_contact(ctx).cpu().numpy(), contact)
    got = value(slip, ctx)
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(got[[0, 2]], [2 * 0.25, 0.0], atol=ATOL)  # pure sliding at 0.5 m/s, both feet


def test_sinusoidal_gait_reward(cpu_engine):
    dev = cpu_engine.device
    pos = torch.zeros(N, 6, device=dev)
    pos[:, 2], pos[:, 5] = 0.05, 0.02  # foot z
    pos[:, 0] = 9.0  # x and y do not matter
    cmd = torch.tensor([[0.04, 0.0], [0.05, 0.02], [0.0, 0.0], [0.15, 0.12]], device=dev)
    ctx = make_context(cpu_engine, observations={"feet_position_observation": pos},
                       commands={"sinusoidal_gait_command": cmd})
    got = value(SinusoidalGaitReward(ctrl_dt=0.02, max_height=0.1), ctx)
    np.testing.assert_allclose(got, [0.7, 1.0, 0.3, -1.0], atol=1e-6)
