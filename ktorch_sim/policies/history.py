"""A window of the last ``length`` inputs, kept as a carry: memory for feed-forward policies.

An MLP that sees only the current observation cannot tell how fast the base moves when the robot
measures no linear velocity (K-Bot's IMU gives angular rate and acceleration). Isaac Lab and mjlab
give such policies a history of observations; here the history is the policy's carry, so it is
zeroed at episode starts, replayed from the rollout for PPO's sequence minibatches and exported
to ONNX exactly like a GRU's state, with no change to storage or the training loop.

Layout: the carry is ``[B, length - 1, D]``, the previous inputs oldest first; a fresh episode's
carry is zeros, so its first window is zero-padded (a zero is the mean of a normalized input).
"""

from __future__ import annotations

import torch

__all__ = ["history_sequence", "history_step"]


def history_step(obs: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: ``obs`` [B, D], ``carry`` [B, L - 1, D] -> (window [B, L * D] oldest first, next carry)."""
    window = torch.cat((carry, obs.unsqueeze(1)), dim=1)
    return window.flatten(1), window[:, 1:]


def history_sequence(obs: torch.Tensor, carry0: torch.Tensor, resets: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every step's window of a sequence at once, equal to calling :func:`history_step` per step.

    ``obs`` [B, T, D], ``carry0`` [B, L - 1, D], ``resets`` [B, T] (the carry is zeroed before a
    marked step) -> (windows [B, T, L * D], the carry after the last step [B, L - 1, D]).
    """
    batch, steps, dim = obs.shape
    past = carry0.shape[1]
    padded = torch.cat((carry0, obs), dim=1)  # [B, L - 1 + T, D]; obs step t sits at row t + L - 1
    windows = padded.unfold(1, past + 1, 1).transpose(2, 3)  # [B, T, L, D]; window t holds rows t .. t + L - 1
    # A row from before the latest reset at or before step t reads as zero (the carry was zeroed); a
    # select, not a product, so a NaN from an earlier episode does not leak through the reset.
    time = torch.arange(steps, device=obs.device)
    latest_reset = torch.where(resets.bool(), time, -1).cummax(dim=1).values  # [B, T]; -1: none yet
    first_valid = torch.where(latest_reset >= 0, latest_reset + past, 0)  # in padded rows
    rows = time.unsqueeze(1) + torch.arange(past + 1, device=obs.device)  # [T, L] padded row of each slot
    keep = rows.unsqueeze(0) >= first_valid.unsqueeze(-1)  # [B, T, L]
    windows = torch.where(keep.unsqueeze(-1), windows, torch.zeros((), dtype=obs.dtype, device=obs.device))
    return windows.reshape(batch, steps, (past + 1) * dim), windows[:, -1, 1:]
