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

import dataclasses
import difflib
import hashlib
import importlib
import importlib.util
import math
import os
import re
import sys
import tempfile
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from ktorch_sim.task_config import ENGINE_KINDS, INTEGRATOR_NAMES, RLConfig, config_field

if typing.TYPE_CHECKING:
    from ktorch_sim.task import RLTask

DEFAULT_TASK = "kbot_walk"
OVERRIDE_SOURCE = "--set"


class ConfigError(ValueError):
    """A bad config, as one line: ``<file>: <dotted key>: <problem and what is allowed>``.

    ``source`` is the file the value came from, or ``--set`` for a command-line override
    (then the line reads ``--set <key>: ...``); ``key`` is the dotted key, when there is one.
    """

    def __init__(self, problem: str, key: str | None = None, source: str | None = None) -> None:
        self.problem, self.key, self.source = problem, key, source
        super().__init__(self._line())

    def _line(self) -> str:
        if self.source == OVERRIDE_SOURCE:
            head = f"{OVERRIDE_SOURCE} {self.key}" if self.key else OVERRIDE_SOURCE
            return f"{head}: {self.problem}"
        return ": ".join([p for p in (self.source, self.key) if p] + [self.problem])

    def at(self, source: str | None) -> ConfigError:
        """Return the same error attributed to ``source`` (a file path or ``--set``)."""
        return ConfigError(self.problem, self.key, source)


# --- the sections ---------------------------------------------------------------------------------


@dataclass(kw_only=True)
class PPOConfig:
    """PPO hyperparameters (ksim's PPOConfig and walking example, rsl_rl where ksim has none)."""

    batch_size: int = config_field(256, "Worlds per minibatch (ksim's batch_size), used when ppo.minibatch_size is 0: "
                                        "a minibatch then holds batch_size x rollout steps transitions. Must divide "
                                        "task.num_envs (a value above task.num_envs means all of them).")
    minibatch_size: int = config_field(0, "Transitions per minibatch (SB3's batch_size). Feed-forward policies draw "
                                          "single transitions across worlds and time; recurrent ones whole "
                                          "sequences of ppo.sequence_length steps. 0: ppo.batch_size worlds' worth "
                                          "(batch_size x rollout steps).")
    sequence_length: int = config_field(0, "Recurrent policies: steps per training sequence (truncated BPTT); the "
                                           "rollout is cut into sequences of this length, each replayed from the "
                                           "carry the policy had at its first step. Must divide the rollout steps. "
                                           "0: the whole rollout (ksim). Feed-forward policies ignore it.")
    num_passes: int = config_field(4, "Epochs over the rollout per iteration.")
    rollout_length_seconds: float = config_field(8.0, "Rollout length per iteration, seconds of simulated time "
                                                      "(also the truncated-BPTT horizon).")
    gamma: float = config_field(0.99, "Discount factor, in (0, 1].")
    lam: float = config_field(0.95, "GAE lambda, in (0, 1].")
    clip_param: float = config_field(0.2, "PPO ratio clip epsilon (also clips the value loss).")
    value_loss_coef: float = config_field(1.0, "Weight of the value loss 0.5 (V - target)^2 (1.0 = SB3's vf_coef 0.5 "
                                                "on the plain squared error).")
    use_clipped_value_loss: bool = config_field(False, "Clip the value update around the rollout's values to "
                                                       "+-clip_param (rsl_rl, CleanRL). Off by default (SB3): in raw "
                                                       "reward units it keeps the critic from reaching large returns "
                                                       "(docs/learning.md).")
    entropy_coef: float = config_field(0.0, "Weight of the entropy bonus (SB3, CleanRL: 0; ksim: 0.008).")
    kl_coef: float = config_field(0.0, "Weight of the KL(old || new) penalty (ksim: 1e-3; 0 disables it).")
    adaptive_kl: bool = config_field(False, "Adapt kl_coef x/÷1.5 to keep the KL near desired_kl (ksim).")
    desired_kl: float = config_field(0.01, "Target KL per minibatch for adaptive_kl and adaptive_lr.")
    adaptive_lr: bool = config_field(False, "Adapt the learning rate x/÷1.5 to keep the KL near desired_kl (rsl_rl).")
    log_clip_value: float = config_field(5.0, "Clip of the summed log-ratio before exp (ksim: 5.0).")
    normalize_advantages: bool = config_field(True, "Normalize advantages per minibatch to zero mean, unit std.")
    learning_rate: float = config_field(3e-4, "AdamW learning rate.")
    adam_eps: float = config_field(1e-5, "AdamW epsilon (SB3 and CleanRL: 1e-5; PyTorch's default: 1e-8).")
    weight_decay: float = config_field(0.0, "AdamW weight decay (ksim: 1e-5).")
    grad_clip: float = config_field(0.5, "Max global gradient norm (SB3, CleanRL: 0.5; rsl_rl: 1.0; ksim walking: 2.0).")
    warmup_iterations: int = config_field(0, "Iterations of linear learning-rate warmup from 1 %.")
    lr_schedule: str = config_field("constant", "Learning-rate schedule after warmup: constant, or cosine decay "
                                                "to min_lr_fraction over max_steps.", choices=("constant", "cosine"))
    min_lr_fraction: float = config_field(0.01, "Final learning rate of the cosine schedule, as a fraction.")
    normalize_observations: bool = config_field(False, "Running mean/std normalization of policy inputs "
                                                       "(ksim: none; mjlab tracking: on).")
    normalize_rewards: bool = config_field(False, "Divide rewards by the running std of the discounted return, "
                                                  "clipped to +-10 (SB3's VecNormalize, Gymnasium's NormalizeReward).")
    max_steps: int = config_field(0, "Stop after this many environment steps in total (0: run until stopped).")
    reward_clip: float | None = config_field(None, "Clip each step's total reward to [-x, x] (none: no clip).")
    capture_rollout: bool = config_field(False, "Record the whole control step (policy, actuators, physics, "
                                                "components, resets, storage) as one CUDA graph and replay it "
                                                "(CUDA + Warp only; not yet verified on a GPU).")

    def envs_per_minibatch(self, num_envs: int) -> int:
        """Environments in one minibatch: ``batch_size``, or all ``num_envs`` when that is fewer."""
        return min(self.batch_size, num_envs)

    def num_minibatches(self, num_envs: int) -> int:
        """Minibatches per pass over a rollout of ``num_envs`` environments when ``minibatch_size`` is 0."""
        return num_envs // self.envs_per_minibatch(num_envs)


@dataclass(kw_only=True)
class ModelConfig:
    """Actor-critic sizes (the K-Scale humanoid benchmark notebook's GRU by default)."""

    policy: str = config_field("gru", "Network: gru (GRU stack, mixture-of-Gaussians actor) or mlp (Gaussian MLP).",
                               choices=("gru", "mlp"))
    hidden_size: int = config_field(128, "GRU hidden size.")
    depth: int = config_field(5, "Number of stacked GRU cells.")
    num_mixtures: int = config_field(5, "Gaussians per joint in the actor's mixture.")
    min_std: float = config_field(0.01, "Lower clip of each Gaussian's std (after softplus).")
    max_std: float = config_field(1.0, "Upper clip of each Gaussian's std.")
    var_scale: float = config_field(1.0, "Scale on the softplus std output.")
    mlp_hidden: tuple[int, ...] = config_field((512, 256, 128), "Hidden layer sizes of the mlp policy and critic.")
    activation: str = config_field("elu", "Hidden activation of the mlp policy and critic (rsl_rl: elu; SB3 and "
                                          "CleanRL: tanh).", choices=("elu", "tanh", "relu", "silu"))
    init_std: float = config_field(1.0, "Initial action std of the mlp policy's Gaussian (a learned, "
                                        "state-independent log std; SB3: 1.0).")
    sequence_method: str = config_field("auto", "GRU training pass with resets: loop (GRUCell per step), packed (cut "
                                                "at resets, one fused nn.GRU call; cuDNN on CUDA) or auto (packed on "
                                                "CUDA, loop on CPU). Both are exact.",
                                        choices=("auto", "loop", "packed"))


@dataclass(kw_only=True)
class LoggingConfig:
    """Where and how often training reports."""

    wandb_mode: str = config_field("auto", "Weights & Biases: auto (online if WANDB_API_KEY or a netrc login "
                                           "exists, else offline), online, offline or disabled.",
                                   choices=("auto", "online", "offline", "disabled"))
    wandb_project: str = config_field("ktorch_sim", "Weights & Biases project.")
    wandb_entity: str | None = config_field(None, "Weights & Biases entity (none: your default).")
    run_name: str | None = config_field(None, "Run name, also the run directory's name (none: task name and time).")
    run_dir: str = config_field("runs", "Parent directory of run directories.")
    log_every_iterations: int = config_field(1, "Log metrics every this many iterations.")
    video_every_minutes: float = config_field(0.0, "Render a rollout video of the current policy to run_dir/videos "
                                                   "and wandb every this many minutes of wall-clock time (0: never).")
    video_seconds: float = config_field(5.0, "Length of each training video, seconds.")


@dataclass(kw_only=True)
class CheckpointConfig:
    """Checkpoint cadence and retention."""

    save_every_seconds: float = config_field(60.0, "Save a checkpoint every this many seconds of training.")
    keep_last: int = config_field(3, "Checkpoints kept in the run directory (older ones are deleted).")


@dataclass(kw_only=True)
class CPUConfig:
    """What changes when physics runs on native MuJoCo on the CPU (a laptop, CI, no GPU)."""

    max_num_envs: int = config_field(32, "Cap on task.num_envs when task.engine resolves to native MuJoCo on the "
                                         "CPU, unless task.num_envs is given with --set (0: no cap).")
    max_steps: int = config_field(16000, "ppo.max_steps used on the CPU engine when ppo.max_steps is 0 (unlimited), "
                                         "so the default run is a short demo on a laptop (0: keep unlimited).")


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
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig, metadata={"help": "Actor-critic sizes."})
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig, metadata={"help": "Logging."})
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig,
                                                     metadata={"help": "Checkpoints."})
    cpu: CPUConfig = dataclasses.field(default_factory=CPUConfig, metadata={"help": "CPU-engine settings."})

    @property
    def rollout_steps(self) -> int:
        """Control steps per rollout: ``ppo.rollout_length_seconds / task.ctrl_dt``, rounded."""
        return max(1, round(self.ppo.rollout_length_seconds / self.task.ctrl_dt))


SECTIONS = ("task", "ppo", "model", "logging", "checkpoint", "cpu")
_FIXED_SECTIONS: dict[str, type] = {"ppo": PPOConfig, "model": ModelConfig, "logging": LoggingConfig,
                                    "checkpoint": CheckpointConfig, "cpu": CPUConfig}


# --- tasks ------------------------------------------------------------------------------------------


def registered_tasks() -> dict[str, tuple[type[RLTask], type[RLConfig]]]:
    """Return the shipped tasks by name (``ktorch_sim.tasks.TASKS``; imports every task module)."""
    from ktorch_sim.tasks import TASKS

    return dict(TASKS)


def registered_task_names() -> tuple[str, ...]:
    """Return the shipped tasks' names, sorted (imports no task module)."""
    from ktorch_sim.tasks import TASK_NAMES

    return tuple(sorted(TASK_NAMES))


# "package.module:ClassName" (module parts are identifiers) or "path/to/file.py:ClassName"; the class part
# may be nested ("Outer.Inner"). rpartition keeps a Windows drive letter's ':' in the file part.
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE_RE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*")
_CLASS_RE = _MODULE_RE


def _check_import_path(name: str) -> None:
    """Refuse a ``task.name`` with a ':' that is not ``module:Class`` or ``file.py:Class`` (e.g. ":", "a:", ":B")."""
    module, _, attr = name.rpartition(":")
    module_ok = module.endswith(".py") and len(module) > 3 or _MODULE_RE.fullmatch(module) is not None
    if module_ok and _CLASS_RE.fullmatch(attr):
        return
    part = "module or file" if not module_ok else "class name"
    raise ConfigError(f"malformed task name {_show(name)} (bad {part}); expected a registered name "
                      f"({', '.join(registered_task_names())}), \"package.module:ClassName\" or "
                      '"path/to/file.py:ClassName"', key="task.name")


def _unknown_task(name: str) -> ConfigError:
    names = registered_task_names()
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return ConfigError(f"unknown task {_show(name)}; {hint}registered tasks: {', '.join(names)} "
                       '(or "package.module:ClassName" of an RLTask subclass, or "path/to/file.py:ClassName")',
                       key="task.name")


def resolve_task(name: str) -> tuple[type[RLTask], type[RLConfig]]:
    """Find the task class and its config class for a registered name or ``"package.module:ClassName"``.

    ``"path/to/file.py:ClassName"`` loads the file (relative to the current directory, with its
    directory importable, as when it ran as a script; its ``if __name__ == "__main__"`` block does
    not run). A module path is imported from ``sys.path`` and, failing that, the current directory.
    For an import path the config class is the task class's ``config_class`` attribute, else
    the annotation of its ``__init__``'s ``config`` parameter, else X in its ``RLTask[X]`` base.
    Raises :class:`ConfigError` (key ``task.name``) listing the registered names otherwise, and
    one line naming the file and line when the user's module fails to import.
    """
    from ktorch_sim.tasks import TASK_NAMES, task_class, task_config_class

    if name in TASK_NAMES:
        return task_class(name), task_config_class(name)
    if ":" not in name:
        raise _unknown_task(name)
    _check_import_path(name)
    task_cls = _import_task_class(name)
    return task_cls, _task_config_class(task_cls, name)


def resolve_task_config(name: str) -> type[RLConfig]:
    """Return the config class of ``task.name``: for a registered task without importing its task class.

    The config loader uses this, so that checking a config of a shipped task imports neither torch
    nor MuJoCo. An import path (``"package.module:ClassName"``) must import the user's module to find it.
    """
    from ktorch_sim.tasks import TASK_NAMES, task_config_class

    if name in TASK_NAMES:
        return task_config_class(name)
    return resolve_task(name)[1]


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


def _import_task_class(path: str) -> type[RLTask]:
    from ktorch_sim.task import RLTask

    module_name, _, attr = path.rpartition(":")  # rpartition: a file path may hold a drive letter's ':'
    if module_name.endswith(".py"):
        module = _load_task_file(module_name, path)
    else:
        module = _import_task_module(module_name, path)
    task_cls: Any = module
    for part in attr.split("."):  # a nested class: Outer.Inner
        task_cls = getattr(task_cls, part, None)
    if not (isinstance(task_cls, type) and issubclass(task_cls, RLTask)):
        what = "has no attribute" if task_cls is None else "is not an RLTask subclass:"
        raise ConfigError(f"module {module_name} {what} {_show(attr)}", key="task.name")
    return task_cls


def _import_task_module(module_name: str, path: str) -> types.ModuleType:
    """Import ``module_name``; when it is not on ``sys.path``, try again from the current directory.

    ``python tools/play.py`` puts ``tools/`` on ``sys.path``, not the directory it runs from, so
    without the second try a task module next to the user's run directory would not be found.
    Anything the module raises while it runs (a SyntaxError, a NameError, an ImportError of one of
    its own imports ...) becomes one :class:`ConfigError` line naming the file and line.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if not _is_module_itself(e, module_name):
            raise _module_failed(e, module_name, path) from None
        problem: BaseException = e
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
            try:
                return importlib.import_module(module_name)
            except ModuleNotFoundError as again:
                if not _is_module_itself(again, module_name):
                    raise _module_failed(again, module_name, path) from None
                problem = again
            except Exception as again:  # noqa: BLE001 - the user's module failed while it ran
                raise _module_failed(again, module_name, path) from None
    except Exception as e:  # noqa: BLE001 - the user's module failed while it ran
        raise _module_failed(e, module_name, path) from None
    raise ConfigError(f"cannot import module {_show(module_name)} of task {_show(path)}: {problem}; expected a "
                      "module importable from the current directory or PYTHONPATH", key="task.name") from None


def _is_module_itself(error: ModuleNotFoundError, module_name: str) -> bool:
    """Whether ``error`` says that ``module_name`` (or a package above it) is missing, not one of its imports."""
    missing = error.name or ""
    return missing == module_name or module_name.startswith(missing + ".")


def _module_failed(error: BaseException, module_name: str, path: str) -> ConfigError:
    where = _error_location(error)
    return ConfigError(f"task module {_show(module_name)} of task {_show(path)} failed to import: "
                       f"{where}{_one_line_error(error)}", key="task.name")


def _one_line_error(error: BaseException) -> str:
    """``Type: message`` on one line (a SyntaxError without its "(file, line n)" suffix)."""
    text = error.msg if isinstance(error, SyntaxError) and error.msg else str(error)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _error_location(error: BaseException) -> str:
    """``"file.py, line n: "``: where the user's code failed (the deepest frame outside Python and ktorch_sim).

    A SyntaxError names its own file and line. Otherwise the traceback's last frame in a file that is
    not part of the standard library, the installed packages or ktorch_sim is the user's line; failing
    that, the deepest frame with a file. Paths below the current directory are shown relative to it.
    """
    if isinstance(error, SyntaxError) and error.filename:
        return f"{_shown_path(error.filename)}, line {error.lineno}: "
    import sysconfig
    import traceback

    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename and not f.filename.startswith("<")]
    if not frames:
        return ""
    skip = {str(Path(p).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if (p := sysconfig.get_paths().get(key))}
    skip.add(str(Path(__file__).resolve().parent))
    user = [f for f in frames if not any(str(Path(f.filename).resolve()).startswith(d + os.sep) for d in skip)]
    frame = (user or frames)[-1]
    return f"{_shown_path(frame.filename)}, line {frame.lineno}: "


def _shown_path(file: str) -> str:
    resolved = Path(file).resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(resolved)


def _load_task_file(file: str, path: str) -> types.ModuleType:
    """Load the Python file of a ``path/to/file.py:ClassName`` task once per process, as its own module.

    The file runs under a private module name (not ``__main__``, so a ``launch`` guarded by
    ``if __name__ == "__main__"`` does not start), with its directory on ``sys.path`` so its own
    imports of neighbouring files work as they did when it ran as a script.
    """
    resolved = Path(file).expanduser().resolve()
    if not resolved.is_file():
        raise ConfigError(f"task file {_show(file)} of task {_show(path)} does not exist (relative to {os.getcwd()}); "
                          "run from the directory it was recorded from, or --set task.name=path/to/file.py:ClassName",
                          key="task.name")
    name = f"_ktorch_sim_task_{resolved.stem}_{hashlib.sha1(str(resolved).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    assert spec is not None and spec.loader is not None  # a .py file always has a source loader
    module = importlib.util.module_from_spec(spec)
    if str(resolved.parent) not in sys.path:
        sys.path.append(str(resolved.parent))
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - anything the user's file raises becomes one line
        del sys.modules[name]
        raise ConfigError(f"cannot load task file {_show(file)} of task {_show(path)}: {_error_location(e)}"
                          f"{_one_line_error(e)}", key="task.name") from None
    return module


def importable_task_name(task_cls: type) -> str | None:
    """Return the ``task.name`` that :func:`resolve_task` maps back to ``task_cls``, or None when none exists.

    A class of an importable module is ``package.module:ClassName``. A class defined in the script
    being run (module ``__main__``) is named by how the script can be found again: its module name
    when it ran as ``python -m package.module``, else its file, relative to the current directory
    when it lies below it (``my_tasks/walk.py:MyTask``) and absolute otherwise. A class from an
    interactive session or notebook (no file), or one defined inside a function, has none.
    """
    qualname = task_cls.__qualname__
    if "<locals>" in qualname:
        return None
    if task_cls.__module__ != "__main__":
        return f"{task_cls.__module__}:{qualname}"
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return f"{spec.name}:{qualname}"
    file = getattr(main, "__file__", None)
    if not file or not str(file).endswith(".py"):
        return None
    resolved = Path(file).resolve()
    try:
        shown = resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        shown = str(resolved)
    return f"{shown}:{qualname}"


def _task_config_class(task_cls: type[RLTask], name: str) -> type[RLConfig]:
    candidates: list[Any] = [getattr(task_cls, "config_class", None)]
    try:
        candidates.append(typing.get_type_hints(task_cls.__init__).get("config"))
    except Exception:  # noqa: BLE001 - unresolvable annotations just mean "look elsewhere"
        pass
    for klass in task_cls.__mro__:
        candidates += [arg for base in getattr(klass, "__orig_bases__", ()) for arg in typing.get_args(base)]
    for c in candidates:
        if isinstance(c, type) and issubclass(c, RLConfig) and dataclasses.is_dataclass(c):
            if "name" in {f.name for f in dataclasses.fields(c)}:
                raise ConfigError(f"{c.__name__} has a field 'name', which clashes with task.name; rename it",
                                  key="task.name")
            return c
    raise ConfigError(f"cannot find the config class of {name}: set `config_class = <an RLConfig dataclass>` on "
                      "the task class or annotate its __init__'s config parameter", key="task.name")


# --- loading ---------------------------------------------------------------------------------------


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
        raise ConfigError(f"expected str, got {_show(task_name)}", key="task.name", source=where("task.name"))
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
            raise ConfigError(f"expected a table [{name}], got {_show(data[name])}", key=name, source=source)
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}


def _parse_override(text: str) -> tuple[str, Any, str]:
    """``"a.b=value"`` -> ("a.b", parsed value, raw value text)."""
    key, eq, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not eq or not key:
        raise ConfigError(f"expected section.key=value (e.g. ppo.learning_rate=1e-3), got {_show(text)}",
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
            raise ConfigError(f"expected a table [{section}], got {_show(table)}", key=section,
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

    Also gives an unlimited run (``ppo.max_steps = 0``) ``cpu.max_steps`` steps there. Returns one
    ``note:`` line per cap that changed a value, naming the key, the old and new value and the
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
    if ppo.get("max_steps", 0) == 0 and isinstance(cpu_steps, int) and cpu_steps > 0 and \
            engine_runs_on_cpu(engine, device):
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
    return _DEVICE_RE.fullmatch(device) is not None and device.startswith("cpu")


# --- typed construction ------------------------------------------------------------------------------


class _Mismatch(Exception):
    """A value that does not fit a type; ``expected`` says what would."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _build_section(section: str, cls: type, table: Mapping[str, Any], where: _Where) -> Any:
    """Build a fresh ``cls`` from a key-checked table, converting each value to its field's type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        dotted = f"{section}.{key}"
        kwargs[key] = _convert_field(value, hints[key], fields[key], dotted, where)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # the class's own __post_init__ checks
        from_cli = [f"{section}.{k}" for k in kwargs if f"{section}.{k}" in where.overridden]
        raise ConfigError(str(e), key=section, source=where(from_cli[0] if from_cli else section)) from None


def _convert_field(value: Any, tp: Any, field: dataclasses.Field, dotted: str, where: _Where) -> Any:
    """``value`` converted to ``tp`` and checked against the field's ``choices``; ConfigError otherwise."""
    try:
        converted = _convert(value, tp)
    except _Mismatch as e:
        raw = where.overridden.get(dotted)
        try:  # a str field takes the raw text: --set logging.run_name=2024 is the string "2024"
            if raw is None or raw == value:
                raise
            converted = _convert(raw, tp)
        except _Mismatch:
            raise ConfigError(f"expected {e.expected}, got {_show(value)}", key=dotted, source=where(dotted)) from None
    choices = field.metadata.get("choices")
    if choices is not None and converted not in choices:
        raise ConfigError(_choice_problem(converted, choices), key=dotted, source=where(dotted))
    problem = _number_problem(converted, field, raw=where.overridden.get(dotted))
    if problem:
        raise ConfigError(problem, key=dotted, source=where(dotted))
    return converted


INT64_MAX = 2**63 - 1
"""Every int in a config must fit a signed 64-bit integer (torch, numpy and checkpoints store them so)."""
C_INT_MAX = 2**31 - 1
"""Counts that MuJoCo or Warp keep in a C ``int`` (solver iterations, buffer sizes, control steps)."""


def _number_problem(value: Any, field: dataclasses.Field, raw: str | None = None) -> str | None:
    """Describe a non-finite float (or one in a tuple) or an int beyond 64 bits; None when the value is fine.

    ``inf`` is allowed only in a field made with ``config_field(..., allow_inf=True)`` (its help text
    says what infinity means) or whose default holds an infinity itself (e.g. a range ``(0.7, inf)``:
    the default shows what it means); ``nan`` never. ``raw`` is the ``--set`` text, shown when it
    differs (``1e400`` is read as inf).
    """
    items = value if isinstance(value, (tuple, list)) else (value,)
    if raw is not None and len(raw) > 40:
        raw = f"{raw[:20]}... ({len(raw)} characters)"
    shown = _show(value) if raw is None or raw == _show(value) else f"{raw} (read as {_show(value)})"
    for item in items:
        if isinstance(item, bool):
            continue
        if isinstance(item, float) and math.isnan(item):
            return f"must be a number, got {shown}"
        if isinstance(item, float) and math.isinf(item) and not _allows_inf(field):
            return f"must be a finite number, got {shown}"
        if isinstance(item, int) and not -INT64_MAX - 1 <= item <= INT64_MAX:
            return f"must fit in a 64-bit integer (|value| <= {INT64_MAX}), got {shown}"
    return None


def _allows_inf(field: dataclasses.Field) -> bool:
    """Whether ``field`` may hold an infinity: ``allow_inf`` metadata, or a default that holds one."""
    if field.metadata.get("allow_inf"):
        return True
    default = field.default
    if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    items = default if isinstance(default, (tuple, list)) else (default,)
    return any(isinstance(v, float) and math.isinf(v) for v in items)


def _choice_problem(value: Any, choices: Sequence[Any]) -> str:
    """Describe a value outside ``choices``, suggesting the closest allowed one."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    hint = f"; did you mean {_show(close[0])}?" if close else ""
    return f"expected one of {', '.join(_show(c) for c in choices)}, got {_show(value)}{hint}"


def _convert(value: Any, tp: Any) -> Any:  # noqa: C901 - one branch per supported annotation
    """``value`` (a TOML datum) as type ``tp``; raises :class:`_Mismatch` naming what was expected."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return _convert_union(value, args, tp)
    if tp is Any or tp is object:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch("bool (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch("int")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an int beyond float range: as inf, which the finiteness check refuses
                return math.inf if value > 0 else -math.inf
        raise _Mismatch("float")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch("str")
    if origin is Literal:
        if value in args:
            return value
        raise _Mismatch(f"one of {', '.join(_show(a) for a in args)}")
    if origin in (tuple, list):
        return _convert_sequence(value, origin, args, tp)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Mismatch(_type_name(tp))


def _convert_union(value: Any, args: tuple[Any, ...], tp: Any) -> Any:
    if type(None) in args and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(value, arg)
        except _Mismatch:
            continue
    raise _Mismatch(_type_name(tp))


def _convert_sequence(value: Any, origin: type, args: tuple[Any, ...], tp: Any) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _Mismatch(f"{_type_name(tp)} (a TOML array)")
    if origin is list or (len(args) == 2 and args[1] is Ellipsis):
        item = args[0] if args else Any
        items = [_convert_item(v, item, tp) for v in value]
        return items if origin is list else tuple(items)
    if not args:
        return tuple(value)
    if len(value) != len(args):
        raise _Mismatch(f"{_type_name(tp)} (an array of {len(args)})")
    return tuple(_convert_item(v, a, tp) for v, a in zip(value, args, strict=True))


def _convert_item(value: Any, item_tp: Any, tp: Any) -> Any:
    try:
        return _convert(value, item_tp)
    except _Mismatch:
        raise _Mismatch(_type_name(tp)) from None


def _type_name(tp: Any) -> str:
    """Write an annotation readably: ``int``, ``tuple[float, float]``, ``float | None``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(_show(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]" if args else origin.__name__
    return getattr(tp, "__name__", str(tp))


# --- validation ----------------------------------------------------------------------------------------


def _require(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(problem, key=key)


def validate(config: TrainConfig, task_cls: type[RLTask] | None = None) -> None:
    """Range and consistency checks across sections; raises :class:`ConfigError` naming the key.

    :func:`load_config` calls this; call it again after changing a config in code. ``task_cls``
    is the task class when the caller has it (``PPOTask.launch``), so ``task.name`` need not resolve.
    Three stages: the values one by one and the consistency checks that need no heavy import
    (:func:`_validate_values`: every float finite, every int within 64 bits, ranges); the checks
    that depend on the CPU caps (batch size against the number of worlds, a cosine schedule
    against ppo.max_steps); last the device and what the engine or the task rejects (this imports
    torch and MuJoCo, and compiles a user's model file).
    """
    if task_cls is None:
        config_cls = resolve_task_config(config.task_name)
    else:
        config_cls = _task_config_class(task_cls, config.task_name)
    _require(isinstance(config.task, config_cls), "task",
             f"task {config.task_name} needs a {config_cls.__name__}, got {type(config.task).__name__}")
    _validate_values(config)
    _validate_ppo_against_caps(config.ppo, config.task)
    _validate_with_engines(config)


def _validate_values(config: TrainConfig) -> None:
    """Every value on its own and the consistency checks that neither the CPU caps nor torch affect."""
    for name, section in _sections(config):
        for f in dataclasses.fields(section):
            problem = _number_problem(getattr(section, f.name), f)
            _require(problem is None, f"{name}.{f.name}", problem or "")
    _validate_task(config.task)
    _validate_ppo(config.ppo, config.task)
    _validate_model(config.model)
    _validate_logging(config.logging)
    c = config.checkpoint
    _require(c.save_every_seconds > 0, "checkpoint.save_every_seconds", f"must be > 0, got {c.save_every_seconds}")
    _require(c.keep_last >= 1, "checkpoint.keep_last", f"must be >= 1, got {c.keep_last}")
    cap = config.cpu.max_num_envs
    _require(cap >= 0, "cpu.max_num_envs", f"must be >= 0 (0: no cap), got {cap}")
    steps = config.cpu.max_steps
    _require(steps >= 0, "cpu.max_steps", f"must be >= 0 (0: keep unlimited), got {steps}")


def _validate_task(t: RLConfig) -> None:
    _require(t.num_envs >= 1, "task.num_envs", f"must be >= 1, got {t.num_envs}")
    _require(t.engine in ENGINE_KINDS, "task.engine", _choice_problem(t.engine, ENGINE_KINDS))
    _require(_DEVICE_RE.fullmatch(t.device) is not None, "task.device",
             f"expected auto, cpu or cuda[:k], got {_show(t.device)}")
    _require(t.integrator in INTEGRATOR_NAMES, "task.integrator", _choice_problem(t.integrator, INTEGRATOR_NAMES))
    _require(t.dt > 0, "task.dt", f"must be > 0 seconds, got {t.dt}")
    ratio = t.ctrl_dt / t.dt
    _require(ratio <= C_INT_MAX, "task.dt",
             f"must give at most {C_INT_MAX} physics steps per task.ctrl_dt ({t.ctrl_dt}), got {t.dt} "
             f"({ratio:.4g} steps)")
    _require(ratio >= 1 - 1e-9 and math.isclose(ratio, round(ratio), rel_tol=1e-6), "task.ctrl_dt",
             f"must be a whole multiple of task.dt ({t.dt}), got {t.ctrl_dt} ({ratio:.4g} x dt)")
    for name in ("iterations", "ls_iterations", "nconmax", "njmax"):
        value = getattr(t, name)
        _require(1 <= value <= C_INT_MAX, f"task.{name}", f"must be in [1, {C_INT_MAX}], got {value}")
    _require(0 <= t.num_threads <= C_INT_MAX, "task.num_threads",
             f"must be in [0, {C_INT_MAX}] (0: one per core), got {t.num_threads}")
    lo, hi = t.action_latency_range
    _require(0 <= lo <= hi, "task.action_latency_range", f"must satisfy 0 <= min <= max, got [{lo}, {hi}]")
    _require(0 <= t.drop_action_prob < 1, "task.drop_action_prob", f"must be in [0, 1), got {t.drop_action_prob}")
    _require(t.zero_offset_std >= 0, "task.zero_offset_std", f"must be >= 0, got {t.zero_offset_std}")
    _require(t.zero_offset_mag >= 0, "task.zero_offset_mag", f"must be >= 0, got {t.zero_offset_mag}")
    _require(t.actuator_update_dt is None or t.actuator_update_dt > 0, "task.actuator_update_dt",
             f"must be > 0 seconds or none, got {t.actuator_update_dt}")
    _require(0 <= t.seed <= INT64_MAX, "task.seed", f"must be in [0, 2**63 - 1], got {t.seed}")
    try:  # the task config class's own fields
        t.check_values()
    except ValueError as e:
        raise ConfigError(getattr(e, "problem", str(e)), key=getattr(e, "key", "task")) from None


_DEVICE_RE = re.compile(r"auto|cpu(:\d+)?|cuda(:\d+)?")


def _validate_device(device: str) -> None:
    """Whether a CUDA device asked for exists (imports torch)."""
    if not device.startswith("cuda"):
        return
    import torch

    _require(torch.cuda.is_available(), "task.device",
             f"{_show(device)} requested but CUDA is not available on this machine (use auto or cpu)")
    index = int(device.partition(":")[2] or 0)
    _require(index < torch.cuda.device_count(), "task.device",
             f"{_show(device)} requested but this machine has {torch.cuda.device_count()} CUDA device(s)")


def _validate_ppo(p: PPOConfig, t: RLConfig) -> None:
    _require(p.batch_size >= 1, "ppo.batch_size", f"must be >= 1, got {p.batch_size}")
    _require(p.num_passes >= 1, "ppo.num_passes", f"must be >= 1, got {p.num_passes}")
    _require(p.minibatch_size >= 0, "ppo.minibatch_size", f"must be >= 0 (0: ppo.batch_size worlds), got {p.minibatch_size}")
    _require(p.sequence_length >= 0, "ppo.sequence_length",
             f"must be >= 0 (0: the whole rollout), got {p.sequence_length}")
    _require(p.rollout_length_seconds >= t.ctrl_dt, "ppo.rollout_length_seconds",
             f"must be >= task.ctrl_dt ({t.ctrl_dt}), got {p.rollout_length_seconds}")
    ratio = p.rollout_length_seconds / t.ctrl_dt
    _require(ratio <= C_INT_MAX, "ppo.rollout_length_seconds",
             f"must be at most {C_INT_MAX} control steps of task.ctrl_dt ({t.ctrl_dt}), got "
             f"{p.rollout_length_seconds} ({ratio:.3g} steps)")
    steps = max(1, round(ratio))
    if p.sequence_length and steps % p.sequence_length:
        nearest = min(_divisors(steps), key=lambda d: abs(d - p.sequence_length))
        raise ConfigError(f"must divide the rollout's {steps} steps (ppo.rollout_length_seconds / task.ctrl_dt), "
                          f"got {p.sequence_length} (e.g. use {nearest})", key="ppo.sequence_length")
    for name in ("gamma", "lam"):
        value = getattr(p, name)
        _require(0 < value <= 1, f"ppo.{name}", f"must be in (0, 1], got {value}")
    for name in ("clip_param", "learning_rate", "grad_clip", "log_clip_value", "adam_eps", "desired_kl"):
        _require(getattr(p, name) > 0, f"ppo.{name}", f"must be > 0, got {getattr(p, name)}")
    for name in ("value_loss_coef", "entropy_coef", "kl_coef", "weight_decay", "warmup_iterations", "max_steps"):
        _require(getattr(p, name) >= 0, f"ppo.{name}", f"must be >= 0, got {getattr(p, name)}")
    _require(not p.adaptive_kl or p.kl_coef > 0, "ppo.kl_coef",
             f"must be > 0 when ppo.adaptive_kl is true (it is the starting coefficient), got {p.kl_coef}")
    _require(0 <= p.min_lr_fraction <= 1, "ppo.min_lr_fraction", f"must be in [0, 1], got {p.min_lr_fraction}")
    _require(p.reward_clip is None or p.reward_clip > 0, "ppo.reward_clip", f"must be > 0 or none, got {p.reward_clip}")


def _divisors(n: int) -> list[int]:
    """Return the divisors of ``n`` (trial division up to sqrt(n): fast for a rollout's 2**31 steps)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})


def _validate_ppo_against_caps(p: PPOConfig, t: RLConfig) -> None:
    """Check what depends on task.num_envs and ppo.max_steps, which the CPU caps may change."""
    size = p.envs_per_minibatch(t.num_envs)
    if t.num_envs % size:
        fast = t.num_envs <= 10**12  # trial division up to 10**6; beyond, the gcd is a divisor too
        divisor = max(d for d in _divisors(t.num_envs) if d <= size) if fast else math.gcd(t.num_envs, size)
        raise ConfigError(f"must divide task.num_envs ({t.num_envs}), got {p.batch_size} (e.g. use {divisor})",
                          key="ppo.batch_size")
    _require(p.lr_schedule != "cosine" or p.max_steps > 0, "ppo.lr_schedule",
             '"cosine" decays over ppo.max_steps, which must then be > 0 (0 means unlimited)')


def _validate_with_engines(config: TrainConfig) -> None:
    """Check the device and what the engine or the task rejects (imports torch and MuJoCo)."""
    t, p = config.task, config.ppo
    _validate_device(t.device)
    if p.capture_rollout:
        device = t.resolved_device()
        _require(device.startswith("cuda") and t.engine in ("auto", "warp"), "ppo.capture_rollout",
                 f"needs task.device cuda and the warp engine, got device {device!r} and engine {t.engine!r}")
    for build in (t.engine_config, t.sim2real_config, t.check_inputs):  # what the engine or the task rejects
        try:
            build()
        except ValueError as e:
            raise ConfigError(getattr(e, "problem", str(e)), key=getattr(e, "key", "task")) from None


def _validate_model(m: ModelConfig) -> None:
    for name in ("hidden_size", "depth", "num_mixtures"):
        _require(getattr(m, name) >= 1, f"model.{name}", f"must be >= 1, got {getattr(m, name)}")
    _require(m.min_std > 0, "model.min_std", f"must be > 0, got {m.min_std}")
    _require(m.max_std >= m.min_std, "model.max_std", f"must be >= model.min_std ({m.min_std}), got {m.max_std}")
    _require(m.var_scale > 0, "model.var_scale", f"must be > 0, got {m.var_scale}")
    _require(m.init_std > 0, "model.init_std", f"must be > 0, got {m.init_std}")
    _require(len(m.mlp_hidden) >= 1 and all(h >= 1 for h in m.mlp_hidden), "model.mlp_hidden",
             f"must be a non-empty array of sizes >= 1, got {_toml_value(m.mlp_hidden)}")


def _validate_logging(lg: LoggingConfig) -> None:
    _require(bool(lg.wandb_project), "logging.wandb_project", "must not be empty")
    _require(bool(lg.run_dir), "logging.run_dir", "must not be empty")
    if lg.run_name is not None:
        _require(lg.run_name not in ("", ".", "..") and not any(c in lg.run_name for c in "/\\\0"),
                 "logging.run_name",
                 f"must be a plain directory name (no slashes, not . or ..), got {_show(lg.run_name)}")
    _require(lg.log_every_iterations >= 1, "logging.log_every_iterations",
             f"must be >= 1, got {lg.log_every_iterations}")
    _require(lg.video_every_minutes >= 0, "logging.video_every_minutes",
             f"must be >= 0 (0: never), got {lg.video_every_minutes}")
    _require(lg.video_seconds > 0, "logging.video_seconds", f"must be > 0, got {lg.video_seconds}")


# --- help, dict and TOML out -----------------------------------------------------------------------------


def _sections(config: TrainConfig) -> list[tuple[str, Any]]:
    return [(name, getattr(config, name)) for name in SECTIONS]


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
    kind = " | ".join(_show(c) for c in choices) if choices else _type_name(tp)
    shown = "none" if value is None else _toml_value(value)
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
            lines.append(f"{key} = {_toml_value(value)}")
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


def _toml_value(value: Any) -> str:
    """Write ``value`` as a TOML literal; None becomes the string "none" (TOML has no null)."""
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def _toml_string(s: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = [escapes.get(c, f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c) for c in s]
    return '"' + "".join(out) + '"'


def _show(value: Any) -> str:
    """Show a value as it would be written in TOML, for error messages."""
    try:
        return _toml_value(value)
    except TypeError:
        return repr(value)


__all__ = [
    "SECTIONS",
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
