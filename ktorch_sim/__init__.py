"""ktorch_sim: humanoid locomotion training in PyTorch on MuJoCo Warp (a ksim rewrite).

The public API is flat, as in ksim: ``import ktorch_sim as ks`` then ``ks.RLTask``,
``ks.JointPositionObservation``, ``ks.PositionActuators``, ``ks.make_engine`` and so on.

Names are imported on first use (PEP 562 ``__getattr__``), so ``import ktorch_sim`` itself, and the
config loader behind ``python -m ktorch_sim.train``, import neither torch nor MuJoCo: a bad config
is reported before those heavy imports.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from typing import Any

from ktorch_sim.version import __version__  # noqa: F401 - the public ktorch_sim.__version__

# public name -> module that defines it (the component library's names come from ktorch_sim.components)
_LAZY: dict[str, str] = {
    **dict.fromkeys(("Actuators", "MITPositionActuators", "PositionActuators", "TorqueActuators",
                     "configure_pd_actuators", "pd_torque"), "ktorch_sim.actuators"),
    **dict.fromkeys(("CheckpointError", "CheckpointManager", "load_checkpoint", "save_checkpoint"),
                    "ktorch_sim.checkpoint"),
    **dict.fromkeys(("CheckpointConfig", "ConfigError", "LoggingConfig", "ModelConfig", "PPOConfig", "TrainConfig",
                     "config_help", "load_config"), "ktorch_sim.config"),
    "build_policy": "ktorch_sim.ppo_task",
    **dict.fromkeys(("ENGINE_KINDS", "Engine", "EngineConfig", "MujocoEngine", "PhysicsState", "make_engine"),
                    "ktorch_sim.engines"),
    **dict.fromkeys(("Env", "EnvSpec"), "ktorch_sim.env"),
    **dict.fromkeys(("MotionClip", "MotionError", "load_motion", "save_motion"), "ktorch_sim.motion"),
    **dict.fromkeys(("PolicySpec", "PPOTask", "PPOVariables"), "ktorch_sim.ppo_task"),
    **dict.fromkeys(("JointMetadata", "MotorMetadata", "RobotMetadata", "load_robot_metadata"),
                    "ktorch_sim.robot_metadata"),
    **dict.fromkeys(("kbot_home_qpos", "kbot_metadata", "load_kbot_model", "load_kbot_pd_model"), "ktorch_sim.robots"),
    "AMPTask": "ktorch_sim.algorithms.amp_task",
    "AMPConfig": "ktorch_sim.algorithms.amp_config",
    **dict.fromkeys(("AMPFeatureObservation", "amp_features"), "ktorch_sim.motion.amp_features"),
    "ReferenceStateReset": "ktorch_sim.motion.reference_reset",
    **dict.fromkeys(("ControlPipeline", "Sim2RealConfig"), "ktorch_sim.sim2real"),
    "RLTask": "ktorch_sim.task",
    **dict.fromkeys(("RLConfig", "config_field"), "ktorch_sim.task_config"),
    **dict.fromkeys(("TrainedPolicy", "load_trained_policy"), "ktorch_sim.playback.trained"),
    "Trainer": "ktorch_sim.training.trainer",
}


# Modules that moved in 0.2 (the package was split into training/, playback/ and deploy/): importing an
# old path is one clear error that names the new one.
_MOVED: dict[str, str] = {
    **{f"ktorch_sim.{old}": f"ktorch_sim.{new}" for old, new in (
        ("trainer", "training.trainer"), ("logging", "training.logging"), ("profiling", "training.profiling"),
        ("training_video", "training.videos"), ("plotting", "training.plotting"), ("trained", "playback.trained"),
        ("evaluate", "playback.evaluate"), ("policy_rollout", "playback.policy_rollout"), ("play", "playback.play"),
        ("viewer", "playback.viewer"), ("render", "playback.render"), ("offscreen", "playback.offscreen"),
        ("export", "deploy.export"), ("export_check", "deploy.check"), ("resources", "utils.resources"))},
}


class _MovedModules(importlib.abc.MetaPathFinder):
    """Turns an import of a module path from before the split into one line naming its new place."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        new = _MOVED.get(fullname)
        if new is not None:
            raise ModuleNotFoundError(f"{fullname} moved to {new} (ktorch_sim 0.2 groups training, playback, "
                                      f"deployment and leaf helpers in subpackages); import {new} instead", name=fullname)
        return None


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())  # first: an editable install of an older tree must not answer


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
