"""Run directories and metrics logging: one JSON line per iteration, and wandb when it works.

``metrics.jsonl`` in the run directory is the record of truth: every :meth:`RunLogger.log` call appends
one line ``{"iteration": int, "env_steps": int, "<metric>": float, ...}`` and flushes it, so a crash
loses at most the line being written. Nested metric dicts are flattened with ``/`` (``reward/feet_air``).
Non-finite values are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (the file stays
strict JSON, and the value is not lost as ``null`` would lose the sign of an infinity);
:func:`read_metrics` turns them back into floats.

wandb is optional and never stops training. ``mode="auto"`` logs online when an API key is configured
(``WANDB_API_KEY`` or a netrc entry for the wandb host) and offline otherwise (sync later with
``wandb sync <run_dir>/wandb/offline-run-*``); ``"disabled"`` does not import wandb at all. If wandb fails
(import error, no network, bad key, a failing ``log``), one warning line goes to stderr and logging falls
back to offline wandb, then to ``metrics.jsonl`` only.
"""

from __future__ import annotations

import contextlib
import json
import math
import netrc
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import torch

from ktorch_sim.errors import RunDirError

__all__ = [
    "WANDB_MODES",
    "RunDirError",
    "RunLogger",
    "make_run_dir",
    "read_metrics",
    "resolve_wandb_mode",
    "rewind_metrics",
    "wandb_api_key_configured",
]

WANDB_MODES = ("auto", "online", "offline", "disabled")
"""Values accepted for ``RunLogger(mode=...)``."""

METRICS_FILE = "metrics.jsonl"
_RESERVED = ("iteration", "env_steps")
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_WANDB_HOSTS = ("api.wandb.ai", "api.forge.coreweave.com")


# ----------------------------------------------------------------------------------------------------------------------
# Run directory
# ----------------------------------------------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    """Check that a run name is a single, non-empty path component."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise RunDirError(f"invalid run name {name!r}: use a single directory name without '/'; set logging.run_name")


def make_run_dir(base: Path | str, name: str | None = None, *, task: str = "run") -> Path:
    """Create and return a new, empty run directory ``base/<name>``.

    Without ``name`` the directory is ``<YYYYmmdd-HHMMSS>-<task>``. If the directory exists, ``-1``,
    ``-2``, ... is appended; creation uses ``mkdir(exist_ok=False)``, so two runs started at once never
    share a directory. Raises RunDirError (one line) if ``base`` cannot be created or written.
    """
    base = Path(base).expanduser()
    stem = name if name is not None else f"{time.strftime('%Y%m%d-%H%M%S')}-{task}"
    _check_name(stem)
    try:
        base.mkdir(parents=True, exist_ok=True)
        for suffix in range(10_000):
            path = base / (stem if suffix == 0 else f"{stem}-{suffix}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
    except OSError as e:
        raise RunDirError(
            f"cannot create run directory {base / stem}: {e.strerror or e}; choose another logging.run_dir"
        ) from e
    raise RunDirError(f"cannot create run directory {base / stem}: 10000 runs of that name exist; choose another name")


# ----------------------------------------------------------------------------------------------------------------------
# Metric values
# ----------------------------------------------------------------------------------------------------------------------


def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become ``parent/child`` keys."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{full}/"))
        else:
            flat[full] = value
    return flat


def _to_floats(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Convert scalar metric values (Python numbers, numpy scalars, one-element tensors) to floats.

    All tensors on one device are read with a single transfer, so logging costs one host sync per
    device per call, not one per metric. Raises TypeError/ValueError naming a non-scalar metric.
    """
    flat = _flatten(metrics)
    out: dict[str, float] = {}
    tensors: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for key, value in flat.items():
        if key in _RESERVED:
            raise ValueError(f"metric name {key!r} is reserved; pass it as the {key}= argument of log()")
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"metric {key!r} has shape {tuple(value.shape)}; log a scalar (reduce it first)")
            tensors.setdefault(value.device, []).append((key, value.detach().reshape(())))
        elif isinstance(value, np.ndarray | np.generic):
            if np.size(value) != 1:
                raise ValueError(f"metric {key!r} has shape {np.shape(value)}; log a scalar (reduce it first)")
            out[key] = float(np.asarray(value).reshape(()))
        elif isinstance(value, bool | int | float):
            out[key] = float(value)
        else:
            raise TypeError(f"metric {key!r} is a {type(value).__name__}; log numbers or scalar tensors")
    for items in tensors.values():
        values = torch.stack([t.to(torch.float64) for _, t in items]).cpu().tolist()
        out.update({key: v for (key, _), v in zip(items, values, strict=True)})
    return {key: out[key] for key in flat}  # keep the caller's order


def _json_value(value: float) -> float | str:
    """Finite floats as they are; NaN and infinities as the strings read_metrics understands."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def read_metrics(run_dir: Path | str) -> list[dict[str, Any]]:
    """All lines of ``run_dir/metrics.jsonl`` as dicts, non-finite strings turned back into floats.

    A last line cut off by a crash is skipped; a missing file gives an empty list.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # a partial final line from a crash mid-write
            raise
        rows.append({k: _NONFINITE.get(v, v) if isinstance(v, str) else v for k, v in row.items()})
    return rows


def rewind_metrics(run_dir: Path | str, iteration: int) -> int:
    """Drop the ``metrics.jsonl`` lines logged after ``iteration`` and any line cut off; returns lines dropped.

    A run killed between logging an iteration and checkpointing it has lines for iterations the resumed
    run will train (and log) again; a kill in the middle of a write leaves a line without its newline, and
    the next append would glue onto it. Resuming from the checkpoint of ``iteration`` calls this first, so
    the file again reads as one run with strictly increasing iterations. The file is rewritten atomically
    (temp file, then rename) only when it changes; a missing file is left missing.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return 0
    text = path.read_text(encoding="utf-8")
    kept, dropped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            keep = int(json.loads(line)["iteration"]) <= iteration
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            keep = False  # cut off by a crash: unreadable, and the resumed run logs that iteration again
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped or (text and not text.endswith("\n")):
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)
    return dropped


# ----------------------------------------------------------------------------------------------------------------------
# wandb mode
# ----------------------------------------------------------------------------------------------------------------------


def _netrc_path() -> Path:
    """Return the netrc file wandb reads: ``$NETRC``, else ``~/.netrc``, else ``~/_netrc``."""
    if env := os.environ.get("NETRC"):
        return Path(env).expanduser()
    unix = Path("~/.netrc").expanduser()
    windows = Path("~/_netrc").expanduser()
    return windows if not unix.exists() and windows.exists() else unix


def wandb_api_key_configured() -> bool:
    """Whether wandb has credentials: ``WANDB_API_KEY`` or a netrc entry with a password for the wandb host."""
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    hosts = set(_WANDB_HOSTS)
    if base_url := os.environ.get("WANDB_BASE_URL"):
        hosts.add(urlsplit(base_url).netloc)
    try:
        entries = netrc.netrc(_netrc_path()).hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any(entries.get(host) and entries[host][2] for host in hosts)


def resolve_wandb_mode(mode: str) -> str:
    """``"auto"`` becomes ``"online"`` with credentials, else ``"offline"``; other valid modes pass through."""
    if mode not in WANDB_MODES:
        raise ValueError(f"unknown wandb mode {mode!r}; allowed: {', '.join(WANDB_MODES)} (logging.wandb_mode)")
    if mode == "auto":
        return "online" if wandb_api_key_configured() else "offline"
    return mode


def _reason(error: BaseException) -> str:
    """Describe an exception in one line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


# ----------------------------------------------------------------------------------------------------------------------
# Logger
# ----------------------------------------------------------------------------------------------------------------------


class RunLogger:
    """Append metrics to ``run_dir/metrics.jsonl`` and, when possible, to wandb.

    Args:
        run_dir: the run directory (from :func:`make_run_dir`); wandb files go to ``run_dir/wandb``.
        config: the resolved config as a plain dict, stored as the wandb run config.
        mode: ``"auto"`` | ``"online"`` | ``"offline"`` | ``"disabled"`` (see the module docstring).
        project, entity, name: the wandb project, entity and run name (name defaults to the directory name).
        init_timeout: seconds wandb may take to start an online run before falling back to offline.

    ``mode`` after construction says what is actually running (``"disabled"`` after every fallback).
    Use as a context manager or call :meth:`close`.

    """

    def __init__(
        self,
        run_dir: Path | str,
        config: Mapping[str, Any],
        mode: str = "auto",
        project: str = "ktorch_sim",
        entity: str | None = None,
        name: str | None = None,
        *,
        init_timeout: float = 30.0,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config = dict(config)
        self.project, self.entity = project, entity
        self.name = name if name is not None else self.run_dir.name
        self.init_timeout = init_timeout
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / METRICS_FILE
        self._file = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._closed = False
        self._wandb: Any = None  # the wandb module, when a run is active
        self._run: Any = None
        self.mode = "disabled"
        self._start_wandb(resolve_wandb_mode(mode))

    # -- wandb lifecycle -----------------------------------------------------------------------------------------------

    def _start_wandb(self, mode: str, failure: str | None = None) -> None:
        """Start wandb in ``mode``, falling back to offline and then disabled; warn once about a failure."""
        chain = {"online": ["online", "offline"], "offline": ["offline"], "disabled": []}[mode]
        for attempt in chain:
            try:
                self._run = self._init_run(attempt)
                self.mode = attempt
                break
            except Exception as e:  # noqa: BLE001 - wandb must never stop training
                failure = failure or _reason(e)
        else:
            self._run, self._wandb, self.mode = None, None, "disabled"
        if failure is not None:
            if self.mode == "offline":
                tail = f"continuing offline (metrics.jsonl and a local wandb run in {self.run_dir / 'wandb'})"
            else:
                tail = "continuing with metrics.jsonl only (offline)"
            print(f"wandb failed ({failure}); {tail}", file=sys.stderr, flush=True)

    def _init_run(self, mode: str) -> Any:
        """Import wandb and start a run in ``mode`` with low console output."""
        # wandb prints "wandb: Loaded credentials ..." while logging in, before init's settings apply;
        # WANDB_SILENT keeps a failing start to our one warning line (set WANDB_SILENT=false to see it).
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        self._wandb = wandb
        settings = wandb.Settings(
            silent=True,
            quiet=True,
            console="off",
            # Online: give up on an unreachable server quickly and fall back to offline. Offline touches no
            # network; wandb's own default (90 s) only guards against a stuck local service, and its first
            # start in a process with torch loaded has been measured at 8-30 s on a loaded 2-core machine.
            init_timeout=self.init_timeout if mode == "online" else max(self.init_timeout, 90.0),
            reinit="create_new",
        )
        return wandb.init(
            mode=mode,
            dir=str(self.run_dir),
            project=self.project,
            entity=self.entity,
            name=self.name,
            config=self.config,
            settings=settings,
        )

    def _finish_run(self) -> None:
        """Finish the wandb run, ignoring wandb's own errors."""
        run, self._run = self._run, None
        if run is not None:
            with contextlib.suppress(Exception):
                run.finish()

    def _wandb_call(self, fn: Any) -> None:
        """Run ``fn(run)``; on failure warn once and restart wandb offline (or disable it)."""
        if self._run is None:
            return
        try:
            fn(self._run)
        except Exception as e:  # noqa: BLE001 - wandb must never stop training
            failed_mode = self.mode
            self._finish_run()
            next_mode = "offline" if failed_mode == "online" else "disabled"
            self._start_wandb(next_mode, failure=_reason(e))

    @property
    def wandb_run(self) -> Any:
        """The active wandb run, or None."""
        return self._run

    # -- logging -------------------------------------------------------------------------------------------------------

    def log(self, metrics: Mapping[str, Any], iteration: int, env_steps: int) -> dict[str, float]:
        """Append one JSON line (and log to wandb at step ``iteration``); returns the float metrics."""
        if self._closed:
            raise RuntimeError(f"RunLogger for {self.run_dir} is closed")
        values = _to_floats(metrics)
        row: dict[str, Any] = {"iteration": int(iteration), "env_steps": int(env_steps)}
        row.update({k: _json_value(v) for k, v in values.items()})
        self._file.write(json.dumps(row, allow_nan=False) + "\n")
        self._file.flush()
        payload = {**values, "env_steps": int(env_steps)}
        self._wandb_call(lambda run: run.log(payload, step=int(iteration)))
        return values

    def log_video(self, path: Path | str, key: str, iteration: int) -> None:
        """Log a video file to wandb (if active) under ``key``; a no-op without wandb or a missing file."""
        path = Path(path)
        if self._run is None:
            return
        if not path.is_file():
            print(f"video {path} does not exist; not logged to wandb", file=sys.stderr, flush=True)
            return
        wandb = self._wandb
        self._wandb_call(lambda run: run.log({key: wandb.Video(str(path))}, step=int(iteration)))

    def close(self) -> None:
        """Finish wandb and close metrics.jsonl; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._finish_run()
        self._file.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()
