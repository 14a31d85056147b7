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
