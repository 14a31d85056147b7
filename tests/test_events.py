"""Events: timers fire exactly the worlds whose countdown ran out; velocity kicks land in qvel
within their hand-computed bounds; a force push holds xfrc_applied for its duration and moves
the robot's centre of mass by F t / m (K-Bot in free flight, 36.344 kg)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ktorch_sim.components.events import AngularPushEvent, ForcePushEvent, JumpEvent, LinearPushEvent, PushEvent
from tests.conftest import build_engine, make_context, reset_engine

N = 4
KBOT_MASS = 36.344  # kg, kbot_facts.md section 1


def _airborne_engine(engine_spec, kbot_model, home_qpos, height: float = 1.0):
    engine = build_engine(engine_spec, kbot_model, num_envs=N)
    qpos = home_qpos.copy()
    qpos[2] += height
    reset_engine(engine, qpos)
    return engine


def _hold_home(engine, home_qpos) -> torch.Tensor:
    return torch.tensor(np.tile(home_qpos[7:], (engine.num_envs, 1)), dtype=torch.float32, device=engine.device)


def test_linear_push_kicks_exactly_the_fired_worlds(engine_spec, kbot_model, home_qpos):
    engine = _airborne_engine(engine_spec, kbot_model, home_qpos)
    dev = engine.device
    ctx = make_context(engine)
    event = LinearPushEvent(linvel=2.0, vel_range=(0.5, 1.0), interval_range=(5.0, 10.0))
    state = event.init_state(ctx)
    assert float(state["time_remaining"].min()) >= 5.0 and float(state["time_remaining"].max()) <= 10.0
    state["time_remaining"].copy_(torch.tensor([0.01, 6.0, 0.02, 6.0], device=dev))  # worlds 0 and 2 are due
    before = engine.state.qvel.clone()
    event.apply(state, ctx)

    kick = (engine.state.qvel - before).cpu()
    speed = kick[:, 0:2].norm(dim=-1)
    assert torch.all((speed[[0, 2]] >= 1.0 - 1e-5) & (speed[[0, 2]] <= 2.0 + 1e-5))  # U(0.5, 1) * 2 m/s
    assert float(kick[[1, 3]].abs().max()) == 0.0 and float(kick[:, 2:].abs().max()) == 0.0
    remaining = state["time_remaining"].cpu()
    assert torch.all((remaining[[0, 2]] >= 5.0) & (remaining[[0, 2]] <= 10.0))  # re-armed
    torch.testing.assert_close(remaining[[1, 3]], torch.full((2,), 6.0 - 0.02), atol=1e-6, rtol=0)


def test_linear_push_direction_is_uniform_and_scale_follows_curriculum(kbot_model, home_qpos):
    engine = build_engine(("mujoco", "cpu"), kbot_model, num_envs=512)
    reset_engine(engine, home_qpos)
    level = torch.linspace(0.0, 1.0, 512)
    ctx = make_context(engine, curriculum_level=level)
    event = LinearPushEvent(linvel=1.0, vel_range=(1.0, 1.0), interval_range=(0.0, 0.0),
                            scale=SimpleNamespace(get_scale=lambda lv: 0.5 * lv))  # a curriculum Scale
    state = event.init_state(ctx)
    before = engine.state.qvel.clone()
    event.apply(state, ctx)
    kick = engine.state.qvel[:, 0:2] - before[:, 0:2]
    torch.testing.assert_close(kick.norm(dim=-1), 0.5 * level, atol=1e-6, rtol=0)
    heading = torch.atan2(kick[1:, 1], kick[1:, 0])
    assert float(torch.histc(heading, bins=4, min=-math.pi, max=math.pi).min()) > 90


def test_velocity_kick_persists_through_physics(engine_spec, kbot_model, home_qpos):
    """A kick written into qvel must be what the next physics step starts from (robot in the air)."""
    engine = _airborne_engine(engine_spec, kbot_model, home_qpos)
    ctx = make_context(engine)
    event = LinearPushEvent(linvel=1.0, vel_range=(1.0, 1.0), interval_range=(0.0, 0.0))
    state = event.init_state(ctx)
    event.apply(state, ctx)
    kicked = engine.state.qvel[:, 0:2].clone()
    assert float(kicked.norm(dim=-1).min()) > 0.99
    engine.step(_hold_home(engine, home_qpos))
    torch.testing.assert_close(engine.state.qvel[:, 0:2], kicked, atol=0.05, rtol=0)


def test_push_event_kicks_all_six_axes_within_curriculum_bounds(engine_spec, kbot_model, home_qpos):
    engine = _airborne_engine(engine_spec, kbot_model, home_qpos)
    dev = engine.device
    levels = torch.tensor([1.0, 0.5, 0.0, 1.0], device=dev)
    ctx = make_context(engine, curriculum_level=levels, seed=1)
    scales = torch.tensor([1.0, 0.8, 0.3, 0.5, 0.4, 1.2])
    event = PushEvent(x_force=1.0, y_force=0.8, z_force=0.3, x_angular_force=0.5, y_angular_force=0.4,
                      z_angular_force=1.2, force_range=(0.5, 1.0), interval_range=(0.0, 0.01))
    state = event.init_state(ctx)
    before = engine.state.qvel.clone()
    event.apply(state, ctx)
    kick = (engine.state.qvel - before).cpu()
    bound = scales * levels.cpu().unsqueeze(-1)
    magnitude = kick[:, :6].abs()
    assert torch.all(magnitude <= bound + 1e-6) and torch.all(magnitude[[0, 1, 3]] >= 0.5 * bound[[0, 1, 3]] - 1e-6)
    assert float(kick[2].abs().max()) == 0.0  # level 0: no kick
    assert float(kick[:, 6:].abs().max()) == 0.0  # joints untouched
    assert 0 < int((kick[[0, 1, 3], :6] > 0).sum()) < 18  # random signs


def test_angular_push_changes_only_the_yaw_rate(engine_spec, kbot_model, home_qpos):
    engine = _airborne_engine(engine_spec, kbot_model, home_qpos)
    ctx = make_context(engine, seed=2)
    event = AngularPushEvent(angvel=1.5, vel_range=(0.4, 1.0), interval_range=(0.0, 0.0))
    state = event.init_state(ctx)
    before = engine.state.qvel.clone()
    event.apply(state, ctx)
    kick = (engine.state.qvel - before).cpu()
    assert torch.all((kick[:, 5].abs() >= 0.6 - 1e-6) & (kick[:, 5].abs() <= 1.5 + 1e-6))
    kick[:, 5] = 0.0
    assert float(kick.abs().max()) == 0.0


def test_jump_event_vertical_speed_reaches_the_drawn_height(engine_spec, kbot_model, home_qpos):
    engine = _airborne_engine(engine_spec, kbot_model, home_qpos)
    ctx = make_context(engine, seed=4)
    event = JumpEvent(jump_height_range=(0.1, 0.3), interval_range=(0.0, 0.0))
    state = event.init_state(ctx)
    before = engine.state.qvel.clone()
    event.apply(state, ctx)
    vz = (engine.state.qvel - before)[:, 2].cpu()
    height = vz ** 2 / (2 * 9.81)  # h = v^2 / 2g
    assert torch.all((height >= 0.1 - 1e-5) & (height <= 0.3 + 1e-5)) and float(height.std()) > 0


def test_force_push_holds_wrench_for_its_duration_and_moves_com_by_ft_over_m(engine_spec, kbot_model, home_qpos):
    engine = _airborne_engine(engine_spec, kbot_model, home_qpos)
    dev = engine.device
    ctx = make_context(engine, seed=5)
    event = ForcePushEvent.from_body_name(kbot_model, "base", max_force=200.0, max_torque=10.0,
                                          duration_range=(0.09, 0.09), interval_range=(5.0, 10.0),
                                          force_range=(1.0, 1.0))
    base = event.body_id
    assert float(engine.model.body_subtreemass[base]) == pytest.approx(KBOT_MASS, abs=1e-3)
    state = event.init_state(ctx)
    state["time_remaining"].copy_(torch.tensor([0.0, 0.0, 0.0, 7.0], device=dev))  # worlds 0-2 are pushed
    targets = _hold_home(engine, home_qpos)
    base_velocity_before = engine.state.qvel[:, 0:2].cpu().clone()
    com = []
    for k in range(8):  # 0.09 s = 4.5 control steps -> the push lasts 5 steps (0.1 s)
        event.apply(state, ctx)
        xfrc = engine.state.xfrc_applied[:, base].cpu()
        wrench = state["wrench"].cpu()
        if k < 5:
            torch.testing.assert_close(xfrc[:3], wrench[:3], atol=0, rtol=0)
        else:
            assert float(xfrc.abs().max()) == 0.0  # cleared after the duration
        assert float(xfrc[3].abs().max()) == 0.0  # not due: never pushed
        other = engine.state.xfrc_applied.clone()
        other[:, base] = 0.0
        assert float(other.abs().max()) == 0.0  # only this body's row is written
        engine.step(targets)
        engine.forward()  # exact subtree_com of the new state
        com.append(engine.state.subtree_com[:, base].cpu().clone())
        if k == 4:
            base_kick = engine.state.qvel[:, 0:2].cpu() - base_velocity_before

    wrench = state["wrench"].cpu()
    force, torque = wrench[:3, :3].norm(dim=-1), wrench[:3, 3:].norm(dim=-1)
    assert torch.all(((force - 200.0).abs() < 1e-3) | (force == 0)) and torch.all(((torque - 10.0).abs() < 1e-4)
                                                                                  | (torque == 0))
    assert torch.all((force > 0) | (torque > 0)) and bool((force > 0).any())
    # after the push the centre of mass coasts: v = (F t / m) in x, y (gravity acts only along z)
    velocity = (com[7] - com[5]) / (2 * engine.ctrl_dt)
    expected = wrench[:, :2] * (5 * engine.ctrl_dt) / KBOT_MASS
    expected[3] = 0.0
    torch.testing.assert_close(velocity[:, :2], expected, atol=1e-4, rtol=0)  # measured error ~3e-5 m/s
    # the base itself also turns a little (the push is off the centre of mass): within 0.05 of 0.5 m/s
    torch.testing.assert_close(base_kick, expected, atol=0.05, rtol=0)


def test_force_push_reset_clears_push_and_rearms_timer(kbot_model, home_qpos):
    engine = build_engine(("mujoco", "cpu"), kbot_model, num_envs=N)
    ctx = make_context(engine)
    event = ForcePushEvent.from_body_name(kbot_model, "torso", max_force=50.0, max_torque=0.0,
                                          duration_range=(1.0, 2.0), interval_range=(3.0, 4.0))
    state = event.init_state(ctx)
    state["time_remaining"].zero_()
    event.apply(state, ctx)
    assert float(state["push_remaining"].min()) > 0.9
    mask = torch.tensor([True, False, True, False])
    event.reset(state, mask, ctx)
    assert state["push_remaining"][mask].abs().max() == 0.0 and state["wrench"][mask].abs().max() == 0.0
    assert float(state["push_remaining"][~mask].min()) > 0.9
    assert torch.all((state["time_remaining"][mask] >= 3.0) & (state["time_remaining"][mask] <= 4.0))


def test_events_reject_bad_ranges(kbot_model):
    with pytest.raises(ValueError, match="interval_range"):
        LinearPushEvent(linvel=1.0, interval_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="interval_range"):
        JumpEvent(jump_height_range=(0.1, 0.2), interval_range=(-1.0, 1.0))
    with pytest.raises(ValueError, match="body"):
        ForcePushEvent.from_body_name(kbot_model, "no_such_body", max_force=1.0, max_torque=1.0,
                                      duration_range=(0.1, 0.2), interval_range=(1.0, 2.0))
