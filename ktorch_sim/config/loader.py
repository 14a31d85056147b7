"""Loading a training config: TOML and ``--set`` merged, sections built and typed, the CPU caps, then the checks.

See :mod:`ktorch_sim.config` for the format. Each section checks its own ranges (``check()`` on
its dataclass, beside what it configures); this module runs them in order and adds what spans
sections: the task's physics values, the device, and what the engine or the task rejects.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ktorch_sim.algorithms.amp_config import AMPConfig
from ktorch_sim.algorithms.ppo_config import PPOConfig
from ktorch_sim.config.convert import _build_section, _number_problem
from ktorch_sim.config.tasks import _task_config_class, resolve_task, resolve_task_config
from ktorch_sim.errors import OVERRIDE_SOURCE, ConfigError, require
from ktorch_sim.policies.config import ModelConfig
from ktorch_sim.task_config import DEVICE_RE, RLConfig, config_field
from ktorch_sim.utils.toml_values import show_value
from ktorch_sim.training.config import CheckpointConfig, CPUConfig, LoggingConfig

if typing.TYPE_CHECKING:
    from ktorch_sim.task import RLTask


DEFAULT_TASK = "kbot_walk"


def _sections(config: TrainConfig) -> list[tuple[str, Any]]:
    return [(name, getattr(config, name)) for name in SECTIONS]


def _default_task_config() -> RLConfig:
    return resolve_task_config(DEFAULT_TASK)()


@dataclass(kw_only=True)
class TrainConfig:
    """Everything a training run reads: the task's name and config, and one dataclass per section."""

    task_name: str = config_field(DEFAULT_TASK, 'Task: a registered name (ktorch_sim.tasks.TASKS), '
                                                '"package.module:ClassName" of an RLTask subclass, or '
                                                '"path/to/file.py:ClassName".')
    task: RLConfig = dataclasses.field(default_factory=_default_task_config,
                                       metadata={"help": "The task's own config (an RLConfig subclass)."})
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig, metadata={"help": "PPO hyperparameters."})
    amp: AMPConfig = dataclasses.field(default_factory=AMPConfig,
                                       metadata={"help": "Adversarial Motion Priors (read by ks.AMPTask tasks only)."})
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig, metadata={"help": "Actor-critic sizes."})
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig, metadata={"help": "Logging."})
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig,
                                                     metadata={"help": "Checkpoints."})
    cpu: CPUConfig = dataclasses.field(default_factory=CPUConfig, metadata={"help": "CPU-engine settings."})

    @property
    def rollout_steps(self) -> int:
        """Control steps per world per rollout: ``ppo.rollout_length_seconds / task.ctrl_dt``, rounded, or
        the automatic length (:meth:`PPOConfig.rollout_steps`)."""
        return self.ppo.rollout_steps(self.task.ctrl_dt, self.task.num_envs)

    @property
    def num_minibatches(self) -> int:
        """Minibatches per pass over one rollout (sequences for ``model.trains_on_sequences``)."""
        return self.ppo.num_minibatches(self.task.num_envs, self.rollout_steps, self.model.trains_on_sequences)


SECTIONS = ("task", "ppo", "amp", "model", "logging", "checkpoint", "cpu")


_FIXED_SECTIONS: dict[str, type] = {"ppo": PPOConfig, "amp": AMPConfig, "model": ModelConfig,
                                    "logging": LoggingConfig, "checkpoint": CheckpointConfig, "cpu": CPUConfig}


def require_ppo_task(config: TrainConfig) -> None:
    """Raise one :class:`ConfigError` line (key ``task.name``) unless the config's task is a ``ks.PPOTask``.

    Training needs a policy task; an :class:`RLTask` that only defines the environment cannot be
    trained with PPO. Registered tasks are PPO tasks and are not imported here.
    """
    from ktorch_sim.tasks import TASK_NAMES

    if config.task_name in TASK_NAMES:
        return
    task_cls, _ = resolve_task(config.task_name)
    from ktorch_sim.ppo_task import PPOTask

    if not issubclass(task_cls, PPOTask):
        bases = ", ".join(b.__name__ for b in task_cls.__bases__)
        raise ConfigError(f"{task_cls.__name__} (subclass of {bases}) is not a PPOTask; training needs a policy: "
                          "subclass ks.PPOTask (which adds the actor-critic model and the optimizer)",
                          key="task.name").at(source_of(config, "task.name"))


def default_config(task: str = DEFAULT_TASK) -> TrainConfig:
    """Build a fresh, validated config with every default, for ``task``."""
    config = TrainConfig(task_name=task, task=resolve_task_config(task)())
    validate(config)
    return config


def load_config(path: str | Path | None, overrides: Sequence[str] = (), note_caps: bool = True) -> TrainConfig:
    """Read a TOML config (or none: all defaults), apply ``--set`` overrides, type-check and validate.

    ``overrides`` are ``"section.key=value"`` strings; ``value`` is a TOML literal
    (``ppo.learning_rate=1e-3``, ``task.action_latency_range=[0.0, 0.01]``) or, when it is not
    one, a bare string (``logging.wandb_mode=disabled``); ``none`` sets an optional value to None.
    Raises :class:`ConfigError` with one line naming the file or ``--set``, the key and the problem.
    A CPU cap that changes a value prints one ``note:`` line on stderr (see :func:`config_from_dict`).
    """
    source = str(path) if path is not None else None
    data = _read_toml(Path(path)) if path is not None else {}
    return config_from_dict(data, overrides, source=source, note_caps=note_caps)


def config_from_dict(data: Mapping[str, Any], overrides: Sequence[str] = (), source: str | None = None,
                     note_caps: bool = True) -> TrainConfig:
    """Build and validate a config from parsed TOML data (or a checkpoint's ``config`` dict).

    The same checks as :func:`load_config`; ``source`` names where ``data`` came from in errors.
    When a CPU cap (``cpu.max_num_envs``, ``cpu.max_steps``) changed a value, one ``note:`` line per
    cap goes to stderr once the config is valid, naming the key, both values and the override;
    with ``note_caps=False`` nothing is printed and :func:`cap_notes` returns the lines for the
    caller to print later (the training CLI, after every bad-input check has passed).
    """
    data = _normalize_task_shorthand(dict(data), source)
    data.setdefault("task", {})
    overridden = _merge_overrides(data, overrides)
    where = _Where(source, overridden)
    task_name = data["task"].get("name", DEFAULT_TASK)
    if not isinstance(task_name, str):
        raise ConfigError(f"expected str, got {show_value(task_name)}", key="task.name", source=where("task.name"))
    try:
        config_cls = resolve_task_config(task_name)
    except ConfigError as e:
        raise e.at(where("task.name")) from None
    _check_sections(data, config_cls, where)

    def build() -> TrainConfig:
        return TrainConfig(
            task_name=task_name,
            task=_build_section("task", config_cls, {k: v for k, v in data["task"].items() if k != "name"}, where),
            **{name: _build_section(name, cls, data.get(name, {}), where) for name, cls in _FIXED_SECTIONS.items()},
        )

    # Types, then every check that needs no heavy import, on the values as given; only then the CPU caps
    # (which may import torch to see whether CUDA is there) and the checks that depend on them or on the
    # engines. So a typo, a wrong type or a value out of range is reported before torch is imported.
    config = build()
    try:
        _validate_values(config)
    except ConfigError as e:
        raise e.at(where(e.key)) from None
    notes = _cap_cpu_num_envs(data, config_cls, overridden)
    if notes:
        config = build()
    try:
        validate(config)
    except ConfigError as e:
        raise e.at(where(e.key)) from None
    config._cap_notes = tuple(notes)  # not fields: never saved, compared or shown in --help
    config._where = where
    for line in notes if note_caps else ():
        print(line, file=sys.stderr)
    return config


def source_of(config: TrainConfig, key: str | None) -> str | None:
    """Return where ``key`` of a loaded config came from: ``--set``, the TOML file, or None (a default in code)."""
    where = getattr(config, "_where", None)
    return where(key) if where is not None else None


def cap_notes(config: TrainConfig) -> tuple[str, ...]:
    """Return the ``note:`` lines of the CPU caps applied when ``config`` was loaded (empty if none)."""
    return getattr(config, "_cap_notes", ())


def layout_note(config: TrainConfig, resolved: TrainConfig | None = None) -> str | None:
    """A ``note:`` line with what the automatic settings chose: the rollout and minibatch sizes (unless
    ``ppo.rollout_length_seconds``, the minibatch size and, for a recurrent policy, ``ppo.sequence_length`` are
    all set), the KL stop of a recurrent policy (unless ``ppo.target_kl`` is set) and, given the trainer's
    ``resolved`` config, the input normalization (unless ``ppo.normalize_observations`` and
    ``ppo.normalizer_steps`` are set); None when nothing was chosen. So a run says how it batches its data, when
    its updates stop and what its policy reads."""
    ppo, envs, steps = config.ppo, config.task.num_envs, config.rollout_steps
    recurrent = config.model.trains_on_sequences
    layout = [key for key, auto in (("ppo.rollout_length_seconds", ppo.rollout_length_seconds is None),
                                    ("ppo.minibatch_size", ppo.minibatch_size == 0 and ppo.batch_size is None),
                                    ("ppo.sequence_length", recurrent and ppo.sequence_length is None)) if auto]
    automatic, chosen = layout, []
    if layout:
        length, per_minibatch = ppo.layout(envs, steps, recurrent)
        sequences = f" ({per_minibatch} sequences of {length} steps)" if recurrent else ""
        chosen.append(f"rollouts of {steps} steps x {envs} worlds, {config.num_minibatches} minibatches of "
                      f"{per_minibatch * length} transitions{sequences} per pass, {ppo.num_passes} passes")
    if ppo.target_kl is None and recurrent:
        automatic.append("ppo.target_kl")
        stops = "the actor's steps end" if ppo.target_kl_stops == "actor" else "the update ends"
        chosen.append(f"{stops} at a minibatch KL above 1.5 x {ppo.kl_target(recurrent)}")
    if resolved is not None:
        inputs = _input_note(ppo, resolved.ppo)
        if inputs:
            automatic += inputs[0]
            chosen.append(inputs[1])
    if not automatic:
        return None
    return f"note: automatic {', '.join(automatic)}: {'; '.join(chosen)}; set the keys to choose"


def _input_note(ppo: PPOConfig, resolved: PPOConfig) -> tuple[list[str], str] | None:
    """The automatic input-normalization keys of ``ppo`` and what ``resolved`` (the trainer's) made of them."""
    keys = [key for key, auto in (("ppo.normalize_observations", ppo.normalize_observations is None),
                                  ("ppo.normalizer_steps", ppo.normalizer_steps is None
                                   and resolved.normalize_observations)) if auto]
    if not keys:
        return None
    if not resolved.normalize_observations:
        return keys, "raw policy inputs"
    if resolved.normalizer_steps:
        return keys, f"inputs normalized by running statistics held after {resolved.normalizer_steps:,} env steps"
    return keys, "inputs normalized by running statistics that move all run"


class _Where:
    """Which source a dotted key came from: ``--set`` if overridden, else the file (or nothing)."""

    def __init__(self, path: str | None, overridden: dict[str, str]) -> None:
        self.path, self.overridden = path, overridden

    def __call__(self, key: str | None) -> str | None:
        return OVERRIDE_SOURCE if key in self.overridden else self.path


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("no such file; expected a TOML config file (e.g. configs/kbot_walk.toml)",
                          source=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a TOML file", source=str(path)) from None
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", source=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML: {e}", source=str(path)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"invalid TOML: not UTF-8 ({e.reason} at byte {e.start})", source=str(path)) from None


def _normalize_task_shorthand(data: dict[str, Any], source: str | None) -> dict[str, Any]:
    """Accept top-level ``task = "name"`` as ``[task] name = "name"``; reject other non-table sections."""
    data = dict(data)
    if isinstance(data.get("task"), str):
        data["task"] = {"name": data["task"]}
    for name in SECTIONS:
        if name in data and not isinstance(data[name], dict):
            raise ConfigError(f"expected a table [{name}], got {show_value(data[name])}", key=name, source=source)
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}


def _parse_override(text: str) -> tuple[str, Any, str]:
    """``"a.b=value"`` -> ("a.b", parsed value, raw value text)."""
    key, eq, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not eq or not key:
        raise ConfigError(f"expected section.key=value (e.g. ppo.learning_rate=1e-3), got {show_value(text)}",
                          source=OVERRIDE_SOURCE)
    if key == "task":  # --set task=kbot_stand, the shorthand for task.name
        key = "task.name"
    parts = key.split(".")
    if len(parts) != 2 or not all(parts):
        owners = [f"{s}.{key}" for s, cls in (("task", RLConfig), *_FIXED_SECTIONS.items()) if key in _field_names(cls)]
        hint = f"did you mean {owners[0]}? " if owners else ""
        raise ConfigError(f"expected section.key=value with one dot in the key; {hint}"
                          f"(sections: {', '.join(SECTIONS)})", key=key, source=OVERRIDE_SOURCE)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # not a TOML literal: a bare string
    return key, value, raw


def _merge_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, str]:
    """Write each override into ``data`` (a fresh copy of the file's tables); returns key -> raw text."""
    overridden: dict[str, str] = {}
    for text in overrides:
        key, value, raw = _parse_override(text)
        section, name = key.split(".")
        table = data.setdefault(section, {})
        if not isinstance(table, dict):  # an unknown top-level scalar named like the section
            raise ConfigError(f"expected a table [{section}], got {show_value(table)}", key=section,
                              source=OVERRIDE_SOURCE)
        table[name] = value
        overridden[key] = raw
    return overridden


def _check_sections(data: Mapping[str, Any], config_cls: type, where: _Where) -> None:
    """Reject unknown sections and keys, suggesting the closest valid one."""
    keys = _section_keys(config_cls)
    for section, table in data.items():
        if section not in keys:
            raise ConfigError(_unknown(section, None if isinstance(table, dict) else section, keys), key=section,
                              source=where(_first_key(section, table)))
        for key in table:
            if key not in keys[section]:
                raise ConfigError(_unknown(section, key, keys), key=f"{section}.{key}",
                                  source=where(f"{section}.{key}"))


def _first_key(section: str, table: Any) -> str:
    return f"{section}.{next(iter(table))}" if isinstance(table, dict) and table else section


def _section_keys(config_cls: type) -> dict[str, list[str]]:
    keys = {"task": ["name", *_field_names(config_cls)]}
    keys.update({name: _field_names(cls) for name, cls in _FIXED_SECTIONS.items()})
    return keys


def _unknown(section: str, key: str | None, keys: Mapping[str, Sequence[str]]) -> str:
    """Describe an unknown table (key None) or key, suggesting the closest valid name."""
    if key is None:
        close = difflib.get_close_matches(section, keys, n=1)
        hint = f"did you mean [{close[0]}]? " if close else ""
        return f"unknown section; {hint}sections: {', '.join(keys)}"
    close = difflib.get_close_matches(key, keys.get(section, ()), n=1)
    if close:
        return f"unknown key; did you mean {section}.{close[0]}?"
    elsewhere = [f"{s}.{key}" for s in keys if key in keys[s]]
    if elsewhere:
        return f"unknown key; did you mean {elsewhere[0]}?"
    every = [f"{s}.{k}" for s in keys for k in keys[s]]
    close = difflib.get_close_matches(key if section == key else f"{section}.{key}", every, n=1)
    if close:
        return f"unknown key; did you mean {close[0]}?"
    if section in keys:
        return f"unknown key; valid keys: {', '.join(keys[section])}"
    return f"unknown key; sections: {', '.join(keys)}"


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _cap_cpu_num_envs(data: dict[str, Any], config_cls: type[RLConfig], overridden: Mapping[str, str]) -> list[str]:
    """On the native MuJoCo CPU engine, cap task.num_envs at cpu.max_num_envs unless it came from --set.

    Also gives an unlimited run (``ppo.max_steps = 0``, no ``ppo.max_seconds``) ``cpu.max_steps`` steps there.
    Returns one ``note:`` line per cap that changed a value, naming the key, the old and new value and the
    ``--set`` that overrides it; :func:`config_from_dict` prints them once the config is valid.
    """
    notes = []
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    cpu_defaults = {f.name: f.default for f in dataclasses.fields(CPUConfig)}
    task = data["task"]
    cap = data.get("cpu", {}).get("max_num_envs", cpu_defaults["max_num_envs"])
    num_envs = task.get("num_envs", defaults.get("num_envs"))
    engine, device = task.get("engine", defaults.get("engine")), task.get("device", defaults.get("device"))
    well_typed = all(isinstance(v, int) and not isinstance(v, bool) for v in (cap, num_envs))
    explicit = "task.num_envs" in overridden or not well_typed  # ill-typed: reported when the section is built
    if not explicit and cap > 0 and num_envs > cap and engine_runs_on_cpu(engine, device):
        task["num_envs"] = cap
        notes.append(_cap_note("task.num_envs", num_envs, cap, "cpu.max_num_envs",
                               f"--set task.num_envs={num_envs} or --set cpu.max_num_envs=0"))
    ppo, cpu_steps = data.setdefault("ppo", {}), data.get("cpu", {}).get("max_steps", cpu_defaults["max_steps"])
    unlimited = ppo.get("max_steps", 0) == 0 and not ppo.get("max_seconds", 0)  # a time limit bounds it too
    if unlimited and isinstance(cpu_steps, int) and cpu_steps > 0 and engine_runs_on_cpu(engine, device):
        ppo["max_steps"] = cpu_steps
        notes.append(_cap_note("ppo.max_steps", "0 (unlimited)", cpu_steps, "cpu.max_steps",
                               "--set ppo.max_steps=<steps> or --set cpu.max_steps=0 (run until stopped)"))
    return notes


def _cap_note(key: str, old: Any, new: Any, cap_key: str, override: str) -> str:
    """Return the line that says a CPU cap changed ``key`` and how to override it."""
    return (f"note: {key} {old} -> {new}, capped by {cap_key} because physics runs on native MuJoCo on the CPU; "
            f"override with {override}")


def engine_runs_on_cpu(engine: Any, device: Any) -> bool:
    """Tell whether ``engine`` and ``device`` resolve to the native MuJoCo engine (on the CPU)."""
    if engine == "mujoco":
        return True
    if engine != "auto" or not isinstance(device, str):
        return False
    if device == "auto":
        import torch

        return not torch.cuda.is_available()
    return DEVICE_RE.fullmatch(device) is not None and device.startswith("cpu")


def validate(config: TrainConfig, task_cls: type[RLTask] | None = None) -> None:
    """Range and consistency checks across sections; raises :class:`ConfigError` naming the key.

    :func:`load_config` calls this; call it again after changing a config in code. ``task_cls``
    is the task class when the caller has it (``PPOTask.launch``), so ``task.name`` need not resolve.
    Three stages: the values one by one and the consistency checks that need no heavy import
    (:func:`_validate_values`: every float finite, every int within 64 bits, ranges); the checks
    that depend on the CPU caps (batch size against the number of worlds, a decaying learning-rate schedule
    against ppo.max_steps); last the device and what the engine or the task rejects (this imports
    torch and MuJoCo, and compiles a user's model file).
    """
    if task_cls is None:
        config_cls = resolve_task_config(config.task_name)
    else:
        config_cls = _task_config_class(task_cls, config.task_name)
    require(isinstance(config.task, config_cls), "task",
             f"task {config.task_name} needs a {config_cls.__name__}, got {type(config.task).__name__}")
    _validate_values(config)
    config.ppo.check_batches(config.task)
    _validate_with_engines(config)


def _validate_values(config: TrainConfig) -> None:
    """Every value on its own and the consistency checks that neither the CPU caps nor torch affect."""
    for name, section in _sections(config):
        for f in dataclasses.fields(section):
            problem = _number_problem(getattr(section, f.name), f)
            require(problem is None, f"{name}.{f.name}", problem or "")
    config.task.check()
    config.ppo.check(config.task)
    config.amp.check()
    config.model.check()
    config.logging.check()
    config.checkpoint.check()
    config.cpu.check()




def _validate_device(device: str) -> None:
    """Whether a CUDA device asked for exists (imports torch)."""
    if not device.startswith("cuda"):
        return
    import torch

    require(torch.cuda.is_available(), "task.device",
             f"{show_value(device)} requested but CUDA is not available on this machine (use auto or cpu)")
    index = int(device.partition(":")[2] or 0)
    require(index < torch.cuda.device_count(), "task.device",
             f"{show_value(device)} requested but this machine has {torch.cuda.device_count()} CUDA device(s)")


def _validate_with_engines(config: TrainConfig) -> None:
    """Check the device and what the engine or the task rejects (imports torch and MuJoCo)."""
    t, p = config.task, config.ppo
    _validate_device(t.device)
    if p.capture_rollout:
        device = t.resolved_device()
        require(device.startswith("cuda") and t.engine in ("auto", "warp"), "ppo.capture_rollout",
                 f"needs task.device cuda and the warp engine, got device {device!r} and engine {t.engine!r}")
    for build in (t.engine_config, t.sim2real_config, t.check_inputs):  # what the engine or the task rejects
        try:
            build()
        except ValueError as e:
            raise ConfigError(getattr(e, "problem", str(e)), key=getattr(e, "key", "task")) from None
