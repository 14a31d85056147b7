"""Shared fixtures: the K-Bot PD model and engine builders parametrized over every engine."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.engines import Engine, EngineConfig, make_engine
from ktorch_sim.robots import kbot_home_qpos, load_kbot_pd_model

# (engine kind, device) pairs every engine test runs on; CUDA joins when a GPU is present.
ENGINE_SPECS = [("mujoco", "cpu"), ("warp", "cpu")]
if torch.cuda.is_available():
    ENGINE_SPECS.append(("warp", "cuda"))
ENGINE_IDS = [f"{kind}-{device}" for kind, device in ENGINE_SPECS]


@pytest.fixture(scope="session")
def kbot_model() -> mujoco.MjModel:
    """K-Bot with PD actuators at ksim's K-Bot example scales (kp, kd x1.4; torque limit x1.5)."""
    return load_kbot_pd_model(kp_scale=1.4, kd_scale=1.4, torque_limit_scale=1.5)


@pytest.fixture(scope="session")
def home_qpos(kbot_model: mujoco.MjModel) -> np.ndarray:
    return kbot_home_qpos(kbot_model)


@pytest.fixture(params=ENGINE_SPECS, ids=ENGINE_IDS)
def engine_spec(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


def build_engine(spec: tuple[str, str], model: mujoco.MjModel, **config: object) -> Engine:
    """An engine of ``spec`` = (kind, device) with EngineConfig(**config)."""
    kind, device = spec
    return make_engine(kind, model, EngineConfig(device=device, **config))


def make_context(engine: Engine, num_actions: int | None = None, seed: int = 0, **overrides: object):
    """An EnvContext over ``engine``'s state, for testing components without an environment."""
    from ktorch_sim.components.base import EnvContext

    n, dev = engine.num_envs, engine.device
    a = engine.model.nu if num_actions is None else num_actions
    fields = dict(
        physics=engine.state, model=engine.model, ctrl_dt=engine.ctrl_dt,
        action=torch.zeros(n, a, device=dev), prev_action=torch.zeros(n, a, device=dev),
        prev_prev_action=torch.zeros(n, a, device=dev), commands={}, observations={},
        curriculum_level=torch.ones(n, device=dev), episode_steps=torch.zeros(n, dtype=torch.long, device=dev),
        generator=torch.Generator(device=dev).manual_seed(seed),
    )
    fields.update(overrides)
    return EnvContext(**fields)


def reset_engine(engine: Engine, qpos: np.ndarray, qvel: np.ndarray | None = None) -> None:
    """Reset every world of ``engine`` to ``qpos`` [nq] or [N, nq] (and ``qvel``), then forward."""
    n, dev = engine.num_envs, engine.device
    qpos_t = torch.tensor(np.broadcast_to(qpos, (n, engine.model.nq)), dtype=torch.float32, device=dev)
    qvel_t = torch.zeros(n, engine.model.nv, device=dev) if qvel is None else \
        torch.tensor(np.broadcast_to(qvel, (n, engine.model.nv)), dtype=torch.float32, device=dev)
    engine.reset(torch.ones(n, dtype=torch.bool, device=dev), qpos_t, qvel_t)


# A tiny K-Bot walking run (1 iteration, small GRU) that the tool tests load: render, play, export.
TINY_KBOT_WALK = ["task.num_envs=2", "task.engine=mujoco", "task.device=cpu", "ppo.batch_size=2",
                  "ppo.rollout_length_seconds=0.1", "ppo.max_steps=10", "model.hidden_size=16", "model.depth=1",
                  "model.num_mixtures=2", "logging.wandb_mode=disabled"]


def train_tiny_run(run_dir: object, task: str = "kbot_walk", extra: tuple[str, ...] = ()) -> object:
    """Train one tiny iteration of ``task`` into ``run_dir``/<run> and return that run directory."""
    from ktorch_sim.config import load_config
    from ktorch_sim.training.trainer import Trainer

    config = load_config(None, [f"task.name={task}", *TINY_KBOT_WALK, f"logging.run_dir={run_dir}", *extra])
    return Trainer(config).train(progress=False)


@pytest.fixture(scope="session")
def tiny_kbot_walk_run(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Run directory of a one-iteration kbot_walk training (GRU MoG policy, native engine)."""
    return train_tiny_run(tmp_path_factory.mktemp("runs"))
