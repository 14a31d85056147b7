"""The K-Scale humanoid benchmark notebook, ported in docs/humanoid_benchmark.py, runs on ktorch_sim.

One tiny training iteration through the script's own entry point (``main(["--tiny"])``), the
Actor's mixture-of-Gaussians head on the environment's real observations, and the port's custom
rewards against values worked out by hand.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import mujoco
import pytest
import torch
from tensordict import TensorDict

import ktorch_sim as ks
from ktorch_sim.components.base import EnvContext

PORT_PATH = Path(__file__).resolve().parent.parent / "docs" / "humanoid_benchmark.py"
MODULE_NAME = "humanoid_benchmark"

NOTEBOOK_REWARDS = (
    "naive_forward_reward", "naive_forward_orientation_reward", "stay_alive_reward", "upright_reward",
    "angular_velocity_penalty", "linear_velocity_penalty", "avoid_limits_penalty", "joint_acceleration_penalty",
    "joint_jerk_penalty", "link_acceleration_penalty", "link_jerk_penalty", "action_acceleration_penalty",
    "bent_arm_penalty", "straight_leg_penalty",
)


@pytest.fixture(scope="module")
def hb():
    """The port, imported from docs/ under a name the trainer can re-import ("module:Class" task names)."""
    if MODULE_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(MODULE_NAME, PORT_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[MODULE_NAME]


# --- the whole script -----------------------------------------------------------------------------


def test_tiny_run_trains_one_iteration_and_logs_notebook_rewards(hb, tmp_path):
    config = hb.tiny_config()
    steps = round(config.rollout_length_seconds / config.ctrl_dt)
    assert config.max_steps == config.num_envs * steps  # exactly one iteration

    run_dir = hb.main(["--tiny", "--run-dir", str(tmp_path)])

    assert run_dir.parent == tmp_path
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1]
    row = rows[0]
    assert row["env_steps"] == config.num_envs * steps
    logged = {k.removeprefix("reward/") for k in row if k.startswith("reward/")}
    assert set(NOTEBOOK_REWARDS) <= logged, f"missing: {sorted(set(NOTEBOOK_REWARDS) - logged)}"
    assert all(math.isfinite(v) for v in row.values() if isinstance(v, float))
    assert row["reward/stay_alive_reward"] == pytest.approx(1.0 / 100.0, abs=1e-6)  # nobody falls in 5 steps
    assert row["reward/naive_forward_orientation_reward"] > 0.5  # reset facing +x
    assert list((run_dir / "checkpoints").iterdir()), "a checkpoint is written when training stops"


def test_tiny_flag_from_environment(hb, monkeypatch, tmp_path):
    calls = {}

    def fake_launch(config, **sections):
        calls.update(config=config, **sections)
        return tmp_path

    monkeypatch.setenv(hb.TINY_ENV_VAR, "1")
    monkeypatch.setattr(hb.HumanoidWalkingTask, "launch", staticmethod(fake_launch))
    hb.main(["--run-dir", str(tmp_path)])
    assert calls["config"].num_envs == hb.tiny_config().num_envs
    assert calls["logging"].wandb_mode == "disabled"


def test_notebook_settings(hb):
    c = hb.notebook_config()
    assert (c.num_envs, c.batch_size, c.num_passes, c.rollout_length_seconds, c.grad_clip) == (2048, 256, 4, 8.0, 2.0)
    assert (c.dt, c.ctrl_dt, c.iterations, c.ls_iterations) == (0.002, 0.02, 8, 8)
    assert (c.action_latency_range, c.drop_action_prob) == ((0.003, 0.01), 0.05)
    assert (c.hidden_size, c.depth, c.num_mixtures, c.var_scale, c.learning_rate, c.adam_weight_decay) == \
        (128, 5, 5, 0.5, 3e-4, 1e-5)


# --- the model on real observations ------------------------------------------------------------------


def test_actor_outputs_a_mixture_per_joint_biased_by_the_zeros(hb):
    config = hb.tiny_config(num_mixtures=3)
    task = hb.HumanoidWalkingTask(config)
    env = task.make_env()
    first = env.reset()
    obs, cmd = first["observation"], first["command"]
    spec = ks.PolicySpec(num_actor_inputs=task.actor_inputs(obs, cmd).shape[-1],
                         num_critic_inputs=task.critic_inputs(obs, cmd).shape[-1], num_actions=env.num_actions,
                         action_bias=torch.zeros(env.num_actions))
    assert (spec.num_actor_inputs, spec.num_critic_inputs, spec.num_actions) == (51, 446, 20)
    model = task.get_model(spec)
    n, a, k = config.num_envs, len(hb.ZEROS), config.num_mixtures

    actor_carry, critic_carry = task.get_initial_model_carry(model, n)
    assert actor_carry.shape == critic_carry.shape == (n, config.depth, config.hidden_size)
    dist, next_carry = task.run_actor(model.actor, obs, cmd, actor_carry)
    assert dist.means.shape == dist.stds.shape == dist.logits.shape == (n, a, k) == (4, 20, 3)
    assert next_carry.shape == actor_carry.shape and next_carry.abs().sum() > 0
    assert bool((dist.stds <= 1.0).all()) and bool((dist.stds >= 0.001 * config.var_scale).all())
    value, _ = task.run_critic(model.critic, obs, cmd, critic_carry)
    assert value.shape == (n, 1)

    # With a zero output layer every mean is the joint's zero and every std is (softplus(0) + min_std) * var_scale.
    with torch.no_grad():
        model.actor.output_proj.weight.zero_()
        model.actor.output_proj.bias.zero_()
    dist, _ = task.run_actor(model.actor, obs, cmd, actor_carry)
    zeros = torch.tensor([v for _, v in hb.ZEROS])
    torch.testing.assert_close(dist.means, zeros[None, :, None].expand(n, a, k), rtol=0, atol=1e-7)
    expected_std = (math.log(2.0) + 0.001) * config.var_scale
    torch.testing.assert_close(dist.stds, torch.full((n, a, k), expected_std), rtol=0, atol=1e-6)
    torch.testing.assert_close(dist.mode(), zeros.expand(n, a), rtol=0, atol=1e-7)
    torch.testing.assert_close(dist.deterministic(), zeros.expand(n, a), rtol=0, atol=1e-6)


def test_ppo_variables_replay_matches_stepping(hb):
    """get_ppo_variables over [B, T] equals sample_action step by step, with the carry reset after ``done``."""
    torch.manual_seed(0)
    model = hb.Model(num_actor_inputs=51, num_actor_outputs=20, num_critic_inputs=446, min_std=0.001, max_std=1.0,
                     var_scale=0.5, hidden_size=8, num_mixtures=2, depth=2)
    task = hb.HumanoidWalkingTask(hb.tiny_config())
    b, t = 3, 4
    shapes = {"timestep_observation": 1, "joint_position_observation": 20, "joint_velocity_observation": 20,
              "projected_gravity_observation": 3, "sensor_observation_imu_acc": 3, "sensor_observation_imu_gyro": 3,
              "center_of_mass_inertia_observation": 230, "center_of_mass_velocity_observation": 138,
              "actuator_force_observation": 20, "base_position_observation": 3, "base_orientation_observation": 4}
    obs = TensorDict({k: torch.randn(b, t, d) for k, d in shapes.items()}, batch_size=[b, t])
    done = torch.zeros(b, t, 1, dtype=torch.bool)
    done[1, 1] = True  # env 1's episode ends at step 1: step 2 starts from a zero carry
    traj = TensorDict({"observation": obs, "command": TensorDict({}, batch_size=[b, t]),
                       "action": torch.randn(b, t, 20), "next": TensorDict({"done": done}, batch_size=[b, t])},
                      batch_size=[b, t])
    carry = task.get_initial_model_carry(model, b)
    with torch.no_grad():
        variables, _ = task.get_ppo_variables(model, traj, carry)
        for step in range(t):
            dist, actor_carry = task.run_actor(model.actor, obs[:, step], traj["command"][:, step], carry[0])
            value, critic_carry = task.run_critic(model.critic, obs[:, step], traj["command"][:, step], carry[1])
            torch.testing.assert_close(variables.log_probs[:, step], dist.log_prob(traj["action"][:, step]).sum(-1))
            torch.testing.assert_close(variables.values[:, step], value[:, 0])
            keep = (~done[:, step]).view(-1, 1, 1).float()
            carry = (actor_carry * keep, critic_carry * keep)
    assert variables.log_probs.shape == variables.values.shape == variables.entropy.shape == (b, t)


# --- the port's rewards, by hand ------------------------------------------------------------------


def _ctx(n: int, qpos: torch.Tensor, qvel: torch.Tensor | None = None, xpos: torch.Tensor | None = None,
         level: float = 1.0, steps: int = 1) -> EnvContext:
    physics = SimpleNamespace(qpos=qpos, qvel=qvel if qvel is not None else torch.zeros(n, 6),
                              xpos=xpos if xpos is not None else torch.zeros(n, 2, 3))
    zeros = torch.zeros(n, 2)
    return EnvContext(physics=physics, model=None, ctrl_dt=0.02, action=zeros, prev_action=zeros,
                      prev_prev_action=zeros, commands={}, observations={}, curriculum_level=torch.full((n,), level),
                      episode_steps=torch.full((n,), steps, dtype=torch.long), generator=torch.Generator())


def _yaw_quat(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def test_naive_forward_rewards(hb):
    qpos = torch.tensor([[0, 0, 1, *_yaw_quat(0.0)], [0, 0, 1, *_yaw_quat(math.pi / 2)],
                         [0, 0, 1, *_yaw_quat(math.pi)]], dtype=torch.float32)
    qvel = torch.tensor([[2.0, 0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0, 0], [-0.5, 0, 0, 0, 0, 0]])
    ctx = _ctx(3, qpos, qvel)
    world = hb.NaiveForwardReward(clip_max=1.25, in_robot_frame=False, scale=3.0).get_reward(ctx, {})
    torch.testing.assert_close(world, torch.tensor([1.25, 0.0, -0.5]))  # world x, clipped at 1.25
    body = hb.NaiveForwardReward().get_reward(ctx, {})
    torch.testing.assert_close(body, torch.tensor([2.0, 1.0, 0.5]), rtol=0, atol=1e-6)  # along the base's x axis
    facing = hb.NaiveForwardOrientationReward().get_reward(ctx, {})
    torch.testing.assert_close(facing, torch.tensor([1.0, -1.0, -1.0]), rtol=0, atol=1e-6)  # f_x - |(f_y, f_z)|
    # scale_by_curriculum is applied by the environment (ks.Reward), not inside get_reward
    flagged = hb.NaiveForwardOrientationReward(scale_by_curriculum=True)
    assert flagged.scale_by_curriculum
    torch.testing.assert_close(flagged.get_reward(_ctx(3, qpos, qvel, level=0.5), {}), facing)


def _run_history(penalty, frames, key: str):
    """Reset on frame 0, then the penalty after each later frame (episode_steps 1, 2, ...)."""
    build = (lambda f, s: _ctx(1, f, steps=s)) if key == "qpos" else \
        (lambda f, s: _ctx(1, torch.zeros(1, 7), xpos=f, steps=s))
    ctx = build(frames[0], 0)
    state = penalty.init_state(ctx)
    penalty.reset(state, torch.ones(1, dtype=torch.bool), ctx)
    return [float(penalty.get_reward(build(f, s), state)[0]) for s, f in enumerate(frames[1:], start=1)]


def test_joint_acceleration_and_jerk_penalties(hb):
    q = [0.0, 0.1, 0.4, 1.0, 1.5]  # one joint; differences 0.1, 0.3, 0.6, 0.5; then 0.2, 0.3, -0.1; then 0.1, -0.4
    frames = [torch.tensor([[0, 0, 1, 1, 0, 0, 0, v, 2.0 * v]]) for v in q]  # two joints, the second twice the first
    acc = _run_history(hb.JointAccelerationPenalty(), frames, "qpos")
    expected_acc = [0.0] + [(d**2 + (2 * d) ** 2) / 2 for d in (0.2, 0.3, -0.1)]  # mean over the two joints
    assert acc == pytest.approx(expected_acc, abs=1e-6)
    jerk = _run_history(hb.JointJerkPenalty(norm="l1"), frames, "qpos")
    assert jerk == pytest.approx([0.0, 0.0] + [(abs(d) + abs(2 * d)) / 2 for d in (0.1, -0.4)], abs=1e-6)


def test_link_acceleration_and_jerk_penalties(hb):
    # Body 1 moves along x by 0.1, 0.3, 0.6, 0.5 per step (speeds); body 2 stays; xpos[:, 0] is the world body.
    xs = [0.0, 0.1, 0.4, 1.0, 1.5]
    frames = [torch.tensor([[[0.0, 0, 0], [x, 0, 0], [0, 0, 0.5]]]) for x in xs]
    acc = _run_history(hb.LinkAccelerationPenalty(), frames, "xpos")
    assert acc == pytest.approx([0.0] + [d**2 / 2 for d in (0.2, 0.3, -0.1)], abs=1e-6)
    jerk = _run_history(hb.LinkJerkPenalty(), frames, "xpos")
    assert jerk == pytest.approx([0.0, 0.0] + [d**2 / 2 for d in (0.1, -0.4)], abs=1e-6)


def test_finite_difference_history_restarts_at_reset(hb):
    penalty = hb.JointAccelerationPenalty()
    ctx = _ctx(2, torch.zeros(2, 8))
    state = penalty.init_state(ctx)
    state["history"].fill_(5.0)  # stale values from an old episode
    penalty.reset(state, torch.tensor([True, False]), _ctx(2, torch.full((2, 8), 1.0)))
    torch.testing.assert_close(state["history"][0], torch.ones(2, 1))
    torch.testing.assert_close(state["history"][1], torch.full((2, 1), 5.0))


def test_bent_arm_and_straight_leg_penalties(hb):
    model = ks.load_kbot_model()
    qpos = torch.tensor(ks.kbot_home_qpos(model), dtype=torch.float32)[None].repeat(2, 1)
    elbow = int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "dof_left_elbow_02")])
    hip = int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "dof_right_hip_yaw_03")])
    qpos[1, elbow] += 0.2
    qpos[1, hip] -= 0.3
    ctx = _ctx(2, qpos, level=0.5)
    arm = hb.BentArmPenalty.create_penalty(model, scale=-0.1)
    leg = hb.StraightLegPenalty.create_penalty(model, scale=-0.1, scale_by_curriculum=True)
    torch.testing.assert_close(arm.get_reward(ctx, {}), torch.tensor([0.0, 0.04]), rtol=0, atol=1e-6)
    torch.testing.assert_close(leg.get_reward(ctx, {}), torch.tensor([0.0, 0.09]), rtol=0, atol=1e-6)
    assert leg.scale_by_curriculum
    assert arm.signed_scale == -0.1 and arm.name == "bent_arm_penalty"


def test_scale_by_curriculum_scales_the_contribution_in_the_env():
    """ksim's flag: the environment multiplies the term by the curriculum level."""
    from dataclasses import dataclass

    from ktorch_sim.env import Env, EnvSpec

    @dataclass(frozen=True, kw_only=True)
    class One(ks.Reward):
        def get_reward(self, ctx, state):
            return torch.ones(ctx.num_envs)

    model = ks.load_kbot_model()
    spec = EnvSpec(actuators=ks.PositionActuators.create(model, ks.kbot_metadata()),
                   rewards=[One(scale=2.0, scale_by_curriculum=True)],
                   terminations=[ks.EpisodeLengthTermination(max_length_sec=10.0)])
    env = Env(model, spec, ks.EngineConfig(num_envs=2, dt=0.004, ctrl_dt=0.02), engine="mujoco")
    env.set_curriculum_level(0.25)
    out = env.step(env._initial_qpos[7:].expand(2, -1).clone())
    torch.testing.assert_close(out["next", "reward"][:, 0], torch.full((2,), 0.5))
