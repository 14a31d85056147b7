"""Action distributions for the policies: a per-dimension mixture of Gaussians and a diagonal Gaussian.

Both factorise over the last (action) dimension and report everything *per dimension*, shape
``[..., A]``, as ksim's xax distributions do; PPO sums log-probabilities and entropies over ``A``.
Both share one interface so PPO code does not care which one a policy returns:

    log_prob(action [..., A]) -> [..., A]       sample(generator) -> [..., A]
    mode() -> [..., A]                          entropy() -> [..., A]
    mean -> [..., A]                            stddev -> [..., A]
    deterministic() -> [..., A]                 the action a deterministic policy takes

``deterministic()`` is what evaluation, playback and export act with. For a Gaussian it is the
mean (= the mode). For the mixture it is the mixture mean ``sum_k w_k mu_k``, a smooth function of
the network's outputs. The two rules that pick a component, ksim's ``mode()`` (the heaviest
component's mean) and the highest point of the density (``density_mode``), jump from one component
to another when two weights or peaks are close, and a policy that switches from step to step falls:
over the 124 trained GRU mixture policies of docs/learning.md (Gymnasium tasks, 204,800 steps, 10
episodes each, every rule evaluated on the same starts) the mixture mean scored on average 0.88 of
the best rule on the same policy, the heaviest component 0.85 and the density mode 0.84, and it
collapsed (below half of the stochastic policy's score) on 3 policies against 6 and 7. A later run
shows both kinds of failure: on Walker2d the density mode scored 179 where the mixture mean scored 825
and sampled actions 1,030. The mean's own failure case is a policy bimodal in one joint, whose mean
is an action it never takes (HalfCheetah: 8 against 575 for the density mode; HalfCheetah without
velocities: -61 against 1,347). No rule is safe on every policy; the mean is best on average. Both
other rules stay available.

Why not ``torch.distributions.MixtureSameFamily``: it has neither ``entropy()`` nor ``mode``, and the
Monte-Carlo entropy TorchRL falls back to has an almost-zero gradient (measured 0.0007 against a
true 0.25), so an entropy bonus would do nothing. ``MixtureOfGaussians.entropy`` is a closed form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["DiagGaussian", "MixtureOfGaussians"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_HALF_LOG_2PIE = 0.5 * math.log(2.0 * math.pi * math.e)


def _normal_log_prob(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; loc, scale^2)."""
    z = (x - loc) / scale
    return -0.5 * z.square() - scale.log() - _HALF_LOG_2PI


def _normal_entropy(scale: torch.Tensor) -> torch.Tensor:
    """Elementwise differential entropy of N(., scale^2): 0.5 log(2 pi e sigma^2), in nats.

    ksim's xax ``Normal.entropy`` uses log(2 pi e) + log sigma (twice the constant); the gradient is the
    same but logged values differ. This is the true value.
    """
    return _HALF_LOG_2PIE + scale.log()


class DiagGaussian:
    """Independent Gaussians per action dimension: ``N(mean_a, std_a^2)``.

    Args:
        mean: Means, shape ``[..., A]``.
        std: Standard deviations (> 0), broadcastable to ``mean``.

    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.loc = mean
        self.scale = std.expand_as(mean)

    @property
    def mean(self) -> torch.Tensor:
        """Mean, ``[..., A]``."""
        return self.loc

    @property
    def stddev(self) -> torch.Tensor:
        """Standard deviation, ``[..., A]``."""
        return self.scale

    def mode(self) -> torch.Tensor:
        """Most likely action (the mean), ``[..., A]``."""
        return self.loc

    def deterministic(self) -> torch.Tensor:
        """The action of the deterministic policy: the mean, ``[..., A]``."""
        return self.loc

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """Log-density per dimension, ``[..., A]``."""
        return _normal_log_prob(action, self.loc, self.scale)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw one action, ``[..., A]``; reproducible given a seeded ``generator`` on the same device."""
        eps = torch.randn(self.loc.shape, generator=generator, device=self.loc.device, dtype=self.loc.dtype)
        return self.loc + self.scale * eps

    def entropy(self) -> torch.Tensor:
        """Exact entropy per dimension, 0.5 log(2 pi e sigma^2), ``[..., A]``."""
        return _normal_entropy(self.scale)


class MixtureOfGaussians:
    """Per-action-dimension mixture of K Gaussians (ksim's xax ``MixtureOfGaussians``).

    Dimension ``a`` is drawn from ``sum_k w_ak N(mu_ak, sigma_ak^2)`` with ``w_a = softmax(logits_a)``;
    the dimensions are independent.

    Args:
        means: Component means mu, shape ``[..., A, K]``.
        stds: Component standard deviations sigma (> 0), shape ``[..., A, K]``.
        logits: Unnormalised component log-weights, shape ``[..., A, K]``.

    """

    def __init__(self, means: torch.Tensor, stds: torch.Tensor, logits: torch.Tensor) -> None:
        if means.shape != stds.shape or means.shape != logits.shape or means.dim() < 2:
            raise ValueError(
                f"means, stds and logits must share one shape [..., A, K]; got {tuple(means.shape)}, "
                f"{tuple(stds.shape)}, {tuple(logits.shape)}"
            )
        self.means = means
        self.stds = stds
        self.logits = logits

    @property
    def num_components(self) -> int:
        """K, the number of Gaussians per dimension."""
        return self.means.shape[-1]

    @property
    def log_weights(self) -> torch.Tensor:
        """Normalised log mixing weights log w, ``[..., A, K]``."""
        return F.log_softmax(self.logits, dim=-1)

    @property
    def weights(self) -> torch.Tensor:
        """Mixing weights w (sum to 1 over K), ``[..., A, K]``."""
        return F.softmax(self.logits, dim=-1)

    @property
    def mean(self) -> torch.Tensor:
        """Mixture mean sum_k w_k mu_k, ``[..., A]``."""
        return (self.weights * self.means).sum(-1)

    @property
    def stddev(self) -> torch.Tensor:
        """Mixture standard deviation, ``[..., A]`` (law of total variance; for logging action std)."""
        w = self.weights
        mean = (w * self.means).sum(-1, keepdim=True)
        var = (w * (self.stds.square() + (self.means - mean).square())).sum(-1)
        return var.sqrt()

    def mode(self) -> torch.Tensor:
        """Mean of the most likely component per dimension, ``[..., A]`` (as ksim; not the density's argmax)."""
        idx = self.logits.argmax(dim=-1, keepdim=True)
        return self.means.gather(-1, idx).squeeze(-1)

    def deterministic(self) -> torch.Tensor:
        """The action of the deterministic policy: the mixture :attr:`mean`, ``[..., A]`` (module docstring: why)."""
        return self.mean

    def density_mode(self, iterations: int = 10) -> torch.Tensor:
        """The highest point of the mixture density per dimension, ``[..., A]`` (the true mode).

        Mean-shift from every component's mean: ``x <- sum_k r_k mu_k / sigma_k^2 / sum_k r_k / sigma_k^2``
        with ``r_k`` the responsibility of component k at x, the fixed-point iteration for the stationary
        points of a Gaussian mixture; of the K end points, the one of highest density wins.
        A fixed number of iterations keeps it exportable; 10 reach 1e-6 on well-separated or
        strongly overlapping components (tests). With one mode it is that mode whatever the weights.
        With one component it is that component's mean, exactly (no rounding from the iteration).
        """
        if self.num_components == 1:
            return self.means[..., 0]
        x = self._mean_shift(self.means, iterations)  # [..., A, K]: the K end points
        density = self.log_prob(x.movedim(-1, 0)).movedim(0, -1)  # [..., A, K]
        return x.gather(-1, density.argmax(-1, keepdim=True)).squeeze(-1)

    def mode_near_mean(self, iterations: int = 10) -> torch.Tensor:
        """The mode of the density whose basin holds the mixture :attr:`mean`, per dimension, ``[..., A]``.

        Mean-shift from the mean alone (one start, not :meth:`density_mode`'s K): where the components
        overlap it is the density's one mode, where they separate it climbs from the mean (which may lie in a
        valley of low density between them) to the peak on the heavier side. It moves continuously with the
        network's outputs except where the mean crosses from one basin to another.
        """
        if self.num_components == 1:
            return self.means[..., 0]
        return self._mean_shift(self.mean.unsqueeze(-1), iterations).squeeze(-1)

    def _mean_shift(self, starts: torch.Tensor, iterations: int) -> torch.Tensor:
        """Run ``iterations`` mean-shift steps from ``starts`` [..., A, S]; the S end points [..., A, S].

        ``x <- sum_k r_k mu_k / sigma_k^2 / sum_k r_k / sigma_k^2``, ``r_k`` the responsibility of component k
        at x: the fixed-point iteration for the stationary points of a Gaussian mixture.
        """
        x = starts.unsqueeze(-1)  # [..., A, S, 1]
        means = self.means.unsqueeze(-2)  # [..., A, 1, K components]
        half_inv_var = (0.5 / self.stds.square()).unsqueeze(-2)
        # log w_k - log sigma_k: the responsibilities' x-independent part (the 2 pi constant cancels)
        log_w = (self.log_weights - self.stds.log()).unsqueeze(-2)
        for _ in range(iterations):
            r = torch.softmax(log_w - (x - means).square() * half_inv_var, dim=-1) * half_inv_var
            x = ((r * means).sum(-1) / r.sum(-1)).unsqueeze(-1)
        return x.squeeze(-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        """Log-density per dimension, log sum_k w_k N(a; mu_k, sigma_k^2), ``[..., A]`` (stable logsumexp)."""
        comp = _normal_log_prob(action.unsqueeze(-1), self.means, self.stds)
        return torch.logsumexp(self.log_weights + comp, dim=-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw one action, ``[..., A]``: a component per dimension from w, then that Gaussian.

        The component is picked by inverting the weights' CDF with one uniform per dimension, so a seeded
        ``generator`` (on the same device as the parameters) makes the draw reproducible. Not
        reparameterised; PPO needs none.
        """
        shape, device, dtype = self.means.shape, self.means.device, self.means.dtype
        u = torch.rand(shape[:-1] + (1,), generator=generator, device=device, dtype=dtype)
        cdf = self.weights.cumsum(dim=-1)
        idx = (cdf < u).sum(dim=-1, keepdim=True).clamp(max=self.num_components - 1)
        eps = torch.randn(shape[:-1], generator=generator, device=device, dtype=dtype)
        loc = self.means.gather(-1, idx).squeeze(-1)
        scale = self.stds.gather(-1, idx).squeeze(-1)
        return loc + scale * eps

    def entropy(self) -> torch.Tensor:
        """Upper bound on the entropy per dimension, ``[..., A]``: H(w) + sum_k w_k H_k.

        H(w) = -sum_k w_k log w_k is the mixing entropy and H_k = 0.5 log(2 pi e sigma_k^2) the component
        entropies. It is the entropy of the joint (component, action), so it bounds the true mixture entropy
        from above (H(X) <= H(X, C)); it is exact for K = 1 and in the limit of well-separated components,
        and overshoots by up to H(w) when the components overlap. ksim uses this same approximation. It
        has a real gradient with respect to the stds and logits, unlike a Monte-Carlo estimate, but it does
        not depend on the means (see ``entropy_pairwise_kl`` for a tighter bound that does).
        """
        log_w = self.log_weights
        mixing = -(log_w.exp() * log_w).sum(-1)
        return mixing + (log_w.exp() * _normal_entropy(self.stds)).sum(-1)

    def entropy_pairwise_kl(self) -> torch.Tensor:
        """Tighter upper bound on the entropy per dimension, ``[..., A]``, that also depends on the means.

        The pairwise-distance estimator with D = KL (Kolchinsky and Tracey, 2017):
        sum_i w_i H_i - sum_i w_i log sum_j w_j exp(-KL(p_i || p_j)). It is an upper bound on the true
        entropy and never exceeds ``entropy()`` (the j = i term alone gives the H(w) term); it is exact for
        K = 1, for identical components and for well-separated ones. Costs O(K^2) per dimension.
        """
        mu_i, mu_j = self.means.unsqueeze(-1), self.means.unsqueeze(-2)
        log_s_i, log_s_j = self.stds.log().unsqueeze(-1), self.stds.log().unsqueeze(-2)
        var_i, var_j = self.stds.square().unsqueeze(-1), self.stds.square().unsqueeze(-2)
        kl_ij = log_s_j - log_s_i + (var_i + (mu_i - mu_j).square()) / (2.0 * var_j) - 0.5
        log_w = self.log_weights
        inner = torch.logsumexp(log_w.unsqueeze(-2) - kl_ij, dim=-1)
        w = log_w.exp()
        return (w * (_normal_entropy(self.stds) - inner)).sum(-1)
