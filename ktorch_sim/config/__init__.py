"""The training config: typed dataclasses read from TOML, ``--set`` overrides, validation, ``--help``.

A config is a tree of dataclasses, one per TOML table::

    [task]          name = "kbot_walk", then the task's own RLConfig subclass (physics, sim2real, task knobs)
    [ppo]           PPOConfig: rollout, losses, optimizer, schedule
    [model]         ModelConfig: GRU mixture-of-Gaussians or MLP actor-critic sizes
    [logging]       LoggingConfig: wandb, run directory, cadences
    [checkpoint]    CheckpointConfig: how often and how many
    [cpu]           CPUConfig: the cap on worlds when physics runs on native MuJoCo on the CPU

:func:`load_config` reads the file, applies ``--set section.key=value`` overrides (values are
TOML literals; a value that is not one is taken as a bare string), and builds *fresh*
dataclasses from the merged data: nothing is mutated by path and defaults are never shared
between two loads. Every value is checked against its field's annotation (int, float with ints
accepted, bool without 0/1 coercion, str, fixed or variable tuples from arrays, ``X | None``
with the string "none" for None, ``choices`` metadata), then :func:`validate` checks ranges and
consistency. Every problem is one :class:`ConfigError` line naming the file (or ``--set``), the
dotted key, what is wrong and what is allowed, with a close-match suggestion for misspelt keys.

The ``[task]`` table is typed by the task's own config class, so ``task.name`` is resolved
first (:func:`resolve_task`: a registered name or ``"package.module:ClassName"``), then the
table's other keys are checked against that class. ``task = "kbot_walk"`` at top level is
accepted as shorthand for ``[task] name = "kbot_walk"``. A task defined in a script is named by
its file, ``"path/to/script.py:ClassName"`` (what :meth:`PPOTask.launch` records for a task
started from ``if __name__ == "__main__"``; see :func:`importable_task_name`).

Nothing heavy is imported here: torch, MuJoCo and the task classes are imported only by the last
checks (:func:`validate`'s engine stage), so a config error is reported in a fraction of a second.
docs/bad_inputs.md lists the order of the checks and what each refuses.
"""

from __future__ import annotations

from ktorch_sim.algorithms.ppo_config import PPOConfig
from ktorch_sim.config.loader import (
    DEFAULT_TASK,
    SECTIONS,
    TrainConfig,
    cap_notes,
    config_from_dict,
    default_config,
    engine_runs_on_cpu,
    layout_note,
    load_config,
    require_ppo_task,
    source_of,
    validate,
)
from ktorch_sim.config.output import config_help, save_config, to_dict, to_toml
from ktorch_sim.config.tasks import (
    importable_task_name,
    registered_task_names,
    registered_tasks,
    resolve_task,
    resolve_task_config,
)
from ktorch_sim.errors import OVERRIDE_SOURCE, ConfigError
from ktorch_sim.policies.config import ModelConfig
from ktorch_sim.task_config import C_INT_MAX, INT64_MAX, RLConfig, config_field
from ktorch_sim.training.config import CheckpointConfig, CPUConfig, LoggingConfig

__all__ = [
    "C_INT_MAX",
    "DEFAULT_TASK",
    "INT64_MAX",
    "OVERRIDE_SOURCE",
    "SECTIONS",
    "RLConfig",
    "cap_notes",
    "layout_note",
    "config_from_dict",
    "importable_task_name",
    "CPUConfig",
    "CheckpointConfig",
    "ConfigError",
    "LoggingConfig",
    "ModelConfig",
    "PPOConfig",
    "TrainConfig",
    "config_field",
    "config_help",
    "default_config",
    "engine_runs_on_cpu",
    "load_config",
    "registered_task_names",
    "registered_tasks",
    "require_ppo_task",
    "resolve_task",
    "resolve_task_config",
    "save_config",
    "source_of",
    "to_dict",
    "to_toml",
    "validate",
]
