"""Curricula: the difficulty level in [0, 1], updated once per training iteration.

The level scales command ranges, noise, pushes, latency and reward weights (anything that takes
``ctx.curriculum_level``). A curriculum's state is a dict of scalar tensors on the training
device, ``{"level": float32, ...}``; :meth:`Curriculum.step` updates it in place from the
iteration's metrics (scalar tensors) using tensor ops only, so the trainer never waits on it.

Stepped curricula (:class:`EpisodeLengthCurriculum`, :class:`DistanceFromOriginCurriculum`,
:class:`StepWhenSaturated`) keep an integer level index ``k`` in 0..num_levels, with
``level = k / num_levels``, so repeated ±1 steps never accumulate float error, and a counter of
iterations since the last change: a change happens only once that counter reaches
``min_level_steps``, and resets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ktorch_sim.components.base import ComponentState, Curriculum

__all__ = [
    "ConstantCurriculum",
    "DistanceFromOriginCurriculum",
    "EpisodeLengthCurriculum",
    "LinearCurriculum",
    "StepWhenSaturated",
]


def _scalar(value: float, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return a 0-d tensor."""
    return torch.tensor(value, dtype=dtype, device=device)


def _metric(metrics: dict[str, torch.Tensor], key: str, like: torch.Tensor, who: str) -> torch.Tensor:
    """Fetch a scalar metric as float32 on ``like``'s device, with a clear error if it is missing."""
    if key not in metrics:
        raise KeyError(f"{who} needs the metric {key!r}; metrics given: {sorted(metrics)}")
    return torch.as_tensor(metrics[key], device=like.device).to(torch.float32).reshape(())


@dataclass(frozen=True, kw_only=True)
class ConstantCurriculum(Curriculum):
    """A fixed level (default 1.0: every curriculum-scaled quantity at full strength)."""

    level: float = 1.0

    def __post_init__(self) -> None:
        """Check the level is in [0, 1]."""
        if not 0.0 <= self.level <= 1.0:
            raise ValueError(f"level must be in [0, 1], got {self.level}")

    def init_curriculum(self, device: torch.device) -> ComponentState:
        """Return the fixed level."""
        return {"level": _scalar(self.level, device)}

    def step(self, state: ComponentState, metrics: dict[str, torch.Tensor]) -> None:
        """Keep the level."""


@dataclass(frozen=True, kw_only=True)
class LinearCurriculum(Curriculum):
    """A level that grows with training iterations, as ksim's rule.

    ``level = clip(floor((num_steps - delay_steps) / step_every_n_epochs) * step_size, min_level, 1)``
    where ``num_steps`` is the number of training iterations done (``metrics["num_steps"]``; when
    the metric is absent the curriculum counts its own calls to :meth:`step`). ksim's K-Bot
    example sets ``min_level=1``, which disables the curriculum.
    """

    step_size: float = 0.01
    step_every_n_epochs: int = 1
    min_level: float = 0.0
    delay_steps: int = 0

    def __post_init__(self) -> None:
        """Validate the schedule."""
        if self.step_every_n_epochs < 1:
            raise ValueError(f"step_every_n_epochs must be >= 1, got {self.step_every_n_epochs}")
        if not 0.0 <= self.min_level <= 1.0:
            raise ValueError(f"min_level must be in [0, 1], got {self.min_level}")

    def init_curriculum(self, device: torch.device) -> ComponentState:
        """Return the level at zero iterations and the iteration counter."""
        num_steps = _scalar(0, device, torch.long)
        return {"level": self._level(num_steps), "num_steps": num_steps}

    def step(self, state: ComponentState, metrics: dict[str, torch.Tensor]) -> None:
        """Set the level for the number of iterations done."""
        if "num_steps" in metrics:
            state["num_steps"].copy_(torch.as_tensor(metrics["num_steps"], device=state["num_steps"].device))
        else:
            state["num_steps"].add_(1)
        state["level"].copy_(self._level(state["num_steps"]))

    def _level(self, num_steps: torch.Tensor) -> torch.Tensor:
        """Evaluate the ksim formula as a float32 0-d tensor."""
        stages = torch.div(num_steps.to(torch.long) - self.delay_steps, self.step_every_n_epochs, rounding_mode="floor")
        return torch.clamp(stages.to(torch.float32) * self.step_size, self.min_level, 1.0)


@dataclass(frozen=True, kw_only=True)
class _SteppedCurriculum(Curriculum):
    """Level index k in 0..num_levels moved by ±1 when a signal says so, at most every min_level_steps."""

    num_levels: int = 100
    min_level_steps: int = 1

    def __post_init__(self) -> None:
        """Validate the level grid and hold time."""
        if self.num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {self.num_levels}")
        if self.min_level_steps < 1:
            raise ValueError(f"min_level_steps must be >= 1, got {self.min_level_steps}")

    def init_curriculum(self, device: torch.device) -> ComponentState:
        """Level 0 and an empty hold counter."""
        return {"level": _scalar(0.0, device), "level_index": _scalar(0, device, torch.long),
                "steps_at_level": _scalar(0, device, torch.long)}

    def signals(self, state: ComponentState, metrics: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Bool 0-d tensors (level up, level down) for this iteration."""
        raise NotImplementedError

    def step(self, state: ComponentState, metrics: dict[str, torch.Tensor]) -> None:
        """Count the iteration; move one level up or down if allowed and signalled."""
        state["steps_at_level"].add_(1)
        up, down = self.signals(state, metrics)
        allowed = state["steps_at_level"] >= self.min_level_steps
        delta = (allowed & up).to(torch.long) - (allowed & down & ~up).to(torch.long)
        new_index = torch.clamp(state["level_index"] + delta, 0, self.num_levels)
        changed = new_index != state["level_index"]
        state["steps_at_level"].copy_(torch.where(changed, 0, state["steps_at_level"]))
        state["level_index"].copy_(new_index)
        state["level"].copy_(new_index.to(torch.float32) / self.num_levels)


@dataclass(frozen=True, kw_only=True)
class _EmaCurriculum(_SteppedCurriculum):
    """Steps on an exponential moving average of one metric: up above, down below thresholds."""

    increase_threshold: float = 3.0
    decrease_threshold: float = 3.0
    ema_decay: float = 0.9

    METRIC: ClassVar[str] = ""

    def __post_init__(self) -> None:
        """Validate thresholds and decay."""
        super().__post_init__()
        if self.decrease_threshold > self.increase_threshold:
            raise ValueError(f"decrease_threshold ({self.decrease_threshold}) must be <= increase_threshold "
                             f"({self.increase_threshold})")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def init_curriculum(self, device: torch.device) -> ComponentState:
        """Level 0 and an empty average."""
        state = super().init_curriculum(device)
        state["ema"] = _scalar(0.0, device)
        state["ema_initialized"] = _scalar(False, device, torch.bool)
        return state

    def signals(self, state: ComponentState, metrics: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the average (skipping non-finite metrics), then compare it with the thresholds."""
        x = _metric(metrics, self.METRIC, state["ema"], type(self).__name__)
        valid = torch.isfinite(x)
        blended = self.ema_decay * state["ema"] + (1.0 - self.ema_decay) * x
        new_ema = torch.where(state["ema_initialized"], blended, x)
        state["ema"].copy_(torch.where(valid, new_ema, state["ema"]))
        state["ema_initialized"].copy_(state["ema_initialized"] | valid)
        ready = state["ema_initialized"]
        return ready & (state["ema"] > self.increase_threshold), ready & (state["ema"] < self.decrease_threshold)


@dataclass(frozen=True, kw_only=True)
class EpisodeLengthCurriculum(_EmaCurriculum):
    """Raises the level while episodes last long, lowers it when they get short.

    Keeps an EMA (decay ``ema_decay``) of the mean episode length in seconds
    (``metrics["episode_length_seconds"]``); one level (1 / num_levels) up when the EMA exceeds
    ``increase_threshold`` seconds, one down when it falls below ``decrease_threshold``, at most
    once every ``min_level_steps`` iterations. The EMA starts at the first finite metric
    (ksim's zero start would bias it low for the first ~1 / (1 - decay) iterations); iterations
    with no finished episode (NaN metric) leave it unchanged.
    """

    METRIC: ClassVar[str] = "episode_length_seconds"


@dataclass(frozen=True, kw_only=True)
class DistanceFromOriginCurriculum(_EmaCurriculum):
    """As :class:`EpisodeLengthCurriculum`, on the EMA of the distance from the origin (m).

    Reads ``metrics["distance_from_origin"]`` (the mean over finished episodes of the largest
    horizontal distance the base reached): the robot going far means it walks well.
    """

    increase_threshold: float = 1.0
    decrease_threshold: float = 1.0

    METRIC: ClassVar[str] = "distance_from_origin"


@dataclass(frozen=True, kw_only=True)
class StepWhenSaturated(_SteppedCurriculum):
    """Raises the level when the policy rarely fails, lowers it when it fails often.

    Reads ``metrics["deaths_per_episode"]`` (failed terminations per finished episode, in [0, 1]):
    one level up when it is below ``increase_threshold``, one down when it is above
    ``decrease_threshold``, at most once every ``min_level_steps`` iterations. Non-finite
    metrics (no finished episode) hold the level. Defaults are ours; the reference lists no values.
    """

    num_levels: int = 10
    increase_threshold: float = 0.1
    decrease_threshold: float = 0.5
    min_level_steps: int = 10

    def __post_init__(self) -> None:
        """Validate thresholds."""
        super().__post_init__()
        if self.increase_threshold > self.decrease_threshold:
            raise ValueError(f"increase_threshold ({self.increase_threshold}) must be <= decrease_threshold "
                             f"({self.decrease_threshold})")

    def init_curriculum(self, device: torch.device) -> ComponentState:
        """Level 0 and the last deaths-per-episode seen."""
        state = super().init_curriculum(device)
        state["deaths_per_episode"] = _scalar(float("nan"), device)
        return state

    def signals(self, state: ComponentState, metrics: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Compare this iteration's deaths per episode with the thresholds."""
        deaths = _metric(metrics, "deaths_per_episode", state["level"], type(self).__name__)
        state["deaths_per_episode"].copy_(deaths)
        return deaths < self.increase_threshold, deaths > self.decrease_threshold
