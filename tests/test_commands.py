"""Commands: sampling ranges and probabilities (seeded statistics with stated tolerances), masked
resets, switch rates, ramps, the heading controller on both engines, the gait clock at
hand-computed phases and the joint-target interpolation."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.components.base import EnvContext
from ktorch_sim.components.commands import (
    AngularVelocityCommand,
    BaseHeightCommand,
    FloatVectorCommand,
    IntVectorCommand,
    JointPositionCommand,
    LinearVelocityCommand,
    SinusoidalGaitCommand,
    StartPositionCommand,
    StartQuaternionCommand,
    VelocityCommand,
)
from ktorch_sim.engines.base import PhysicsState
from tests.conftest import build_engine, make_context, reset_engine

BIG = 20000  # worlds for statistics: the std of a frequency estimate is <= 0.0036


def fake_ctx(model: mujoco.MjModel, n: int, qpos: np.ndarray | None = None, seed: int = 0,
             ctrl_dt: float = 0.02, **overrides: object) -> EnvContext:
    """A context over a zero physics state (identity base orientation) for commands that barely read physics."""
    phys = PhysicsState(**{k: torch.zeros(n, *s) for k, s in PhysicsState.field_shapes(model).items()})
    phys.qpos[:, 3] = 1.0
    if qpos is not None:
        phys.qpos[:] = torch.tensor(np.broadcast_to(qpos, (n, model.nq)), dtype=torch.float32)
    zeros = torch.zeros(n, model.nu)
    fields = dict(physics=phys, model=model, ctrl_dt=ctrl_dt, action=zeros, prev_action=zeros,
                  prev_prev_action=zeros, commands={}, observations={}, curriculum_level=torch.ones(n),
                  episode_steps=torch.zeros(n, dtype=torch.long), generator=torch.Generator().manual_seed(seed))
    fields.update(overrides)
    return EnvContext(**fields)


def yaw_quat(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


# --- box commands ----------------------------------------------------------------------------


def test_float_vector_command_ranges_and_zero_prob(kbot_model):
    cmd = FloatVectorCommand(ranges=((-1.0, 2.0), (0.0, 0.5)), zero_prob=0.25)
    value = cmd.init_state(fake_ctx(kbot_model, BIG))["value"]
    assert value.shape == (BIG, 2) and value.dtype == torch.float32
    zero = (value == 0).all(dim=1)
    assert abs(zero.float().mean().item() - 0.25) < 0.015
    moving = value[~zero]
    assert moving[:, 0].min() >= -1.0 and moving[:, 0].max() <= 2.0
    assert moving[:, 1].min() >= 0.0 and moving[:, 1].max() <= 0.5
    # uniform: the ends are reached and the means sit in the middle
    assert moving[:, 0].min() < -0.99 and moving[:, 0].max() > 1.99
    assert abs(moving[:, 0].mean().item() - 0.5) < 0.03 and abs(moving[:, 1].mean().item() - 0.25) < 0.005


@pytest.mark.parametrize("make", [
    lambda: FloatVectorCommand(ranges=((-1.0, 1.0),), switch_prob=0.1),
    lambda: BaseHeightCommand(min_height=0.5, max_height=0.9, switch_prob=0.1),
], ids=["float_vector", "base_height"])
def test_switch_prob_resampling_rate(kbot_model, make):
    cmd = make()
    ctx = fake_ctx(kbot_model, BIG)
    state = cmd.init_state(ctx)
    rates = []
    for _ in range(5):
        before = state["value"].clone()
        cmd.update(state, ctx)
        rates.append((state["value"] != before).any(dim=1).float().mean().item())
    assert abs(float(np.mean(rates)) - 0.1) < 0.006, rates


def test_switch_prob_zero_never_resamples(kbot_model):
    cmd = FloatVectorCommand(ranges=((-1.0, 1.0),))
    ctx = fake_ctx(kbot_model, 100)
    state = cmd.init_state(ctx)
    before = state["value"].clone()
    for _ in range(10):
        cmd.update(state, ctx)
    assert torch.equal(state["value"], before)


def test_base_height_command_range(kbot_model):
    value = BaseHeightCommand(min_height=0.55, max_height=0.85).init_state(fake_ctx(kbot_model, BIG))["value"]
    assert value.shape == (BIG, 1)
    assert value.min() >= 0.55 and value.max() <= 0.85 and value.min() < 0.552 and value.max() > 0.848
    assert abs(value.mean().item() - 0.70) < 0.005


def test_int_vector_command_draws_every_integer_inclusive(kbot_model):
    cmd = IntVectorCommand(ranges=((0, 3), (-2, -2)))
    value = cmd.init_state(fake_ctx(kbot_model, BIG))["value"]
    assert torch.equal(value, torch.round(value))
    counts = torch.bincount(value[:, 0].long(), minlength=4)
    assert counts.shape == (4,)
    np.testing.assert_allclose(counts.numpy() / BIG, 0.25, atol=0.015)
    assert (value[:, 1] == -2).all()


# --- masked resets ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda m: FloatVectorCommand(ranges=((-1.0, 1.0), (2.0, 3.0))),
    lambda m: IntVectorCommand(ranges=((0, 1000),)),
    lambda m: BaseHeightCommand(),
    lambda m: VelocityCommand(zero_prob=0.0, heading_control=True),
    lambda m: LinearVelocityCommand(zero_prob=0.0),
    lambda m: AngularVelocityCommand(min_vel=0.1),
    lambda m: SinusoidalGaitCommand(),
    lambda m: JointPositionCommand.create(m, min_time=0.2, max_time=1.0),
    lambda m: StartPositionCommand(),
], ids=["float", "int", "height", "velocity", "linear_velocity", "angular_velocity", "gait", "joint_position",
        "start_position"])
def test_masked_reset_only_touches_masked_rows(kbot_model, home_qpos, make):
    cmd = make(kbot_model)
    ctx = fake_ctx(kbot_model, 4, qpos=home_qpos)
    state = cmd.init_state(ctx)
    for _ in range(3):
        cmd.update(state, ctx)
    before = {k: v.clone() for k, v in state.items()}
    ctx.physics.qpos[:, 0] += 1.0  # a reset moves the robot; StartPositionCommand must see it
    mask = torch.tensor([True, False, True, False])
    cmd.reset(state, mask, ctx)
    for key, value in state.items():
        assert torch.equal(value[~mask], before[key][~mask]), key
    changed = (state["value"][mask] != before["value"][mask]).reshape(2, -1).any(dim=1)
    assert changed.all(), "a masked row kept its old value"


# --- velocity commands -----------------------------------------------------------------------


def test_velocity_command_ranges_and_standing(kbot_model):
    cmd = VelocityCommand(x_range=(-0.5, 1.5), y_range=(-0.3, 0.3), yaw_range=(-0.8, 0.4), zero_prob=0.3)
    state = cmd.init_state(fake_ctx(kbot_model, BIG))
    value, standing = state["value"], state["standing"]
    assert value.shape == (BIG, 3)
    assert abs(standing.float().mean().item() - 0.3) < 0.015
    assert (value[standing] == 0).all() and (value[~standing] != 0).all(dim=1).all()
    for col, (lo, hi) in enumerate(((-0.5, 1.5), (-0.3, 0.3), (-0.8, 0.4))):
        v = value[~standing, col]
        assert v.min() >= lo and v.max() <= hi
        assert abs(v.mean().item() - (lo + hi) / 2) < 0.03 * (hi - lo)


def test_velocity_command_heading_mode_on_engine(engine_spec, kbot_model, home_qpos):
    """wz = clip(0.5 * wrap(heading - yaw), yaw_range), heading fixed at -170 deg, base yaws set by hand."""
    engine = build_engine(engine_spec, kbot_model, num_envs=4)
    yaws_deg = [170.0, 0.0, -150.0, -170.0]
    qpos = np.tile(home_qpos, (4, 1))
    qpos[:, 2] += 0.05
    qpos[:, 3:7] = [yaw_quat(math.radians(y)) for y in yaws_deg]
    reset_engine(engine, qpos)
    ctx = make_context(engine)
    heading = math.radians(-170.0)
    cmd = VelocityCommand(zero_prob=0.0, heading_control=True, heading_range=(heading, heading),
                          heading_stiffness=0.5, yaw_range=(-1.0, 1.0))
    state = cmd.init_state(ctx)
    # by hand: errors +20, -170, -20, 0 degrees (the first wraps around +-180)
    want = torch.tensor([0.5 * math.radians(20.0), -1.0, 0.5 * math.radians(-20.0), 0.0])
    torch.testing.assert_close(state["value"][:, 2].cpu(), want, atol=2e-5, rtol=0)
    # the yaw read back from the engine is MuJoCo's own: its body quaternion of the base
    d = mujoco.MjData(kbot_model)
    d.qpos[:] = qpos[0]
    mujoco.mj_forward(kbot_model, d)
    base = mujoco.mj_name2id(kbot_model, mujoco.mjtObj.mjOBJ_BODY, "base")
    w, x, y, z = d.xquat[base]
    assert math.isclose(math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)), math.radians(170.0), abs_tol=1e-6)
    # a turned robot: update follows the new yaw of world 1 (now -100 deg: error -70 deg)
    qpos[1, 3:7] = yaw_quat(math.radians(-100.0))
    reset_engine(engine, qpos)
    cmd.update(state, ctx)
    assert math.isclose(float(state["value"][1, 2]), 0.5 * math.radians(-70.0), abs_tol=2e-5)
    # vx, vy are drawn as usual and stay in range
    assert (state["value"][:, 0].abs() <= 1.0).all() and (state["value"][:, 1].abs() <= 0.5).all()


def test_velocity_command_heading_mode_standing_keeps_zero(kbot_model):
    ctx = fake_ctx(kbot_model, 3)
    ctx.physics.qpos[:, 3:7] = torch.tensor(yaw_quat(1.0))
    state = VelocityCommand(zero_prob=1.0, heading_control=True).init_state(ctx)
    assert (state["value"] == 0).all()


def test_linear_velocity_command_ramps_from_body_velocity(kbot_model):
    ctx = fake_ctx(kbot_model, 2, ctrl_dt=0.1)
    ctx.physics.qpos[1, 3:7] = torch.tensor(yaw_quat(math.pi / 2))  # world 1 faces +y
    ctx.physics.qvel[0, 0:3] = torch.tensor([0.3, 0.4, 0.0])  # heading frame (0.3, 0.4)
    ctx.physics.qvel[1, 0:3] = torch.tensor([0.0, 0.5, 0.0])  # heading frame (0.5, 0)
    cmd = LinearVelocityCommand(min_vel=1.0, max_vel=1.0, max_yaw=0.0, zero_prob=0.0, linear_accel=1.0,
                                angular_accel=0.5)
    state = cmd.init_state(ctx)
    yaw0 = math.atan2(0.4, 0.3)
    # columns: xvel, yvel, vel, yaw, target_vel, target_yaw
    torch.testing.assert_close(state["value"], torch.tensor([[0.3, 0.4, 0.5, yaw0, 1.0, 0.0],
                                                             [0.5, 0.0, 0.5, 0.0, 1.0, 0.0]]), atol=1e-6, rtol=0)
    for k in range(1, 8):
        cmd.update(state, ctx)
        vel, yaw = min(0.5 + 0.1 * k, 1.0), max(yaw0 - 0.05 * k, 0.0)
        want = torch.tensor([[vel * math.cos(yaw), vel * math.sin(yaw), vel, yaw, 1.0, 0.0],
                             [vel, 0.0, vel, 0.0, 1.0, 0.0]])
        torch.testing.assert_close(state["value"], want, atol=1e-5, rtol=0)


def test_linear_velocity_command_target_statistics(kbot_model):
    cmd = LinearVelocityCommand(min_vel=0.2, max_vel=1.0, max_yaw=0.5, zero_prob=0.2, backward_prob=0.25)
    value = cmd.init_state(fake_ctx(kbot_model, BIG))["value"]
    target_vel, target_yaw = value[:, 4], value[:, 5]
    zero = target_vel == 0
    assert abs(zero.float().mean().item() - 0.2) < 0.015
    assert abs((target_vel[~zero] < 0).float().mean().item() - 0.25) < 0.015
    assert target_vel.abs().max() <= 1.0 and target_vel[~zero].abs().min() >= 0.2
    assert target_yaw.abs().max() <= 0.5 and target_yaw[~zero].abs().max() > 0.49
    # a Scale-like parameter follows the per-world curriculum level
    half = torch.full((BIG,), 0.5)
    scaled = LinearVelocityCommand(min_vel=0.0, max_vel=lambda level: 2.0 * level, zero_prob=0.0)
    value = scaled.init_state(fake_ctx(kbot_model, BIG, curriculum_level=half))["value"]
    assert value[:, 4].max() <= 1.0 and value[:, 4].max() > 0.99


def test_angular_velocity_command_sign_and_ramp(kbot_model):
    value = AngularVelocityCommand(min_vel=0.5, max_vel=1.5, zero_prob=0.1).init_state(fake_ctx(kbot_model, BIG))
    target = value["value"][:, 1]
    zero = target == 0
    assert abs(zero.float().mean().item() - 0.1) < 0.015
    assert abs((target[~zero] > 0).float().mean().item() - 0.5) < 0.015
    assert target[~zero].abs().min() >= 0.5 and target.abs().max() <= 1.5

    ctx = fake_ctx(kbot_model, 2, ctrl_dt=0.1, seed=3)
    ctx.physics.qvel[:, 5] = 0.2
    cmd = AngularVelocityCommand(min_vel=1.0, max_vel=1.0, angular_accel=2.0)
    state = cmd.init_state(ctx)
    sign = torch.sign(state["value"][:, 1])
    torch.testing.assert_close(state["value"][:, 0], torch.full((2,), 0.2))
    for k in range(1, 8):
        cmd.update(state, ctx)
        want = torch.where(sign > 0, min(0.2 + 0.2 * k, 1.0), max(0.2 - 0.2 * k, -1.0))
        torch.testing.assert_close(state["value"][:, 0], want, atol=1e-6, rtol=0)


def test_start_commands_hold_the_reset_pose(kbot_model, home_qpos):
    ctx = fake_ctx(kbot_model, 2, qpos=home_qpos)
    ctx.physics.qpos[:, 3:7] = torch.tensor(yaw_quat(0.3))
    pos, quat = StartPositionCommand(), StartQuaternionCommand()
    pos_state, quat_state = pos.init_state(ctx), quat.init_state(ctx)
    ctx.physics.qpos[:, 0:7] = 0.0
    pos.update(pos_state, ctx)
    quat.update(quat_state, ctx)
    torch.testing.assert_close(pos_state["value"], torch.tensor(home_qpos[:3], dtype=torch.float32).expand(2, 3))
    torch.testing.assert_close(quat_state["value"], torch.tensor(yaw_quat(0.3)).expand(2, 4))


# --- gait clock ------------------------------------------------------------------------------


def test_gait_command_heights_at_hand_computed_phases(kbot_model):
    cmd = SinusoidalGaitCommand(gait_period=1.0, ctrl_dt=0.1, max_height=0.1, height_offset=0.02, stance_ratio=0.6)
    ctx = fake_ctx(kbot_model, 5)
    state = cmd.init_state(ctx)
    state["phase"].copy_(torch.tensor([0.9, 0.1, 0.5, 0.65, 0.2]))
    cmd.update(state, ctx)  # + ctrl_dt / gait_period = 0.1
    phase = torch.tensor([0.0, 0.2, 0.6, 0.75, 0.3])
    torch.testing.assert_close(state["phase"], phase, atol=1e-6, rtol=0)
    # foot 0 at phase p, foot 1 at p + 0.5; swing when >= 0.6, progress s = (p - 0.6) / 0.4, h = 0.02 + 0.1 sin(pi s)
    want = torch.tensor([
        [0.02, 0.02],                                            # 0.0 stance | 0.5 stance
        [0.02, 0.02 + 0.1 * math.sin(math.pi * 0.25)],           # 0.2 stance | 0.7 swing s=0.25
        [0.02, 0.02],                                            # 0.6 lift-off s=0 | 0.1 stance
        [0.02 + 0.1 * math.sin(math.pi * 0.375), 0.02],          # 0.75 swing s=0.375 | 0.25 stance
        [0.02, 0.12],                                            # 0.3 stance | 0.8 apex s=0.5
    ])
    torch.testing.assert_close(state["value"], want, atol=1e-6, rtol=0)
    angle = 2 * math.pi * phase
    torch.testing.assert_close(state["gait_phase"], torch.stack([torch.sin(angle), torch.cos(angle)], -1),
                               atol=1e-6, rtol=0)


def test_gait_command_feet_in_antiphase_and_random_start(kbot_model):
    cmd = SinusoidalGaitCommand(gait_period=0.8, ctrl_dt=0.02, max_height=0.08)
    ctx = fake_ctx(kbot_model, BIG)
    state = cmd.init_state(ctx)
    assert state["phase"].min() >= 0 and state["phase"].max() < 1
    assert abs(state["phase"].mean().item() - 0.5) < 0.01 and state["phase"].std().item() > 0.28
    small = fake_ctx(kbot_model, 2)
    state = cmd.init_state(small)
    history = []
    for _ in range(80):  # two periods of 40 steps
        cmd.update(state, small)
        history.append(state["value"].clone())
    h = torch.stack(history)  # (T, N, feet)
    torch.testing.assert_close(h[20:, :, 1], h[:-20, :, 0], atol=1e-5, rtol=0)  # right = left half a period later
    assert h.max() > 0.07 and h.min() == 0.0


def test_gait_command_holds_phase_when_commanded_to_stand(kbot_model):
    cmd = SinusoidalGaitCommand(gait_period=1.0, ctrl_dt=0.1, max_height=0.1, height_offset=0.01,
                                moving_threshold=0.05, command_name="velocity_command")
    ctx = fake_ctx(kbot_model, 2, commands={"velocity_command": torch.tensor([[0.0, 0.01, 0.0], [0.5, 0.0, 0.0]])})
    state = cmd.init_state(ctx)
    state["phase"].copy_(torch.tensor([0.7, 0.7]))
    cmd.update(state, ctx)
    torch.testing.assert_close(state["phase"], torch.tensor([0.0, 0.8]))
    torch.testing.assert_close(state["value"], torch.tensor([[0.01, 0.01], [0.11, 0.01]]), atol=1e-6, rtol=0)


# --- joint targets ---------------------------------------------------------------------------


def test_joint_position_command_reaches_target_at_stated_time(kbot_model, home_qpos):
    names = ["dof_left_knee_04", "dof_right_elbow_02"]
    cmd = JointPositionCommand.create(kbot_model, ctrl_dt=0.02, joint_names=names, min_time=0.1, max_time=0.1)
    qadr = [kbot_model.joint(n).qposadr[0] for n in names]
    assert cmd.qpos_indices == tuple(qadr)
    ctx = fake_ctx(kbot_model, 3, qpos=home_qpos)
    state = cmd.init_state(ctx)
    start = torch.tensor(home_qpos[qadr], dtype=torch.float32).expand(3, 2)
    target = state["target"].clone()
    torch.testing.assert_close(state["value"], start)
    torch.testing.assert_close(state["velocity"], (target - start) / 0.1)
    for k in range(1, 6):  # 0.1 s = 5 steps of 0.02 s
        cmd.update(state, ctx)
        torch.testing.assert_close(state["value"], start + (target - start) * (k / 5), atol=1e-6, rtol=0)
    torch.testing.assert_close(state["value"], target, atol=1e-6, rtol=0)
    cmd.update(state, ctx)  # a new segment starts at the reached target
    new_target = state["target"]
    assert (new_target != target).all()
    torch.testing.assert_close(state["start"], target)
    torch.testing.assert_close(state["value"], target + (new_target - target) / 5, atol=1e-6, rtol=0)
    torch.testing.assert_close(state["velocity"], (new_target - target) / 0.1)


def test_joint_position_command_targets_cover_joint_ranges(kbot_model):
    cmd = JointPositionCommand.create(kbot_model, min_time=0.3, max_time=0.9)
    assert len(cmd.qpos_indices) == 20
    state = cmd.init_state(fake_ctx(kbot_model, 5000))
    low = torch.tensor(kbot_model.jnt_range[1:, 0], dtype=torch.float32)
    high = torch.tensor(kbot_model.jnt_range[1:, 1], dtype=torch.float32)
    target = state["target"]
    assert (target >= low).all() and (target <= high).all()
    span = high - low
    assert ((target.min(dim=0).values - low) < 0.01 * span).all()
    assert ((high - target.max(dim=0).values) < 0.01 * span).all()
    assert state["duration"].min() >= 0.3 and state["duration"].max() <= 0.9


def test_command_validation_errors_name_the_parameter():
    with pytest.raises(ValueError, match="zero_prob"):
        FloatVectorCommand(ranges=((0.0, 1.0),), zero_prob=1.5)
    with pytest.raises(ValueError, match=r"ranges\[0\]"):
        FloatVectorCommand(ranges=((1.0, 0.0),))
    with pytest.raises(ValueError, match="stance_ratio"):
        SinusoidalGaitCommand(stance_ratio=1.0)
    with pytest.raises(ValueError, match="x_range"):
        VelocityCommand(x_range=(1.0, -1.0))


def test_ramped_commands_switch_targets_at_switch_prob(kbot_model):
    ctx = fake_ctx(kbot_model, BIG)
    for cmd, col in ((LinearVelocityCommand(zero_prob=0.0, switch_prob=0.1), 4),
                     (AngularVelocityCommand(min_vel=0.1, switch_prob=0.1), 1)):
        state = cmd.init_state(ctx)
        before = state["value"][:, col].clone()
        cmd.update(state, ctx)
        assert abs((state["value"][:, col] != before).float().mean().item() - 0.1) < 0.015
