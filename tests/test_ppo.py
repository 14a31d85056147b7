"""PPO math against hand-worked numbers: GAE with terminations and truncations, clipped losses."""

from __future__ import annotations

import math

import pytest
import torch

from ktorch_sim.algorithms.ppo import AdaptiveKL, PPOLossConfig, compute_gae, learning_rate_at, ppo_losses


def _gae_by_hand(r, v, nv, done, term, trunc, gamma, lam):
    T = len(r)
    adv = [0.0] * T
    last = 0.0
    for t in reversed(range(T)):
        next_v = v[t] if trunc[t] else nv[t]
        delta = r[t] + gamma * next_v * (0.0 if term[t] else 1.0) - v[t]
        last = delta + gamma * lam * (0.0 if done[t] else 1.0) * last
        adv[t] = last
    return adv


def test_gae_matches_a_hand_computation_with_failure_and_time_limit():
    r = [1.0, 0.5, -1.0, 2.0, 0.3]
    v = [0.2, 0.4, 0.1, 0.9, 0.5]
    nv = [0.4, 0.1, 7.0, 0.5, 0.6]  # nv[2] belongs to the next episode
    done = [False, False, True, True, False]
    term = [False, False, True, False, False]  # step 2 fails, step 3 hits the time limit
    trunc = [False, False, False, True, False]
    gamma, lam = 0.9, 0.8
    want = _gae_by_hand(r, v, nv, done, term, trunc, gamma, lam)
    as_t = lambda x, dt=torch.float32: torch.tensor([x], dtype=dt)  # noqa: E731
    adv, target = compute_gae(as_t(r), as_t(v), as_t(nv), as_t(done, torch.bool), as_t(term, torch.bool),
                              as_t(trunc, torch.bool), gamma, lam)
    torch.testing.assert_close(adv[0], torch.tensor(want), atol=1e-6, rtol=0)
    torch.testing.assert_close(target, adv + as_t(v))
    # the failed step does not bootstrap: A_2 = r_2 - V_2
    assert adv[0, 2].item() == pytest.approx(-1.0 - 0.1)
    # the truncated step bootstraps from its own value, not the next episode's
    assert adv[0, 3].item() == pytest.approx(2.0 + 0.9 * 0.9 - 0.9)
    # ppo.bootstrap_truncated = false: the time limit counts as a failure, A_3 = r_3 - V_3, and the
    # earlier steps of that episode see it through the recursion (A_2's episode ended before: unchanged)
    adv_nb, _ = compute_gae(as_t(r), as_t(v), as_t(nv), as_t(done, torch.bool), as_t(term, torch.bool),
                            as_t(trunc, torch.bool), gamma, lam, bootstrap_truncated=False)
    failed = [t or u for t, u in zip(term, trunc)]
    torch.testing.assert_close(adv_nb[0], torch.tensor(_gae_by_hand(r, v, nv, done, failed, trunc, gamma, lam)),
                               atol=1e-6, rtol=0)
    assert adv_nb[0, 3].item() == pytest.approx(2.0 - 0.9)
    assert adv_nb[0, 2].item() == adv[0, 2].item() and adv_nb[0, 4].item() == adv[0, 4].item()


def test_clipped_surrogate_and_value_loss_by_hand():
    cfg = PPOLossConfig(clip_param=0.2, value_loss_coef=0.5, entropy_coef=0.01, normalize_advantages=False)
    old = torch.zeros(1, 2)
    new = torch.tensor([[math.log(1.5), math.log(0.5)]])  # ratios 1.5 and 0.5
    adv = torch.tensor([[1.0, -1.0]])
    values, old_values, targets = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.0]]), torch.tensor([[0.0, 1.0]])
    entropy = torch.tensor([[2.0, 4.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    out = ppo_losses(new, old, values, old_values, adv, targets, entropy, mask, cfg)
    # surrogate: min(1.5*1, 1.2*1) = 1.2 ; min(0.5*-1, 0.8*-1) = -0.8 -> objective -(1.2 - 0.8)/2
    assert out["loss_objective"].item() == pytest.approx(-0.2)
    # value: world 0 max((1-0)^2, (0.5+0.2-0)^2) = 1 ; world 1 max(1, 1) = 1 -> 0.5 * 0.5 * 1
    assert out["loss_critic"].item() == pytest.approx(0.25)
    assert out["loss_entropy"].item() == pytest.approx(-0.01 * 3.0)
    assert out["clip_fraction"].item() == pytest.approx(1.0)


def test_masked_steps_do_not_count():
    cfg = PPOLossConfig(normalize_advantages=False)
    x = torch.tensor([[1.0, float("nan")]])
    mask = torch.tensor([[True, False]])
    zeros = torch.zeros(1, 2)
    out = ppo_losses(zeros, zeros, zeros, zeros, torch.nan_to_num(x), zeros, zeros, mask, cfg)
    assert torch.isfinite(out["loss_objective"])
    assert out["loss_objective"].item() == pytest.approx(-1.0)


def test_learning_rate_warmup_and_cosine():
    assert learning_rate_at(0, 1.0, 10, "constant", 100, 0.01) == pytest.approx(0.01)
    assert learning_rate_at(10, 1.0, 10, "constant", 100, 0.01) == pytest.approx(1.0)
    assert learning_rate_at(100, 1.0, 0, "cosine", 100, 0.01) == pytest.approx(0.01)
    assert learning_rate_at(50, 1.0, 0, "cosine", 100, 0.0) == pytest.approx(0.5)
    # linear (SB3 zoo, CleanRL): straight from base to min_fraction * base after the warmup
    assert learning_rate_at(10, 2.0, 10, "linear", 110, 0.1) == pytest.approx(2.0)
    assert learning_rate_at(60, 2.0, 10, "linear", 110, 0.1) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert learning_rate_at(110, 2.0, 10, "linear", 110, 0.1) == pytest.approx(0.2)
    assert learning_rate_at(500, 2.0, 10, "linear", 110, 0.1) == pytest.approx(0.2)
    assert learning_rate_at(25, 1.0, 0, "linear", 0, 0.0) == pytest.approx(1.0)  # unlimited run: no decay


def test_adaptive_kl_controllers():
    kl = AdaptiveKL(desired_kl=0.01, kl_coef=1.0, adapt_lr=True, adapt_coef=True)
    kl.update(0.1)
    assert kl.kl_coef == pytest.approx(1.5) and kl.lr_scale == pytest.approx(1 / 1.5)
    kl.update(0.001)
    assert kl.kl_coef == pytest.approx(1.0) and kl.lr_scale == pytest.approx(1.0)
