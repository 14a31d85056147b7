"""One learning run of the benchmark: ktorch_sim's PPO or Stable-Baselines3's on a Gymnasium task.

``python -m benchmarks.learning --lib ktorch-mlp --env Walker2d-v5 --seed 0 --steps 204800 --out run.json``

Both libraries get the same number of environment steps. Each run writes one JSON file with

- ``curve``: ``[env_steps, mean return of the training episodes that ended in that window]``,
  binned on a common grid so curves of both libraries line up;
- ``final``: the return of 10 deterministic episodes (the policy's mode, as SB3's
  ``evaluate_policy(deterministic=True)``) after training: mean, std, lengths;
- the settings, versions, wall time and machine.

ktorch_sim trains the Gymnasium task as ported in :mod:`benchmarks.gym_tasks` (rewards,
terminations and dynamics equal Gymnasium's, ``tests/test_gym_tasks.py``); SB3 trains
Gymnasium's own environment. The JSON is written atomically at the end, so a killed run leaves
nothing half-written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# ktorch_sim's settings for these tasks, per policy. The MLP follows SB3's MuJoCo defaults where
# they are a choice of scale (64x64 tanh, lr 3e-4, 10 epochs of 64-transition minibatches, gamma
# 0.99, lambda 0.95, clip 0.2, no entropy bonus) and ktorch_sim's own defaults elsewhere. Since the
# ninth session both presets are the library's defaults for 8 worlds, spelled out so that a later change
# of a default does not move the benchmark unnoticed (tests/test_bench_learning.py holds them equal).
# Both presets start the worlds at random steps of their time limit (ppo.desynchronize_episodes, the default since
# the twelfth session): HalfCheetah's normalized MLP 1,119 -> 1,577, the velocity-free HalfCheetah's GRU 754 -> 1,797
# (it cost the GRU on Ant: 1,221 -> 920 over seeds 0-3, thirteenth session).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Raw inputs, as SB3's default: the reference row of every comparison on docs/learning.md. The library's mlp
    # default since the nineteenth session normalizes its inputs and holds the statistics after a tenth of the
    # budget, the `ktorch-mlp-norm-frozen` rows (this preset with ppo.normalize_observations = true and
    # ppo.normalizer_steps = 20480 at 204,800 steps).
    "ktorch-mlp": {
        "task": {"num_envs": 8},
        "rollout": {"steps": 256},
        "ppo": {"minibatch_size": 64, "num_passes": 10, "learning_rate": 3e-4,
                "gamma": 0.99, "lam": 0.95, "clip_param": 0.2, "entropy_coef": 0.0, "kl_coef": 0.0,
                "desynchronize_episodes": True, "normalize_observations": False},
        "model": {"policy": "mlp", "mlp_hidden": [64, 64], "activation": "tanh"},
    },
    # The GRU normalizes its inputs (running mean/std): over seeds 0-2 it lifted HalfCheetah from 0.62 to 1.74
    # of the MLP, Walker2d and Ant as well, and left Hopper where it was (docs/learning.md, eighth session). Its
    # actor stops at a KL of 0.03 (the critic trains on): Walker2d 677 -> 938, velocity-free Walker2d 477 -> 906;
    # and its returns are normalized, which lifted Hopper and HalfCheetah most (tenth session).
    "ktorch-gru": {
        "task": {"num_envs": 8},
        "rollout": {"steps": 256},
        "ppo": {"minibatch_size": 64, "sequence_length": 16, "num_passes": 10,
                "learning_rate": 3e-4, "gamma": 0.99, "lam": 0.95, "clip_param": 0.2, "entropy_coef": 0.0,
                "kl_coef": 0.0, "normalize_observations": True, "normalize_rewards": True, "target_kl": 0.03,
                "target_kl_stops": "actor", "desynchronize_episodes": True},
        "model": {"policy": "gru", "hidden_size": 64, "depth": 1, "num_mixtures": 3, "head_hidden": [64, 64],
                  "activation": "tanh"},
    },
    # Nothing set but the policy: what a user who ports a task gets (the task's own num_envs, 1 for these tasks,
    # and the automatic rollout, minibatches and sequences; docs/learning.md, ninth session).
    "defaults-mlp": {"task": {}, "ppo": {}, "model": {"policy": "mlp"}},
    "defaults-gru": {"task": {}, "ppo": {}, "model": {"policy": "gru"}},
}
LIBS = (*PRESETS, "sb3", "sb3-norm", "sb3-norm-frozen", "sb3-unclipped")
# sb3-norm-frozen: VecNormalize's statistics stop moving after this many steps, as ktorch_sim's
# ppo.normalizer_steps = 20480 (eighteenth session).
SB3_FROZEN_AFTER = 20_480
EVAL_EPISODES = 10
EVAL_RULES = ("deterministic", "heaviest", "density_mode", "mixture_mean", "mode_near_mean", "sample")
CURVE_POINTS = 20
# The update's health, recorded every few iterations of a ktorch_sim run (how far each update moved the policy,
# how much the actor still explores, how well the critic predicts).
DIAGNOSTICS = ("loss/kl", "loss/clip_fraction", "loss/entropy", "loss/explained_variance", "loss/minibatches_applied",
               "loss/reward_scale", "episode/length")
DIAGNOSTICS_EVERY = 5


def main(argv: list[str] | None = None) -> int:
    """Run one (library, task, seed) and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lib", required=True, choices=LIBS)
    parser.add_argument("--env", required=True, help="Gymnasium id, e.g. Walker2d-v5 (benchmarks.gym_tasks.GYM_TASKS)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=204_800, help="environment steps of training")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="ktorch_sim config override on top of the preset (repeatable)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    if args.lib.startswith("sb3"):
        result = run_sb3(args.env, args.seed, args.steps, normalize_observations=args.lib.startswith("sb3-norm"),
                         clip_actions=args.lib != "sb3-unclipped",
                         normalizer_steps=SB3_FROZEN_AFTER if args.lib == "sb3-norm-frozen" else 0)
    else:
        result = run_ktorch(args.lib, args.env, args.seed, args.steps, args.overrides)
    result.update(lib=args.lib, env=args.env, seed=args.seed, steps=args.steps, overrides=args.overrides,
                  wall_s=round(time.perf_counter() - start, 1), machine=_machine())
    write_json_atomic(args.out, result)
    print(f"{args.lib} {args.env} seed {args.seed}: final {result['final']['mean']:.1f} "
          f"+- {result['final']['std']:.1f} in {result['wall_s']:.0f} s")
    return 0


# --- ktorch_sim ---------------------------------------------------------------------------------


def ktorch_config(lib: str, env_id: str, seed: int, steps: int, overrides: list[str], run_dir: str) -> Any:
    """The ktorch_sim TrainConfig of a benchmark run: the preset, the task, the budget, then ``overrides``.

    The preset's ``rollout.steps`` (control steps per world per iteration), if it has one, becomes
    ``ppo.rollout_length_seconds`` with the task's control period.
    """
    from benchmarks.gym_tasks import GYM_TASKS, task_name
    from ktorch_sim.config import config_from_dict

    preset = PRESETS[lib]
    data = {section: dict(values) for section, values in preset.items() if section != "rollout"}
    data["task"].update(name=task_name(env_id), seed=seed)
    if "rollout" in preset:
        data["ppo"]["rollout_length_seconds"] = preset["rollout"]["steps"] * GYM_TASKS[env_id].config_class().ctrl_dt
    data["ppo"]["max_steps"] = steps
    data["logging"] = {"wandb_mode": "disabled", "run_dir": run_dir, "video_every_minutes": 0.0}
    data["checkpoint"] = {"save_every_seconds": 1e9}
    return config_from_dict(data, overrides, source=f"benchmark preset {lib}")


def run_ktorch(lib: str, env_id: str, seed: int, steps: int, overrides: list[str],
               setup: Callable[[Any], None] | None = None, after_iteration: Callable[[Any], None] | None = None
               ) -> dict[str, Any]:
    """Train with ktorch_sim's PPO and evaluate deterministically; returns the result dict.

    ``setup(trainer)`` runs once before the first iteration and ``after_iteration(trainer)`` after each (probes that
    change or record the run, e.g. :mod:`benchmarks.fixed_input_statistics`).
    """
    from ktorch_sim.config import to_dict
    from ktorch_sim.training.trainer import Trainer

    with tempfile.TemporaryDirectory() as run_dir:
        config = ktorch_config(lib, env_id, seed, steps, overrides, run_dir)
        trainer = Trainer(config)
        if setup is not None:
            setup(trainer)
        episodes: list[tuple[int, float, float]] = []  # (env steps at the end of the iteration, mean return, count)
        diagnostics: list[list[Any]] = []  # [env steps, {update metric: value}] every DIAGNOSTICS_EVERY iterations
        while trainer.env_steps < steps:
            metrics = trainer.iterate()
            if after_iteration is not None:
                after_iteration(trainer)
            episodes.append((trainer.env_steps, metrics["episode/return"], metrics["episode/count"]))
            if trainer.iteration % DIAGNOSTICS_EVERY == 0:
                diagnostics.append([trainer.env_steps, {k: round(metrics[k], 5) for k in DIAGNOSTICS if k in metrics}])
        final = evaluate_ktorch(trainer, seed)
        # A Gaussian's mode, mean and density mode are one action: only the mixture has other rules to record.
        rules = EVAL_RULES[1:] if config.model.policy == "gru" else ("sample",)
        by_rule = {rule: evaluate_ktorch(trainer, seed, rule=rule)["mean"] for rule in rules}
    return {"curve": _bin_curve(episodes, steps), "final": final, "final_by_rule": by_rule, "config": to_dict(config),
            "train_episodes": len(episodes), "diagnostics": diagnostics}


def evaluate_ktorch(trainer: Any, seed: int, episodes: int = EVAL_EPISODES, rule: str = "deterministic"
                    ) -> dict[str, Any]:
    """Return of one episode in each of ``episodes`` fresh worlds, acting by ``rule`` (EVAL_RULES).

    ``deterministic`` is the distribution's ``deterministic()`` action (what playback and export use);
    the others are recorded for the mixture policy, whose deterministic action is a choice:
    ``heaviest`` (the heaviest component's mean, ksim's mode), ``density_mode`` (the highest point of
    the density), ``mixture_mean``, ``mode_near_mean`` (the peak of the mean's basin) and ``sample`` (the
    stochastic policy, seeded).
    """
    import torch

    from ktorch_sim.algorithms.carry import reset_carry

    task = trainer.task
    eval_task = type(task)(dataclasses.replace(task.config, num_envs=episodes, seed=seed + 10_000))
    eval_task.normalizers = task.normalizers
    env = eval_task.make_env()
    current = env.reset()
    carry = eval_task.get_initial_model_carry(trainer.model, episodes)
    generator = torch.Generator().manual_seed(seed + 20_000)
    returns = torch.zeros(episodes)
    lengths = torch.zeros(episodes, dtype=torch.long)
    finished = torch.zeros(episodes, dtype=torch.bool)
    trainer.model.eval()
    with torch.no_grad():
        while not bool(finished.all()):
            actor_carry, critic_carry = carry
            dist, actor_carry = eval_task.run_actor(trainer.model, current["observation"], current["command"],
                                                    actor_carry)
            carry = (actor_carry, critic_carry)
            action = _act(dist, rule, generator)
            out = env.step(action)
            nxt = out["next"]
            live = ~finished
            returns += torch.where(live, nxt["reward"][:, 0].cpu(), 0.0)
            lengths += live.long()
            finished |= nxt["done"][:, 0].cpu()
            carry = reset_carry(carry, nxt["done"][:, 0])
            current = nxt
    return {"mean": float(returns.mean()), "std": float(returns.std(unbiased=False)),
            "returns": [round(float(r), 2) for r in returns], "lengths": lengths.tolist()}


def _act(dist: Any, rule: str, generator: Any) -> Any:
    """Return the action of ``dist`` under evaluation ``rule`` (one of EVAL_RULES)."""
    actions = {"deterministic": dist.deterministic, "heaviest": dist.mode, "mixture_mean": lambda: dist.mean,
               "density_mode": lambda: dist.density_mode(), "mode_near_mean": lambda: dist.mode_near_mean(),
               "sample": lambda: dist.sample(generator)}
    return actions[rule]()


# --- Stable-Baselines3 ------------------------------------------------------------------------------


def run_sb3(env_id: str, seed: int, steps: int, normalize_observations: bool = False, clip_actions: bool = True,
            normalizer_steps: int = 0) -> dict[str, Any]:
    """Train SB3's PPO with its default (MuJoCo) hyperparameters on Gymnasium's env; evaluate as above.

    ``normalize_observations`` wraps the env in SB3's ``VecNormalize(norm_reward=False)`` (running mean/std of
    the observations, updated at every step; lib ``sb3-norm``): the reference for ktorch_sim runs with
    ``ppo.normalize_observations = true``. Evaluation then reads the training statistics, frozen.
    ``normalizer_steps`` > 0 (lib ``sb3-norm-frozen``): the statistics stop moving once that many steps have been
    taken (``VecNormalize.training`` set to False), as ktorch_sim's ``ppo.normalizer_steps``.

    SB3 clips each sampled action to the env's action space before stepping (so Gymnasium's control cost sees at
    most 1 per joint); ktorch_sim passes the sample as it is unless ``task.clip_actions`` is set. With
    ``clip_actions=False`` (lib ``sb3-unclipped``) the env declares an action space of +-1e6, SB3's clip does
    nothing, and the env receives the raw sample as ktorch_sim's unclamped runs do (MuJoCo still clamps the motor
    command to its ctrlrange; the control cost reads the raw action).
    """
    import gymnasium as gym
    import stable_baselines3
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from benchmarks.gym_tasks import gymnasium_env_args

    gym_id, make_kwargs = gymnasium_env_args(env_id)  # the Gymnasium env that equals the port (Ant: no contact terms)
    wrap = (lambda e: e) if clip_actions else _unbounded_actions
    monitor = Monitor(wrap(gym.make(gym_id, **make_kwargs)))
    env = DummyVecEnv([lambda: monitor])
    if normalize_observations:
        env = VecNormalize(env, norm_obs=True, norm_reward=False)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0)
    freezer = _statistics_freezer(env, normalizer_steps) if normalizer_steps else None
    model.learn(total_timesteps=steps, callback=freezer)
    ends = np.cumsum(monitor.get_episode_lengths())
    episodes = [(int(t), float(r), 1.0) for t, r in zip(ends, monitor.get_episode_rewards())]
    eval_monitor = Monitor(wrap(gym.make(gym_id, **make_kwargs)))
    eval_monitor.reset(seed=seed + 10_000)
    eval_env = DummyVecEnv([lambda: eval_monitor])
    if normalize_observations:
        eval_env = VecNormalize(eval_env, training=False, norm_obs=True, norm_reward=False)
        eval_env.obs_rms = env.obs_rms
    returns, lengths = evaluate_policy(model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True,
                                       return_episode_rewards=True)
    return {"curve": _bin_curve(episodes, steps),
            "final": {"mean": float(np.mean(returns)), "std": float(np.std(returns)),
                      "returns": [round(float(r), 2) for r in returns], "lengths": [int(n) for n in lengths]},
            "config": {"sb3": stable_baselines3.__version__, "hyperparameters": "PPO defaults",
                       "normalize_observations": normalize_observations, "clip_actions": clip_actions,
                       "normalizer_steps": normalizer_steps,
                       "n_steps": model.n_steps, "batch_size": model.batch_size, "n_epochs": model.n_epochs,
                       "learning_rate": 3e-4, "gamma": model.gamma, "gae_lambda": model.gae_lambda,
                       "gymnasium_id": gym_id, "make_kwargs": make_kwargs},
            "train_episodes": len(episodes)}


def _statistics_freezer(env: Any, after: int) -> Any:
    """An SB3 callback that stops ``env``'s (a ``VecNormalize``) statistics once ``after`` steps are taken (the class
    is made here, as SB3 is an optional extra)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class FreezeStatistics(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= after:
                env.training = False
            return True

    return FreezeStatistics()


def _unbounded_actions(env: Any) -> Any:
    """``env`` declaring a Box action space of +-1e6 of the same shape: SB3 requires finite bounds and clips to
    them, which for any sample a Gaussian policy draws is no clip at all."""
    import gymnasium as gym

    wrapped = gym.Wrapper(env)
    shape = env.action_space.shape
    wrapped.action_space = gym.spaces.Box(-1e6, 1e6, shape, dtype=env.action_space.dtype)
    return wrapped


# --- shared ----------------------------------------------------------------------------------------


def _bin_curve(episodes: list[tuple[int, float, float]], steps: int) -> list[list[float]]:
    """Mean episode return per window of ``steps / CURVE_POINTS`` env steps, weighted by episode counts.

    ``episodes`` holds (env steps when recorded, mean return, number of episodes). Windows
    without a finished episode are left out.
    """
    width = steps / CURVE_POINTS
    sums, counts = np.zeros(CURVE_POINTS), np.zeros(CURVE_POINTS)
    for step, ret, count in episodes:
        if count <= 0 or not np.isfinite(ret):
            continue
        i = min(CURVE_POINTS - 1, int((step - 1) // width))
        sums[i] += ret * count
        counts[i] += count
    return [[round((i + 1) * width), round(sums[i] / counts[i], 2)] for i in range(CURVE_POINTS) if counts[i] > 0]


def _machine() -> dict[str, Any]:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": sys.version.split()[0],
            "torch": torch.__version__}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
