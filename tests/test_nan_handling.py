"""NaN, inf and buffer overflow: broken worlds are flagged, reset and counted, and nothing else moves.

Ground truth is a twin: the same engine or environment, same seed, same inputs, without the
injection. Every world that was not broken must stay bit-identical to its twin; broken worlds
must come back finite and, once reset, evolve exactly as the twin's world reset the same way.
At the training level, masked transitions must not influence the update at all, and a
non-finite loss must leave the parameters and the optimizer untouched.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import ktorch_sim as ks
from ktorch_sim.actuators import PositionActuators
from ktorch_sim.components.base import Observation, Reset, Reward, Termination
from ktorch_sim.engines import EngineConfig, PhysicsState
from ktorch_sim.env import Env, EnvSpec
from ktorch_sim.robots import kbot_metadata, load_kbot_model
from ktorch_sim.training.trainer import Trainer
from tests.cartpole import CartpoleConfig, CartpoleTask
from tests.conftest import build_engine, reset_engine
from tests.test_learning import cartpole_config

N = 8
BROKEN = (2, 5)  # worlds that get a bad qpos (world 2) and a bad qvel (world 5)
FIELDS = tuple(PhysicsState.field_shapes(load_kbot_model()))


def _mask(worlds: tuple[int, ...], n: int = N) -> list[bool]:
    return [w in worlds for w in range(n)]


def _home_targets(engine, home_qpos: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.tile(home_qpos[7:], (engine.num_envs, 1)), dtype=torch.float32, device=engine.device)


def _assert_worlds_identical(a, b, worlds) -> None:
    """Every PhysicsState field of ``worlds`` is bit-identical between engines ``a`` and ``b``."""
    for name in FIELDS:
        x, y = getattr(a.state, name), getattr(b.state, name)
        for w in worlds:
            assert torch.equal(x[w], y[w]), f"{name} of world {w} differs from the twin"


def _break(state: PhysicsState, value: float) -> None:
    state.qpos[BROKEN[0], 9] = value  # a leg joint
    state.qvel[BROKEN[1], 3] = value  # base angular velocity


# --- engine level -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
def test_engine_flags_exactly_the_broken_worlds_and_reset_restores_them(engine_spec, kbot_model, home_qpos, value):
    broken, twin = (build_engine(engine_spec, kbot_model, num_envs=N) for _ in range(2))
    targets = _home_targets(broken, home_qpos)
    for engine in (broken, twin):
        reset_engine(engine, home_qpos)
        for _ in range(3):
            engine.step(targets)
    _break(broken.state, value)  # Warp: the zero-copy view; native: written back into MjData before stepping
    broken.step(targets)
    twin.step(targets)
    assert broken.bad_worlds().cpu().tolist() == _mask(BROKEN)
    assert not twin.bad_worlds().any()
    others = [w for w in range(N) if w not in BROKEN]
    _assert_worlds_identical(broken, twin, others)

    # Reset the flagged worlds of both to the same state: they are finite and unflagged at once, and
    # afterwards every world, reset or not, evolves exactly as in the twin (no stale NaN survives).
    mask = broken.bad_worlds().clone()
    qpos = torch.tensor(np.tile(home_qpos, (N, 1)), dtype=torch.float32, device=broken.device)
    qvel = torch.zeros(N, kbot_model.nv, device=broken.device)
    for engine in (broken, twin):
        engine.reset(mask, qpos, qvel)
    assert not broken.bad_worlds().any()
    for name in FIELDS:
        assert torch.isfinite(getattr(broken.state, name)).all(), name
    for _ in range(3):
        broken.step(targets)
        twin.step(targets)
    assert not broken.bad_worlds().any()
    _assert_worlds_identical(broken, twin, range(N))


def test_engine_flags_a_world_stepped_with_nonfinite_ctrl(engine_spec, kbot_model, home_qpos):
    """Native MuJoCo zeroes a bad ctrl (warning BADCTRL), Warp clamps its force to the limit: both flag it."""
    broken, twin = (build_engine(engine_spec, kbot_model, num_envs=4) for _ in range(2))
    targets = _home_targets(broken, home_qpos)
    for engine in (broken, twin):
        reset_engine(engine, home_qpos)
    bad_targets = targets.clone()
    bad_targets[1, 3] = math.nan
    broken.step(bad_targets)
    twin.step(targets)
    assert broken.bad_worlds().cpu().tolist() == [False, True, False, False]
    _assert_worlds_identical(broken, twin, (0, 2, 3))


# --- environment level ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BasePose(Observation):
    def observe(self, ctx, state):
        return ctx.physics.qpos[:, :7].clone()


@dataclass(frozen=True, kw_only=True)
class BaseHeightReward(Reward):
    def get_reward(self, ctx, state):
        return ctx.physics.qpos[:, 2]


@dataclass(frozen=True, kw_only=True)
class Never(Termination):
    def check(self, ctx):
        return torch.zeros(ctx.num_envs, dtype=torch.int8, device=ctx.device)


@dataclass(frozen=True, kw_only=True)
class LiftWorlds(Reset):
    """Start ``worlds`` ``dz`` metres above the home pose (in the air, no contacts)."""

    worlds: tuple[int, ...]
    dz: float = 0.5

    def apply(self, qpos, qvel, mask, ctx):
        lifted = torch.tensor(_mask(self.worlds, ctx.num_envs), device=ctx.device)
        qpos[:, 2] += torch.where(mask & lifted, self.dz, 0.0)


def make_env(engine_spec, num_envs: int = N, lifted: tuple[int, ...] = (), **engine_options) -> Env:
    model = load_kbot_model()
    kind, device = engine_spec
    actuators = PositionActuators.create(model, kbot_metadata(), kp_scale=1.4, kd_scale=1.4, torque_limit_scale=1.5)
    spec = EnvSpec(actuators=actuators, observations=[BasePose()], rewards=[BaseHeightReward()],
                   terminations=[Never()], resets=[LiftWorlds(worlds=lifted)] if lifted else ())
    config = EngineConfig(num_envs=num_envs, dt=0.004, ctrl_dt=0.02, device=device, **engine_options)
    return Env(model, spec, config, engine=kind, seed=0)


def _home_action(env: Env) -> torch.Tensor:
    return env._initial_qpos[7:].expand(env.num_envs, -1).clone()


def _flags(td, key: str) -> list[bool]:
    return td["next", key].reshape(-1).cpu().tolist()


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
def test_env_resets_and_counts_broken_worlds_and_leaves_the_others_untouched(engine_spec, value):
    broken, twin = make_env(engine_spec), make_env(engine_spec)
    action = _home_action(broken)
    for env in (broken, twin):
        env.reset()
        for _ in range(3):
            env.step(action)
        env.pop_metrics()
    _break(broken.engine.state, value)
    out, ref = broken.step(action), twin.step(action)

    assert _flags(out, "bad_physics") == _mask(BROKEN)
    assert _flags(out, "terminated") == _mask(BROKEN) and _flags(out, "done") == _mask(BROKEN)
    assert not any(_flags(out, "truncated")) and not any(_flags(out, "bad_action"))
    assert torch.isfinite(out["next", "reward"]).all()
    metrics = broken.pop_metrics()
    assert (metrics["bad_physics"].item(), metrics["overflow"].item(), metrics["bad_action"].item()) == (2, 0, 0)
    assert metrics["episodes"].item() == 2 and metrics["failures"].item() == 2
    # the broken worlds start over from the reset pose, finite, in every field
    home = broken._initial_qpos
    for w in BROKEN:
        assert torch.equal(broken.engine.state.qpos[w], home) and not broken.engine.state.qvel[w].any()
        assert broken.ctx.episode_steps[w].item() == 0
        torch.testing.assert_close(out["next", "observation", "base_pose"][w], home[:7], atol=0, rtol=0)
    for name in FIELDS:
        assert torch.isfinite(getattr(broken.engine.state, name)).all(), name
    # every other world is bit-identical to the twin: physics, reward and next observation
    others = [w for w in range(N) if w not in BROKEN]
    _assert_worlds_identical(broken.engine, twin.engine, others)
    for key in (("next", "reward"), ("next", "observation", "base_pose")):
        assert torch.equal(out[key][others], ref[key][others]), key
    # and it goes on: nothing is flagged again, the others stay identical
    for _ in range(2):
        out, ref = broken.step(action), twin.step(action)
        assert not any(_flags(out, "bad_physics"))
    _assert_worlds_identical(broken.engine, twin.engine, others)


def test_env_keeps_nonfinite_actions_out_of_the_physics(engine_spec):
    """A non-finite action row is replaced by that world's previous action; the world is flagged and reset."""
    env, twin = make_env(engine_spec), make_env(engine_spec)
    previous = _home_action(env)
    previous[:, 0] += 0.05 * torch.arange(N, device=previous.device)  # distinct per world
    for e in (env, twin):
        e.reset()
        e.step(_home_action(e))
        e.step(previous)
        e.pop_metrics()
    action = _home_action(env)
    action[1, 4] = math.nan
    action[6, :] = -math.inf
    applied = torch.where(torch.tensor(_mask((1, 6)), device=action.device)[:, None], previous, action)
    out, ref = env.step(action), twin.step(applied)

    assert _flags(out, "bad_action") == _mask((1, 6))
    assert not any(_flags(out, "bad_physics")) and _flags(out, "terminated") == _mask((1, 6))
    assert torch.equal(out["action"], applied)  # the action actually applied is what the buffer stores
    metrics = env.pop_metrics()
    assert (metrics["bad_action"].item(), metrics["bad_physics"].item()) == (2, 0)
    for name in FIELDS:
        assert torch.isfinite(getattr(env.engine.state, name)).all(), name
    assert env.ctx.episode_steps[[1, 6]].tolist() == [0, 0]
    others = [w for w in range(N) if w not in (1, 6)]
    _assert_worlds_identical(env.engine, twin.engine, others)
    assert torch.equal(out["next", "reward"][others], ref["next", "reward"][others])


# --- Warp buffer overflow -----------------------------------------------------------------------


def test_warp_constraint_overflow_is_per_world_and_reset(home_qpos):
    """njmax=32: a K-Bot standing on the floor needs 52 constraint rows, one in the air 20.

    mujoco_warp sets the NEFC bit only in worlds that overflowed: those are flagged, reset and
    counted; the worlds in the air are bit-identical to a twin in which no world overflows.
    """
    import mujoco_warp as mjw

    lifted = (2, 3)
    env = make_env(("warp", "cpu"), num_envs=4, lifted=lifted, njmax=32)
    twin = make_env(("warp", "cpu"), num_envs=4, lifted=(0, 1, 2, 3), njmax=32)
    for e in (env, twin):
        e.reset()
        e.pop_metrics()
    action = _home_action(env)
    env.engine.step(action)  # the engine alone first, to read the raw flags before the env resets them
    twin.engine.step(action)
    assert env.engine.overflow_flags().tolist() == [int(mjw.OverflowType.NEFC)] * 2 + [0, 0]
    assert env.engine.bad_worlds().tolist() == [True, True, False, False]

    out, _ = env.step(action), twin.step(action)
    assert _flags(out, "bad_physics") == [True, True, False, False]
    assert env.engine.overflow_flags().tolist() == [0, 0, 0, 0]  # cleared by the reset
    metrics = env.pop_metrics()
    assert (metrics["bad_physics"].item(), metrics["overflow"].item()) == (2, 2)
    assert torch.equal(env.engine.state.qpos[:2], env._initial_qpos.expand(2, -1))
    for name in FIELDS:
        assert torch.isfinite(getattr(env.engine.state, name)).all(), name
    _assert_worlds_identical(env.engine, twin.engine, lifted)


def test_warp_contact_pool_overflow_flags_every_world(home_qpos, kbot_model):
    """nconmax=2 pools 8 contacts for 4 worlds; two standing worlds need 16.

    mujoco_warp compares the pooled count with the pool size and sets NARROWPHASE in every world,
    since which world lost contacts depends on the order of atomic adds (on the CPU, world 1 lost
    them); the worlds in the air lost nothing and are bit-identical to a twin with room to spare.
    """
    import mujoco_warp as mjw

    qpos = np.tile(home_qpos, (4, 1))
    qpos[2:, 2] += 0.5
    small = build_engine(("warp", "cpu"), kbot_model, num_envs=4, nconmax=2)
    roomy = build_engine(("warp", "cpu"), kbot_model, num_envs=4, nconmax=16)
    for engine in (small, roomy):
        reset_engine(engine, qpos)
        engine.step(_home_targets(engine, home_qpos))
    flags = small.overflow_flags().tolist()
    assert all(f & int(mjw.OverflowType.NARROWPHASE) for f in flags), flags
    assert not any(f & int(mjw.OverflowType.NEFC) for f in flags), flags
    assert small.bad_worlds().tolist() == [True] * 4 and small.overflowed_worlds().tolist() == [True] * 4
    assert not roomy.bad_worlds().any()
    _assert_worlds_identical(small, roomy, (2, 3))


# --- training level -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class InjectNaN(ks.Event):
    """Write NaN into world ``world``'s qvel every ``every`` control steps (a test-only disturbance)."""

    world: int = 3
    every: int = 7

    def init_state(self, ctx):
        return {"count": torch.zeros((), dtype=torch.long, device=ctx.device)}

    def apply(self, state, ctx):
        state["count"] += 1
        hit = (state["count"] % self.every == 0) & (torch.arange(ctx.num_envs, device=ctx.device) == self.world)
        ctx.physics.qvel.copy_(torch.where(hit[:, None], math.nan, ctx.physics.qvel))


class NaNCartpoleTask(CartpoleTask):
    """The cart-pole with world 3's physics broken every 7 control steps."""

    def get_events(self, model):
        return (InjectNaN(),)


def _tiny_config(tmp_path, engine: str = "mujoco"):
    config = cartpole_config(str(tmp_path))
    return dataclasses.replace(
        config, task=CartpoleConfig(num_envs=8, seed=0, engine=engine),
        ppo=dataclasses.replace(config.ppo, batch_size=4, num_passes=2, rollout_length_seconds=0.4),
        model=dataclasses.replace(config.model, hidden_size=16))


def _parameters(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


@pytest.mark.parametrize("engine", ["mujoco", pytest.param("warp", marks=pytest.mark.slow)])
def test_training_goes_on_through_broken_physics(tmp_path, engine):
    config = _tiny_config(tmp_path, engine)
    trainer = Trainer(config, task=NaNCartpoleTask(config.task))
    before = _parameters(trainer)
    for _ in range(3):
        metrics = trainer.iterate()
        assert metrics["physics/bad_worlds"] >= 2, metrics  # 20 steps per rollout, one NaN every 7
        assert metrics["physics/bad_actions"] == 0 and metrics["physics/overflow_worlds"] == 0
        assert metrics["train/skipped_updates"] == 0
        assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("loss/")), metrics
    after = _parameters(trainer)
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), "the policy never trained"
    trainer.logger.close()


def _fill_invalid(buffer, invalid: torch.Tensor, value: float):
    """A copy of ``buffer`` with every float entry of the ``invalid`` steps set to ``value``."""
    out = buffer.clone()
    for leaf in out.values(include_nested=True, leaves_only=True):
        if leaf.is_floating_point():
            leaf.masked_fill_(invalid.view(*invalid.shape, *[1] * (leaf.dim() - 2)), value)
    return out


def test_masked_transitions_do_not_influence_the_update(tmp_path):
    """An update on a buffer whose masked steps hold NaN, inf or 1e30 equals the one where they hold 0."""
    config = _tiny_config(tmp_path)
    trainer = Trainer(config)
    trainer.model.eval()
    buffer, start_carry, _, _ = trainer.collector.collect(trainer.model, trainer.carry)
    buffer = buffer.clone()
    invalid = torch.zeros(buffer.batch_size, dtype=torch.bool)
    invalid[1, 5] = invalid[6, 10] = True
    for key in ("done", "terminated"):  # a broken step always ends its episode
        buffer["next", key][..., 0] |= invalid
    buffer["next", "bad_physics"] |= invalid
    buffer["next", "bad_action"][6, 10] = True

    # The algorithm's state too: the optimizer and the return scaler, whose running statistics each update moves.
    model_state, ppo_state = copy.deepcopy(trainer.model.state_dict()), copy.deepcopy(trainer.ppo.state_dict())
    rng_state = trainer.generator.get_state()
    results = []
    trainer.model.train()
    for value in (0.0, math.nan, math.inf, 1e30):
        trainer.model.load_state_dict(model_state)
        trainer.ppo.load_state_dict(copy.deepcopy(ppo_state))
        trainer.generator.set_state(rng_state)
        losses = trainer.ppo.update(_fill_invalid(buffer, invalid, value), start_carry)
        results.append((_parameters(trainer), {k: v.clone() for k, v in losses.items()}))
    assert trainer.ppo.skipped_updates == 0
    reference_params, reference_losses = results[0]
    assert all(torch.isfinite(p).all() for p in reference_params)
    assert any(not torch.equal(p, q) for p, q in zip(reference_params, model_state.values(), strict=False))
    for params, losses in results[1:]:
        for p, q in zip(params, reference_params, strict=True):
            assert torch.equal(p, q)
        for k, v in losses.items():
            assert torch.equal(v, reference_losses[k]), k
    trainer.logger.close()


def test_nonfinite_loss_skips_the_update_and_training_recovers(tmp_path, monkeypatch):
    config = _tiny_config(tmp_path)
    trainer = Trainer(config)
    assert trainer.iterate()["train/skipped_updates"] == 0
    params, adam = _parameters(trainer), copy.deepcopy(trainer.optimizer.state_dict())

    original = trainer.task.get_ppo_variables

    def nan_values(model, trajectory, carry):
        variables, carry = original(model, trajectory, carry)
        return dataclasses.replace(variables, values=variables.values * math.nan), carry

    monkeypatch.setattr(trainer.task, "get_ppo_variables", nan_values)
    metrics = trainer.iterate()
    minibatches = config.ppo.num_passes * config.task.num_envs // config.ppo.batch_size
    assert metrics["train/skipped_updates"] == minibatches
    for p, q in zip(_parameters(trainer), params, strict=True):
        assert torch.equal(p, q)
    state = trainer.optimizer.state_dict()["state"]
    for i, s in adam["state"].items():
        for k, v in s.items():
            assert torch.equal(state[i][k], v), (i, k)

    monkeypatch.setattr(trainer.task, "get_ppo_variables", original)
    metrics = trainer.iterate()
    assert metrics["train/skipped_updates"] == 0 and math.isfinite(metrics["loss/loss"])
    after = _parameters(trainer)
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(p, q) for p, q in zip(after, params, strict=True))
    assert trainer.ppo.skipped_updates == minibatches  # the cumulative count kept for checkpoints
    trainer.logger.close()


# --- the pieces that keep one NaN from spreading --------------------------------------------------


def test_reset_carry_clears_a_nan_carry():
    """Multiplying by 0 keeps NaN (0 * NaN = NaN); the reset must replace the carry of a done world."""
    from ktorch_sim.algorithms.rollout import reset_carry

    carry = torch.tensor([[1.0, 2.0], [math.nan, math.inf], [math.nan, 3.0]])
    actor, critic = reset_carry((carry, carry.clone()), torch.tensor([False, True, False]))
    for out in (actor, critic):
        assert out[1].tolist() == [0.0, 0.0] and out[0].tolist() == [1.0, 2.0] and math.isnan(out[2, 0])


def test_normalizer_ignores_nonfinite_rows():
    """A batch with NaN/inf rows updates the statistics exactly as the batch without them."""
    from ktorch_sim.algorithms.normalizer import RunningNormalizer

    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    poisoned = torch.cat([x[:2], torch.tensor([[math.nan, 0.0, 0.0], [0.0, math.inf, 0.0]]), x[2:]])
    clean, dirty = RunningNormalizer(3), RunningNormalizer(3)
    clean.update(x)
    dirty.update(poisoned)
    for name in ("mean", "var", "count"):
        torch.testing.assert_close(getattr(dirty, name), getattr(clean, name), atol=0, rtol=0)
    torch.testing.assert_close(clean.mean, torch.tensor([4.5, 5.5, 6.5]), atol=1e-3, rtol=0)  # count starts at 1e-4
    dirty.update(torch.full((2, 3), math.nan))  # an all-bad batch changes nothing
    torch.testing.assert_close(dirty.mean, clean.mean, atol=0, rtol=0)
    torch.testing.assert_close(dirty.var, clean.var, atol=0, rtol=0)
