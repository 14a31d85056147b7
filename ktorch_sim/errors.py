"""The one-line errors the training CLI reports (exit status 2), importable without torch or MuJoCo.

Each is defined here and re-exported by the module that raises it (``ktorch_sim.checkpoint``,
``ktorch_sim.logging``, ``ktorch_sim.model_files``), so ``python -m ktorch_sim.train`` can catch
them without importing those modules' heavy dependencies before the config has been checked.
"""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint cannot be written, read or used; the message names the file and what to do."""


class RunDirError(ValueError):
    """A run directory cannot be created; the message names the path and the setting to change."""


class ModelFileError(ValueError):
    """A model or metadata file cannot be used: ``<key>: <problem and what would be right>``.

    ``key`` is the config key that named the file (``task.model_path``); ``problem`` is the rest of
    the line, so the config loader can report it under the key's source (a TOML file or ``--set``).
    """

    def __init__(self, problem: str, key: str) -> None:
        self.problem, self.key = problem, key
        super().__init__(f"{key}: {problem}")


class RunFinished(Exception):  # noqa: N818 - not an error: the run is done
    """``--resume`` of a run that already trained ``ppo.max_steps`` steps; the message says how to extend it."""


__all__ = ["CheckpointError", "ModelFileError", "RunDirError", "RunFinished"]
