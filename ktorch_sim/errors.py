"""The one-line errors the training CLI reports (exit status 2), importable without torch or MuJoCo.

Each is defined here and re-exported by the module that raises it (``ktorch_sim.config``, ``ktorch_sim.checkpoint``,
``ktorch_sim.training.logging``, ``ktorch_sim.model_files``), so ``python -m ktorch_sim.train`` can catch
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




OVERRIDE_SOURCE = "--set"
"""What a :class:`ConfigError` names as its source when the value came from a command-line override."""


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



def require(ok: bool, key: str, problem: str) -> None:
    """Raise ``ConfigError(problem, key=key)`` unless ``ok``: the one-line form of every config range check."""
    if not ok:
        raise ConfigError(problem, key=key)


__all__ = ["OVERRIDE_SOURCE", "CheckpointError", "ConfigError", "ModelFileError", "RunDirError", "RunFinished", "require"]
