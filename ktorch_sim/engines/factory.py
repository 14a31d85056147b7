"""``make_engine``: an engine by name, "mujoco", "warp" or "auto"."""

from __future__ import annotations

import mujoco
import torch

from ktorch_sim.engines.base import Engine, EngineConfig
from ktorch_sim.engines.mujoco import MujocoEngine
from ktorch_sim.engines.options import ENGINE_KINDS


def make_engine(kind: str, model: mujoco.MjModel, config: EngineConfig) -> Engine:
    """Build an engine by name: "mujoco", "warp", or "auto" (Warp on CUDA, native MuJoCo on CPU).

    The Warp engine refuses, before any Warp work, an integrator, solver or cone that MuJoCo
    Warp lacks, whether the model's own ``<option>`` declares it or the config asks for it.
    """
    if kind not in ENGINE_KINDS:
        raise ValueError(f"engine must be one of {list(ENGINE_KINDS)}, got {kind!r}")
    if kind == "auto":
        kind = "warp" if torch.device(config.device).type == "cuda" else "mujoco"
    if kind == "mujoco":
        return MujocoEngine(model, config)
    from ktorch_sim.engines.warp import WarpEngine

    return WarpEngine(model, config)
