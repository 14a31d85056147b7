"""Curricula: level sequences worked out by hand for given metric sequences."""

from __future__ import annotations

import math

import pytest
import torch

from ktorch_sim.components.curriculum import (
    ConstantCurriculum,
    DistanceFromOriginCurriculum,
    EpisodeLengthCurriculum,
    LinearCurriculum,
    StepWhenSaturated,
)

DEV = torch.device("cpu")


def run(curriculum, metric_seq: list[dict[str, float]]) -> tuple[list[float], dict[str, torch.Tensor]]:
    """Levels after each step, and the final state; metrics passed as 0-d tensors."""
    state = curriculum.init_curriculum(DEV)
    assert state["level"].dtype == torch.float32 and state["level"].shape == ()
    levels = []
    for metrics in metric_seq:
        level_tensor = state["level"]
        curriculum.step(state, {k: torch.tensor(v) for k, v in metrics.items()})
        assert state["level"] is level_tensor  # updated in place
        levels.append(float(state["level"]))
    return levels, state


def test_constant_curriculum():
    levels, _ = run(ConstantCurriculum(level=0.3), [{}, {"num_steps": 10}])
    assert levels == pytest.approx([0.3, 0.3])
    assert float(ConstantCurriculum().init_curriculum(DEV)["level"]) == 1.0


def test_linear_curriculum_levels_by_hand():
    # level = clip(((n - 3) // 2) * 0.1, 0.05, 1)
    curriculum = LinearCurriculum(step_size=0.1, step_every_n_epochs=2, min_level=0.05, delay_steps=3)
    assert float(curriculum.init_curriculum(DEV)["level"]) == pytest.approx(0.05)
    steps = [0, 1, 3, 4, 5, 6, 7, 10, 30]
    levels, _ = run(curriculum, [{"num_steps": n} for n in steps])
    assert levels == pytest.approx([0.05, 0.05, 0.05, 0.05, 0.1, 0.1, 0.2, 0.3, 1.0], abs=1e-6)


def test_linear_curriculum_counts_its_own_steps_without_the_metric():
    levels, state = run(LinearCurriculum(step_size=0.25), [{}] * 6)
    assert levels == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    assert int(state["num_steps"]) == 6


def test_episode_length_curriculum_up_down_hold():
    curriculum = EpisodeLengthCurriculum(num_levels=4, increase_threshold=3.0, decrease_threshold=1.0,
                                         min_level_steps=2, ema_decay=0.5)
    lengths = [4.0, 4.0, 4.0, 4.0, 0.0, 0.0, 0.0, 2.0, math.nan]
    levels, state = run(curriculum, [{"episode_length_seconds": x} for x in lengths])
    # ema:       4    4    4    4    2    1    .5    1.25  1.25 (NaN skipped)
    # held steps: 1   2->0  1  2->0   1    2   3->0    1     2
    # action:   hold  up  hold  up  hold hold  down  hold  hold (1 <= ema <= 3 is the dead band)
    assert levels == pytest.approx([0.0, 0.25, 0.25, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25])
    assert float(state["ema"]) == pytest.approx(1.25)
    assert int(state["steps_at_level"]) == 2


def test_episode_length_curriculum_clamps_to_unit_interval():
    up = EpisodeLengthCurriculum(num_levels=2, increase_threshold=1.0, decrease_threshold=0.5, min_level_steps=1)
    levels, _ = run(up, [{"episode_length_seconds": 5.0}] * 4)
    assert levels == pytest.approx([0.5, 1.0, 1.0, 1.0])
    levels, _ = run(up, [{"episode_length_seconds": 0.1}] * 2)
    assert levels == pytest.approx([0.0, 0.0])


def test_step_when_saturated_up_down_hold():
    curriculum = StepWhenSaturated(num_levels=10, increase_threshold=0.1, decrease_threshold=0.5, min_level_steps=1)
    deaths = [0.0, 0.05, 0.3, 0.6, 0.9, 0.9, 0.0, math.nan]
    levels, _ = run(curriculum, [{"deaths_per_episode": d} for d in deaths])
    # up, up, hold (0.1 <= 0.3 <= 0.5), down, down, clamp at 0, up, hold on NaN
    assert levels == pytest.approx([0.1, 0.2, 0.2, 0.1, 0.0, 0.0, 0.1, 0.1])


def test_step_when_saturated_waits_min_level_steps():
    curriculum = StepWhenSaturated(num_levels=10, increase_threshold=0.1, decrease_threshold=0.5, min_level_steps=3)
    levels, _ = run(curriculum, [{"deaths_per_episode": 0.0}] * 7)
    assert levels == pytest.approx([0.0, 0.0, 0.1, 0.1, 0.1, 0.2, 0.2])


def test_distance_from_origin_curriculum():
    curriculum = DistanceFromOriginCurriculum(num_levels=5, increase_threshold=2.0, decrease_threshold=0.5,
                                              ema_decay=0.0)
    levels, _ = run(curriculum, [{"distance_from_origin": d} for d in (3.0, 3.0, 1.0, 0.1)])
    assert levels == pytest.approx([0.2, 0.4, 0.4, 0.2])


def test_missing_metric_and_bad_settings_are_named():
    curriculum = EpisodeLengthCurriculum()
    with pytest.raises(KeyError, match="episode_length_seconds"):
        curriculum.step(curriculum.init_curriculum(DEV), {"episode_length": torch.tensor(3.0)})
    with pytest.raises(ValueError, match="decrease_threshold"):
        EpisodeLengthCurriculum(increase_threshold=1.0, decrease_threshold=2.0)
    with pytest.raises(ValueError, match="step_every_n_epochs"):
        LinearCurriculum(step_every_n_epochs=0)


def test_kbot_stand_curriculum_option():
    """kbot_stand grows pushes per iteration (the notebook), with the episode length (small CPU iterations), or starts full."""
    from ktorch_sim.components.curriculum import EpisodeLengthCurriculum, LinearCurriculum
    from ktorch_sim.tasks.kbot_stand import KbotStandConfig, KbotStandTask

    assert isinstance(KbotStandTask(KbotStandConfig()).get_curriculum(None), LinearCurriculum)
    cur = KbotStandTask(KbotStandConfig(curriculum="episode_length", curriculum_up_seconds=6.0)).get_curriculum(None)
    assert isinstance(cur, EpisodeLengthCurriculum)
    assert (cur.increase_threshold, cur.decrease_threshold, cur.num_levels) == (6.0, 3.0, 20)
    state = cur.init_curriculum(torch.device("cpu"))
    for _ in range(5):  # five iterations of 7 s episodes: up one level (1/20) once the hold time has passed
        cur.step(state, {"episode_length_seconds": torch.tensor(7.0)})
    assert float(state["level"]) == pytest.approx(0.05)
    full = KbotStandTask(KbotStandConfig(curriculum="full")).get_curriculum(None)  # pushes and noise from step 1
    state = full.init_curriculum(torch.device("cpu"))
    full.step(state, {"episode_length_seconds": torch.tensor(0.5), "num_steps": torch.tensor(1)})
    assert float(state["level"]) == 1.0
