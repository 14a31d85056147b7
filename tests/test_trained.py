"""Loading a trained policy back: same weights, same actions, clear errors."""

from __future__ import annotations

import pytest
import torch

from ktorch_sim.checkpoint import CheckpointError, load_checkpoint
from ktorch_sim.playback.trained import load_trained_policy, resolve_checkpoint


def test_loads_the_checkpoint_weights_and_acts_deterministically(tiny_kbot_walk_run):
    policy = load_trained_policy(tiny_kbot_walk_run, overrides=["task.num_envs=3"])
    state = load_checkpoint(resolve_checkpoint(tiny_kbot_walk_run))
    for name, value in policy.model.state_dict().items():
        assert torch.equal(value, state["model"][name]), name
    assert policy.env.num_envs == 3 and policy.iteration == state["counters"]["iteration"]

    obs, cmd = policy.first["observation"], policy.first["command"]
    carry = policy.initial_carry()
    action, next_carry = policy.act(obs, cmd, carry)
    dist, _ = policy.task.run_actor(policy.model, obs, cmd, carry[0])
    assert torch.equal(action, dist.deterministic())
    full_action, full_carry, _ = policy.task.sample_action(policy.model, carry, obs, cmd, argmax=True)
    assert torch.equal(action, full_action) and torch.equal(next_carry[0], full_carry[0])
    assert action.shape == (3, 20) and torch.isfinite(action).all()
    # A done world's carry is zeroed, the others are kept.
    reset = policy.reset_carry(next_carry, torch.tensor([True, False, False]))
    assert torch.count_nonzero(reset[0][0]) == 0 and torch.equal(reset[0][1:], next_carry[0][1:])


def test_missing_run_dir_or_file_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        load_trained_policy(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_trained_policy(tmp_path / "nope.pt")
