"""The ported Gymnasium tasks (benchmarks/gym_tasks.py) against Gymnasium's own environments.

The parity test starts our world from the exact state of Gymnasium's after each of its resets
(rounded to float32, the engines' state type, in both), applies the same random actions (half of
them outside ctrlrange, to exercise MuJoCo's clamping) and compares observations, rewards and
flags step by step through several episodes: this checks dynamics, integrator, solver settings,
observations, rewards, terminations and the time limit.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

gym = pytest.importorskip("gymnasium")

import ktorch_sim as ks  # noqa: E402
from benchmarks import gym_tasks  # noqa: E402
from benchmarks.gym_tasks import GYM_TASKS, gymnasium_env_args, task_name  # noqa: E402

STEPS = 200
# Short time limits exercise truncation: HalfCheetah never fails; Hopper's random episodes last ~10-25 steps,
# so with 18 some end by the limit and some by falling; Swimmer never fails; InvertedPendulum's random episodes
# mostly fall within 15 steps, and one reaches the limit.
TIME_LIMITS = {"HalfCheetah-v5": 60, "HalfCheetah-v5-novel": 60, "Hopper-v5": 18, "Swimmer-v5": 60,
               "InvertedPendulum-v5": 15}
CAN_FAIL = {"Walker2d-v5", "Walker2d-v5-novel", "Hopper-v5", "Ant-v5", "InvertedPendulum-v5"}
OBS_ATOL, OBS_RTOL, REWARD_ATOL = 1e-4, 1e-5, 1e-4
MEASURED: dict[str, dict[str, float]] = {}  # max differences per env, printed with -s


@dataclasses.dataclass(frozen=True, kw_only=True)
class _GivenStateReset(ks.Reset):
    """Resets to ``target["qpos"]``/``target["qvel"]``, which the test sets to Gymnasium's state."""

    target: dict

    def apply(self, qpos, qvel, mask, ctx):
        qpos[mask] = self.target["qpos"]
        qvel[mask] = self.target["qvel"]


def _gym_reset(env, target: dict, seed: int | None = None) -> np.ndarray:
    """Reset Gymnasium's env, round its state to float32, and make that our next reset state."""
    env.reset(seed=seed)
    u = env.unwrapped
    qpos = u.data.qpos.astype(np.float32).astype(np.float64)
    qvel = u.data.qvel.astype(np.float32).astype(np.float64)
    u.set_state(qpos, qvel)
    target["qpos"], target["qvel"] = torch.from_numpy(qpos).float(), torch.from_numpy(qvel).float()
    return u._get_obs()


def _features(task, td) -> np.ndarray:
    """What the policy sees: the task's observations concatenated in order, for world 0."""
    return task.actor_features(td["observation"], td["command"])[0].numpy().astype(np.float64)


def _make_pair(env_id: str, seed: int):
    limit = TIME_LIMITS.get(env_id, 1000)
    gym_id, kwargs = gymnasium_env_args(env_id)
    genv = gym.make(gym_id, max_episode_steps=limit, disable_env_checker=True, **kwargs)
    cls = GYM_TASKS[env_id]
    task = cls(cls.config_class(num_envs=1, max_episode_steps=limit, num_threads=1, seed=seed))
    target: dict = {}
    task.get_resets = lambda model: (_GivenStateReset(target=target),)
    expected = _gym_reset(genv, target, seed=seed)
    env = task.make_env()
    return genv, task, env, target, expected


@pytest.mark.parametrize("env_id", sorted(GYM_TASKS))
def test_matches_gymnasium_step_by_step(env_id):
    torch.set_num_threads(1)
    seed = 3
    genv, task, env, target, expected = _make_pair(env_id, seed)
    width = len(_features(task, env.reset()))
    if env_id.endswith("-novel"):  # positions only: Gymnasium's observation without its velocities
        assert width == genv.unwrapped.data.qpos.size - 1
    else:
        assert width == genv.observation_space.shape[0]
    rng = np.random.default_rng(seed)
    low, high = genv.action_space.low, genv.action_space.high
    ours = _features(task, env.reset())
    obs_diff, reward_diff = float(np.abs(ours - expected[:width]).max()), 0.0
    episodes, truncations, failures = 1, 0, 0
    np.testing.assert_allclose(ours, expected[:width], rtol=OBS_RTOL, atol=OBS_ATOL)
    for step in range(STEPS):
        action = rng.uniform(1.5 * low, 1.5 * high).astype(np.float32)  # half outside ctrlrange
        expected, reward, terminated, truncated, _ = genv.step(action)
        if terminated or truncated:  # our env resets inside its step, to Gymnasium's next reset state
            expected = _gym_reset(genv, target)
            episodes += 1
            truncations += bool(truncated)
            failures += bool(terminated)
        nxt = env.step(torch.from_numpy(action)[None])["next"]
        where = f"{env_id} step {step}"
        assert bool(nxt["terminated"]) == terminated, where
        assert bool(nxt["truncated"]) == (truncated and not terminated), where
        assert float(nxt["reward"]) == pytest.approx(reward, abs=REWARD_ATOL), where
        ours = _features(task, nxt)
        np.testing.assert_allclose(ours, expected[:width], rtol=OBS_RTOL, atol=OBS_ATOL, err_msg=where)
        obs_diff = max(obs_diff, float(np.abs(ours - expected[:width]).max()))
        reward_diff = max(reward_diff, abs(float(nxt["reward"]) - reward))
    MEASURED[env_id] = {"max_obs_diff": obs_diff, "max_reward_diff": float(reward_diff), "episodes": episodes,
                        "truncations": truncations, "failures": failures}
    print(env_id, MEASURED[env_id])
    if env_id in TIME_LIMITS:
        assert truncations >= 1, "the time limit should have truncated an episode"
    if env_id in CAN_FAIL:
        assert failures >= 1, "an unhealthy state should have ended an episode"


@pytest.mark.parametrize("env_id", ["Walker2d-v5", "Hopper-v5", "HalfCheetah-v5", "Ant-v5", "Swimmer-v5",
                                    "InvertedPendulum-v5"])
def test_physics_options_equal_the_xml_and_frame_skip(env_id):
    gym_id, kwargs = gymnasium_env_args(env_id)
    genv = gym.make(gym_id, disable_env_checker=True, **kwargs)
    u = genv.unwrapped
    cls = GYM_TASKS[env_id]
    config = cls.config_class()
    assert config.num_envs == 1 and config.engine == "mujoco"
    assert config.frame_skip == u.frame_skip
    assert config.dt == u.model.opt.timestep
    assert config.ctrl_dt == pytest.approx(u.dt, rel=1e-12)
    assert genv.spec.max_episode_steps == config.max_episode_steps
    engine_opt = cls(config).make_env().engine.model.opt
    for name in ("timestep", "integrator", "iterations", "ls_iterations", "tolerance", "ls_tolerance", "solver",
                 "cone", "noslip_iterations", "impratio", "gravity", "density", "viscosity", "wind",
                 "disableflags", "enableflags"):
        assert np.array_equal(getattr(engine_opt, name), getattr(u.model.opt, name)), name


@pytest.mark.parametrize("env_id,qvel_noise", [("Walker2d-v5", "uniform"), ("Hopper-v5", "uniform"),
                                               ("HalfCheetah-v5", "normal"), ("Ant-v5", "normal"),
                                               ("Swimmer-v5", "uniform"), ("InvertedPendulum-v5", "uniform")])
def test_reset_noise_has_gymnasiums_distribution(env_id, qvel_noise):
    cls = GYM_TASKS[env_id]
    config = cls.config_class(num_envs=256, num_threads=1)
    env = cls(config).make_env()
    env.reset()
    s = config.reset_noise_scale
    dq = env.engine.state.qpos - torch.tensor(env.model.qpos0, dtype=torch.float32)
    dv = env.engine.state.qvel
    assert dq.abs().max() <= s * (1 + 1e-5)
    assert dq.std().item() == pytest.approx(s / math.sqrt(3), rel=0.05)  # every coordinate, the root's x too
    if qvel_noise == "uniform":
        assert dv.abs().max() <= s * (1 + 1e-5)
        assert dv.std().item() == pytest.approx(s / math.sqrt(3), rel=0.05)
    else:
        assert dv.abs().max() > 2 * s
        assert dv.std().item() == pytest.approx(s, rel=0.05)
    assert abs(dv.mean().item()) < 0.05 * s


def test_registry_names_importable_tasks():
    from ktorch_sim.config import resolve_task

    assert set(GYM_TASKS) == {"Walker2d-v5", "Walker2d-v5-novel", "Hopper-v5", "HalfCheetah-v5",
                              "HalfCheetah-v5-novel", "Ant-v5", "Swimmer-v5", "InvertedPendulum-v5"}
    for env_id, cls in GYM_TASKS.items():
        assert resolve_task(task_name(env_id)) == (cls, cls.config_class)
    assert task_name("Walker2d-v5") == "benchmarks.gym_tasks:Walker2dTask"
    with pytest.raises(KeyError, match="Hopper-v5"):
        task_name("Hopper-v4")


def test_missing_gymnasium_names_the_install_command(monkeypatch):
    monkeypatch.setattr(gym_tasks.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install -e "\.\[benchmark\]"'):
        gym_tasks.Walker2dTask(gym_tasks.Walker2dConfig())
    with pytest.raises(ValueError, match=r'pip install -e "\.\[benchmark\]"'):
        gym_tasks.AntConfig().check_inputs()


def test_configs_round_trip_through_toml(tmp_path):
    from ktorch_sim.config import config_from_dict, load_config, save_config

    # Hopper's healthy z range ends at inf; InvertedPendulum's config has its own field and checks.
    for env_id in ("Hopper-v5", "Walker2d-v5-novel", "InvertedPendulum-v5"):
        config = config_from_dict({"task": {"name": task_name(env_id)}})
        assert load_config(save_config(config, tmp_path / f"{env_id}.toml")).task == config.task


def test_inverted_pendulum_rejects_reward_weights_it_does_not_have():
    config = gym_tasks.InvertedPendulumConfig()
    config.check_inputs()
    with pytest.raises(ValueError, match="ctrl_cost_weight"):
        gym_tasks.InvertedPendulumConfig(ctrl_cost_weight=0.5).check_inputs()
    with pytest.raises(ValueError, match="max_pole_angle must be > 0"):
        gym_tasks.InvertedPendulumConfig(max_pole_angle=0.0).check_inputs()
