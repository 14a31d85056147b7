"""Policies: mixture-of-Gaussians and Gaussian distributions, the GRU stack, and the actor/critic networks."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from ktorch_sim.policies import (
    ActorCritic,
    DiagGaussian,
    GRUActor,
    GRUCritic,
    GRUStack,
    MixtureOfGaussians,
    MLPActor,
    MLPCritic,
)

HALF_LOG_2PIE = 0.5 * math.log(2.0 * math.pi * math.e)


def _normal_pdf(x: float, mu: float, sigma: float) -> float:
    return math.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))


def _mog(means, stds, weights, batch=()) -> MixtureOfGaussians:
    """A one-dimension-per-row mixture from per-component lists, expanded to ``batch + [A, K]``."""
    means_t = torch.tensor(means, dtype=torch.float64)
    stds_t = torch.tensor(stds, dtype=torch.float64)
    logits_t = torch.tensor(weights, dtype=torch.float64).log()
    shape = tuple(batch) + tuple(means_t.shape)
    return MixtureOfGaussians(means_t.expand(shape), stds_t.expand(shape), logits_t.expand(shape))


# ----------------------------------------------------------------------------------------------- distributions


def test_diag_gaussian_matches_torch_normal():
    mean = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)
    std = torch.tensor([[0.5, 1.5, 0.1]], dtype=torch.float64)
    action = torch.tensor([[0.1, 0.0, 2.3]], dtype=torch.float64)
    dist, ref = DiagGaussian(mean, std), torch.distributions.Normal(mean, std)
    torch.testing.assert_close(dist.log_prob(action), ref.log_prob(action), rtol=0, atol=1e-12)
    torch.testing.assert_close(dist.entropy(), ref.entropy(), rtol=0, atol=1e-12)
    assert torch.equal(dist.mode(), mean) and torch.equal(dist.mean, mean) and torch.equal(dist.stddev, std)
    samples = DiagGaussian(mean.expand(20000, 3), std.expand(20000, 3)).sample(torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples.mean(0), mean[0], rtol=0, atol=4 * 1.5 / math.sqrt(20000))
    torch.testing.assert_close(samples.std(0), std[0], rtol=0.03, atol=0)


def test_mog_log_prob_k1_equals_normal():
    means = torch.tensor([[0.2], [-1.0]], dtype=torch.float64)
    stds = torch.tensor([[0.3], [2.0]], dtype=torch.float64)
    dist = MixtureOfGaussians(means, stds, torch.randn(2, 1, dtype=torch.float64))
    action = torch.tensor([0.5, 1.0], dtype=torch.float64)
    expected = torch.distributions.Normal(means[:, 0], stds[:, 0]).log_prob(action)
    assert dist.log_prob(action).shape == (2,)
    torch.testing.assert_close(dist.log_prob(action), expected, rtol=0, atol=1e-12)


def test_mog_log_prob_k2_equals_log_weighted_sum():
    dist = _mog([[-1.0, 2.0], [0.0, 0.5]], [[0.5, 1.0], [1.0, 0.2]], [[0.3, 0.7], [0.9, 0.1]])
    action = [0.4, 0.45]
    expected = [
        math.log(0.3 * _normal_pdf(0.4, -1.0, 0.5) + 0.7 * _normal_pdf(0.4, 2.0, 1.0)),
        math.log(0.9 * _normal_pdf(0.45, 0.0, 1.0) + 0.1 * _normal_pdf(0.45, 0.5, 0.2)),
    ]
    got = dist.log_prob(torch.tensor(action, dtype=torch.float64))
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


def test_mog_log_prob_stable_far_in_the_tail():
    # Naive exp(log N) underflows to 0 here (log N ~ -1e5); logsumexp keeps it finite and exact.
    dist = MixtureOfGaussians(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.01, 0.02]]), torch.tensor([[0.0, 0.0]]))
    x = 5.0
    comps = [
        math.log(0.5) - 0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
        for m, s in ((0.0, 0.01), (1.0, 0.02))
    ]
    top = max(comps)
    expected = top + math.log(sum(math.exp(c - top) for c in comps))
    got = dist.log_prob(torch.tensor([x]))
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.tensor([expected]), rtol=1e-6, atol=0)


def test_mog_sample_moments_and_mean_stddev_properties():
    # w = (0.3, 0.7), mu = (-2, 3), sigma = (0.5, 1): mean 1.5, var = 0.3*(0.25+4) + 0.7*(1+9) - 1.5^2 = 6.025.
    n = 20000
    dist = _mog([[-2.0, 3.0]], [[0.5, 1.0]], [[0.3, 0.7]], batch=(n,))
    x = dist.sample(torch.Generator().manual_seed(1))
    assert x.shape == (n, 1)
    std = math.sqrt(6.025)
    torch.testing.assert_close(dist.mean[0], torch.tensor([1.5], dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(dist.stddev[0], torch.tensor([std], dtype=torch.float64), rtol=0, atol=1e-12)
    assert abs(x.mean().item() - 1.5) < 4 * std / math.sqrt(n)
    assert abs(x.std().item() - std) < 0.04


def test_mog_sample_honours_component_weights_per_dimension():
    # Components at -10 / +10 (sigma 1) never overlap, so the sign of a sample names its component.
    n = 20000
    dist = _mog([[-10.0, 10.0], [-10.0, 10.0]], [[1.0, 1.0], [1.0, 1.0]], [[0.3, 0.7], [0.9, 0.1]], batch=(n,))
    frac_positive = (dist.sample(torch.Generator().manual_seed(2)) > 0).double().mean(0)
    tol = 4 * math.sqrt(0.25 / n)
    torch.testing.assert_close(frac_positive, torch.tensor([0.7, 0.1], dtype=torch.float64), rtol=0, atol=tol)


def test_mog_mode_is_mean_of_most_likely_component():
    means = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    logits = torch.tensor([[[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]]])
    dist = MixtureOfGaussians(means, torch.ones_like(means), logits)
    assert torch.equal(dist.mode(), torch.tensor([[2.0, 4.0]]))


def test_mog_deterministic_action_is_the_mixture_mean():
    # Weights (0.25, 0.75) at -1 and 3: mean -0.25 + 2.25 = 2.0; equal weights at 4 and 6: 5.0. The density's
    # peak (3 and 4, the tie to the first) and the heaviest component (3, then the first of a tie, 4) differ.
    means = torch.tensor([[[-1.0, 3.0], [4.0, 6.0]]])
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.5, 0.5]]])
    dist = MixtureOfGaussians(means, torch.full_like(means, 0.3), logits)
    torch.testing.assert_close(dist.deterministic(), torch.tensor([[2.0, 5.0]]))
    torch.testing.assert_close(dist.density_mode(), torch.tensor([[3.0, 4.0]]), rtol=0, atol=1e-4)
    assert torch.equal(dist.mode(), torch.tensor([[3.0, 4.0]]))
    # Continuous in the network's outputs: a small change of the weights moves it a little (the mode jumps).
    nudged = MixtureOfGaussians(means, torch.full_like(means, 0.3), logits + torch.tensor([[[0.0, 0.0], [0.0, 1e-3]]]))
    assert (nudged.deterministic() - dist.deterministic()).abs().max() < 1e-3
    assert torch.equal(nudged.mode(), torch.tensor([[3.0, 6.0]]))
    gauss = DiagGaussian(torch.tensor([[0.5, -2.0]]), torch.tensor([[1.0, 3.0]]))
    assert torch.equal(gauss.deterministic(), torch.tensor([[0.5, -2.0]]))


def test_mog_density_mode_is_the_highest_peak():
    # Far apart (0.3 at -1, 0.7 at +1): the heavier peak, where the mixture mean (0.4) is a valley.
    far = MixtureOfGaussians(torch.tensor([[[-1.0, 1.0]]]), torch.full((1, 1, 2), 0.1),
                             torch.tensor([[[math.log(0.3), math.log(0.7)]]]))
    torch.testing.assert_close(far.density_mode(), torch.tensor([[1.0]]), rtol=0, atol=1e-4)
    # Overlapping and symmetric: one mode, at the centre, not at either component's mean.
    overlap = MixtureOfGaussians(torch.tensor([[[-0.2, 0.2]]]), torch.ones(1, 1, 2), torch.zeros(1, 1, 2))
    torch.testing.assert_close(overlap.density_mode(), torch.tensor([[0.0]]), rtol=0, atol=1e-6)
    # A narrow light spike (0.2 at 2, std 0.05) beats a broad heavy bump (0.8 at 0, std 2): density 1.6 vs 0.16.
    spike = MixtureOfGaussians(torch.tensor([[[0.0, 2.0]]]), torch.tensor([[[2.0, 0.05]]]),
                               torch.tensor([[[math.log(0.8), math.log(0.2)]]]))
    torch.testing.assert_close(spike.density_mode(), torch.tensor([[2.0]]), rtol=0, atol=1e-3)
    assert torch.equal(spike.mode(), torch.tensor([[0.0]]))  # ksim's rule: the heaviest component's mean
    # Random mixtures: no other point on a fine grid is higher than the mode found.
    gen = torch.Generator().manual_seed(0)
    dist = MixtureOfGaussians(torch.randn(16, 3, 4, generator=gen), torch.rand(16, 3, 4, generator=gen) + 0.2,
                              torch.randn(16, 3, 4, generator=gen))
    grid = torch.linspace(-6, 6, 4001).view(-1, 1, 1)
    best_on_grid = dist.log_prob(grid.expand(-1, 16, 3)).max(0).values
    assert (dist.log_prob(dist.density_mode()) >= best_on_grid - 1e-4).all()
    # One component: its mean, bit for bit (a chaotic task amplifies even a rounding difference).
    single = MixtureOfGaussians(torch.randn(8, 3, 1, generator=gen) * 1e3, torch.rand(8, 3, 1, generator=gen) + 1e-3,
                                torch.randn(8, 3, 1, generator=gen))
    assert torch.equal(single.density_mode(), single.means[..., 0])


def test_mog_mode_near_mean_climbs_from_the_mean_to_its_basins_peak():
    # Far apart (0.3 at -1, 0.7 at +1, std 0.1): the mean 0.4 lies in the valley; it climbs to the peak at +1.
    far = MixtureOfGaussians(torch.tensor([[[-1.0, 1.0]]]), torch.full((1, 1, 2), 0.1),
                             torch.tensor([[[math.log(0.3), math.log(0.7)]]]))
    torch.testing.assert_close(far.mean, torch.tensor([[0.4]]))
    torch.testing.assert_close(far.mode_near_mean(), torch.tensor([[1.0]]), rtol=0, atol=1e-4)
    # Overlapping and symmetric: the one mode, at the centre.
    overlap = MixtureOfGaussians(torch.tensor([[[-0.2, 0.2]]]), torch.ones(1, 1, 2), torch.zeros(1, 1, 2))
    torch.testing.assert_close(overlap.mode_near_mean(), torch.tensor([[0.0]]), rtol=0, atol=1e-6)
    # A broad heavy bump (0.8 at 0, std 2) and a narrow light spike (0.2 at 2, std 0.05): the mean (0.4) is in
    # the bump's basin (the spike's responsibility there is ~exp(-512)), so it stays at the bump's peak, 0, where
    # the density mode picks the spike's higher peak at 2.
    spike = MixtureOfGaussians(torch.tensor([[[0.0, 2.0]]]), torch.tensor([[[2.0, 0.05]]]),
                               torch.tensor([[[math.log(0.8), math.log(0.2)]]]))
    torch.testing.assert_close(spike.mode_near_mean(), torch.tensor([[0.0]]), rtol=0, atol=1e-4)
    torch.testing.assert_close(spike.density_mode(), torch.tensor([[2.0]]), rtol=0, atol=1e-3)
    # Random mixtures: the end point is a stationary point (one more step moves it by < 1e-4) and no lower
    # in density than where it started.
    gen = torch.Generator().manual_seed(1)
    dist = MixtureOfGaussians(torch.randn(16, 3, 4, generator=gen), torch.rand(16, 3, 4, generator=gen) + 0.5,
                              torch.randn(16, 3, 4, generator=gen))
    x = dist.mode_near_mean(iterations=50)
    torch.testing.assert_close(dist.mode_near_mean(iterations=51), x, rtol=0, atol=1e-4)
    assert (dist.log_prob(x) >= dist.log_prob(dist.mean) - 1e-6).all()
    # One component: its mean, bit for bit.
    single = MixtureOfGaussians(torch.randn(8, 3, 1, generator=gen), torch.rand(8, 3, 1, generator=gen) + 1e-3,
                                torch.randn(8, 3, 1, generator=gen))
    assert torch.equal(single.mode_near_mean(), single.means[..., 0])


def test_sampling_is_reproducible_with_a_seeded_generator():
    means, stds, logits = torch.randn(64, 20, 5), torch.rand(64, 20, 5) + 0.1, torch.randn(64, 20, 5)
    dist = MixtureOfGaussians(means, stds, logits)
    a = dist.sample(torch.Generator().manual_seed(7))
    b = dist.sample(torch.Generator().manual_seed(7))
    c = dist.sample(torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = DiagGaussian(means[..., 0], stds[..., 0])
    assert torch.equal(g.sample(torch.Generator().manual_seed(3)), g.sample(torch.Generator().manual_seed(3)))


def test_mog_entropy_k1_is_exact_with_unit_log_std_gradient():
    log_std = torch.tensor([[-1.0], [0.0], [0.7]], dtype=torch.float64, requires_grad=True)
    means = torch.zeros(3, 1, dtype=torch.float64, requires_grad=True)
    dist = MixtureOfGaussians(means, log_std.exp(), torch.zeros(3, 1, dtype=torch.float64))
    ent = dist.entropy()
    torch.testing.assert_close(ent, HALF_LOG_2PIE + log_std[:, 0], rtol=0, atol=1e-12)
    torch.testing.assert_close(ent, torch.distributions.Normal(0.0, log_std[:, 0].exp()).entropy(), rtol=0, atol=1e-12)
    ent.sum().backward()
    torch.testing.assert_close(log_std.grad, torch.ones(3, 1, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(dist.entropy_pairwise_kl(), ent.detach(), rtol=0, atol=1e-12)


def _mc_entropy(dist: MixtureOfGaussians, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte-Carlo estimate of the true entropy per dimension and its standard error."""
    big = MixtureOfGaussians(*(t.expand((n,) + t.shape) for t in (dist.means, dist.stds, dist.logits)))
    nll = -big.log_prob(big.sample(torch.Generator().manual_seed(seed)))
    return nll.mean(0), nll.std(0) / math.sqrt(n)


def test_mog_entropy_bounds_the_true_entropy():
    # Row 0: identical components (true H = H_k, bound overshoots by H(w) = log 2).
    # Row 1: well-separated components (bound is tight). Row 2: partial overlap, unequal weights.
    dist = _mog(
        [[0.0, 0.0], [-20.0, 20.0], [0.0, 1.0]],
        [[1.0, 1.0], [1.0, 2.0], [0.6, 0.9]],
        [[0.5, 0.5], [0.4, 0.6], [0.2, 0.8]],
    )
    mc, se = _mc_entropy(dist, 200000, seed=4)
    bound, pairwise = dist.entropy(), dist.entropy_pairwise_kl()
    assert (bound >= mc - 4 * se).all() and (pairwise >= mc - 4 * se).all() and (pairwise <= bound + 1e-12).all()
    torch.testing.assert_close(bound[0], torch.tensor(HALF_LOG_2PIE + math.log(2.0), dtype=torch.float64))
    torch.testing.assert_close(pairwise[0], torch.tensor(HALF_LOG_2PIE, dtype=torch.float64))
    mixing = -(0.4 * math.log(0.4) + 0.6 * math.log(0.6))
    expected_row1 = mixing + HALF_LOG_2PIE + 0.6 * math.log(2.0)
    torch.testing.assert_close(bound[1], torch.tensor(expected_row1, dtype=torch.float64), rtol=0, atol=1e-12)
    assert abs(bound[1].item() - mc[1].item()) < 4 * se[1].item()


def test_mog_entropy_gradients_are_real():
    torch.manual_seed(0)
    means = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    stds = (torch.rand(3, 4, dtype=torch.float64) + 0.2).requires_grad_()
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, lg: MixtureOfGaussians(means, s, lg).entropy(), (stds, logits))
    assert torch.autograd.gradcheck(
        lambda m, s, lg: MixtureOfGaussians(m, s, lg).entropy_pairwise_kl(), (means, stds, logits)
    )
    grads = torch.autograd.grad(MixtureOfGaussians(means, stds, logits).entropy().sum(), (stds, logits))
    assert all((g.abs() > 1e-6).all() for g in grads)
    g_means = torch.autograd.grad(MixtureOfGaussians(means, stds, logits).entropy_pairwise_kl().sum(), means)[0]
    assert (g_means.abs() > 1e-8).any()


def test_mog_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\[\.\.\., A, K\]"):
        MixtureOfGaussians(torch.zeros(2, 3), torch.ones(2, 4), torch.zeros(2, 3))


# ----------------------------------------------------------------------------------------------- GRU stack


def _step_loop(gru: GRUStack, x: torch.Tensor, carry: torch.Tensor, resets: torch.Tensor):
    outs = []
    for t in range(x.shape[1]):
        carry = torch.where(resets[:, t, None, None], gru.initial_carry(x.shape[0]), carry)
        out, carry = gru.step(x[:, t], carry)
        outs.append(out)
    return torch.stack(outs, 1), carry


def test_gru_sequence_equals_step_loop_with_resets():
    torch.manual_seed(0)
    gru = GRUStack(7, 16, 3)
    b, t = 4, 12
    x, carry0 = torch.randn(b, t, 7), torch.randn(b, 3, 16)
    resets = torch.zeros(b, t, dtype=torch.bool)
    resets[0, 5] = resets[1, 0] = resets[2, 3] = resets[2, 9] = resets[3, 11] = True
    out, carry = gru.sequence(x, carry0, resets)
    ref_out, ref_carry = _step_loop(gru, x, carry0, resets)
    assert out.shape == (b, t, 16) and carry.shape == (b, 3, 16)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-6)
    torch.testing.assert_close(carry, ref_carry, rtol=0, atol=1e-6)
    assert torch.equal(out[:, -1], carry[:, -1])
    # Without the resets the outputs differ, so the test above does exercise them.
    assert not torch.allclose(gru.sequence(x, carry0, torch.zeros_like(resets))[0], out, atol=1e-3)


def test_gru_reset_erases_the_past():
    torch.manual_seed(1)
    gru = GRUStack(5, 8, 2)
    x = torch.randn(2, 10, 5)
    resets = torch.zeros(2, 10, dtype=torch.bool)
    resets[:, 4] = True
    out, carry = gru.sequence(x, torch.randn(2, 2, 8), resets)
    fresh_out, _ = gru.step(x[:, 4], gru.initial_carry(2))
    torch.testing.assert_close(out[:, 4], fresh_out, rtol=0, atol=1e-6)
    # A different history before the reset changes nothing from the reset onwards.
    x2 = x.clone()
    x2[:, :4] = torch.randn(2, 4, 5)
    out2, carry2 = gru.sequence(x2, torch.randn(2, 2, 8), resets)
    torch.testing.assert_close(out2[:, 4:], out[:, 4:], rtol=0, atol=1e-6)
    torch.testing.assert_close(carry2, carry, rtol=0, atol=1e-6)
    assert not torch.allclose(out2[:, :4], out[:, :4], atol=1e-3)


def test_gru_rejects_bad_carry_shape():
    gru = GRUStack(5, 8, 2)
    with pytest.raises(ValueError, match="carry must be"):
        gru.step(torch.zeros(3, 5), torch.zeros(3, 8))


# ----------------------------------------------------------------------------------------------- actor / critic


def test_default_actor_parameter_count():
    # The notebook's actor: 51 inputs, 20 joints, hidden 128, depth 5, 5 mixtures.
    #   input projection  51*128 + 128                     =   6,656
    #   5 GRU cells       5 * (2 * 3*128*128 + 2 * 3*128)  = 495,360
    #   output            128*300 + 300 (20 * 3 * 5 = 300) =  38,700
    actor = GRUActor(51, 20, hidden_size=128, depth=5, num_mixtures=5)
    n = sum(p.numel() for p in actor.parameters())
    print(f"default GRUActor parameters: {n}")
    assert n == 6656 + 495360 + 38700 == 540716
    assert sum(b.numel() for b in actor.buffers()) == 20  # mean_bias, not trained


def test_actor_means_biased_and_stds_bounded_at_init():
    torch.manual_seed(0)
    bias = torch.linspace(-1.0, 1.0, 6)
    actor = GRUActor(
        9, 6, hidden_size=32, depth=2, num_mixtures=3, min_std=0.05, max_std=0.9, var_scale=0.5, mean_bias=bias
    )
    unbiased = GRUActor(9, 6, hidden_size=32, depth=2, num_mixtures=3, min_std=0.05, max_std=0.9, var_scale=0.5)
    unbiased.load_state_dict({**actor.state_dict(), "mean_bias": torch.zeros(6)})
    obs, carry = torch.randn(16, 9), actor.initial_carry(16)
    dist, next_carry = actor(obs, carry)
    ref, _ = unbiased(obs, carry)
    assert dist.means.shape == (16, 6, 3) and next_carry.shape == (16, 2, 32)
    torch.testing.assert_close(dist.means, ref.means + bias[:, None], rtol=0, atol=1e-6)
    assert (dist.means - bias[:, None]).abs().max() < 0.1  # small output layer: the policy starts at the home pose
    assert (dist.stds >= 0.05 * 0.5 - 1e-7).all() and (dist.stds <= 0.9).all()
    # Raw std ~ 0 at init: (softplus(0) + 0.05) * 0.5 = 0.3716, and near-uniform mixture weights.
    torch.testing.assert_close(dist.stds, torch.full_like(dist.stds, (math.log(2.0) + 0.05) * 0.5), rtol=0, atol=0.02)
    torch.testing.assert_close(dist.weights, torch.full_like(dist.weights, 1 / 3), rtol=0, atol=0.02)
    # A large var_scale hits the ceiling.
    actor.var_scale = 10.0
    assert torch.equal(actor(obs, carry)[0].stds, torch.full((16, 6, 3), 0.9))


def test_actor_with_parameter_stds_ignores_the_input_for_its_stds():
    torch.manual_seed(5)
    actor = GRUActor(9, 6, hidden_size=16, depth=2, num_mixtures=3, state_dependent_std=False, init_std=0.4)
    # The head emits means and logits only (2 * 6 * 3 = 36 outputs) and one std per joint and component.
    assert actor.output_proj.out_features == 36 and actor.log_std.shape == (6, 3)
    obs_a, obs_b = torch.randn(8, 9), 10.0 * torch.randn(8, 9)
    dist_a, _ = actor(obs_a, actor.initial_carry(8))
    dist_b, _ = actor(obs_b, actor.initial_carry(8))
    torch.testing.assert_close(dist_a.stds, torch.full((8, 6, 3), 0.4))
    assert not torch.allclose(dist_a.means, dist_b.means)
    with torch.no_grad():
        actor.log_std[2, 1] = math.log(0.7)
    dist, _ = actor(obs_b, actor.initial_carry(8))
    assert torch.allclose(dist.stds[:, 2, 1], torch.tensor(0.7)) and torch.equal(dist.stds[:, 0], dist_a.stds[:, 0])
    with pytest.raises(ValueError, match="init_std must be > 0"):
        GRUActor(9, 6, state_dependent_std=False, init_std=0.0)


def test_gru_head_hidden_layers_sit_between_the_gru_and_the_output():
    torch.manual_seed(6)
    actor = GRUActor(9, 4, hidden_size=16, depth=2, num_mixtures=3, head_hidden=(24, 8), activation="tanh")
    critic = GRUCritic(11, hidden_size=16, depth=1, head_hidden=(12,), activation="relu")
    assert actor.output_proj.in_features == 8 and critic.output_proj.in_features == 12
    obs, carry = torch.randn(5, 9), actor.initial_carry(5)
    dist, _ = actor(obs, carry)
    # By hand: the GRU's output, two tanh layers, the output layer, split into means, raw stds, logits.
    h, _ = actor.gru.step(obs, carry)
    l1, l2 = actor.head_mlp[0], actor.head_mlp[2]
    out = actor.output_proj(torch.tanh(l2(torch.tanh(l1(h)))))
    mean_raw, std_raw, logits = out.chunk(3, dim=-1)
    torch.testing.assert_close(dist.means, mean_raw.reshape(5, 4, 3))
    torch.testing.assert_close(dist.logits, logits.reshape(5, 4, 3))
    torch.testing.assert_close(dist.stds, torch.nn.functional.softplus(std_raw.reshape(5, 4, 3)) + 0.01)
    c_obs, c_carry = torch.randn(5, 11), critic.initial_carry(5)
    value, _ = critic(c_obs, c_carry)
    hc, _ = critic.gru.step(c_obs, c_carry)
    torch.testing.assert_close(value, critic.output_proj(torch.relu(critic.head_mlp[0](hc))))
    # Gradients reach every layer; with no head layers the state dict keeps ksim's keys.
    (dist.log_prob(dist.sample()).sum() + value.sum()).backward()
    assert all(p.grad is not None for p in [*actor.parameters(), *critic.parameters()])
    assert not any(k.startswith("head_mlp") for k in GRUActor(9, 4, hidden_size=8, depth=1).state_dict())
    with pytest.raises(ValueError, match="activation must be one of"):
        GRUActor(9, 4, head_hidden=(8,), activation="gelu")


def test_actor_forward_sequence_equals_forward_loop():
    torch.manual_seed(2)
    actor = GRUActor(9, 4, hidden_size=16, depth=3, num_mixtures=2)
    critic = GRUCritic(11, hidden_size=16, depth=2)
    b, t = 3, 6
    obs_a, obs_c = torch.randn(b, t, 9), torch.randn(b, t, 11)
    resets = torch.zeros(b, t, dtype=torch.bool)
    resets[1, 2] = True
    dist, a_carry = actor.forward_sequence(obs_a, actor.initial_carry(b), resets)
    values, c_carry = critic.forward_sequence(obs_c, critic.initial_carry(b), resets)
    assert dist.means.shape == (b, t, 4, 2) and values.shape == (b, t, 1)
    ac, cc = actor.initial_carry(b), critic.initial_carry(b)
    for step in range(t):
        keep = (~resets[:, step]).float()[:, None, None]
        d, ac = actor(obs_a[:, step], ac * keep)
        v, cc = critic(obs_c[:, step], cc * keep)
        for got, want in ((dist.means, d.means), (dist.stds, d.stds), (dist.logits, d.logits), (values, v)):
            torch.testing.assert_close(got[:, step], want, rtol=0, atol=1e-6)
    torch.testing.assert_close(a_carry, ac, rtol=0, atol=1e-6)
    torch.testing.assert_close(c_carry, cc, rtol=0, atol=1e-6)


def test_mlp_actor_critic_interface():
    actor = MLPActor(9, 4, hidden_sizes=(32, 16), init_std=0.5, mean_bias=[0.1, 0.2, 0.3, 0.4])
    critic = MLPCritic(12, hidden_sizes=(32,))
    ac = ActorCritic(actor, critic)
    a_carry, c_carry = ac.initial_carry(5)
    assert a_carry.shape == (5, 0) and c_carry.shape == (5, 0)
    torch.testing.assert_close(actor.log_std.detach(), torch.full((4,), math.log(0.5)))
    dist, carry = actor(torch.randn(5, 9), a_carry)
    assert carry is a_carry and torch.equal(dist.stddev, torch.full((5, 4), 0.5))
    assert (dist.mean - torch.tensor([0.1, 0.2, 0.3, 0.4])).abs().max() < 0.1
    seq, _ = actor.forward_sequence(torch.randn(5, 7, 9), a_carry, torch.zeros(5, 7, dtype=torch.bool))
    values, _ = critic.forward_sequence(torch.randn(5, 7, 12), c_carry, torch.zeros(5, 7, dtype=torch.bool))
    assert seq.mean.shape == (5, 7, 4) and values.shape == (5, 7, 1)


def test_actor_critic_initial_carry_shapes():
    ac = ActorCritic(GRUActor(9, 4, hidden_size=16, depth=3), GRUCritic(11, hidden_size=8, depth=2))
    a, c = ac.initial_carry(6)
    assert a.shape == (6, 3, 16) and c.shape == (6, 2, 8) and not a.any() and not c.any()


def test_mean_bias_length_is_checked():
    with pytest.raises(ValueError, match="mean_bias has 3 entries"):
        GRUActor(9, 4, mean_bias=[0.0, 0.0, 0.0])


@pytest.mark.parametrize("kind", ["gru", "gru_parameter_std", "mlp"])
def test_gradients_reach_every_parameter_in_a_ppo_like_loss(kind):
    torch.manual_seed(3)
    if kind.startswith("gru"):
        ac = ActorCritic(GRUActor(9, 4, hidden_size=16, depth=3, num_mixtures=3,
                                  state_dependent_std=kind == "gru"), GRUCritic(11, 16, 2))
    else:
        ac = ActorCritic(MLPActor(9, 4, hidden_sizes=(16, 16)), MLPCritic(11, hidden_sizes=(16,)))
    b, t = 4, 8
    obs_a, obs_c = torch.randn(b, t, 9), torch.randn(b, t, 11)
    resets = torch.rand(b, t) < 0.2
    a0, c0 = ac.initial_carry(b)
    with torch.no_grad():
        old, _ = ac.actor.forward_sequence(obs_a, a0, resets)
        actions = old.sample(torch.Generator().manual_seed(0))
        old_log_prob = old.log_prob(actions).sum(-1)
    dist, _ = ac.actor.forward_sequence(obs_a, a0, resets)
    values, _ = ac.critic.forward_sequence(obs_c, c0, resets)
    adv, target = torch.randn(b, t), torch.randn(b, t)
    ratio = (dist.log_prob(actions).sum(-1) - old_log_prob).exp()
    loss_policy = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
    loss = loss_policy + 0.5 * (values[..., 0] - target).square().mean() - 0.01 * dist.entropy().sum(-1).mean()
    loss.backward()
    for name, p in ac.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_tensordict_modules_run_on_a_tensordict():
    torch.manual_seed(4)
    actor, critic = GRUActor(9, 4, hidden_size=16, depth=2, num_mixtures=3), GRUCritic(11, 16, 2)
    b = 5
    td = TensorDict(
        {
            "actor_obs": torch.randn(b, 9),
            "actor_carry": actor.initial_carry(b),
            "critic_obs": torch.randn(b, 11),
            "critic_carry": critic.initial_carry(b),
        },
        batch_size=[b],
    )
    actor.as_tensordict_module()(td)
    critic.as_tensordict_module()(td)
    dist, carry = actor(td["actor_obs"], td["actor_carry"])
    assert td["loc"].shape == (b, 4, 3) and td["state_value"].shape == (b, 1)
    for key, want in (("loc", dist.means), ("scale", dist.stds), ("logits", dist.logits), ("next_actor_carry", carry)):
        assert torch.equal(td[key], want), key
    assert torch.equal(td["state_value"], critic(td["critic_obs"], td["critic_carry"])[0])
    module = MLPActor(9, 4, hidden_sizes=(8,)).as_tensordict_module()
    assert list(module.parameters()) and set(module.out_keys) == {"loc", "scale", "next_actor_carry"}
    out = module(TensorDict({"actor_obs": torch.randn(b, 9), "actor_carry": torch.zeros(b, 0)}, batch_size=[b]))
    assert out["loc"].shape == (b, 4) and out["next_actor_carry"].shape == (b, 0)


@pytest.mark.parametrize("policy", ["mlp", "gru"])
def test_init_choice(policy):
    """``model.init``: orthogonal layers (zero biases, the actor's output at gain 0.01) or PyTorch's
    default (non-zero biases, output weights of ordinary size, as rsl_rl's MLPs)."""
    from ktorch_sim.policies import GRUActor, MLPActor

    def actor(init):
        torch.manual_seed(0)
        if policy == "mlp":
            net = MLPActor(6, 3, hidden_sizes=(32, 32), init=init)
            return net, net.net[-1], net.net[0]
        net = GRUActor(6, 3, hidden_size=32, depth=1, num_mixtures=2, init=init)
        return net, net.output_proj, net.gru.input_proj

    _, out, first = actor("orthogonal")
    w = first.weight.detach()
    gram = (w @ w.T) if w.shape[0] <= w.shape[1] else (w.T @ w)
    assert torch.allclose(gram, 2.0 * torch.eye(gram.shape[0]), atol=1e-4)  # orthogonal, gain sqrt(2)
    assert float(first.bias.detach().abs().max()) == 0.0
    assert float(out.weight.detach().norm(dim=1).max()) == pytest.approx(0.01, rel=1e-3)
    _, out, first = actor("torch")
    assert float(first.bias.detach().abs().max()) > 0.0
    assert float(out.weight.detach().norm(dim=1).max()) > 0.1
    with pytest.raises(ValueError, match="init must be one of"):
        actor("xavier")


def test_input_history_sequence_equals_step_loop_with_resets():
    """The windows of a whole sequence equal stepping the carry one control step at a time, zeroing it
    at resets; a NaN input of an ended episode does not reach the next one."""
    from ktorch_sim.policies.history import history_sequence, history_step

    torch.manual_seed(0)
    batch, steps, dim, length = 3, 9, 2, 4
    obs, carry0 = torch.randn(batch, steps, dim), torch.randn(batch, length - 1, dim)
    resets = torch.zeros(batch, steps, dtype=torch.bool)
    resets[0, [0, 2, 3, 8]] = resets[1, 2] = resets[2, [2, 3, 7]] = True
    obs[1, 1] = float("nan")  # world 1's episode ends after this step
    windows, last = history_sequence(obs, carry0, resets)
    carry, expected = carry0, []
    for t in range(steps):
        carry = carry.masked_fill(resets[:, t].view(-1, 1, 1), 0.0)
        window, carry = history_step(obs[:, t], carry)
        expected.append(window)
    torch.testing.assert_close(windows, torch.stack(expected, 1), rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(last, carry, rtol=0, atol=0)
    assert bool(torch.isfinite(windows[1, 2:]).all())
    # Hand-worked: world 2, step 1 (no reset yet) = carry0's last two rows, then obs 0 and 1.
    torch.testing.assert_close(windows[2, 1], torch.cat((carry0[2, 1:], obs[2, :2])).flatten())
    # World 0, step 5: the latest reset was at step 3, so rows before it are zero.
    torch.testing.assert_close(windows[0, 5], torch.cat((torch.zeros(1, dim), obs[0, 3:6])).flatten())


def test_mlp_actor_with_history():
    """``history=3``: the MLP reads [previous 2 inputs, current] (carry [B, 2, in]); its sequence pass equals
    its step loop; ``history=1`` keeps the empty carry and the plain MLP."""
    from ktorch_sim.policies import MLPActor

    torch.manual_seed(0)
    actor = MLPActor(5, 2, hidden_sizes=(16,), history=3)
    assert actor.net[0].in_features == 15 and actor.initial_carry(4).shape == (4, 2, 5)
    assert MLPActor(5, 2, hidden_sizes=(16,)).initial_carry(4).shape == (4, 0)
    obs, resets = torch.randn(4, 6, 5), torch.rand(4, 6) < 0.3
    carry0 = torch.randn(4, 2, 5)
    seq, last = actor.forward_sequence(obs, carry0, resets)
    carry, means = carry0, []
    for t in range(6):
        carry = carry.masked_fill(resets[:, t].view(-1, 1, 1), 0.0)
        dist, carry = actor(obs[:, t], carry)
        means.append(dist.deterministic())
    torch.testing.assert_close(seq.deterministic(), torch.stack(means, 1), atol=1e-6, rtol=0)
    torch.testing.assert_close(last, carry)
    # The past matters: the same current input after a different past gives another action.
    a, _ = actor(obs[:, 0], torch.zeros(4, 2, 5))
    b, _ = actor(obs[:, 0], torch.ones(4, 2, 5))
    assert not torch.allclose(a.deterministic(), b.deterministic())
    with pytest.raises(ValueError, match="history must be >= 1"):
        MLPActor(5, 2, history=0)
