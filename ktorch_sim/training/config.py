"""The ``[logging]``, ``[checkpoint]`` and ``[cpu]`` sections: what the trainer reads, and their checks.

Torch-free, like every config section, so the config loader checks them before the heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass

from ktorch_sim.errors import require
from ktorch_sim.task_config import config_field
from ktorch_sim.utils.toml_values import show_value


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

    def check(self) -> None:
        """Ranges and names; raises :class:`ConfigError` naming the key."""
        _check_logging(self)


@dataclass(kw_only=True)
class CheckpointConfig:
    """Checkpoint cadence and retention."""

    save_every_seconds: float = config_field(60.0, "Save a checkpoint every this many seconds of training.")
    keep_last: int = config_field(3, "Checkpoints kept in the run directory (older ones are deleted).")

    def check(self) -> None:
        """Ranges; raises :class:`ConfigError` naming the key."""
        require(self.save_every_seconds > 0, "checkpoint.save_every_seconds",
                f"must be > 0, got {self.save_every_seconds}")
        require(self.keep_last >= 1, "checkpoint.keep_last", f"must be >= 1, got {self.keep_last}")


@dataclass(kw_only=True)
class CPUConfig:
    """What changes when physics runs on native MuJoCo on the CPU (a laptop, CI, no GPU)."""

    max_num_envs: int = config_field(32, "Cap on task.num_envs when task.engine resolves to native MuJoCo on the "
                                         "CPU, unless task.num_envs is given with --set (0: no cap).")
    max_steps: int = config_field(16000, "ppo.max_steps used on the CPU engine when ppo.max_steps is 0 (unlimited) "
                                         "and no ppo.max_seconds limits the run, so the default run is a short demo "
                                         "on a laptop (0: keep unlimited).")
    update_threads: int = config_field(1, "Torch threads in the PPO update of a run on the CPU (collection keeps "
                                          "one, next to the engine's workers). 1 keeps a run bit-identical "
                                          "whatever the machine's cores; more speeds up large-batch updates but "
                                          "makes the result depend on the count; 0: torch's default (one per "
                                          "core).")

    def check(self) -> None:
        """Ranges; raises :class:`ConfigError` naming the key."""
        require(self.update_threads >= 0, "cpu.update_threads",
                f"must be >= 0 (0: one per core), got {self.update_threads}")
        require(self.max_num_envs >= 0, "cpu.max_num_envs", f"must be >= 0 (0: no cap), got {self.max_num_envs}")
        require(self.max_steps >= 0, "cpu.max_steps", f"must be >= 0 (0: keep unlimited), got {self.max_steps}")


def _check_logging(lg: LoggingConfig) -> None:
    require(bool(lg.wandb_project), "logging.wandb_project", "must not be empty")
    require(bool(lg.run_dir), "logging.run_dir", "must not be empty")
    if lg.run_name is not None:
        require(lg.run_name not in ("", ".", "..") and not any(c in lg.run_name for c in "/\\\0"),
                 "logging.run_name",
                 f"must be a plain directory name (no slashes, not . or ..), got {show_value(lg.run_name)}")
    require(lg.log_every_iterations >= 1, "logging.log_every_iterations",
             f"must be >= 1, got {lg.log_every_iterations}")
    require(lg.video_every_minutes >= 0, "logging.video_every_minutes",
             f"must be >= 0 (0: never), got {lg.video_every_minutes}")
    require(lg.video_seconds > 0, "logging.video_seconds", f"must be > 0, got {lg.video_seconds}")
