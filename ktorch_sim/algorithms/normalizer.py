"""Running mean/std normalization of policy inputs (optional; ksim has none, rsl_rl does)."""

from __future__ import annotations

import torch
from torch import nn


class RunningNormalizer(nn.Module):
    """``(x - mean) / sqrt(var + eps)`` with statistics updated from rollout data only.

    The statistics are buffers, so they are saved with the model's state dict and restored on
    resume. Updates use the parallel (Chan et al.) merge of batch moments: no host sync.
    """

    def __init__(self, size: int, eps: float = 1e-5, clip: float = 10.0) -> None:
        """Statistics for inputs of width ``size``."""
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        self.register_buffer("count", torch.tensor(1e-4))
        self.eps = eps
        self.clip = clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge the moments of a batch ``x`` [..., size] into the running statistics.

        Rows with a non-finite entry are left out (one NaN would otherwise poison the statistics,
        and with them every world's policy input, for the rest of the run); still no host sync.
        """
        x = x.reshape(-1, x.shape[-1])
        finite = torch.isfinite(x).all(-1, keepdim=True)
        n = finite.sum().to(x.dtype)
        batch_mean = torch.where(finite, x, 0.0).sum(0) / n.clamp_min(1.0)
        batch_var = torch.where(finite, (x - batch_mean) ** 2, 0.0).sum(0) / n.clamp_min(1.0)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize and clip to +-``clip``."""
        return torch.clamp((x - self.mean) / torch.sqrt(self.var + self.eps), -self.clip, self.clip)
