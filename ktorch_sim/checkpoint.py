"""Crash-safe training checkpoints: atomic save, a ``latest`` pointer, pruning, RNG state, clear load errors.

A checkpoint is one ``torch.save`` file holding everything needed to continue a run bit-for-bit where
the hardware allows it:

    {
        "format_version": 1,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "normalizer": normalizer.state_dict() or None,
        "curriculum": {name: tensor, ...},
        "ppo": {"kl_coef": ..., "learning_rate": ..., ...},
        "rng": capture_rng_state({"env": env_generator, ...}),
        "counters": {"iteration": ..., "env_steps": ..., "elapsed_seconds": ...},
        "config": {...},          # the resolved config as a plain dict
    }

Extra keys (an AMP discriminator, say) are kept as they are.

Durability: ``save_checkpoint`` writes a temporary file in the target's directory, flushes and fsyncs
it, renames it over the final name with ``os.replace`` (atomic on POSIX) and fsyncs the directory, so
a crash at any moment leaves either the old complete file or the new complete file under the final
name, never a partial one. :class:`CheckpointManager` adds time-based saving, a ``checkpoints/latest``
pointer written the same way, pruning that only runs after the new file and the pointer are durable,
and a :meth:`CheckpointManager.latest` that survives a missing or stale pointer and ignores leftover
``*.tmp`` files. One run directory has one writer.

Security: checkpoints are loaded with ``torch.load(..., weights_only=False)`` because they hold plain
Python objects (numpy and ``random`` RNG states, the config dict) next to tensors. Unpickling can run
code named by the file, so only load checkpoints this project wrote (your own run directories).
"""

from __future__ import annotations

import os
import random
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ktorch_sim.errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "REQUIRED_KEYS",
    "CheckpointError",
    "CheckpointManager",
    "capture_rng_state",
    "check_compatible",
    "load_checkpoint",
    "resolved_config",
    "restore_rng_state",
    "save_checkpoint",
]

FORMAT_VERSION = 1
"""Version of the checkpoint layout this module writes and reads."""

REQUIRED_KEYS = (
    "format_version",
    "model",
    "optimizer",
    "normalizer",
    "curriculum",
    "ppo",
    "rng",
    "counters",
    "config",
)
"""Top-level keys every ktorch_sim checkpoint has (values may be None or empty where unused)."""

_CKPT_RE = re.compile(r"^ckpt_(\d{8,})\.pt$")
_TRY_EARLIER = "; delete it or resume from an earlier one"
_MISSING = object()


# ----------------------------------------------------------------------------------------------------------------------
# Atomic file writes
# ----------------------------------------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX); a no-op where directories cannot be opened."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_path(path: Path) -> Path:
    """Return a unique temporary name next to ``path``; it ends in ``.tmp`` so readers can ignore it."""
    return path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temp file, fsync it, rename it to ``path``, fsync the directory.

    On any error the temp file is removed and the final name keeps its previous content.
    """
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


# ----------------------------------------------------------------------------------------------------------------------
# Save / load
# ----------------------------------------------------------------------------------------------------------------------


def _check_keys(state: Mapping[str, Any], path: Path) -> None:
    """Raise CheckpointError if ``state`` lacks a required key or has another format version."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a ktorch_sim checkpoint (missing keys: {', '.join(missing)})")
    version = state["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {version!r}; this ktorch_sim reads format_version {FORMAT_VERSION}"
        )


def save_checkpoint(path: Path | str, state: Mapping[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically and durably (see the module docstring).

    ``format_version`` is filled in when absent. Every key of :data:`REQUIRED_KEYS` must be present, so a
    file that :func:`load_checkpoint` would reject is never written. Raises CheckpointError if the state
    is incomplete or the file cannot be written (disk full, read-only directory, ...).
    """
    path = Path(path)
    state = {"format_version": FORMAT_VERSION, **state}
    _check_keys(state, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda f: torch.save(state, f))
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path}: {e}") from e


def load_checkpoint(path: Path | str, map_location: Any = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint`.

    Raises one CheckpointError with a one-line message for a missing file, a file that is not a
    ktorch_sim checkpoint (missing keys, other ``format_version``) and a truncated or corrupt file.
    Uses ``weights_only=False``: only load checkpoints this project wrote (see the module docstring).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - every unpickling / zip / EOF failure means the same thing here
        raise CheckpointError(f"truncated or corrupt checkpoint {path}: {_reason(e)}{_TRY_EARLIER}") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a ktorch_sim checkpoint (it holds a {type(state).__name__}, not a dict)")
    _check_keys(state, path)
    return state


def _reason(error: BaseException) -> str:
    """``Type: first sentence of the message`` (torch's zip errors run to several sentences)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else "no details"
    first = text.split(". ", 1)[0].rstrip(".")
    return f"{type(error).__name__}: {first[:160]}"


def _lookup(config: Mapping[str, Any], key: str) -> Any:
    """``config[key]`` for a dotted key: a literal top-level key first, then nested mappings."""
    if key in config:
        return config[key]
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _normalize(value: Any) -> Any:
    """Turn lists into tuples so they compare equal (TOML gives lists, dataclasses give tuples)."""
    if isinstance(value, list | tuple):
        return tuple(_normalize(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _normalize(v) for k, v in value.items()}
    return value


def check_compatible(
    ckpt_config: Mapping[str, Any],
    config: Mapping[str, Any],
    keys: Sequence[str],
    *,
    path: Path | str | None = None,
) -> None:
    """Raise CheckpointError naming the first of ``keys`` whose value differs between the two configs.

    ``keys`` are dotted paths into the (nested) config dicts, e.g. ``"task.num_envs"`` or
    ``"model.hidden_size"``; a key absent from one side counts as a difference. The message gives both
    values: ``checkpoint <path> was trained with model.hidden_size=256, this config has 128; use the
    checkpoint's value to continue it, or start a new run``.
    """
    where = f"checkpoint {path}" if path is not None else "the checkpoint"
    for key in keys:
        old, new = _lookup(ckpt_config, key), _lookup(config, key)
        if _normalize(old) != _normalize(new):
            old_s = "<unset>" if old is _MISSING else repr(old) if isinstance(old, str) else old
            new_s = "<unset>" if new is _MISSING else repr(new) if isinstance(new, str) else new
            raise CheckpointError(f"{where} was trained with {key}={old_s}, this config has {new_s}; "
                                  "use the checkpoint's value to continue it, or start a new run")


def resolved_config(state: Mapping[str, Any]) -> dict[str, Any]:
    """Return the config dict of checkpoint ``state`` with its input normalization as its run resolved it.

    The trainer saves ``ppo.normalize_observations`` and ``ppo.normalizer_steps`` resolved. A checkpoint from
    before that saves none (automatic) for the first, which resolved by an older rule (the mlp raw), and may
    lack the second: the normalizer weights tell the first, and the second was 0 (statistics that moved all run).
    """
    config = dict(state["config"])
    ppo = dict(config.get("ppo") or {})
    if ppo.get("normalize_observations") is None:
        ppo["normalize_observations"] = state.get("normalizer") is not None
    if ppo.get("normalizer_steps") is None:
        ppo["normalizer_steps"] = 0
    config["ppo"] = ppo
    return config


# ----------------------------------------------------------------------------------------------------------------------
# RNG state
# ----------------------------------------------------------------------------------------------------------------------


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Snapshot every random number source a run uses.

    Returns ``{"torch": cpu state, "cuda": [per-device states] (only if CUDA is available), "numpy":
    numpy's global legacy state, "python": random.getstate(), "generators": {name: state}}`` for the
    named ``torch.Generator`` objects (CPU or CUDA) the caller owns, e.g. the env's generator.
    """
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`capture_rng_state` captured, so later draws repeat exactly.

    CUDA states are restored for the devices present (a checkpoint from a machine with more GPUs restores
    the first ones). Every generator in ``generators`` must have a saved state; saved states for other
    names are ignored. Raises CheckpointError naming the generator on a missing or mismatched state
    (e.g. a CPU generator's state given to a CUDA generator).
    """
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(_as_python_state(state["python"]))
    cuda_states = state.get("cuda")
    if cuda_states and torch.cuda.is_available():
        for device, s in enumerate(cuda_states[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), device)
    saved = state.get("generators", {})
    for name, generator in (generators or {}).items():
        if name not in saved:
            have = ", ".join(sorted(saved)) or "none"
            raise CheckpointError(f"checkpoint has no RNG state for generator {name!r} (it has: {have})")
        try:
            generator.set_state(saved[name].cpu())
        except RuntimeError as e:
            raise CheckpointError(f"cannot restore RNG state of generator {name!r} on {generator.device}: {e}") from e


def _as_python_state(value: Any) -> tuple:
    """random.setstate needs tuples; a state that went through a list-producing round trip is converted."""
    version, internal, gauss = value
    return (version, tuple(internal), gauss)


# ----------------------------------------------------------------------------------------------------------------------
# Manager
# ----------------------------------------------------------------------------------------------------------------------


class CheckpointManager:
    """Periodic checkpoints of one run in ``run_dir/checkpoints``.

    Files are ``ckpt_{iteration:08d}.pt``; ``checkpoints/latest`` holds the newest file's name. ``due()``
    is true once ``save_every_seconds`` have passed (``time.monotonic``) since construction or the last
    save. After a save, only the newest ``keep_last`` files (by iteration) and the file just written are
    kept.
    """

    POINTER = "latest"

    def __init__(self, run_dir: Path | str, keep_last: int = 3, save_every_seconds: float = 60.0) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "checkpoints"
        self.keep_last = keep_last
        self.save_every_seconds = float(save_every_seconds)
        self._last_save = time.monotonic()

    def due(self) -> bool:
        """Whether ``save_every_seconds`` have passed since the last save (or since construction)."""
        return time.monotonic() - self._last_save >= self.save_every_seconds

    def path_for(self, iteration: int) -> Path:
        """Return the checkpoint file for ``iteration``."""
        return self.dir / f"ckpt_{iteration:08d}.pt"

    def save(self, state: Mapping[str, Any], iteration: int) -> Path:
        """Write ``state`` as iteration ``iteration``, update the pointer, then prune; returns the new file."""
        path = self.path_for(iteration)
        save_checkpoint(path, state)
        try:
            _atomic_write(self.dir / self.POINTER, lambda f: f.write(path.name.encode() + b"\n"))
        except OSError as e:
            raise CheckpointError(f"cannot write checkpoint pointer {self.dir / self.POINTER}: {e}") from e
        self._last_save = time.monotonic()
        self._prune(keep=path)
        return path

    def checkpoints(self) -> list[Path]:
        """Complete-looking checkpoint files (``ckpt_*.pt``, no ``*.tmp``), oldest iteration first."""
        if not self.dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := _CKPT_RE.match(p.name)) and p.is_file()]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        """Return the checkpoint to resume from, or None if there is none that loads.

        Follows the pointer when it names an existing, loadable ``ckpt_*.pt`` in this directory;
        otherwise falls back to the newest loadable ``ckpt_*.pt``. Leftover ``*.tmp`` files are ignored.
        """
        pointed = self._read_pointer()
        if pointed is not None and _loadable(pointed):
            return pointed
        for path in reversed(self.checkpoints()):
            if path != pointed and _loadable(path):
                return path
        return None

    def resume_path(self) -> Path:
        """Return :meth:`latest`, or raise one CheckpointError line saying why there is nothing to resume.

        With no ``ckpt_*.pt`` at all the line says so (and when ``checkpoints`` is a regular file, that);
        when every one fails to load it repeats the newest file's load error (truncated, corrupt, not a ktorch_sim checkpoint ...).
        """
        if self.dir.exists() and not self.dir.is_dir():
            raise CheckpointError(f"cannot resume {self.run_dir}: {self.dir} is a regular file, not the directory "
                                  "that holds the ckpt_*.pt checkpoints; move it away (or put the checkpoints in "
                                  "a checkpoints/ directory), or start a new run without --resume")
        path = self.latest()
        if path is not None:
            return path
        found = self.checkpoints()
        if not found:
            raise CheckpointError(f"no checkpoint to resume in {self.run_dir} ({self.dir} has no ckpt_*.pt files); "
                                  "start a new run without --resume")
        try:
            load_checkpoint(found[-1])
        except CheckpointError as e:
            others = "no other checkpoint loads either" if len(found) > 1 else "it is the only one"
            raise CheckpointError(f"{str(e).removesuffix(_TRY_EARLIER)}; {others}: start a new run without "
                                  "--resume") from None
        raise CheckpointError(f"no loadable checkpoint in {self.dir}; start a new run without --resume")

    def _read_pointer(self) -> Path | None:
        """Return the file the pointer names, if it exists and names a checkpoint file in this directory."""
        try:
            name = (self.dir / self.POINTER).read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not _CKPT_RE.match(name):
            return None
        return self.dir / name

    def _prune(self, keep: Path) -> None:
        """Delete checkpoints beyond ``keep_last`` (oldest first), never ``keep``; also stale ``*.tmp`` files."""
        files = self.checkpoints()
        for path in files[: max(0, len(files) - self.keep_last)]:
            if path != keep:
                path.unlink(missing_ok=True)
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)


def _loadable(path: Path) -> bool:
    """Whether ``path`` loads as a valid checkpoint."""
    try:
        load_checkpoint(path)
    except CheckpointError:
        return False
    return True
