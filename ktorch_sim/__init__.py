"""ktorch_sim: humanoid locomotion training in PyTorch on MuJoCo Warp (a ksim rewrite).

The public API is flat, as in ksim: ``import ktorch_sim as ks`` then ``ks.RLTask``,
``ks.JointPositionObservation``, ``ks.PositionActuators``, ``ks.make_engine`` and so on.

Names are imported on first use (PEP 562 ``__getattr__``), so ``import ktorch_sim`` itself, and the
config loader behind ``python -m ktorch_sim.train``, import neither torch nor MuJoCo: a bad config
is reported before those heavy imports.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (the component library's names come from ktorch_sim.components)
_LAZY: dict[str, str] = {
    **dict.fromkeys(("Actuators", "MITPositionActuators", "PositionActuators", "TorqueActuators",
                     "configure_pd_actuators", "pd_torque"), "ktorch_sim.actuators"),
    **dict.fromkeys(("CheckpointError", "CheckpointManager", "load_checkpoint", "save_checkpoint"),
                    "ktorch_sim.checkpoint"),
    **dict.fromkeys(("CheckpointConfig", "ConfigError", "LoggingConfig", "ModelConfig", "PPOConfig", "TrainConfig",
                     "config_help", "load_config"), "ktorch_sim.config"),
    **dict.fromkeys(("ENGINE_KINDS", "Engine", "EngineConfig", "MujocoEngine", "PhysicsState", "make_engine"),
                    "ktorch_sim.engines"),
    **dict.fromkeys(("Env", "EnvSpec"), "ktorch_sim.env"),
    **dict.fromkeys(("MotionClip", "MotionError", "load_motion", "save_motion"), "ktorch_sim.motion"),
    **dict.fromkeys(("PolicySpec", "PPOTask", "PPOVariables"), "ktorch_sim.ppo_task"),
    **dict.fromkeys(("JointMetadata", "MotorMetadata", "RobotMetadata", "load_robot_metadata"),
                    "ktorch_sim.robot_metadata"),
    **dict.fromkeys(("kbot_home_qpos", "kbot_metadata", "load_kbot_model", "load_kbot_pd_model"), "ktorch_sim.robots"),
    **dict.fromkeys(("ControlPipeline", "Sim2RealConfig"), "ktorch_sim.sim2real"),
    "RLTask": "ktorch_sim.task",
    **dict.fromkeys(("RLConfig", "config_field"), "ktorch_sim.task_config"),
    **dict.fromkeys(("TrainedPolicy", "load_trained_policy"), "ktorch_sim.playback.trained"),
}


def _component_names() -> list[str]:
    return list(importlib.import_module("ktorch_sim.components").__all__)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use; ``__all__`` lists every name (it imports the components)."""
    if name == "__all__":
        return [*_LAZY, *_component_names()]
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif not name.startswith("_") and name in _component_names():
        value = getattr(importlib.import_module("ktorch_sim.components"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_component_names()})
