"""Terminations against states set up by hand on both engines; MuJoCo's own mj_forward (body
frames, contact list) is the ground truth where the verdict depends on kinematics."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.components.terminations import (
    BadVelocityTermination,
    BadZTermination,
    EpisodeLengthTermination,
    FarFromOriginTermination,
    HighVelocityTermination,
    IllegalContactTermination,
    MinimumHeightTermination,
    NotUprightTermination,
)
from tests.conftest import build_engine, make_context, reset_engine

LEFT_FOOT = ["left_foot_collision_0", "left_foot_collision_1"]
RIGHT_FOOT = ["right_foot_collision_0", "right_foot_collision_1"]


def quat_about_x(angle: float) -> list[float]:
    return [math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0]


def verdict(term, ctx) -> list[int]:
    out = term.check(ctx)
    assert out.dtype == torch.int8 and out.shape == (ctx.num_envs,)
    return out.cpu().tolist()


def mj_forward(model: mujoco.MjModel, qpos: np.ndarray) -> mujoco.MjData:
    d = mujoco.MjData(model)
    d.qpos[:] = qpos
    mujoco.mj_forward(model, d)
    return d


def test_height_and_tilt_terminations(engine_spec, kbot_model, home_qpos):
    """World 0 healthy, 1 too low, 2 tilted 50 deg (about x), 3 tilted 40 deg; upright limit 45 deg."""
    engine = build_engine(engine_spec, kbot_model, num_envs=4)
    qpos = np.tile(home_qpos, (4, 1))
    qpos[:, 2] = 0.77
    qpos[1, 2] = 0.30
    qpos[2, 3:7] = quat_about_x(math.radians(50.0))
    qpos[3, 3:7] = quat_about_x(math.radians(-40.0))
    reset_engine(engine, qpos)
    ctx = make_context(engine)

    assert verdict(MinimumHeightTermination(min_height=0.5), ctx) == [0, -1, 0, 0]
    assert verdict(BadZTermination(min_z=0.5), ctx) == [0, -1, 0, 0]
    assert verdict(BadZTermination(unhealthy_z_lower=0.5, unhealthy_z_upper=0.75), ctx) == [-1, -1, -1, -1]
    assert verdict(BadZTermination(max_z=0.8), ctx) == [0, 0, 0, 0]

    # ground truth for the tilt: the angle between MuJoCo's base z axis (xmat column 2) and world z
    base = mujoco.mj_name2id(kbot_model, mujoco.mjtObj.mjOBJ_BODY, "base")
    tilt = [math.degrees(math.acos(mj_forward(kbot_model, q).xmat[base][8])) for q in qpos]
    np.testing.assert_allclose(tilt, [0.0, 0.0, 50.0, 40.0], atol=1e-4)
    assert verdict(NotUprightTermination(max_radians=math.radians(45.0)), ctx) == [0, 0, -1, 0]
    assert verdict(NotUprightTermination(max_radians=math.radians(35.0)), ctx) == [0, 0, -1, -1]


def test_bad_z_bounds_follow_the_curriculum(kbot_model, home_qpos):
    """lower = min_z + (final_min_z - min_z) * level: 0.2 at level 0, 0.6 at level 1; z = 0.3 everywhere."""
    engine = build_engine(("mujoco", "cpu"), kbot_model, num_envs=4)
    qpos = np.tile(home_qpos, (4, 1))
    qpos[:, 2] = 0.3
    reset_engine(engine, qpos)
    ctx = make_context(engine, curriculum_level=torch.tensor([0.0, 0.2, 0.3, 1.0]))
    # bounds 0.2, 0.28, 0.32, 0.6
    assert verdict(BadZTermination(min_z=0.2, final_min_z=0.6), ctx) == [0, 0, -1, -1]
    # upper bound 1.0 at level 0 -> 0.0 at level 1: bounds 1.0, 0.8, 0.7, 0.0, so only world 3 is too high
    assert verdict(BadZTermination(max_z=1.0, final_max_z=0.0), ctx) == [0, 0, 0, -1]


def test_far_from_origin_and_velocity_terminations(engine_spec, kbot_model, home_qpos):
    """World 1 stands 4 m away (3 m limit); world 2 has a joint turning at 12 rad/s (10 rad/s limit)."""
    engine = build_engine(engine_spec, kbot_model, num_envs=4)
    qpos = np.tile(home_qpos, (4, 1))
    qpos[:, 2] += 0.05
    qpos[1, 0:2] = [2.4, -3.2]  # 4.0 m in xy
    qpos[3, 0:2] = [2.0, 2.0]   # 2.83 m
    qvel = np.zeros((4, kbot_model.nv))
    qvel[2, 10] = -12.0
    qvel[3, 6:] = 9.0
    reset_engine(engine, qpos, qvel)
    ctx = make_context(engine)
    assert verdict(FarFromOriginTermination(max_dist=3.0), ctx) == [0, 1, 0, 0]
    assert verdict(FarFromOriginTermination(max_dist=3.0, pos_termination=False), ctx) == [0, -1, 0, 0]
    assert verdict(FarFromOriginTermination(max_dist=2.5), ctx) == [0, 1, 0, 1]
    assert verdict(BadVelocityTermination(max_vel=10.0), ctx) == [0, 0, -1, 0]
    assert verdict(HighVelocityTermination(max_vel=8.0), ctx) == [0, 0, -1, -1]


def test_episode_length_termination_is_a_truncation(kbot_model, home_qpos):
    engine = build_engine(("mujoco", "cpu"), kbot_model, num_envs=4, ctrl_dt=0.02)
    reset_engine(engine, home_qpos)
    steps = torch.tensor([0, 49, 50, 51])
    ctx = make_context(engine, episode_steps=steps)
    term = EpisodeLengthTermination(max_length_sec=1.0)  # 1.0 s / 0.02 s = 50 steps
    assert term.max_steps(0.02) == 50
    assert verdict(term, ctx) == [0, 0, 1, 1]
    assert verdict(EpisodeLengthTermination(max_length_sec=1.0, pos_termination=False), ctx) == [0, 0, -1, -1]
    assert verdict(EpisodeLengthTermination(max_length_sec=0.99), ctx) == [0, 0, 1, 1]  # 49.5 -> 50 steps
    leveled = make_context(engine, episode_steps=steps, curriculum_level=torch.tensor([0.0, 0.0, 0.8, 0.2]))
    assert verdict(EpisodeLengthTermination(max_length_sec=1.0, disable_at_curriculum_level=0.5), leveled) == \
        [0, 0, 0, 1]


def test_illegal_contact_termination(engine_spec, kbot_model, home_qpos):
    """0: feet 4 cm up; 1: both feet 4 mm into the floor; 2/3: base rolled +-0.05 rad and lowered 2 mm,
    which presses only the right / left foot into the floor."""
    engine = build_engine(engine_spec, kbot_model, num_envs=4)
    qpos = np.tile(home_qpos, (4, 1))
    qpos[0, 2] += 0.04
    qpos[1, 2] -= 0.005
    qpos[2, 2] -= 0.002
    qpos[3, 2] -= 0.002
    qpos[2, 3:7] = quat_about_x(0.05)
    qpos[3, 3:7] = quat_about_x(-0.05)
    reset_engine(engine, qpos)
    ctx = make_context(engine)

    # ground truth: MuJoCo's contact list, penetrating contacts only
    floor = mujoco.mj_name2id(kbot_model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    for feet, want in ((LEFT_FOOT, [0, -1, 0, -1]), (RIGHT_FOOT, [0, -1, -1, 0])):
        ids = {mujoco.mj_name2id(kbot_model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in feet}
        truth = []
        for q in qpos:
            d = mj_forward(kbot_model, q)
            pairs = [set(c.geom) for c in d.contact[: d.ncon] if c.dist < 0]
            truth.append(-1 if any(p & ids and floor in p for p in pairs) else 0)
        assert truth == want
        assert verdict(IllegalContactTermination.create(kbot_model, feet), ctx) == want
    assert verdict(IllegalContactTermination.create(kbot_model, LEFT_FOOT + RIGHT_FOOT), ctx) == [0, -1, -1, -1]
    torso_only = IllegalContactTermination.create(kbot_model, ["pelvis_visual", "chest_visual"])
    assert verdict(torso_only, ctx) == [0, 0, 0, 0]


def test_termination_errors_name_the_problem(kbot_model):
    with pytest.raises(ValueError, match="min_z"):
        BadZTermination()
    with pytest.raises(ValueError, match="not both"):
        BadZTermination(min_z=0.3, unhealthy_z_lower=0.3)
    with pytest.raises(ValueError, match="geom 'no_such_geom'"):
        IllegalContactTermination.create(kbot_model, ["no_such_geom"])
    with pytest.raises(ValueError, match="max_length_sec"):
        EpisodeLengthTermination(max_length_sec=0.0)


# --- models without a free joint ------------------------------------------------------------


def planar_engine(num_envs: int = 4):
    from ktorch_sim.engines import EngineConfig, make_engine
    from tests.planar_walker import planar_walker_model

    return make_engine("mujoco", planar_walker_model(), EngineConfig(num_envs=num_envs, dt=0.005, ctrl_dt=0.02,
                                                                    num_threads=1))


def test_base_terminations_on_a_planar_walker_read_the_root_body_not_qpos():
    from tests.planar_walker import TORSO_HEIGHT

    engine = planar_engine()
    qpos = np.zeros((4, engine.model.nq))  # [root_x, root_z, root_pitch, hips and knees]
    qpos[1, 1] = -0.6  # torso down to 0.45 m
    qpos[2, 2] = 1.2  # pitched 1.2 rad: qpos[2] is an angle, not a height
    qpos[3, 0] = 3.0  # 3 m along x
    reset_engine(engine, qpos)
    ctx = make_context(engine)
    assert verdict(BadZTermination(min_z=0.6), ctx) == [0, -1, 0, 0]
    assert verdict(BadZTermination(max_z=TORSO_HEIGHT - 0.01), ctx) == [-1, 0, -1, -1]
    assert verdict(MinimumHeightTermination(min_height=0.5), ctx) == [0, -1, 0, 0]
    assert verdict(NotUprightTermination(max_radians=1.0), ctx) == [0, 0, -1, 0]
    assert verdict(FarFromOriginTermination(max_dist=2.0), ctx) == [0, 0, 0, 1]
    # a named body instead of the base: the left shin's origin is 0.6 m below the torso along its axis
    # (1.05 - 0.6 cos 1.2 = 0.83 m in the pitched world)
    assert verdict(BadZTermination(min_z=0.6, body_name="left_shin"), ctx) == [-1, -1, 0, -1]
    with pytest.raises(ValueError, match="body 'pelvis' is not in the model"):
        BadZTermination(min_z=0.6, body_name="pelvis").check(ctx)

    # stepped on the native engine: the walker stands on its feet, healthy, its height read from xpos
    engine.reset(torch.ones(4, dtype=torch.bool), torch.zeros(4, engine.model.nq), torch.zeros(4, engine.model.nv))
    for _ in range(10):
        engine.step(torch.zeros(4, engine.model.nu))
    ctx = make_context(engine)
    assert verdict(BadZTermination(min_z=0.6), ctx) == [0, 0, 0, 0]
    torch.testing.assert_close(engine.state.xpos[:, 1, 2], torch.full((4,), TORSO_HEIGHT), atol=0.02, rtol=0)


def test_robot_base_matches_mujoco_on_a_planar_walker_and_is_qpos_for_a_free_joint(kbot_model):
    from ktorch_sim.components.robot_base import (
        base_angular_velocity,
        base_body,
        base_linear_velocity,
        base_position,
        base_quat,
        quat_yaw,
    )
    from tests.conftest import build_engine

    engine = planar_engine(num_envs=2)
    base = base_body(engine.model)
    assert (base.name, base.body, base.has_free_joint) == ("torso", 1, False)
    assert base_body(engine.model, "left_shin").name == "left_shin"
    rng = np.random.default_rng(0)
    qpos, qvel = rng.uniform(-0.5, 0.5, (2, engine.model.nq)), rng.normal(0.0, 1.0, (2, engine.model.nv))
    reset_engine(engine, qpos, qvel)  # after a reset the derived quantities are exact
    for i in range(2):
        d = mujoco.MjData(engine.model)
        d.qpos[:], d.qvel[:] = qpos[i].astype(np.float32), qvel[i].astype(np.float32)
        mujoco.mj_forward(engine.model, d)
        velocity = np.zeros(6)
        mujoco.mj_objectVelocity(engine.model, d, mujoco.mjtObj.mjOBJ_BODY, 1, velocity, 0)
        np.testing.assert_allclose(base_position(engine.state, base)[i], d.xpos[1], atol=1e-5)
        np.testing.assert_allclose(base_quat(engine.state, base)[i], d.xquat[1], atol=1e-5)
        np.testing.assert_allclose(base_linear_velocity(engine.state, base)[i], velocity[3:], atol=1e-4)
        np.testing.assert_allclose(base_angular_velocity(engine.state, base)[i], velocity[:3], atol=1e-5)
    # pitching about y never turns the heading
    assert quat_yaw(base_quat(engine.state, base)).abs().max() < 1e-6

    kbot = build_engine(("mujoco", "cpu"), kbot_model, num_envs=2)
    free = base_body(kbot.model)
    assert free.has_free_joint and (free.qpos_adr, free.dof_adr) == (0, 0)
    assert base_position(kbot.state, free).data_ptr() == kbot.state.qpos.data_ptr()  # qpos[:, 0:3] itself
    torch.testing.assert_close(base_quat(kbot.state, free), kbot.state.qpos[:, 3:7], rtol=0, atol=0)
    torch.testing.assert_close(base_linear_velocity(kbot.state, free), kbot.state.qvel[:, 0:3], rtol=0, atol=0)
