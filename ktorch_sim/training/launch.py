"""``PPOTask.launch``: train a task class from Python, as ksim's ``Task.launch(config)``.

The task layer names this function by string (:data:`ktorch_sim.ppo_task.LAUNCHER`) because it
sits below training; here the training config is formed around the task's own config and the
:class:`~ktorch_sim.training.trainer.Trainer` runs it.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from ktorch_sim.algorithms.ppo_config import PPOConfig
from ktorch_sim.config import TrainConfig, importable_task_name, validate
from ktorch_sim.policies.config import ModelConfig
from ktorch_sim.ppo_task import PPOTask
from ktorch_sim.training.config import CheckpointConfig, LoggingConfig
from ktorch_sim.training.trainer import Trainer

_SECTIONS: tuple[tuple[str, type], ...] = (("ppo", PPOConfig), ("model", ModelConfig), ("logging", LoggingConfig),
                                           ("checkpoint", CheckpointConfig))


def launch(task_cls: type[PPOTask], config: Any, resume: Any = None, progress: bool = True,
           **sections: Any) -> Path:
    """Train ``task_cls`` with ``config`` (its RLConfig subclass); returns the run directory.

    Training sections (``ppo``, ``model``, ``logging``, ``checkpoint``, ``amp``) may be passed as
    dataclasses; any of their fields that ``config`` itself defines (a ksim config that subclasses
    PPOConfig carries ``learning_rate``, ``batch_size`` ...) are taken from ``config`` when the
    section is not passed.
    """
    built = {}
    for name, cls in _SECTIONS:
        section = sections.get(name) or cls()
        shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls) if hasattr(config, f.name)}
        built[name] = dataclasses.replace(section, **shared) if name not in sections else section
    if "amp" in sections:  # not merged from ``config``: its names (learning_rate, batch_size) are PPO's there
        built["amp"] = sections["amp"]
    train_config = TrainConfig(task_name=recorded_task_name(task_cls), task=config, **built)
    validate(train_config, task_cls)
    return Trainer(train_config, resume=resume, task=task_cls(config)).train(progress=progress)


_WARNED_UNIMPORTABLE: set[str] = set()


def recorded_task_name(task_cls: type[PPOTask]) -> str:
    """Return the ``task.name`` a launched run records: one ``tools/play.py`` and ``tools/export.py`` resolve.

    A task class defined in the script being run lives in module ``__main__``, a name no later
    process can import; :func:`ktorch_sim.config.importable_task_name` names it by its file (or
    ``python -m`` module) instead. When there is no such name (a notebook, a class defined inside a
    function) the run records ``module:ClassName`` and warns once that the tools will need
    ``--set task.name=...``.
    """
    name = importable_task_name(task_cls)
    if name is not None:
        return name
    fallback = f"{task_cls.__module__}:{task_cls.__qualname__}"
    if fallback not in _WARNED_UNIMPORTABLE:
        _WARNED_UNIMPORTABLE.add(fallback)
        warnings.warn(f"task {task_cls.__qualname__} is not defined in a file Python can import again (a notebook, "
                      f"an interactive session or a function), so this run records task.name={fallback!r}; "
                      f"tools/play.py, tools/export.py and tools/render.py will need --set "
                      f"task.name=path/to/file.py:{task_cls.__name__} (or package.module:{task_cls.__name__}) "
                      "naming a file that defines it", UserWarning, stacklevel=4)
    return fallback
