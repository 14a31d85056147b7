"""Tasks shipped with ktorch_sim, by name (``kbot_stand``, ``kbot_walk``, ``kbot_amp``, ``g1_velocity``).

Nothing heavy is imported here: the config loader finds a registered task's config class with
:func:`task_config_class` (from :mod:`ktorch_sim.tasks.configs`, no torch or MuJoCo), and a task
class is imported only when it is asked for (:func:`task_class`, ``TASKS`` or an attribute such as
``ktorch_sim.tasks.KbotWalkTask``).
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> (module of the task class, task class, config class in ktorch_sim.tasks.configs)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "kbot_stand": ("ktorch_sim.tasks.kbot_stand", "KbotStandTask", "KbotStandConfig"),
    "kbot_walk": ("ktorch_sim.tasks.kbot_walk", "KbotWalkTask", "KbotWalkConfig"),
    "kbot_amp": ("ktorch_sim.tasks.kbot_amp", "KbotAMPTask", "KbotAMPConfig"),
    "kbot_walk_rough": ("ktorch_sim.tasks.kbot_walk_rough", "KbotWalkRoughTask", "KbotWalkRoughConfig"),
    "g1_velocity": ("ktorch_sim.tasks.g1_velocity", "G1VelocityTask", "G1VelocityConfig"),
}
TASK_NAMES: tuple[str, ...] = tuple(_REGISTRY)
"""The registered task names (without importing any task)."""


def task_config_class(name: str) -> type:
    """Return the config class of the registered task ``name`` (imports no torch or MuJoCo)."""
    from ktorch_sim.tasks import configs

    return getattr(configs, _REGISTRY[name][2])


def task_class(name: str) -> type:
    """Return the task class of the registered task ``name`` (imports its module)."""
    module, cls, _ = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


_TASK_CLASSES = {cls: name for name, (_, cls, _) in _REGISTRY.items()}
_CONFIG_CLASSES = {cfg for _, _, cfg in _REGISTRY.values()}


def __getattr__(attr: str) -> Any:
    """``TASKS`` (name -> (task class, config class)) and the classes themselves, imported on first use."""
    if attr == "TASKS":
        return {name: (task_class(name), task_config_class(name)) for name in _REGISTRY}
    if attr in _TASK_CLASSES:
        return task_class(_TASK_CLASSES[attr])
    if attr in _CONFIG_CLASSES:
        from ktorch_sim.tasks import configs

        return getattr(configs, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["TASKS", "TASK_NAMES", "G1VelocityConfig", "G1VelocityTask", "KbotAMPConfig", "KbotAMPTask",
           "KbotStandConfig", "KbotStandTask", "KbotWalkConfig", "KbotWalkTask", "task_class", "task_config_class"]
