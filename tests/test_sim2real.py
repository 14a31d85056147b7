"""Sim-to-real knobs: per-substep targets worked out by hand."""

from __future__ import annotations

import pytest
import torch

from ktorch_sim.sim2real import ControlPipeline, Sim2RealConfig

DT, SUBSTEPS = 0.004, 5


def _pipeline(n: int = 2, nu: int = 3, **cfg: object) -> tuple[ControlPipeline, torch.Generator, torch.Tensor]:
    pipe = ControlPipeline(Sim2RealConfig(**cfg), n, nu, SUBSTEPS, DT, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    level = torch.ones(n)
    pipe.reset(torch.ones(n, dtype=torch.bool), level, gen)
    return pipe, gen, level


def test_disabled_pipeline_passes_ctrl_through():
    pipe, gen, level = _pipeline()
    ctrl = torch.randn(2, 3)
    assert pipe.substep_targets(ctrl, level, gen) is ctrl


def test_fractional_latency_blends_within_the_control_step():
    pipe, gen, level = _pipeline(action_latency_range=(0.01, 0.01))  # 2.5 physics steps
    pipe.substep_targets(torch.zeros(2, 3), level, gen)  # first step after reset: no previous target
    targets = pipe.substep_targets(torch.ones(2, 3), level, gen)
    # fraction at substep k = clip(k + 1 - 2.5, 0, 1)
    torch.testing.assert_close(targets[0, :, 0], torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_latency_scales_with_curriculum_level():
    pipe, gen, _ = _pipeline(action_latency_range=(0.01, 0.01))
    level = torch.tensor([0.0, 1.0])
    pipe.reset(torch.ones(2, dtype=torch.bool), level, gen)
    pipe.substep_targets(torch.zeros(2, 3), level, gen)
    targets = pipe.substep_targets(torch.ones(2, 3), level, gen)
    torch.testing.assert_close(targets[0, :, 0], torch.ones(5))  # level 0: no latency
    torch.testing.assert_close(targets[1, :, 0], torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_update_rate_holds_targets_between_updates():
    pipe, gen, level = _pipeline(action_latency_range=(0.01, 0.01), actuator_update_dt=0.008)  # every 2 substeps
    pipe.substep_targets(torch.zeros(2, 3), level, gen)
    targets = pipe.substep_targets(torch.ones(2, 3), level, gen)
    torch.testing.assert_close(targets[0, :, 0], torch.tensor([0.0, 0.0, 0.5, 0.5, 1.0]))


def test_dropped_actions_hold_the_previous_target_but_never_on_a_fresh_episode():
    pipe, gen, level = _pipeline(n=64, drop_action_prob=0.5)
    first = pipe.substep_targets(torch.zeros(64, 3), level, gen)
    assert torch.all(first == 0.0)  # fresh: nothing to hold, nothing dropped
    second = pipe.substep_targets(torch.ones(64, 3), level, gen)
    held = (second[:, 0, :] == 0.0).float().mean()
    assert 0.35 < held < 0.65, held  # binomial(192, 0.5): 5 sigma ~ 0.18
    assert torch.all((second == 0.0) | (second == 1.0))


def test_zero_offsets_are_per_episode_and_shift_targets():
    pipe, gen, level = _pipeline(n=4, zero_offset_mag=0.05)
    offsets = pipe.zero_offset.clone()
    assert offsets.abs().max() <= 0.05 and offsets.abs().max() > 0
    targets = pipe.substep_targets(torch.zeros(4, 3), level, gen)
    torch.testing.assert_close(targets[:, -1, :], offsets)
    pipe.reset(torch.tensor([True, False, False, False]), level, gen)
    assert not torch.equal(pipe.zero_offset[0], offsets[0])
    torch.testing.assert_close(pipe.zero_offset[1:], offsets[1:])


@pytest.mark.parametrize(("cfg", "message"), [
    ({"action_latency_range": (0.02, 0.01)}, "action_latency_range"),
    ({"drop_action_prob": 1.0}, "drop_action_prob"),
    ({"actuator_update_dt": 0.0}, "actuator_update_dt"),
])
def test_bad_settings_are_rejected(cfg, message):
    with pytest.raises(ValueError, match=message):
        Sim2RealConfig(**cfg)
