"""The batched environment: step order, masked auto-reset, TensorDict layout, both engines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from ktorch_sim.actuators import PositionActuators
from ktorch_sim.components.base import Observation, PhysicsRandomizer, Reset, Reward, Termination
from ktorch_sim.env import Env, EnvSpec
from ktorch_sim.robots import kbot_metadata, load_kbot_model
from tests.conftest import ENGINE_SPECS

N = 4


@dataclass(frozen=True, kw_only=True)
class BaseZ(Observation):
    def observe(self, ctx, state):
        return ctx.physics.qpos[:, 2:3].clone()


@dataclass(frozen=True, kw_only=True)
class StepsObs(Observation):
    def observe(self, ctx, state):
        return ctx.episode_steps[:, None].float()


@dataclass(frozen=True, kw_only=True)
class FailAfter(Termination):
    """World i fails after ``steps[i]`` control steps (0: never)."""
    steps: tuple[int, ...]

    def check(self, ctx):
        limit = torch.tensor(self.steps, device=ctx.device)
        return torch.where((limit > 0) & (ctx.episode_steps >= limit), -1, 0).to(torch.int8)


@dataclass(frozen=True, kw_only=True)
class TruncateAfter(Termination):
    steps: int

    def check(self, ctx):
        return torch.where(ctx.episode_steps >= self.steps, 1, 0).to(torch.int8)


@dataclass(frozen=True, kw_only=True)
class EpisodeStepReward(Reward):
    def get_reward(self, ctx, state):
        return ctx.episode_steps.float()


@dataclass(frozen=True, kw_only=True)
class StepsPenalty(Reward):
    def get_reward(self, ctx, state):
        return ctx.episode_steps.float()


@dataclass(frozen=True, kw_only=True)
class RaiseBase(Reset):
    dz: float

    def apply(self, qpos, qvel, mask, ctx):
        qpos[:, 2] += torch.where(mask, self.dz, 0.0)


@dataclass(frozen=True, kw_only=True)
class CountingRandomizer(PhysicsRandomizer):
    """Writes 1 + (number of resets so far) * 0 ... : torso mass = default * U(0.5, 1.5)."""

    @property
    def fields(self):
        return ("body_mass",)

    def apply(self, engine, mask, ctx):
        default = engine.default_model_field("body_mass").to(ctx.device)
        scale = 0.5 + torch.rand(ctx.num_envs, 1, generator=ctx.generator, device=ctx.device)
        engine.set_model_field("body_mass", default * scale, mask)


def make_env(spec_engine, **spec_kwargs) -> Env:
    model = load_kbot_model()
    kind, device = spec_engine
    actuators = PositionActuators.create(model, kbot_metadata(), kp_scale=1.4, kd_scale=1.4, torque_limit_scale=1.5)
    spec = EnvSpec(actuators=actuators, **spec_kwargs)
    from ktorch_sim.engines import EngineConfig

    return Env(model, spec, EngineConfig(num_envs=N, dt=0.004, ctrl_dt=0.02, device=device), engine=kind, seed=0)


def _home_action(env: Env) -> torch.Tensor:
    return env._initial_qpos[7:].expand(env.num_envs, -1).clone()


def test_step_layout_and_auto_reset_order(engine_spec):
    env = make_env(engine_spec, observations=[BaseZ(), StepsObs()],
                   terminations=[FailAfter(steps=(2, 0, 3, 0)), TruncateAfter(steps=5)],
                   rewards=[EpisodeStepReward(scale=2.0), StepsPenalty(scale=0.5)])
    td = env.reset()
    assert set(td.keys()) == {"observation", "command"}
    history = [env.step(_home_action(env)) for _ in range(5)]
    first, second = history[0], history[1]
    assert first["action"].shape == (N, 20)
    for key in ("reward", "done", "terminated", "truncated"):
        assert first["next", key].shape == (N, 1)
    # reward terms: the episode step count after the step, x2 for the reward, x(-0.5) for the penalty
    torch.testing.assert_close(first["next", "reward_terms", "episode_step_reward"], torch.full((N,), 2.0))
    torch.testing.assert_close(first["next", "reward_terms", "steps_penalty"], torch.full((N,), -0.5))
    torch.testing.assert_close(first["next", "reward"][:, 0], torch.full((N,), 1.5))
    # world 0 fails at its 2nd step; its next observation is already the reset one (0 steps)
    assert second["next", "terminated"][:, 0].tolist() == [True, False, False, False]
    assert second["next", "observation", "steps_obs"][:, 0].tolist() == [0.0, 2.0, 2.0, 2.0]
    # the next step's root observation is the previous step's next observation
    torch.testing.assert_close(history[2]["observation", "steps_obs"], second["next", "observation", "steps_obs"])
    # truncation at 5 steps for worlds that never failed; world 0 restarted at step 2 so it is at 3
    last = history[4]
    assert last["next", "truncated"][:, 0].tolist() == [False, True, False, True]
    assert last["next", "terminated"][:, 0].tolist() == [False, False, False, False]
    assert last["next", "done"][:, 0].tolist() == [False, True, False, True]
    metrics = env.pop_metrics()
    assert metrics["episodes"].item() == 5 and metrics["failures"].item() == 3  # 0 (x2: steps 2, 4), 2 (step 3)
    assert metrics["termination/truncate_after"].item() == 2


def test_resets_apply_only_to_done_worlds(engine_spec):
    env = make_env(engine_spec, observations=[BaseZ()], terminations=[FailAfter(steps=(1, 0, 0, 0))],
                   rewards=[EpisodeStepReward()], resets=[RaiseBase(dz=0.5)])
    env.reset()
    home_z = float(env._initial_qpos[2])
    out = env.step(_home_action(env))
    z = out["next", "observation", "base_z"][:, 0]
    assert abs(float(z[0]) - (home_z + 0.5)) < 1e-5  # reset again: raised
    assert float(z[1]) < float(z[0]) - 1e-3  # raised at the first reset, falling since: not reset again


def test_randomizers_are_redrawn_for_reset_worlds_only(engine_spec):
    env = make_env(engine_spec, observations=[BaseZ()], terminations=[FailAfter(steps=(1, 0, 0, 0))],
                   rewards=[EpisodeStepReward()], randomizers=[CountingRandomizer()])
    mass_before = env.engine.model_field("body_mass").clone()
    env.step(_home_action(env))
    mass_after = env.engine.model_field("body_mass")
    assert not torch.equal(mass_after[0], mass_before[0])
    torch.testing.assert_close(mass_after[1:], mass_before[1:], atol=0, rtol=0)
    default = env.engine.default_model_field("body_mass").to(mass_after.device)
    ratio = (mass_after[:, 1:] / default[1:]).cpu().numpy()
    assert np.all((ratio >= 0.5) & (ratio <= 1.5))  # relative to the defaults: never compounds


def test_both_engines_give_the_same_episode():
    rewards = {}
    for spec in ENGINE_SPECS:
        env = make_env(spec, observations=[BaseZ()], terminations=[TruncateAfter(steps=1000)],
                       rewards=[EpisodeStepReward()])
        env.reset()
        zs = [env.step(_home_action(env))["next", "observation", "base_z"][:, 0].cpu() for _ in range(25)]
        rewards[spec] = torch.stack(zs)
    ref = rewards[ENGINE_SPECS[0]]
    for spec, z in rewards.items():
        torch.testing.assert_close(z, ref, atol=5e-3, rtol=0, msg=f"{spec}")


def test_noisy_observations_are_emitted_next_to_clean_ones():
    env = make_env(("mujoco", "cpu"), observations=[BaseZ(noise=0.1, bias=0.2)], terminations=[TruncateAfter(steps=100)],
                   rewards=[EpisodeStepReward()])
    td = env.reset()
    assert set(td["observation"].keys()) == {"base_z", "noisy_base_z"}
    torch.testing.assert_close(td["observation", "noisy_base_z"], td["observation", "base_z"])  # level 0: clean
    env.set_curriculum_level(1.0)
    obs = env.reset()["observation"]
    assert not torch.equal(obs["base_z"], obs["noisy_base_z"])


def test_recompute_constants_switch_controls_mj_setconst_after_mass_randomization():
    from ktorch_sim.config import load_config, resolve_task

    calls = {}
    for flag in (True, False):
        config = load_config(None, ["task.name=kbot_walk", "task.num_envs=2", "task.engine=mujoco", "task.device=cpu",
                                    "ppo.batch_size=1", f"task.recompute_constants={str(flag).lower()}"])
        env = resolve_task(config.task_name)[0](config.task).make_env()
        count = [0]
        original = env.engine.recompute_constants

        def counting(original=original, count=count):
            count[0] += 1
            original()

        env.engine.recompute_constants = counting
        env.reset()
        calls[flag] = count[0]
        if not flag:  # masses are randomized, but the derived constants keep their nominal values
            field = env.engine.model_field("body_subtreemass")
            assert torch.equal(field[0], env.engine.default_model_field("body_subtreemass"))
    assert calls == {True: 1, False: 0}


def test_planar_walker_without_free_joint_runs_episodes_with_base_metrics_and_healthy_reward(monkeypatch):
    """A model whose root is slide-x, slide-z, hinge-y: the distance metric is the torso's xy, not qpos[:2].

    Each step's pre-reset state is recorded where the env records its metrics, then the sums are
    worked by hand: distance = largest |torso xy| over the episode; return with HealthyReward(scale=1)
    = steps alive = length, minus the failing step's 1 for a fall.
    """
    from tests.planar_walker import PlanarWalkerConfig, PlanarWalkerTask

    env = PlanarWalkerTask(PlanarWalkerConfig(num_envs=N, min_z=0.95, num_threads=1)).make_env()
    seen: list[tuple[torch.Tensor, ...]] = []
    record = env._record_episode_metrics

    def spy(reward, done, terminated):
        distance = env.engine.state.xpos[:, 1, :2].norm(dim=-1).clone()  # body 1: the torso
        seen.append((distance, done.clone(), terminated.clone(), env.ctx.episode_steps.clone(), reward.clone()))
        record(reward, done, terminated)

    monkeypatch.setattr(env, "_record_episode_metrics", spy)
    env.reset()
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        env.step(torch.rand(N, env.num_actions, generator=g) * 2 - 1)
    metrics = env.pop_metrics()

    farthest = torch.zeros(N)
    distance_sum = return_sum = episodes = failures = 0.0
    for distance, done, terminated, steps, reward in seen:
        farthest = torch.maximum(farthest, distance)
        assert torch.equal(reward, (~terminated).float())  # 1 per step alive, 0 on the failing step
        for i in torch.nonzero(done).flatten().tolist():
            distance_sum += float(farthest[i])
            return_sum += float(steps[i]) - float(terminated[i])
            episodes += 1
            failures += float(terminated[i])
            farthest[i] = 0.0
    assert episodes >= N + 1 and failures >= 1
    assert float(metrics["episode_length"]) > 10 * episodes  # a standing walker is healthy, not failed at once
    assert float(metrics["episodes"]) == episodes and float(metrics["failures"]) == failures
    assert float(metrics["episode_return"]) == return_sum
    assert float(metrics["distance_from_origin"]) == pytest.approx(distance_sum, rel=1e-6)
    # the terminations saw the torso's height (about 1.05 m), not qpos[2] (the pitch angle, about 0)
    assert float(metrics["termination/bad_z_termination"]) == failures


def test_desynchronized_episodes_end_at_each_worlds_own_step_and_log_the_steps_they_ran(tmp_path):
    from ktorch_sim.config import load_config
    from ktorch_sim.training.trainer import Trainer
    from tests.cartpole import CartpoleConfig, CartpoleTask, PoleFellTermination

    # 10-step time limit (0.2 s at 50 Hz); the pole (reset within 0.1 rad, no force) does not fall that soon.
    env = CartpoleTask(CartpoleConfig(num_envs=16, episode_length_seconds=0.2)).make_env()
    env.reset()
    env.desynchronize_episodes(torch.Generator().manual_seed(0))
    start = env.ctx.episode_steps.clone()
    assert ((start >= 0) & (start < 10)).all() and len(set(start.tolist())) > 1
    done_at = torch.full((16,), -1)
    for k in range(1, 11):
        out = env.step(torch.zeros(16, env.num_actions))
        done = out["next", "done"].reshape(-1)
        assert (out["next", "truncated"].reshape(-1) == done).all()  # time limits, not falls
        done_at[done & (done_at < 0)] = k
    assert torch.equal(done_at, 10 - start)  # each world's first episode ends at its own step
    metrics = env.pop_metrics()
    assert metrics["episodes"].item() == 16
    assert metrics["episode_length"].item() == (10 - start).sum().item()  # the steps run, not the clock
    assert env.ctx.episode_steps.max().item() < 10  # the later episodes run from 0 again

    class NoTimeLimit(CartpoleTask):
        def get_terminations(self, model):
            return (PoleFellTermination(),)

    untimed = NoTimeLimit(CartpoleConfig(num_envs=4)).make_env()
    untimed.reset()
    untimed.desynchronize_episodes(torch.Generator().manual_seed(0))
    assert (untimed.ctx.episode_steps == 0).all()

    # ppo.desynchronize_episodes: the trainer spreads the clocks before the first rollout; off, they start at 0.
    for on in (True, False):
        config = load_config(None, ["task.name=tests.cartpole:CartpoleTask", "task.num_envs=16",
                                    f"ppo.desynchronize_episodes={str(on).lower()}", "logging.wandb_mode=disabled",
                                    f"logging.run_dir={tmp_path / str(on)}"])
        trainer = Trainer(config)
        assert (trainer.env.ctx.episode_steps > 0).any() == on
        trainer.logger.close()


def test_clip_actions_clamps_what_the_physics_and_rewards_see():
    """task.clip_actions = 0.3: stepping with 0.9 (and -5) equals stepping an unclipped env with 0.3 (and -0.3),
    observation for observation (the cart-pole motor's own ctrlrange is +-1, so only the clamp explains it); the
    rewards read the clamped action and the step reports it as the action applied."""
    from tests.cartpole import CartpoleConfig, CartpoleTask

    def run(clip, action):
        env = CartpoleTask(CartpoleConfig(num_envs=2, clip_actions=clip)).make_env()
        env.reset()
        for _ in range(5):
            out = env.step(action)
        return env, out

    action = torch.tensor([[0.9], [-5.0]])
    clipped_env, clipped = run(0.3, action)
    plain_env, plain = run(None, action.clamp(-0.3, 0.3))
    torch.testing.assert_close(clipped["next", "observation"], plain["next", "observation"], rtol=0, atol=0)
    torch.testing.assert_close(clipped["next", "reward"], plain["next", "reward"], rtol=0, atol=0)
    assert torch.equal(clipped["action"], torch.tensor([[0.3], [-0.3]]))
    assert torch.equal(clipped_env.ctx.action, torch.tensor([[0.3], [-0.3]]))
    _, unclipped = run(None, action)
    cart = ("next", "observation", "cart_observation")
    assert not torch.equal(unclipped[cart], plain[cart])


def test_clip_actions_must_be_positive():
    from ktorch_sim.errors import ConfigError
    from tests.cartpole import CartpoleConfig

    with pytest.raises((ConfigError, ValueError), match=r"task.clip_actions.*must be > 0 or none, got 0.0"):
        CartpoleConfig(clip_actions=0.0).check()
