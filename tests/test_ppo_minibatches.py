"""How PPO cuts a rollout into minibatches, and the reward scaling, checked against hand-worked values.

Feed-forward policies train on shuffled single transitions; recurrent ones on sequences whose
starting carries must equal the carries the policy had while collecting.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tensordict import TensorDict

from ktorch_sim.algorithms.carry import index_carry, is_recurrent, reset_carry, stack_carries
from ktorch_sim.algorithms.normalizer import ReturnScaler
from ktorch_sim.algorithms.ppo import PPO
from ktorch_sim.config import PPOConfig
from ktorch_sim.errors import ConfigError
from ktorch_sim.policies import ActorCritic, GRUActor, GRUCritic, MLPActor, MLPCritic
from ktorch_sim.ppo_task import PPOTask

N, T, OBS, ACT = 4, 8, 3, 2


class _Task:
    """Just the PPO hooks PPO.update calls, with PPOTask's own implementation of get_ppo_variables."""

    normalizers = None
    actor_inputs = PPOTask.actor_inputs
    critic_inputs = PPOTask.critic_inputs
    _normalized = PPOTask._normalized
    actor_features = PPOTask.actor_features
    critic_features = PPOTask.critic_features
    get_actor_observation_names = PPOTask.get_actor_observation_names
    get_critic_observation_names = PPOTask.get_critic_observation_names
    get_ppo_variables = PPOTask.get_ppo_variables

    def __init__(self) -> None:
        self.seen: list[tuple[int, ...]] = []

    def record(self, model, trajectory, carry):
        self.seen.append(tuple(trajectory.batch_size))
        return PPOTask.get_ppo_variables(self, model, trajectory, carry)


def _buffer(done: torch.Tensor) -> TensorDict:
    g = torch.Generator().manual_seed(0)
    z = torch.zeros(N, T, 1, dtype=torch.bool)
    return TensorDict({
        "observation": TensorDict({"x": torch.randn(N, T, OBS, generator=g)}, batch_size=[N, T]),
        "command": TensorDict({}, batch_size=[N, T]),
        "action": torch.randn(N, T, ACT, generator=g), "log_prob": torch.randn(N, T, generator=g),
        "value": torch.randn(N, T, generator=g), "next_value": torch.randn(N, T, generator=g),
        "next": TensorDict({"reward": torch.randn(N, T, 1, generator=g), "done": done[..., None],
                            "terminated": done[..., None], "truncated": z, "bad_physics": z[..., 0],
                            "bad_action": z[..., 0],
                            "reward_terms": TensorDict({}, batch_size=[N, T])}, batch_size=[N, T]),
    }, batch_size=[N, T])


def _ppo(model, **overrides) -> tuple[PPO, _Task]:
    task = _Task()
    cfg = PPOConfig(num_passes=1, kl_coef=0.0, **overrides)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    ppo = PPO(task, model, cfg, torch.Generator().manual_seed(1), optimizer=opt)
    task.get_ppo_variables = task.record
    return ppo, task


def _mlp() -> ActorCritic:
    return ActorCritic(MLPActor(OBS, ACT, hidden_sizes=(8,)), MLPCritic(OBS, hidden_sizes=(8,)))


def _gru() -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(GRUActor(OBS, ACT, hidden_size=6, depth=2, num_mixtures=2, sequence_method="loop"),
                       GRUCritic(OBS, hidden_size=6, depth=2, sequence_method="loop"))


def test_feed_forward_minibatches_are_shuffled_single_transitions():
    model = _mlp()
    ppo, task = _ppo(model, minibatch_size=5)
    ppo.update(_buffer(torch.zeros(N, T, dtype=torch.bool)), model.initial_carry(N))
    # 32 transitions in minibatches of 5: six of 5 and one of 2, each a batch of one-step sequences.
    assert task.seen == [(5, 1)] * 6 + [(2, 1)]


def test_default_minibatch_size_is_batch_size_worlds_of_steps():
    model = _mlp()
    ppo, task = _ppo(model, batch_size=2)
    ppo.update(_buffer(torch.zeros(N, T, dtype=torch.bool)), model.initial_carry(N))
    assert task.seen == [(2 * T, 1)] * 2


def test_recurrent_minibatches_are_sequences_of_sequence_length():
    model = _gru()
    ppo, task = _ppo(model, minibatch_size=8, sequence_length=4)
    ppo.update(_buffer(torch.zeros(N, T, dtype=torch.bool)), model.initial_carry(N))
    replay = task.seen[:1]  # the carry replay runs the first chunk of every world: [N, 4]
    assert replay == [(N, 4)] and task.seen[1:] == [(2, 4)] * 4
    with pytest.raises(ValueError, match="sequence_length"):
        _ppo(model, sequence_length=3)[0].update(_buffer(torch.zeros(N, T, dtype=torch.bool)), model.initial_carry(N))


def test_sequence_carries_equal_the_carries_of_stepping_the_rollout():
    model = _gru()
    done = torch.zeros(N, T, dtype=torch.bool)
    done[0, 2] = done[1, 3] = done[2, 7] = True  # world 1's episode ends right before the second chunk
    buffer = _buffer(done)
    ppo, _ = _ppo(model, sequence_length=4)
    start = (torch.randn(N, 2, 6), torch.randn(N, 2, 6))
    carries = ppo._sequence_carries(buffer, start, 4)
    # Step by step, zeroing after done, as the collector does.
    carry, expected = start, []
    x = buffer["observation", "x"]
    with torch.no_grad():
        for t in range(T):
            if t % 4 == 0:
                expected.append(carry)
            _, actor = model.actor(x[:, t], carry[0])
            _, critic = model.critic(x[:, t], carry[1])
            carry = reset_carry((actor, critic), done[:, t])
    expected = stack_carries(expected)
    for got, want in zip(carries, expected):
        assert got.shape == (N * 2, 2, 6)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert float(carries[0][3].abs().sum()) == 0.0  # world 1, chunk 1 starts a new episode: zero carry


def test_carry_helpers():
    carry = (torch.arange(6.0).view(3, 2), torch.zeros(3, 0))
    assert is_recurrent(carry) and not is_recurrent((torch.zeros(3, 0),))
    reset = reset_carry(carry, torch.tensor([False, True, False]))
    assert reset[0].tolist() == [[0, 1], [0, 0], [4, 5]] and reset[1].shape == (3, 0)
    assert index_carry(carry, torch.tensor([2]))[0].tolist() == [[4, 5]]
    stacked = stack_carries([carry, reset])  # rows ordered (world, chunk)
    assert stacked[0][:, 0].tolist() == [0, 0, 2, 0, 4, 4] and stacked[1].shape == (6, 0)


def test_return_scaler_divides_by_the_std_of_discounted_returns():
    scaler = ReturnScaler(num_envs=2, gamma=0.5)
    rewards = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 4.0]])
    done = torch.tensor([[False, True, False], [False, False, False]])
    scaled = scaler(rewards, done)
    # Returns: world 0: 1, 1.5, (reset) 1; world 1: 2, 1, 4.5. Population variance of the six:
    returns = torch.tensor([1.0, 1.5, 1.0, 2.0, 1.0, 4.5])
    var = returns.var(unbiased=False)
    torch.testing.assert_close(scaler.stats.var[0], var, rtol=1e-4, atol=0)  # the 1e-4 prior count is negligible
    torch.testing.assert_close(scaled, rewards / math.sqrt(float(var)), rtol=1e-4, atol=0)
    assert scaler.returns.tolist() == [1.0, 4.5]  # carried into the next rollout
    # A done on the last step resets the running return for the next rollout.
    scaler(torch.ones(2, 1), torch.tensor([[True], [False]]))
    assert scaler.returns.tolist() == [0.0, 0.5 * 4.5 + 1.0]


def test_reward_clip_and_scaling_reach_the_advantages():
    model = _mlp()
    buffer = _buffer(torch.zeros(N, T, dtype=torch.bool))
    buffer["next", "reward"].fill_(100.0)
    ppo, _ = _ppo(model, reward_clip=1.0)
    out = ppo.update(buffer.clone(), model.initial_carry(N))
    ppo_raw, _ = _ppo(model)
    out_raw = ppo_raw.update(buffer.clone(), model.initial_carry(N))
    assert float(out["value_target_mean"]) < 10 < float(out_raw["value_target_mean"])
    scaled, _ = _ppo(model)
    scaled.reward_scaler = ReturnScaler(N, gamma=0.99)
    out_scaled = scaled.update(buffer.clone(), model.initial_carry(N))
    assert "reward_scale" in out_scaled and float(out_scaled["value_target_mean"]) < 10


@pytest.mark.parametrize("make", [_mlp, _gru])
@pytest.mark.parametrize("preserve", [True, False])
def test_preserve_values_keeps_the_critics_predictions_through_a_new_return_scale(make, preserve):
    """With ``ppo.preserve_values`` the critic's output layer and the rollout's stored values are multiplied by
    old / new return scale when the update moves the scale: the critic then predicts, in the new scale, the same
    value in rewards as before. A zero learning rate isolates the rescaling from the gradient steps."""
    model = make()
    ppo = PPO(_Task(), model, PPOConfig(num_passes=1, normalize_rewards=True, preserve_values=preserve),
              torch.Generator().manual_seed(1), num_envs=N, optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    buffer = _buffer(torch.zeros(N, T, dtype=torch.bool))
    buffer["next", "reward"].mul_(50.0)
    stored = buffer["value"].clone(), buffer["next_value"].clone()
    obs = torch.randn(N, OBS, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model.critic(obs, model.critic.initial_carry(N))[0]
    old_scale = ppo.reward_scaler.scale().clone()
    ppo.update(buffer, model.initial_carry(N))
    ratio = float(old_scale / ppo.reward_scaler.scale()) if preserve else 1.0
    assert ratio < 0.2 if preserve else ratio == 1.0  # the first rollout moves the scale from 1 to its return std
    with torch.no_grad():
        after = model.critic(obs, model.critic.initial_carry(N))[0]
    torch.testing.assert_close(after, before * ratio)
    torch.testing.assert_close(buffer["value"], stored[0] * ratio)
    torch.testing.assert_close(buffer["next_value"], stored[1] * ratio)


class _CriticWithoutOutputLayer(torch.nn.Module):
    """A user's critic that does not name its output layer."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(OBS, 1)

    def initial_carry(self, batch_size, device=None):
        return torch.zeros(batch_size, 0)


def test_preserve_values_is_off_by_default_and_names_what_it_needs():
    """Off unless set. Set where it cannot apply, without scaled returns or with a critic that names no output
    layer, it is one ConfigError on the key."""
    assert PPOConfig().preserve_values is False
    model = _mlp()

    def ppo(model, **settings):
        return PPO(_Task(), model, PPOConfig(**settings), torch.Generator(), num_envs=N,
                   optimizer=torch.optim.SGD(model.parameters(), lr=0.0))

    assert ppo(model, normalize_rewards=True, preserve_values=True).value_output is model.critic.output_layer
    assert ppo(model, normalize_rewards=True).value_output is None
    with pytest.raises(ConfigError, match="ppo.preserve_values: is true, but this run's returns are not scaled"):
        ppo(model, normalize_rewards=False, preserve_values=True)
    custom = ActorCritic(MLPActor(OBS, ACT, hidden_sizes=(8,)), _CriticWithoutOutputLayer())
    assert ppo(custom, normalize_rewards=True).value_output is None
    with pytest.raises(ConfigError, match=r"ppo.preserve_values: is true, but ActorCritic has no .critic.output_layer"):
        ppo(custom, normalize_rewards=True, preserve_values=True)


def test_returns_are_normalized_automatically_for_a_recurrent_policy_with_normalized_inputs():
    """``ppo.normalize_rewards = none`` (the default): a return scaler for a recurrent policy whose task has input
    normalizers (the GRU's automatic recipe, docs/learning.md), none for a feed-forward policy or raw inputs;
    true or false is used as given."""
    config = PPOConfig()
    assert config.normalize_rewards is None
    assert config.scales_returns(recurrent=True, inputs_normalized=True)
    assert not config.scales_returns(recurrent=False, inputs_normalized=True)
    assert not config.scales_returns(recurrent=True, inputs_normalized=False)
    assert not PPOConfig(normalize_rewards=False).scales_returns(recurrent=True, inputs_normalized=True)
    assert PPOConfig(normalize_rewards=True).scales_returns(recurrent=False, inputs_normalized=False)
    cases = ((_gru, None, None, False), (_gru, {"actor": None}, None, True), (_mlp, {"actor": None}, None, False),
             (_gru, {"actor": None}, False, False), (_mlp, None, True, True))
    for make, normalizers, setting, scaled in cases:
        task = _Task()
        task.normalizers = normalizers
        model = make()
        ppo = PPO(task, model, PPOConfig(normalize_rewards=setting), torch.Generator(), num_envs=N,
                  optimizer=torch.optim.Adam(model.parameters()))
        assert (ppo.reward_scaler is not None) == scaled, (make.__name__, normalizers, setting)


def _cartpole_trainer(run_dir, *, num_envs: int = 4, seconds: float = 0.4, policy: str = "mlp",
                      clip_actions: float | None = None, history: int = 1, resume=None, **ppo):
    """A Trainer on the test cart-pole with a tiny policy; ``ppo`` sets PPOConfig fields; ``resume``: a run
    directory to continue."""
    from ktorch_sim.config import CheckpointConfig, LoggingConfig, ModelConfig, TrainConfig
    from ktorch_sim.training.trainer import Trainer
    from tests.cartpole import CartpoleConfig

    return Trainer(TrainConfig(
        task_name="tests.cartpole:CartpoleTask", task=CartpoleConfig(num_envs=num_envs, clip_actions=clip_actions),
        ppo=PPOConfig(rollout_length_seconds=seconds, batch_size=num_envs, **ppo),
        model=ModelConfig(policy=policy, mlp_hidden=(8,), hidden_size=8, head_hidden=(8,), num_mixtures=2,
                          history=history),
        logging=LoggingConfig(wandb_mode="disabled", run_dir=str(run_dir)),
        checkpoint=CheckpointConfig(save_every_seconds=1e9)), resume=resume)


def test_update_sees_inputs_normalized_as_when_the_actions_were_sampled(tmp_path):
    """With normalize_observations on and ppo.normalizer_update = "rollout", the policy's log-probs of the
    rollout's own actions, recomputed before any gradient step, equal the stored ones (ratio 1), and the
    statistics move only afterwards."""
    trainer = _cartpole_trainer(tmp_path, normalize_observations=True, normalizer_update="rollout")
    for _ in range(2):  # the second rollout runs on statistics the first one moved
        stats = trainer.task.normalizers["actor"].mean.clone()
        buffer, start_carry, trainer.carry, _ = trainer.collector.collect(trainer.model, trainer.carry)
        assert torch.equal(trainer.task.normalizers["actor"].mean, stats)  # frozen while collecting
        with torch.no_grad():
            variables, _ = trainer.task.get_ppo_variables(trainer.model, buffer, start_carry)
        torch.testing.assert_close(variables.log_probs, buffer["log_prob"], atol=1e-5, rtol=0)
        trainer.ppo.update(buffer, start_carry)
        trainer.task.update_normalizer_statistics(buffer["observation"], buffer["command"])
        assert not torch.equal(trainer.task.normalizers["actor"].mean, stats)


def test_step_statistics_move_every_step_and_the_update_reads_the_stored_inputs(tmp_path):
    """ppo.normalizer_update = "step" (SB3's VecNormalize, rsl_rl): before step t's action the statistics
    are the pooled moments of every input up to and including step t (the prior: mean 0, var 1, weight
    1e-4), checked in float64 against the pooled formula; the buffer keeps each input as normalized then,
    the update's recomputed log-probs equal the stored ones, and the trainer does not count a rollout twice."""
    trainer = _cartpole_trainer(tmp_path, normalize_observations=True, normalizer_update="step")
    task, normalizer = trainer.task, trainer.task.normalizers["actor"]
    buffer, start_carry, _, _ = trainer.collector.collect(trainer.model, trainer.carry)
    raw = task.actor_features(buffer["observation"], buffer["command"]).double()  # [N, T, D]
    num_envs, num_steps = buffer.batch_size
    prior = 1e-4
    for t in range(num_steps):
        seen = raw[:, :t + 1].reshape(-1, raw.shape[-1])
        mean = seen.sum(0) / (prior + len(seen))
        var = (prior * (1.0 + mean**2) + ((seen - mean) ** 2).sum(0)) / (prior + len(seen))
        expected = ((raw[:, t] - mean) / torch.sqrt(var + normalizer.eps)).clamp(-normalizer.clip, normalizer.clip)
        torch.testing.assert_close(buffer["actor_input"][:, t].double(), expected, atol=1e-4, rtol=1e-4)
    assert float(normalizer.count) == pytest.approx(prior + num_envs * num_steps)
    with torch.no_grad():
        variables, _ = task.get_ppo_variables(trainer.model, buffer, start_carry)
        renormalized, _ = task.get_ppo_variables(trainer.model, buffer.exclude("actor_input", "critic_input"),
                                                 start_carry)
    torch.testing.assert_close(variables.log_probs, buffer["log_prob"], atol=1e-5, rtol=0)
    assert not torch.allclose(renormalized.log_probs, buffer["log_prob"], atol=1e-3)  # final statistics differ
    trainer.collector.current = None  # the iteration below collects its own rollout from a reset
    trainer.iterate()
    assert float(normalizer.count) == pytest.approx(prior + 2 * num_envs * num_steps)  # counted once, not twice


@pytest.mark.parametrize("timing", ["step", "rollout"])
def test_input_statistics_stop_after_normalizer_steps(tmp_path, timing):
    """ppo.normalizer_steps: the actor's and the critic's input statistics take in the inputs of that many env
    steps and then stay fixed, under either timing: the batch that reaches the count is merged whole (one step's
    inputs under the step timing, the rollout's under the rollout timing); 0 keeps them moving."""
    trainer = _cartpole_trainer(tmp_path / timing, normalize_observations=True, normalizer_update=timing,
                                normalizer_steps=5)
    per_rollout = trainer.env.num_envs * trainer.config.rollout_steps  # 4 worlds x 20 steps
    trainer.iterate()
    frozen = {k: v.clone() for k, v in trainer.task.normalizers.state_dict().items()}
    merged = 2 * trainer.env.num_envs if timing == "step" else per_rollout  # the first batch to reach 5 rows
    assert float(trainer.task.normalizers["actor"].count) == pytest.approx(1e-4 + merged)
    trainer.iterate()
    for key, value in trainer.task.normalizers.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    moving = _cartpole_trainer(tmp_path / "moving", normalize_observations=True, normalizer_update=timing)
    moving.iterate()
    moving.iterate()
    assert float(moving.task.normalizers["actor"].count) == pytest.approx(1e-4 + 2 * per_rollout)


@pytest.mark.parametrize(("policy", "history", "normalize", "max_steps", "expected"), [
    ("mlp", 1, None, 2_000, (True, 200)),   # the feed-forward mlp with a budget: normalized, held after a tenth
    ("mlp", 1, None, 0, (False, 0)),        # no budget to take a tenth of: raw, as before
    ("mlp", 1, True, 2_000, (True, 200)),   # normalized by choice: held by default too
    ("mlp", 1, False, 2_000, (False, 0)),   # raw by choice: nothing to hold
    ("mlp", 2, None, 2_000, (False, 0)),    # an mlp with a history trains on sequences: raw, as before
    ("gru", 1, None, 2_000, (True, 0)),     # the gru: normalized, statistics that move all run
])
def test_automatic_input_normalization_resolves_per_policy_and_budget(tmp_path, policy, history, normalize,
                                                                     max_steps, expected):
    """ppo.normalize_observations and ppo.normalizer_steps left automatic: the trainer resolves them once, holds its
    normalizers to the result and keeps the resolved values in its config (which it saves), so a checkpoint
    names the inputs its policy read."""
    trainer = _cartpole_trainer(tmp_path, policy=policy, normalize_observations=normalize, max_steps=max_steps,
                                history=history)
    normalized, steps = expected
    assert (trainer.config.ppo.normalize_observations, trainer.config.ppo.normalizer_steps) == expected
    assert (trainer.task.normalizers is not None) == normalized
    for normalizer in (trainer.task.normalizers or {}).values():
        assert normalizer.until == steps


def test_automatic_hold_stops_the_mlp_statistics_at_a_tenth_of_the_budget(tmp_path):
    """The mlp's automatic hold in a run: its statistics take in the steps up to a tenth of ppo.max_steps (the step
    that reaches it merged whole) and stay fixed after."""
    trainer = _cartpole_trainer(tmp_path, max_steps=1_000)  # 4 worlds x 20 steps a rollout; held after 100 steps
    assert trainer.config.ppo.normalizer_steps == 100
    trainer.iterate()
    trainer.iterate()
    frozen = {k: v.clone() for k, v in trainer.task.normalizers.state_dict().items()}
    assert float(trainer.task.normalizers["actor"].count) == pytest.approx(1e-4 + 100)  # 25 steps of 4 worlds
    trainer.iterate()
    for key, value in trainer.task.normalizers.state_dict().items():
        assert torch.equal(value, frozen[key]), key


@pytest.mark.parametrize("policy", ["mlp", "gru"])
def test_a_checkpoint_from_before_the_resolved_settings_resumes_and_plays_on_the_inputs_it_trained_on(tmp_path,
                                                                                                      policy):
    """Checkpoints written before the trainer saved its resolved input settings hold none (automatic) for
    ppo.normalize_observations, which then meant raw inputs for the mlp and normalized ones for the gru, and no
    ppo.normalizer_steps. Resumed with the automatic settings, and played, they keep the inputs they were trained
    on (their normalizer weights tell) and statistics that move, whatever the automatic rule says today."""
    from ktorch_sim.playback.trained import load_trained_policy

    trainer = _cartpole_trainer(tmp_path, policy=policy, normalize_observations=policy == "gru", max_steps=2_000,
                                normalizer_steps=0)
    trainer.iterate()
    path = trainer.save()
    trainer.logger.close()
    state = torch.load(path, weights_only=False)
    state["config"]["ppo"]["normalize_observations"] = None  # as the trainer saved it then
    del state["config"]["ppo"]["normalizer_steps"]
    torch.save(state, path)

    resumed = _cartpole_trainer(tmp_path, policy=policy, max_steps=2_000, resume=trainer.run_dir)
    assert resumed.config.ppo.normalize_observations == (policy == "gru")
    assert resumed.config.ppo.normalizer_steps == 0
    resumed.iterate()
    resumed.logger.close()
    played = load_trained_policy(path)
    assert (played.task.normalizers is not None) == (policy == "gru")


def test_normalizer_steps_on_raw_inputs_is_one_config_error(tmp_path):
    """A limit on input statistics that do not exist (the mlp's raw inputs) is refused with one line naming the key,
    before the run directory is made, instead of doing nothing."""
    from ktorch_sim.errors import ConfigError

    with pytest.raises(ConfigError, match="ppo.normalizer_steps: is 100, but this policy's inputs are not normalized"):
        _cartpole_trainer(tmp_path / "runs", normalize_observations=False, normalizer_steps=100)
    assert not (tmp_path / "runs").exists()

@pytest.mark.parametrize("policy", ["mlp", "gru"])
@pytest.mark.parametrize("setting", ["auto", "rollout", "step"])
def test_normalizer_update_resolves_per_policy(tmp_path, policy, setting):
    """auto: the statistics move every step for a feed-forward policy, once per rollout for a recurrent one
    (each measured the better on Hopper); an explicit setting holds for both; raw inputs: nothing moves."""
    def trainer(normalized: bool):
        return _cartpole_trainer(tmp_path / str(normalized), num_envs=2, seconds=0.2, policy=policy,
                                 normalize_observations=normalized, normalizer_update=setting)

    expected = {"auto": policy == "mlp", "rollout": False, "step": True}[setting]
    assert trainer(True).collector.step_statistics == expected
    assert not trainer(False).collector.step_statistics


def test_clipped_actions_reach_the_env_and_the_rollout_keeps_the_sample(tmp_path):
    """With task.clip_actions the environment applies the clamped action while the buffer holds the policy's own
    sample, whose log-probability the update recomputes (SB3 stores the unclipped action the same way)."""
    trainer = _cartpole_trainer(tmp_path, num_envs=4, seconds=0.4, clip_actions=0.1)
    buffer, start_carry, *_ = trainer.collector.collect(trainer.model, trainer.carry)
    assert buffer["action"].abs().max() > 0.1  # the sample (initial std 1), not the clamp
    assert trainer.env.ctx.action.abs().max() <= 0.1
    with torch.no_grad():
        variables, _ = trainer.task.get_ppo_variables(trainer.model, buffer, start_carry)
    torch.testing.assert_close(variables.log_probs, buffer["log_prob"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("setting", ["rollout", "step"])
def test_rollout_memory_bound_counts_the_stored_inputs(tmp_path, monkeypatch, setting):
    """The rollout-memory check is a lower bound of the buffer the collector really fills, and with step
    statistics it counts the normalized actor and critic inputs the buffer then holds."""
    import ktorch_sim.training.trainer as trainer_module
    from ktorch_sim.utils import resources

    calls = []
    monkeypatch.setattr(trainer_module, "check_rollout_fits", lambda *args: calls.append(args))
    trainer = _cartpole_trainer(tmp_path, num_envs=2, seconds=0.2, normalize_observations=True,
                                normalizer_update=setting)
    (first, num_envs, num_actions, num_rewards, steps, device, stored), = calls
    buffer, *_ = trainer.collector.collect(trainer.model, trainer.carry)
    has_inputs = "actor_input" in buffer.keys()
    assert has_inputs == (setting == "step")
    widths = buffer["actor_input"].shape[-1] + buffer["critic_input"].shape[-1] if has_inputs else 0
    assert stored == widths
    filled = sum(t.numel() * t.element_size() for t in buffer.values(include_nested=True, leaves_only=True))
    monkeypatch.setattr(resources, "available_memory", lambda device: (filled, "the filled buffer"))
    # Fits: a lower bound of what the buffer holds.
    resources.check_rollout_fits(first, num_envs, num_actions, num_rewards, steps, device, stored)
    monkeypatch.setattr(resources, "available_memory", lambda device: (filled - 4 * num_envs * steps * widths,
                                                                      "the buffer without its inputs"))
    if has_inputs:
        with pytest.raises(ConfigError, match="normalized policy inputs"):
            resources.check_rollout_fits(first, num_envs, num_actions, num_rewards, steps, device, stored)


@pytest.mark.parametrize("scope", ["minibatch", "rollout"])
def test_advantage_normalization_scope(monkeypatch, scope):
    """``minibatch``: each minibatch's advantages get mean 0 / std 1 inside the loss (SB3); ``rollout``:
    they are normalized once over the whole rollout (rsl_rl), so a minibatch's own mean is not 0."""
    import ktorch_sim.algorithms.ppo as ppo_module

    seen: list[tuple[torch.Tensor, bool]] = []
    real = ppo_module.ppo_losses

    def spy(log_probs, old_log_probs, values, old_values, advantages, targets, entropy, mask, config):
        seen.append((advantages.detach().clone(), config.normalize_advantages))
        return real(log_probs, old_log_probs, values, old_values, advantages, targets, entropy, mask, config)

    monkeypatch.setattr(ppo_module, "ppo_losses", spy)
    torch.manual_seed(0)
    ppo, _ = _ppo(_mlp(), minibatch_size=8, advantage_normalization_scope=scope)
    ppo.update(_buffer(torch.zeros(N, T, dtype=torch.bool)), (torch.zeros(N, 0), torch.zeros(N, 0)))
    assert len(seen) == N * T // 8
    everything = torch.cat([a.reshape(-1) for a, _ in seen])
    if scope == "minibatch":
        assert all(normalize for _, normalize in seen)  # the loss normalizes each minibatch itself
        assert abs(float(everything.mean())) > 1e-3  # what reaches it is the raw GAE advantage
    else:
        assert not any(normalize for _, normalize in seen)
        assert float(everything.mean()) == pytest.approx(0.0, abs=1e-5)
        assert float(everything.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
        assert max(abs(float(a.mean())) for a, _ in seen) > 1e-2  # not per minibatch


@pytest.mark.parametrize(("recurrent", "sequence_length", "expected"),
                         [(False, 0, "minibatch"), (True, 4, "rollout"), (True, 1, "minibatch")])
def test_auto_advantage_scope_normalizes_sequences_over_the_rollout(monkeypatch, recurrent, sequence_length, expected):
    """The default scope ``auto``: shuffled single transitions (an MLP, or a GRU trained on one-step sequences)
    are normalized per minibatch; sequences of several steps once over the rollout."""
    import ktorch_sim.algorithms.ppo as ppo_module

    seen: list[bool] = []
    real = ppo_module.ppo_losses

    def spy(log_probs, old_log_probs, values, old_values, advantages, targets, entropy, mask, config):
        seen.append(config.normalize_advantages)
        return real(log_probs, old_log_probs, values, old_values, advantages, targets, entropy, mask, config)

    monkeypatch.setattr(ppo_module, "ppo_losses", spy)
    model = _gru() if recurrent else _mlp()
    ppo, _ = _ppo(model, minibatch_size=8, sequence_length=sequence_length)
    assert ppo.config.advantage_normalization_scope == "auto"
    ppo.update(_buffer(torch.zeros(N, T, dtype=torch.bool)), model.initial_carry(N))
    assert seen and all(normalize == (expected == "minibatch") for normalize in seen)
    assert PPOConfig(normalize_advantages=False).advantage_scope(sequences=True) is None


@pytest.mark.parametrize("actor", ["gru", "mlp_history"])
def test_memory_actor_with_mlp_critic_trains_on_sequences(tmp_path, actor):
    """A GRU actor with ``model.critic = "mlp"``, or an MLP actor with ``model.history = 3``: the actor has
    a carry and the critic none; PPO cuts sequences, replays the actor's carries exactly (the rollout's
    log-probs are recomputed), keeps the critic's carry empty, and the update moves both networks."""
    from ktorch_sim.config import CheckpointConfig, LoggingConfig, ModelConfig, TrainConfig
    from ktorch_sim.training.trainer import Trainer
    from tests.cartpole import CartpoleConfig

    config = TrainConfig(task_name="tests.cartpole:CartpoleTask", task=CartpoleConfig(num_envs=4),
                         ppo=PPOConfig(rollout_length_seconds=0.4, sequence_length=5, minibatch_size=2),
                         model=ModelConfig(policy="gru", critic="mlp", hidden_size=8, depth=2, num_mixtures=2,
                                           mlp_hidden=(16,)) if actor == "gru" else
                         ModelConfig(policy="mlp", history=3, mlp_hidden=(16,)),
                         logging=LoggingConfig(wandb_mode="disabled", run_dir=str(tmp_path)),
                         checkpoint=CheckpointConfig(save_every_seconds=1e9))
    trainer = Trainer(config)
    model = trainer.model
    assert isinstance(model.actor, GRUActor if actor == "gru" else MLPActor) and isinstance(model.critic, MLPCritic)
    assert [m.out_features for m in model.critic.net if isinstance(m, torch.nn.Linear)] == [16, 1]
    carry_shape = (2, 8) if actor == "gru" else (2, model.actor.num_inputs)
    for _ in range(2):  # the second rollout starts from a carry the first one left mid-episode
        buffer, start_carry, trainer.carry, _ = trainer.collector.collect(model, trainer.carry)
    assert start_carry[0].shape == (4, *carry_shape) and start_carry[1].shape == (4, 0)
    assert float(start_carry[0].abs().sum()) > 0
    steps = buffer.batch_size[1]
    carries = trainer.ppo._sequence_carries(buffer, start_carry, 5)
    assert carries[0].shape == (4 * steps // 5, *carry_shape) and carries[1].shape == (4 * steps // 5, 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # the rollout's log-probs and values are what the update recomputes first
        variables, _ = trainer.task.get_ppo_variables(model, buffer, start_carry)
    torch.testing.assert_close(variables.log_probs, buffer["log_prob"], atol=1e-5, rtol=0)
    torch.testing.assert_close(variables.values, buffer["value"], atol=1e-5, rtol=0)
    trainer.ppo.update(buffer, start_carry)
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("actor.gru" if actor == "gru" else "actor.net") for k in moved)
    assert any(k.startswith("critic.net") for k in moved)


@pytest.mark.parametrize("scope, actor_norm, critic_norm", [("global", 0.6, 0.8), ("per_network", 1.0, 1.0)])
def test_grad_clip_scope(scope, actor_norm, critic_norm):
    """Gradients of norm 3 (actor) and 4 (critic) clipped to 1: together (global) they are scaled by 1/5 to
    0.6 and 0.8; each on its own (per_network) to 1 and 1. The norm reported is 5, before clipping, either way."""
    from ktorch_sim.algorithms.ppo import clip_gradients, gradient_clip_groups

    model = ActorCritic(MLPActor(3, 2, hidden_sizes=(4,)), MLPCritic(3, hidden_sizes=(4,)))
    for network, norm in ((model.actor, 3.0), (model.critic, 4.0)):
        params = list(network.parameters())
        for p in params:
            p.grad = torch.full_like(p, norm / math.sqrt(sum(q.numel() for q in params)))
    total = clip_gradients(gradient_clip_groups(model, per_network=scope == "per_network"), 1.0)
    assert float(total) == pytest.approx(5.0, rel=1e-5)
    for network, expected in ((model.actor, actor_norm), (model.critic, critic_norm)):
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in network.parameters()]))
        assert float(norm) == pytest.approx(expected, rel=1e-5)


def test_per_network_grad_clip_needs_an_actor_and_a_critic():
    """Set explicitly, per_network on a model without .actor/.critic is a ConfigError; resolved from auto it falls
    back to one group."""
    from ktorch_sim.algorithms.ppo import gradient_clip_groups

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match=r'grad_clip_scope = "per_network" needs a model with \.actor and \.critic.*'
                                          r'Sequential has no \.actor or \.critic module: use "global"'):
        gradient_clip_groups(model, per_network=True, required=True)
    assert len(gradient_clip_groups(model, per_network=True)) == 1
    assert len(gradient_clip_groups(model, per_network=False)) == 1


@pytest.mark.parametrize("policy", ["mlp", "gru"])
@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("setting", ["auto", "global", "per_network"])
def test_grad_clip_scope_resolves_per_policy(tmp_path, policy, normalized, setting):
    """auto: per network for a feed-forward policy on raw inputs, one global norm for a recurrent one or normalized
    inputs; explicit settings hold for every policy."""
    trainer = _cartpole_trainer(tmp_path, num_envs=2, seconds=0.2, policy=policy, grad_clip_scope=setting,
                                normalize_observations=normalized)
    expected = {"auto": policy == "mlp" and not normalized, "global": False, "per_network": True}[setting]
    assert len(trainer.ppo.clip_groups) == (2 if expected else 1)


def test_target_kl_stops_the_update_before_the_step_that_would_exceed_it():
    """``ppo.target_kl`` with ``target_kl_stops = "update"`` (SB3): the first minibatch's KL is 0 (the rollout's
    own policy) so it always steps; a tiny target then stops at the next one, whose KL is positive; a large one,
    0 (never) or none (automatic: never for this feed-forward policy) lets every minibatch step."""
    buffer = _buffer(torch.zeros(N, T, dtype=torch.bool))
    torch.manual_seed(0)
    with torch.no_grad():  # the rollout's log-probs as the model gives them: the first minibatch's KL is 0
        dist, _ = _mlp().actor(buffer["observation", "x"], torch.zeros(N, T, 0))
        buffer["log_prob"] = dist.log_prob(buffer["action"]).sum(-1)
    everything = N * T // 8
    for target, expected in ((None, everything), (0.0, everything), (1e-12, 1), (1e3, everything)):
        torch.manual_seed(0)
        model = _mlp()
        ppo, _ = _ppo(model, minibatch_size=8, target_kl=target, target_kl_stops="update")
        steps = []
        step = ppo.optimizer.step
        ppo.optimizer.step = lambda *a, **k: (steps.append(1), step(*a, **k))[1]
        out = ppo.update(buffer.clone(), model.initial_carry(N))
        assert len(steps) == expected, target
        assert ("minibatches_applied" in out) == bool(target), target
        if target:
            assert float(out["minibatches_applied"]) == expected


def test_the_automatic_kl_stop_holds_policies_trained_on_sequences_only():
    """``ppo.target_kl = none`` (the default) stops the actor of a recurrent policy at 0.03 (docs/learning.md,
    tenth session) and never stops a feed-forward one; 0 never stops, a number is used as given. Through the
    update: a GRU's minibatches past 1.5 x 0.03 step the critic alone, an MLP's never stop."""
    from ktorch_sim.algorithms.ppo_config import AUTO_TARGET_KL

    assert AUTO_TARGET_KL == 0.03 and PPOConfig().target_kl is None and PPOConfig().target_kl_stops == "actor"
    assert PPOConfig().kl_target(recurrent=True) == 0.03 and PPOConfig().kl_target(recurrent=False) is None
    assert PPOConfig(target_kl=0.0).kl_target(recurrent=True) is None
    assert PPOConfig(target_kl=0.05).kl_target(recurrent=False) == 0.05
    for model, stops in ((_gru(), True), (_mlp(), False)):
        ppo, _ = _ppo(model, minibatch_size=8, sequence_length=4)
        kls = iter([0.046] + [0.0] * 100)  # the second minibatch (the first one checked) is past 1.5 x 0.03
        ppo.average_kl = lambda kl: torch.tensor(next(kls))
        out = ppo.update(_buffer(torch.zeros(N, T, dtype=torch.bool)), model.initial_carry(N))
        assert ("minibatches_applied" in out) == stops
        if stops:
            assert float(out["minibatches_applied"]) == 1  # the actor stepped once, then the critic alone


def test_target_kl_window_averages_the_last_checked_minibatch_kls():
    """``ppo.target_kl_window = N``: the stop compares the mean of the update's last N checked KLs with 1.5 x
    target_kl (0.045 for 0.03). Checked KLs 0.02, 0.06, 0.02, 0.06, then 0: one at a time the second check stops
    the actor (2 actor steps: the unchecked first minibatch and that check's); pairs average 0.02, 0.04, 0.04,
    0.04, 0.03, ... and never stop; threes reach (0.06 + 0.02 + 0.06) / 3 = 0.047 at the fourth check (4 steps);
    fours peak at 0.04 and never stop (a window below 1: tests/test_config.py)."""
    buffer = _buffer(torch.zeros(N, T, dtype=torch.bool))
    everything = N * T // 8
    for window, expected in ((1, 2), (2, everything), (3, 4), (4, everything)):
        torch.manual_seed(0)
        model = _mlp()
        ppo, _ = _ppo(model, minibatch_size=8, target_kl=0.03, target_kl_stops="actor", target_kl_window=window)
        kls = iter([0.02, 0.06, 0.02, 0.06] + [0.0] * 100)
        ppo.average_kl = lambda kl: torch.tensor(next(kls))
        out = ppo.update(buffer.clone(), model.initial_carry(N))
        assert float(out["minibatches_applied"]) == expected, window


def test_an_actor_stopped_by_target_kl_stays_stopped_when_that_minibatch_is_skipped_as_not_finite():
    """The minibatch that trips ``ppo.target_kl`` (stops = actor) is skipped as not finite: the actor is still
    stopped, so a later minibatch whose KL happens to fall under the target does not step the actor again."""
    buffer = _buffer(torch.zeros(N, T, dtype=torch.bool))
    torch.manual_seed(0)
    model = _mlp()
    ppo, _ = _ppo(model, minibatch_size=8, target_kl=0.01, target_kl_stops="actor")
    kls = iter([1.0] + [0.0] * 100)  # the second minibatch trips the stop; every later KL is under the target
    ppo.average_kl = lambda kl: torch.tensor(next(kls))
    calls = []

    def nan_on_the_second_minibatch(parameters, extras):
        calls.append(1)
        return extras * float("nan") if len(calls) == 2 else extras

    ppo.average_gradients = nan_on_the_second_minibatch
    snapshots = []
    step = ppo.optimizer.step
    ppo.optimizer.step = lambda *a, **k: (step(*a, **k), snapshots.append(
        {k: v.clone() for k, v in model.state_dict().items()}))[0]
    ppo.update(buffer.clone(), model.initial_carry(N))
    assert ppo.skipped_updates == 1 and len(snapshots) == N * T // 8 - 1
    actor_keys = [k for k in snapshots[0] if k.startswith("actor.")]
    assert all(torch.equal(later[k], snapshots[0][k]) for later in snapshots[1:] for k in actor_keys)


class _ValueReplayTask(_Task):
    """_Task with PPOTask's critic-only replay, counting the value-only replays PPO asks for."""

    value_replay = PPOTask.value_replay

    def __init__(self) -> None:
        super().__init__()
        self.value_calls = 0

    def get_values(self, model, trajectory, carry):
        self.value_calls += 1
        return PPOTask.get_values(self, model, trajectory, carry)


@pytest.mark.parametrize("make", [_mlp, _gru])
def test_value_only_steps_replay_the_critic_alone_and_step_exactly_as_the_full_replay(make):
    """After ``ppo.target_kl`` stops the actor (stops = actor), each remaining minibatch steps on the value loss
    alone: where the task can replay its critic alone (``PPOTask.value_replay``), PPO skips the actor's forward
    pass, and the critic's weights and the optimizer's state end bit for bit where the full replay leaves them."""
    done = torch.zeros(N, T, dtype=torch.bool)
    done[0, 2] = done[2, 5] = True  # carries reset inside sequences, as in the rollout
    buffer = _buffer(done)
    model = make()
    ends = []
    for task in (_Task(), _ValueReplayTask()):
        torch.manual_seed(0)
        trained = copy.deepcopy(model)
        cfg = PPOConfig(num_passes=3, kl_coef=0.0, minibatch_size=8, target_kl=1e-12, target_kl_stops="actor")
        ppo = PPO(task, trained, cfg, torch.Generator().manual_seed(1),
                  optimizer=torch.optim.Adam(trained.parameters(), lr=1e-3))
        out = ppo.update(buffer.clone(), trained.initial_carry(N))
        ends.append((trained, ppo.optimizer.state_dict(), out, task))
    (full, full_adam, full_out, _), (alone, alone_adam, alone_out, task) = ends
    minibatches = 3 * N * T // 8
    assert float(alone_out["minibatches_applied"]) == float(full_out["minibatches_applied"]) == 1
    assert task.value_calls == minibatches - 2  # every value-only step but the one that tripped the stop
    for (name, p), q, start in zip(alone.named_parameters(), full.parameters(), model.parameters(), strict=True):
        assert torch.equal(p, q), name
        if name.startswith("critic."):
            assert not torch.equal(p, start), name  # the value-only steps did move the critic
    for i, s in full_adam["state"].items():
        for k, v in s.items():
            assert torch.equal(alone_adam["state"][i][k], v), (i, k)


def test_a_task_overriding_only_get_ppo_variables_keeps_its_values_in_value_only_steps():
    """A task that overrides ``get_ppo_variables`` but not ``get_values`` gets no critic-only replay (its values
    could differ from PPOTask's); one that overrides ``get_values`` (alone or with it) gets its own."""

    class Plain(_Task):  # PPOTask's replay methods, as a PPOTask subclass inherits them
        get_values = PPOTask.get_values
        value_replay = PPOTask.value_replay

    class Own(Plain):
        def get_ppo_variables(self, model, trajectory, carry):
            return PPOTask.get_ppo_variables(self, model, trajectory, carry)

    class OwnValues(Own):
        def get_values(self, model, trajectory, carry):
            return PPOTask.get_values(self, model, trajectory, carry)

    plain, own, own_values = Plain(), Own(), OwnValues()
    assert plain.value_replay() == plain.get_values
    assert own.value_replay() is None
    assert own_values.value_replay() == own_values.get_values
    plain.get_ppo_variables = lambda model, trajectory, carry: None  # patched on the instance, as tests do
    assert plain.value_replay() is None


def test_target_kl_stopping_the_actor_lets_the_critic_train_on():
    """``ppo.target_kl_stops = "actor"``: after the stop every remaining minibatch takes a step on the value
    loss alone: the critic's weights move, the actor's stay exactly where the first (only) actor step left them."""
    buffer = _buffer(torch.zeros(N, T, dtype=torch.bool))
    torch.manual_seed(0)
    with torch.no_grad():
        dist, _ = _mlp().actor(buffer["observation", "x"], torch.zeros(N, T, 0))
        buffer["log_prob"] = dist.log_prob(buffer["action"]).sum(-1)
    everything = N * T // 8
    torch.manual_seed(0)
    model = _mlp()
    ppo, _ = _ppo(model, minibatch_size=8, target_kl=1e-12, target_kl_stops="actor")
    snapshots = []
    step = ppo.optimizer.step
    ppo.optimizer.step = lambda *a, **k: (step(*a, **k), snapshots.append(
        {k: v.clone() for k, v in model.state_dict().items()}))[0]
    out = ppo.update(buffer.clone(), model.initial_carry(N))
    assert len(snapshots) == everything and float(out["minibatches_applied"]) == 1
    actor_keys = [k for k in snapshots[0] if k.startswith("actor.")]
    critic_keys = [k for k in snapshots[0] if k.startswith("critic.")]
    for later in snapshots[1:]:
        assert all(torch.equal(later[k], snapshots[0][k]) for k in actor_keys)
    assert any(not torch.equal(snapshots[-1][k], snapshots[0][k]) for k in critic_keys)
    # Several processes: the gradient average hands every parameter a gradient (zeros for the actor's);
    # Adam's momentum would still move the actor unless those are dropped again. Same weights as above.
    torch.manual_seed(0)
    model = _mlp()
    ppo, _ = _ppo(model, minibatch_size=8, target_kl=1e-12, target_kl_stops="actor")

    def average_like_several_processes(parameters, extras):
        for p in parameters:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        return extras

    ppo.average_gradients = average_like_several_processes
    ppo.update(buffer.clone(), model.initial_carry(N))
    assert all(torch.equal(v, snapshots[-1][k]) for k, v in model.state_dict().items())
    # "update" ends the whole update at the same point (SB3): the first step's weights, critic included.
    torch.manual_seed(0)
    model = _mlp()
    ppo, _ = _ppo(model, minibatch_size=8, target_kl=1e-12, target_kl_stops="update")
    ppo.update(buffer.clone(), model.initial_carry(N))
    assert all(torch.equal(v, snapshots[0][k]) for k, v in model.state_dict().items())
