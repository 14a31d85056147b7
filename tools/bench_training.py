"""Environment and training throughput for ``tools/bench.py`` (kinds ``env`` and ``train``).

``env``: env steps/s of a task (physics + every component, random actions around the home pose)
next to the physics-only rate of the same run (the engine's step and forward alone, with targets
of the same form the env produces: per-substep when the task models latency; the physics work
one env step does), and the components' cost relative to the physics time.

``breakdown``: ms per control step by phase (physics, actuators, events, terminations, rewards,
commands, resets, observations, policy, other = storage and bookkeeping) while collecting a
rollout with the policy, from :class:`ktorch_sim.training.profiling.StepProfiler`.

``train``: end-to-end PPO iterations of a task (rollout collection + update): env steps/s
overall and for collection alone, and the seconds per phase.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence

import torch

TASK_CONFIGS = {"kbot_walk": "configs/kbot_walk.toml", "kbot_stand": "configs/kbot_stand.toml"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_env(task: str, engine: str, device: str, num_envs: int, steps: int, repeats: int) -> dict:
    """Env steps/s of ``task`` and the physics-only rate of the same engine and worlds."""
    from ktorch_sim.config import resolve_task

    task_cls, config_cls = resolve_task(task)
    if device == "cpu":
        torch.set_num_threads(1)  # as the trainer does next to the native engine's threads
    env = task_cls(config_cls(num_envs=num_envs, engine=engine, device=device)).make_env()
    env.set_curriculum_level(1.0)  # full noise, pushes and randomization
    env.reset()
    gen = torch.Generator(device=env.device).manual_seed(0)
    home = env._initial_qpos[7:]
    actions = [home + 0.05 * torch.randn(num_envs, env.num_actions, generator=gen, device=env.device)
               for _ in range(steps)]
    for action in actions[:3]:
        env.step(action)
    # The physics-only run gets targets of the same form as the env's: per-substep targets when the
    # task's sim-to-real pipeline (latency, drops, update rate) is on, so both do the same physics work.
    ctrl = env.spec.actuators.ctrl(actions[0], env._actuator_state, env.generator)
    targets = env._pipeline.substep_targets(ctrl, env.ctx.curriculum_level, env.generator).clone()

    def time_env() -> float:
        _sync(env.device)
        start = time.perf_counter()
        for action in actions:
            env.step(action)
        _sync(env.device)
        return time.perf_counter() - start

    def time_physics() -> float:
        _sync(env.device)
        start = time.perf_counter()
        for _ in range(steps):
            env.engine.step(targets)
            env.engine.forward()
        _sync(env.device)
        return time.perf_counter() - start

    env_t = min(time_env() for _ in range(repeats))
    phys_t = min(time_physics() for _ in range(repeats))
    return {"kind": "env", "task": task, "engine": type(env.engine).__name__, "device": device,
            "num_envs": num_envs, "steps": steps, "env_steps_per_s": num_envs * steps / env_t,
            "physics_only_env_steps_per_s": num_envs * steps / phys_t,
            "components_over_physics": (env_t - phys_t) / phys_t, "components_share": (env_t - phys_t) / env_t}


def measure_train(task: str, engine: str, device: str, num_envs: int, rollout_steps: int, iterations: int,
                  extra: Sequence[str] = (), warmup: int = 1) -> dict:
    """Seconds per phase and env steps/s of PPO iterations on ``task`` (after ``warmup`` untimed iterations).

    ``extra`` are config overrides (``--set``) applied last. With ``ppo.capture_rollout`` the second
    iteration records the CUDA graph, so a measurement of replays alone needs ``warmup=2``.
    """
    from ktorch_sim.config import load_config
    from ktorch_sim.training.trainer import Trainer

    with tempfile.TemporaryDirectory() as run_dir:
        probe = load_config(TASK_CONFIGS[task], [f"task.engine={engine}", f"task.device={device}"])
        overrides = [f"task.num_envs={num_envs}", f"task.engine={engine}", f"task.device={device}",
                     f"ppo.rollout_length_seconds={rollout_steps * probe.task.ctrl_dt}",
                     *([] if probe.ppo.batch_size is None
                       else [f"ppo.batch_size={min(probe.ppo.batch_size, num_envs)}"]),
                     "logging.wandb_mode=disabled",
                     f"logging.run_dir={run_dir}", "checkpoint.save_every_seconds=1e9", *extra]
        trainer = Trainer(load_config(TASK_CONFIGS[task], overrides))
        for _ in range(warmup):
            trainer.iterate()
        rows = [trainer.iterate() for _ in range(iterations)]
        trainer.logger.close()
    collect = sum(r["time/collect_s"] for r in rows)
    update = sum(r["time/update_s"] for r in rows)
    steps = num_envs * rollout_steps * iterations
    cfg = trainer.config
    return {"kind": "train", "task": task, "engine": type(trainer.env.engine).__name__, "device": device,
            "num_envs": num_envs, "rollout_steps": rollout_steps, "iterations": iterations,
            "policy": f"{cfg.model.policy} h{cfg.model.hidden_size}x{cfg.model.depth} K{cfg.model.num_mixtures}",
            "num_passes": cfg.ppo.num_passes, "batch_size": cfg.ppo.batch_size, "overrides": " ".join(extra),
            "train_env_steps_per_s": steps / (collect + update), "collect_env_steps_per_s": steps / collect,
            "collect_s_per_iteration": collect / iterations, "update_s_per_iteration": update / iterations}


def run_kind(kind: str, tasks: Sequence[str], engines: Sequence[str], devices: Sequence[str],
             num_envs: Sequence[int], steps: int, repeats: int, overrides: Sequence[str] = ()) -> list[dict]:
    """Every (task, engine, device, N) combination of one kind; the native engine is CPU-only."""
    rows = []
    for task in tasks:
        for engine in engines:
            for device in devices:
                if engine == "mujoco" and device != "cpu":
                    continue
                for n in num_envs:
                    if kind == "env":
                        rows.append(measure_env(task, engine, device, n, steps, repeats))
                    elif kind == "breakdown":
                        rows.append(measure_breakdown(task, engine, device, n, steps, overrides))
                    else:
                        rows.append(measure_train(task, engine, device, n, steps, max(1, repeats), overrides))
    return rows


def measure_breakdown(task: str, engine: str, device: str, num_envs: int, steps: int,
                      extra: Sequence[str] = ()) -> dict:
    """Ms per control step by phase for rollout collection with the task's default policy.

    One rollout of ``steps`` control steps is collected as training does (policy sampling,
    env step, storage), after one warm-up rollout; see :mod:`ktorch_sim.training.profiling`.
    """
    from ktorch_sim.config import load_config
    from ktorch_sim.training.profiling import StepProfiler
    from ktorch_sim.training.trainer import Trainer

    overrides = [f"task.name={task}", f"task.num_envs={num_envs}", f"task.engine={engine}", f"task.device={device}",
                 "ppo.batch_size=1", "logging.wandb_mode=disabled"]
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(TASK_CONFIGS.get(task), [*overrides, f"logging.run_dir={tmp}", *extra])
        trainer = Trainer(config)
        collector = trainer.collector
        collector.num_steps = steps
        trainer.model.eval()

        def collect() -> None:
            trainer.carry = collector.collect(trainer.model, trainer.carry)[2]

        collect()  # warm-up: allocation, Warp graph capture
        profiler = StepProfiler(trainer.device).instrument_env(trainer.env, trainer.task)
        try:
            phases = profiler.measure(collect, steps)
        finally:
            profiler.close()
            trainer.logger.close()
    physics = phases.get("physics", 0.0)
    return {"kind": "breakdown", "task": task, "engine": engine, "device": device, "num_envs": num_envs,
            "steps": steps, "overrides": " ".join(extra), **{f"ms/{k}": v for k, v in phases.items()},
            "physics_share": physics / phases["total"], "env_steps_per_s": num_envs * 1e3 / phases["total"]}
