"""Running mean/std normalization of policy inputs (optional; ksim has none, rsl_rl does)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class RunningNormalizer(nn.Module):
    """``(x - mean) / sqrt(var + eps)`` with statistics updated from rollout data only.

    The statistics are buffers, so they are saved with the model's state dict and restored on
    resume. Updates use the parallel (Chan et al.) merge of batch moments: no host sync. With ``until``
    the statistics stop moving after that many rows, so the policy's inputs keep one meaning from then on
    (``ppo.normalizer_steps``).
    """

    def __init__(self, size: int, eps: float = 1e-5, clip: float = 10.0, until: float = 0.0) -> None:
        """Statistics for inputs of width ``size``; ``until`` > 0: they stop moving once they hold that many
        rows (rsl_rl's ``EmpiricalNormalization(until=...)``; the batch that crosses it is merged whole)."""
        super().__init__()
        if until < 0:
            raise ValueError(f"until must be >= 0 (0: no limit), got {until}")
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        self.register_buffer("count", torch.tensor(1e-4))
        self.eps = eps
        self.clip = clip
        self.until = until
        # Sums a tensor over training processes (set by ktorch_sim.training.distributed); None: one process.
        self.reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

    @torch.no_grad()
    def update(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Merge the moments of a batch ``x`` [..., size] into the running statistics.

        Rows where ``mask`` [...] is False, and rows with a non-finite entry, are left out (one NaN
        would otherwise poison the statistics, and with them every world's policy input, for the
        rest of the run); still no host sync (on a CPU, where reading the count costs nothing, a call past
        :attr:`until` returns at once). With :attr:`reduce` set (several training processes), the
        batch's count, sum and squared deviations are summed over processes first, so every process
        merges the same moments: those of all processes' batches together.
        """
        if self.until > 0 and self.count.device.type == "cpu" and float(self.count) >= self.until:
            return  # held, and on the CPU the count is read without a sync: skip what the device path discards
        self._merge(x, mask)

    def _merge(self, x: torch.Tensor, mask: torch.Tensor | None) -> None:
        """:meth:`update`'s device path: merge, or past :attr:`until` keep the statistics, without a host read."""
        x = x.reshape(-1, x.shape[-1])
        finite = torch.isfinite(x).all(-1, keepdim=True)
        if mask is not None:
            finite = finite & mask.reshape(-1, 1)
        n = finite.sum().to(x.dtype)
        total_x = torch.where(finite, x, 0.0).sum(0)
        if self.reduce is not None:  # several ranks: the moments of every rank's batch together
            summed = self.reduce(torch.cat([n.reshape(1), total_x]))
            n, total_x = summed[0], summed[1:]
        batch_mean = total_x / n.clamp_min(1.0)
        squares = torch.where(finite, (x - batch_mean) ** 2, 0.0).sum(0)
        if self.reduce is not None:
            squares = self.reduce(squares)
        batch_var = squares / n.clamp_min(1.0)
        delta = batch_mean - self.mean
        total = self.count + n
        mean = self.mean + delta * n / total
        var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        if self.until > 0:  # past the limit the statistics stay as they are (a device-side choice: no host sync)
            moving = self.count < self.until
            mean, var, total = (torch.where(moving, new, old) for new, old in
                                ((mean, self.mean), (var, self.var), (total, self.count)))
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize and clip to +-``clip``."""
        return torch.clamp((x - self.mean) / torch.sqrt(self.var + self.eps), -self.clip, self.clip)


class ReturnScaler(nn.Module):
    """Scales rewards by the running std of the discounted return (SB3's VecNormalize, Gymnasium's
    NormalizeReward): ``r / sqrt(var(G) + eps)``, clipped to +-``clip``.

    ``G_t = gamma * G_{t-1} * (1 - done_{t-1}) + r_t`` is tracked per world across rollouts; its
    variance (not the reward's) sets the scale, so the value targets have roughly unit size
    whatever the task's reward magnitude and horizon. The mean is not subtracted (that would
    change which behaviour is optimal). State: the per-world returns and the statistics, both
    buffers (checkpointed with the trainer).
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8) -> None:
        """Track ``num_envs`` worlds' discounted returns with discount ``gamma``."""
        super().__init__()
        self.gamma = gamma
        self.clip = clip
        self.eps = eps
        self.register_buffer("returns", torch.zeros(num_envs))
        self.stats = RunningNormalizer(1, eps=eps)

    def scale(self) -> torch.Tensor:
        """The current divisor sqrt(var(G) + eps), a [1] tensor."""
        return torch.sqrt(self.stats.var + self.eps)

    @torch.no_grad()
    def forward(self, rewards: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Update the statistics with a rollout's ``rewards``/``done`` [N, T] and return the scaled rewards."""
        returns = torch.empty_like(rewards)
        running = self.returns
        for t in range(rewards.shape[1]):
            running = running * self.gamma + rewards[:, t]
            returns[:, t] = running
            running = running.masked_fill(done[:, t], 0.0)
        self.returns.copy_(running)
        self.stats.update(returns.reshape(-1, 1))
        return torch.clamp(rewards / self.scale(), -self.clip, self.clip)
