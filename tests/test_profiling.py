"""StepProfiler: exclusive phase times (with a fake clock), clean removal of its wrappers."""

from __future__ import annotations

import torch

import ktorch_sim.training.profiling as profiling
from ktorch_sim.training.profiling import StepProfiler


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Work:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def outer(self) -> None:
        self.clock.now += 1.0
        self.inner()
        self.clock.now += 2.0

    def inner(self) -> None:
        self.clock.now += 4.0


def test_exclusive_times_and_other(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(profiling.time, "perf_counter", clock)
    work = Work(clock)
    profiler = StepProfiler(torch.device("cpu"))
    profiler.wrap(work, "outer", "resets")
    profiler.wrap(work, "inner", "physics")

    def body() -> None:
        for _ in range(2):
            work.outer()
            clock.now += 0.5  # unwrapped work: storage, bookkeeping

    ms = profiler.measure(body, steps=2)
    assert ms["physics"] == 4000.0 and ms["resets"] == 3000.0  # outer excludes the nested inner call
    assert ms["other"] == 500.0 and ms["total"] == 7500.0
    profiler.close()
    assert "outer" not in vars(work) and "inner" not in vars(work)


def test_instrumented_env_steps_identically_and_unwraps():
    from ktorch_sim.config import load_config, resolve_task

    config = load_config(None, ["task.name=kbot_stand", "task.num_envs=2", "task.engine=mujoco", "task.device=cpu",
                                "ppo.batch_size=1"])
    envs = [resolve_task(config.task_name)[0](config.task).make_env() for _ in range(2)]
    profiler = StepProfiler(torch.device("cpu")).instrument_env(envs[0])
    outs = []
    for env in envs:
        env.reset()
        action = torch.zeros(env.num_envs, env.num_actions)
        outs.append([env.step(action)["next", "observation"] for _ in range(3)])
    for a, b in zip(*outs, strict=True):
        for key in a.keys():
            assert torch.equal(a[key], b[key]), key
    assert profiler.totals["physics"] > 0 and profiler.totals["rewards"] > 0
    profiler.close()
    assert "step" not in vars(envs[0].engine) and "_rewards" not in vars(envs[0])
