"""Sim-to-real knobs between the policy and the motors, scaled by the curriculum level.

ksim models these in its engine (its EngineConfig): fractional action latency, dropped action
dimensions, encoder zero offsets and a slower actuator update rate. Here they shape the
per-substep target sequence ``[N, substeps, nu]`` that the engine writes into ``ctrl`` before
each physics substep, so they cost a few batched torch ops per control step and work on both
engines (and inside a captured graph).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, kw_only=True)
class Sim2RealConfig:
    """Sim-to-real settings (ksim's EngineConfig names); each magnitude is multiplied by the level.

    Attributes:
        action_latency_range: per-episode latency U(min, max) in seconds: within a control step
            the target moves from the previous one to the new one as the latency elapses,
            blending linearly across the substep where it ends (fractional latency).
        drop_action_prob: per control step and action dimension, the probability that the new
            target is lost and the previous one is held (a dropped CAN frame).
        zero_offset_std: std of a per-episode Gaussian encoder offset per joint, rad.
        zero_offset_mag: half-width of a per-episode uniform encoder offset per joint, rad
            (added to the Gaussian one when both are set, as in ksim).
        actuator_update_dt: period at which the motor controllers take new targets, seconds
            (None: every physics substep). The PD law itself still runs every substep in the
            physics: a real motor driver closes its loop at kHz rates, so the target, not the
            torque, is what updates slowly (ksim instead holds the torque).
    """

    action_latency_range: tuple[float, float] = (0.0, 0.0)
    drop_action_prob: float = 0.0
    zero_offset_std: float = 0.0
    zero_offset_mag: float = 0.0
    actuator_update_dt: float | None = None

    def __post_init__(self) -> None:
        """Reject impossible settings."""
        lo, hi = self.action_latency_range
        if not 0.0 <= lo <= hi:
            raise ValueError(f"action_latency_range must satisfy 0 <= min <= max, got {self.action_latency_range}")
        if not 0.0 <= self.drop_action_prob < 1.0:
            raise ValueError(f"drop_action_prob must be in [0, 1), got {self.drop_action_prob}")
        if self.zero_offset_std < 0 or self.zero_offset_mag < 0:
            raise ValueError("zero_offset_std and zero_offset_mag must be >= 0")
        if self.actuator_update_dt is not None and self.actuator_update_dt <= 0:
            raise ValueError(f"actuator_update_dt must be > 0 seconds or None, got {self.actuator_update_dt}")


class ControlPipeline:
    """Turns each control step's ctrl (N, nu) into per-substep targets (N, substeps, nu).

    Holds the per-world state: the previous targets, the per-episode latency (in physics
    steps) and the per-episode zero offsets (added to position targets: a motor whose encoder
    reads ``q - offset`` drives the joint to ``target + offset``).
    """

    def __init__(self, config: Sim2RealConfig, num_envs: int, num_actuators: int, substeps: int, dt: float,
                 device: torch.device, position_control: bool = True) -> None:
        """Allocate the state for ``num_envs`` worlds."""
        self.config = config
        self.substeps = substeps
        self.dt = dt
        self.position_control = position_control
        self.prev_ctrl = torch.zeros(num_envs, num_actuators, device=device)
        self.fresh = torch.ones(num_envs, dtype=torch.bool, device=device)
        self.latency_steps = torch.zeros(num_envs, device=device)
        self.zero_offset = torch.zeros(num_envs, num_actuators, device=device)
        substep = torch.arange(substeps, device=device, dtype=torch.float32)
        period = 1 if config.actuator_update_dt is None else max(1, round(config.actuator_update_dt / dt))
        # substep at which the held target was sampled (update-rate modelling)
        self._sample_substep = (torch.div(substep, period, rounding_mode="floor") * period)
        self._enabled = (config.action_latency_range[1] > 0 or config.drop_action_prob > 0 or period > 1
                         or config.zero_offset_std > 0 or config.zero_offset_mag > 0)

    def reset(self, mask: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> None:
        """New episodes: no previous target, and fresh latency and zero offsets (scaled by ``level``)."""
        cfg, dev = self.config, self.prev_ctrl.device
        n = mask.shape[0]
        self.fresh |= mask
        lo, hi = cfg.action_latency_range
        latency = (lo + (hi - lo) * torch.rand(n, generator=generator, device=dev)) * level / self.dt
        self.latency_steps.copy_(torch.where(mask, latency, self.latency_steps))
        offset = torch.zeros_like(self.zero_offset)
        if cfg.zero_offset_std:
            offset += cfg.zero_offset_std * torch.randn(offset.shape, generator=generator, device=dev)
        if cfg.zero_offset_mag:
            offset += cfg.zero_offset_mag * (2 * torch.rand(offset.shape, generator=generator, device=dev) - 1)
        self.zero_offset.copy_(torch.where(mask[:, None], offset * level[:, None], self.zero_offset))

    def substep_targets(self, ctrl: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Per-substep targets for this control step; updates the previous-target state."""
        if not self._enabled:
            self.prev_ctrl.copy_(ctrl)
            self.fresh.zero_()
            return ctrl
        cfg = self.config
        if self.position_control:
            ctrl = ctrl + self.zero_offset
        prev = torch.where(self.fresh[:, None], ctrl, self.prev_ctrl)
        if cfg.drop_action_prob:
            p = cfg.drop_action_prob * level[:, None]
            dropped = torch.rand(ctrl.shape, generator=generator, device=ctrl.device) < p
            ctrl = torch.where(dropped & ~self.fresh[:, None], prev, ctrl)
        # fraction of the way from prev to ctrl at each (held) substep: clip(k + 1 - latency, 0, 1)
        frac = torch.clamp(self._sample_substep[None, :] + 1.0 - self.latency_steps[:, None], 0.0, 1.0)
        targets = prev[:, None, :] + frac[:, :, None] * (ctrl - prev)[:, None, :]
        self.prev_ctrl.copy_(ctrl)
        self.fresh.zero_()
        return targets

