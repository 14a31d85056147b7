"""Resets: each one's distribution, masking and curriculum scaling, checked by hand, and the
reset targets reaching both engines (kinematics compared with MuJoCo's own mj_forward)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.components.base import EnvContext
from ktorch_sim.components.resets import (
    HFieldXYPositionReset,
    PlaneXYPositionReset,
    RandomBaseVelocityXYReset,
    RandomHeadingReset,
    RandomHeightReset,
    RandomJointPositionReset,
    RandomJointVelocityReset,
    RandomPitchRollReset,
    get_xy_position_reset,
)
from tests.conftest import build_engine, make_context, reset_engine

N = 4


def _ctx(model: mujoco.MjModel, n: int, level: float | list[float] = 1.0, seed: int = 0) -> EnvContext:
    """A context over plain tensors, for checking distributions on many worlds without an engine."""
    physics = SimpleNamespace(qpos=torch.zeros(n, model.nq))
    z = torch.zeros(n, model.nu)
    return EnvContext(physics=physics, model=model, ctrl_dt=0.02, action=z, prev_action=z, prev_prev_action=z,
                      commands={}, observations={}, curriculum_level=torch.as_tensor(level).float().expand(n).clone(),
                      episode_steps=torch.zeros(n, dtype=torch.long), generator=torch.Generator().manual_seed(seed))


def _targets(model: mujoco.MjModel, home: np.ndarray, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(np.tile(home, (n, 1)), dtype=torch.float32), torch.zeros(n, model.nv)


def _euler_zyx(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(roll, pitch, yaw) of wxyz quaternions, intrinsic Z-Y-X."""
    w, x, y, z = q.double().unbind(-1)
    roll = torch.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = torch.asin((2 * (w * y - z * x)).clamp(-1, 1))
    yaw = torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return roll, pitch, yaw


# --- joint positions -------------------------------------------------------------------------


def test_joint_position_reset_noise_limits_mask_and_curriculum(kbot_model, home_qpos):
    scale = 0.1
    reset = RandomJointPositionReset.create(kbot_model, zeros={"dof_left_knee_04": 0.5, "dof_left_ankle_02": 0.25},
                                            scale=scale)
    knee, ankle = (int(kbot_model.joint(n).qposadr[0]) for n in ("dof_left_knee_04", "dof_left_ankle_02"))
    n = 64
    levels = torch.ones(n)
    levels[1::4] = 0.5
    levels[2::4] = 0.0
    ctx = _ctx(kbot_model, n, level=levels.tolist())
    qpos, qvel = _targets(kbot_model, home_qpos, n)
    before = qpos.clone()
    mask = torch.ones(n, dtype=torch.bool)
    mask[3::4] = False
    reset.apply(qpos, qvel, mask, ctx)

    centre = before.clone()
    centre[:, knee], centre[:, ankle] = 0.5, 0.25
    low = torch.tensor(kbot_model.jnt_range[1:, 0], dtype=torch.float32)
    high = torch.tensor(kbot_model.jnt_range[1:, 1], dtype=torch.float32)
    j = qpos[:, 7:]
    assert torch.all(j >= low) and torch.all(j <= high)
    delta = (qpos - centre)[:, 7:].abs()
    assert float(delta[0::4].max()) <= scale + 1e-6 and float(delta[0::4].max()) > 0.8 * scale
    assert float(delta[1::4].max()) <= 0.5 * scale + 1e-6 and float(delta[1::4].max()) > 0.4 * scale
    torch.testing.assert_close(qpos[2::4], centre[2::4], atol=0, rtol=0)  # level 0: no noise
    torch.testing.assert_close(qpos[3::4], before[3::4], atol=0, rtol=0)  # unmasked: untouched
    # the ankle's upper limit is 15 deg = 0.2618 rad, so 0.25 + U(+-0.1) is clipped there
    ankle_hi = float(kbot_model.jnt_range[kbot_model.joint("dof_left_ankle_02").id, 1])
    assert float(qpos[0::4, ankle].max()) == pytest.approx(ankle_hi, abs=1e-6)
    torch.testing.assert_close(qpos[:, :7], before[:, :7], atol=0, rtol=0)  # the free joint is never touched


def test_joint_position_reset_without_create_uses_current_targets(kbot_model, home_qpos):
    reset = RandomJointPositionReset(scale=0.05, scale_by_curriculum=False)
    qpos, qvel = _targets(kbot_model, home_qpos, 32)
    before = qpos.clone()
    reset.apply(qpos, qvel, torch.ones(32, dtype=torch.bool), _ctx(kbot_model, 32, level=0.0))
    delta = (qpos - before)[:, 7:].abs()
    assert 0.04 < float(delta.max()) <= 0.05 + 1e-6  # level ignored when scale_by_curriculum=False


@pytest.mark.parametrize(("zeros", "message"), [({"no_such_joint": 0.0}, "no_such_joint"),
                                                ({"dof_left_knee_04": -1.0}, "outside its range")])
def test_joint_position_reset_rejects_bad_zeros(kbot_model, zeros, message):
    with pytest.raises(ValueError, match=message):
        RandomJointPositionReset.create(kbot_model, zeros=zeros)


# --- velocities (ksim quirk #1: they must survive the engine reset) --------------------------


def test_velocity_resets_reach_the_engine(engine_spec, kbot_model, home_qpos):
    engine = build_engine(engine_spec, kbot_model, num_envs=N)
    dev = engine.device
    ctx = make_context(engine, curriculum_level=torch.tensor([1.0, 1.0, 0.5, 1.0], device=dev))
    qpos, qvel = (t.to(dev) for t in _targets(kbot_model, home_qpos, N))
    qpos[:, 2] += 1.0  # in the air
    mask = torch.tensor([True, True, True, False], device=dev)
    RandomJointVelocityReset(scale=0.5).apply(qpos, qvel, mask, ctx)
    RandomBaseVelocityXYReset(scale=0.3).apply(qpos, qvel, mask, ctx)
    engine.reset(torch.ones(N, dtype=torch.bool, device=dev), qpos, qvel)

    got = engine.state.qvel.cpu()
    want = qvel.cpu()
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert float(got[0, 6:].abs().min()) > 0 and float(got[0, 6:].abs().max()) <= 0.5
    assert float(got[2, 6:].abs().max()) <= 0.25 + 1e-6  # curriculum level 0.5 halves the range
    assert float(got[:3, 0:2].abs().min()) > 0 and float(got[:3, 0:2].abs().max()) <= 0.3
    assert float(got[3].abs().max()) == 0.0  # unmasked world: zero velocity target untouched
    assert float(got[:, 2:6].abs().max()) == 0.0  # vz and angular velocity untouched

    # one control step later the base has moved by about v * ctrl_dt in x, y (free flight)
    engine.step(torch.tensor(np.tile(home_qpos[7:], (N, 1)), dtype=torch.float32, device=dev))
    dx = (engine.state.qpos[:, 0:2] - qpos[:, 0:2]).cpu()
    torch.testing.assert_close(dx[:3], want[:3, 0:2] * engine.ctrl_dt, atol=2e-3, rtol=0)


# --- base orientation and position -----------------------------------------------------------


def test_heading_reset_gives_uniform_yaw_and_no_tilt(kbot_model, home_qpos):
    n = 4000
    qpos, qvel = _targets(kbot_model, home_qpos, n)
    mask = torch.ones(n, dtype=torch.bool)
    mask[-1] = False
    RandomHeadingReset().apply(qpos, qvel, mask, _ctx(kbot_model, n))
    q = qpos[:-1, 3:7]
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(n - 1), atol=1e-6, rtol=0)
    assert float(q[:, 1:3].abs().max()) == 0.0  # rotation about z only: no pitch or roll
    yaw = 2 * torch.atan2(q[:, 3], q[:, 0])
    yaw = torch.remainder(yaw + math.pi, 2 * math.pi) - math.pi
    counts = torch.histc(yaw, bins=8, min=-math.pi, max=math.pi)
    assert float(counts.min()) > 0.8 * (n - 1) / 8  # uniform over [-pi, pi)
    torch.testing.assert_close(qpos[-1], torch.tensor(home_qpos, dtype=torch.float32), atol=0, rtol=0)


def test_heading_reset_turns_about_world_z_keeping_tilt(kbot_model, home_qpos):
    qpos, qvel = _targets(kbot_model, home_qpos, 256)
    tilt = 0.3
    qpos[:, 3:7] = torch.tensor([math.cos(tilt / 2), 0.0, math.sin(tilt / 2), 0.0])  # pitched 0.3 rad
    RandomHeadingReset().apply(qpos, qvel, torch.ones(256, dtype=torch.bool), _ctx(kbot_model, 256))
    w, x, y, z = qpos[:, 3:7].unbind(-1)
    body_z = torch.stack((2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)), dim=-1)
    torch.testing.assert_close(body_z[:, 2], torch.full((256,), math.cos(tilt)), atol=1e-6, rtol=0)  # same tilt
    # the tilt direction turns with the heading (a turn about the body z axis would leave body_z fixed)
    lean = torch.atan2(body_z[:, 1], body_z[:, 0])
    assert float(torch.histc(lean, bins=4, min=-math.pi, max=math.pi).min()) > 40


def test_pitch_roll_reset_independent_draws_in_range(kbot_model, home_qpos):
    n = 4000
    qpos, qvel = _targets(kbot_model, home_qpos, n)
    reset = RandomPitchRollReset(pitch_range=(-0.2, 0.1), roll_range=(0.05, 0.3))
    reset.apply(qpos, qvel, torch.ones(n, dtype=torch.bool), _ctx(kbot_model, n))
    roll, pitch, yaw = _euler_zyx(qpos[:, 3:7])
    assert float(yaw.abs().max()) < 1e-6
    assert -0.2 - 1e-6 <= float(pitch.min()) < -0.19 and 0.09 < float(pitch.max()) <= 0.1 + 1e-6
    assert 0.05 - 1e-6 <= float(roll.min()) < 0.06 and 0.29 < float(roll.max()) <= 0.3 + 1e-6
    corr = torch.corrcoef(torch.stack((roll, pitch)))[0, 1]
    assert abs(float(corr)) < 0.08  # ksim's shared key gives corr = 1 here


def test_height_reset_adds_offset_to_masked_worlds(kbot_model, home_qpos):
    n = 1000
    qpos, qvel = _targets(kbot_model, home_qpos, n)
    mask = torch.arange(n) % 2 == 0
    RandomHeightReset(range=(0.05, 0.2)).apply(qpos, qvel, mask, _ctx(kbot_model, n))
    dz = qpos[:, 2] - float(home_qpos[2])
    assert 0.05 - 1e-6 <= float(dz[mask].min()) < 0.06 and 0.19 < float(dz[mask].max()) <= 0.2 + 1e-6
    assert float(dz[~mask].abs().max()) == 0.0


def test_plane_xy_reset_samples_box_clips_and_sets_height(kbot_model, home_qpos):
    n = 2000
    qpos, qvel = _targets(kbot_model, home_qpos, n)
    reset = PlaneXYPositionReset(x_range=2.0, y_range=1.0, padded_bounds=(-1.5, 1.5, -2.0, 2.0),
                                 robot_base_height=0.9)
    reset.apply(qpos, qvel, torch.ones(n, dtype=torch.bool), _ctx(kbot_model, n))
    x, y = qpos[:, 0], qpos[:, 1]
    assert float(x.min()) == -1.5 and float(x.max()) == 1.5  # clipped: about 1/4 of draws on each bound
    assert 0.2 < float((x.abs() == 1.5).float().mean()) < 0.3
    assert -1.0 <= float(y.min()) < -0.95 and 0.95 < float(y.max()) <= 1.0
    assert torch.all(qpos[:, 2] == 0.9)

    default = get_xy_position_reset(kbot_model, x_range=3.0, y_range=3.0)
    assert isinstance(default, PlaneXYPositionReset) and default.padded_bounds is None  # infinite floor plane
    qpos, qvel = _targets(kbot_model, home_qpos, n)
    default.apply(qpos, qvel, torch.ones(n, dtype=torch.bool), _ctx(kbot_model, n))
    assert 2.9 < float(qpos[:, 0:2].abs().max()) <= 3.0
    assert torch.all(qpos[:, 2] == float(np.float32(home_qpos[2])))  # height kept from the home pose


_HFIELD_XML = """
<mujoco>
  <asset><hfield name="terrain" nrow="5" ncol="9" size="4 2 0.5 0.1" elevation="{elevation}"/></asset>
  <worldbody>
    <geom name="ground" type="hfield" hfield="terrain" pos="1 -0.5 0.2"/>
    <body name="base" pos="0 0 2"><freejoint/><geom type="sphere" size="0.1" contype="0" conaffinity="0"/></body>
  </worldbody>
</mujoco>
"""


def test_hfield_xy_reset_follows_the_terrain_like_mj_ray():
    """On a planar (tilted) height field bilinear interpolation is exact, so the reset height must
    equal the height MuJoCo's own ray cast finds, which pins the row/column orientation and scale."""
    rows, cols = np.meshgrid(np.arange(5), np.arange(9), indexing="ij")
    elevation = 0.6 * cols / 8 + 0.4 * rows / 4  # max 1: MuJoCo keeps it as given
    model = mujoco.MjModel.from_xml_string(_HFIELD_XML.format(elevation=" ".join(map(str, elevation.ravel()))))
    reset = get_xy_position_reset(model, x_range=3.0, y_range=1.5, x_edge_padding=0.5, y_edge_padding=0.5,
                                  robot_base_height=0.3)
    assert isinstance(reset, HFieldXYPositionReset)
    n = 64
    qpos = torch.tensor(np.tile(model.qpos0, (n, 1)), dtype=torch.float32)
    reset.apply(qpos, torch.zeros(n, model.nv), torch.ones(n, dtype=torch.bool), _ctx(model, n))
    x, y = qpos[:, 0].numpy(), qpos[:, 1].numpy()
    assert np.all((x >= 1 - 3.5) & (x <= 1 + 3.0) & (y >= -0.5 - 1.5) & (y <= -0.5 + 1.5))
    assert x.max() - x.min() > 3.0  # the samples do spread over the box
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    geomid = np.zeros(1, dtype=np.int32)
    for i in range(n):
        dist = mujoco.mj_ray(model, data, np.array([x[i], y[i], 5.0]), np.array([0.0, 0.0, -1.0]), None, 1, -1,
                             geomid)
        assert geomid[0] == 0
        assert float(qpos[i, 2]) == pytest.approx(5.0 - dist + 0.3, abs=1e-4)


# --- everything together, on both engines ----------------------------------------------------


def test_composed_resets_reach_engine_kinematics(engine_spec, kbot_model, home_qpos):
    engine = build_engine(engine_spec, kbot_model, num_envs=N)
    reset_engine(engine, home_qpos)
    dev = engine.device
    ctx = make_context(engine, seed=3)
    qpos, qvel = (t.to(dev) for t in _targets(kbot_model, home_qpos, N))
    mask = torch.tensor([True, False, True, True], device=dev)
    for reset in (RandomHeadingReset(), RandomPitchRollReset(), RandomHeightReset(),
                  PlaneXYPositionReset(x_range=1.0, y_range=1.0),
                  RandomJointPositionReset.create(kbot_model, scale=0.2)):
        reset.apply(qpos, qvel, mask, ctx)
    engine.reset(mask, qpos, qvel)
    data = mujoco.MjData(engine.model)
    for w in (0, 2):
        data.qpos[:] = qpos[w].cpu().numpy()
        mujoco.mj_forward(engine.model, data)
        np.testing.assert_allclose(engine.state.xpos[w].cpu().numpy(), data.xpos, atol=2e-5)
        np.testing.assert_allclose(engine.state.xquat[w].cpu().numpy(), data.xquat, atol=2e-5)
    home = torch.tensor(home_qpos, dtype=torch.float32)
    torch.testing.assert_close(engine.state.qpos[1].cpu(), home, atol=1e-6, rtol=0)
    assert float((engine.state.qpos[0].cpu() - home).abs().max()) > 0.05
