"""A config written out: ``--help`` text, plain TOML-shaped data (wandb, checkpoints) and the run's config.toml."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import typing
from pathlib import Path
from typing import Any

from ktorch_sim.config.loader import DEFAULT_TASK, TrainConfig, _sections, default_config
from ktorch_sim.config.tasks import registered_task_names
from ktorch_sim.config.convert import _type_name
from ktorch_sim.utils.toml_values import show_value, toml_value


def config_help(config_or_task_name: TrainConfig | str | None = None) -> str:
    """Every key of every section with its type, value (the default unless a config is given) and help.

    ``config_or_task_name``: a loaded config (shows its values), a task name (its defaults), or
    None (the default task's defaults).
    """
    config = config_or_task_name
    if not isinstance(config, TrainConfig):
        config = default_config(config or DEFAULT_TASK)
    lines = ["Training config keys (set them in a TOML file or with --set section.key=value):"]
    for name, section in _sections(config):
        doc = (type(section).__doc__ or "").strip().splitlines()
        lines += ["", f"[{name}]  {type(section).__name__}" + (f": {doc[0]}" if doc else "")]
        if name == "task":
            lines += _help_entry("task.name", str, config.task_name, TrainConfig.__dataclass_fields__["task_name"])
            lines[-1] += f" Registered: {', '.join(registered_task_names())}."
        hints = typing.get_type_hints(type(section))
        for f in dataclasses.fields(section):
            if f.init:
                lines += _help_entry(f"{name}.{f.name}", hints[f.name], getattr(section, f.name), f)
    return "\n".join(lines) + "\n"


def _help_entry(key: str, tp: Any, value: Any, field: dataclasses.Field) -> list[str]:
    choices = field.metadata.get("choices")
    kind = " | ".join(show_value(c) for c in choices) if choices else _type_name(tp)
    shown = "none" if value is None else toml_value(value)
    return [f"  {key}: {kind} = {shown}", f"      {field.metadata.get('help', '')}".rstrip()]


def to_dict(config: TrainConfig) -> dict[str, dict[str, Any]]:
    """Return the config as plain TOML-shaped data: ``{"task": {"name": ..., ...}, "ppo": {...}, ...}``.

    Tuples become lists; None stays None (for wandb's config panel and for :func:`save_config`).
    """
    out: dict[str, dict[str, Any]] = {}
    for name, section in _sections(config):
        table = {"name": config.task_name} if name == "task" else {}
        table.update({f.name: _plain(getattr(section, f.name)) for f in dataclasses.fields(section) if f.init})
        out[name] = table
    return out


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def to_toml(config: TrainConfig) -> str:
    """Write the config as a TOML document that :func:`load_config` reads back into an equal config."""
    lines = [f'# Resolved ktorch_sim training config (task "{config.task_name}").',
             "# Train from it again with: python -m ktorch_sim.train --cfg <this file>"]
    helps = {name: {f.name: f.metadata.get("help", "") for f in dataclasses.fields(section)}
             for name, section in _sections(config)}
    helps["task"]["name"] = TrainConfig.__dataclass_fields__["task_name"].metadata["help"]
    for name, table in to_dict(config).items():
        lines += ["", f"[{name}]"]
        for key, value in table.items():
            if helps[name].get(key):
                lines.append(f"# {helps[name][key]}")
            lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the config as TOML to ``path`` atomically (a crash never leaves a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = to_toml(config)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
