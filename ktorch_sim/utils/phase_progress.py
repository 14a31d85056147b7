"""Progress lines and a prompt Ctrl-C inside the long phases of a training iteration.

One iteration of a large or slow run (rollout collection, then the PPO update) can take a minute
or more. The loops of those phases call :func:`tick` once per control step or minibatch; while a
:class:`PhaseProgress` is active (:func:`reporting`, opened by the trainer) a tick

- prints ``iteration 4: collect 37 % (24/64 steps), 11 s`` when ``every_s`` seconds have passed
  since the iteration began or since the last such line, and
- raises :class:`IterationInterrupted` when a stop was requested (Ctrl-C, SIGTERM), so the
  iteration ends within one step instead of running to its end.

A tick reads only host-side values (a Python counter and the host clock): it never synchronizes
with the GPU, so the step loop stays asynchronous. With no reporter active, :func:`tick` does nothing.

:class:`IterationGuard` runs one iteration with a snapshot of the trainer's state taken before it,
so an interrupted iteration is dropped and the checkpoint written on the way out is the state
after the last *finished* iteration (exactly what an uninterrupted run had at that point).
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

__all__ = ["IterationGuard", "IterationInterrupted", "PhaseProgress", "progress_line", "reporting", "tick"]

DEFAULT_EVERY_S = 10.0
EVERY_ENV = "KTORCH_SIM_PROGRESS_S"


def progress_interval() -> float:
    """Seconds between progress lines: ``$KTORCH_SIM_PROGRESS_S`` if set (tests use a short one), else 10."""
    try:
        return float(os.environ.get(EVERY_ENV, DEFAULT_EVERY_S))
    except ValueError:
        return DEFAULT_EVERY_S


class IterationInterrupted(Exception):
    """A stop was requested in the middle of an iteration; its partial work is to be discarded."""


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class PhaseProgress:
    """Prints a line every ``every_s`` seconds inside long phases; raises when ``stop()`` turns true."""

    def __init__(self, stop: Callable[[], bool] = lambda: False, write: Callable[[str], None] | None = _stderr_line,
                 every_s: float | None = None, clock: Callable[[], float] = time.monotonic,
                 prefix: str = "") -> None:
        """``write`` None: no lines, only the stop check; ``every_s`` None: :func:`progress_interval`."""
        self.stop = stop
        self.write = write
        self.every_s = progress_interval() if every_s is None else every_s
        self.clock = clock
        self.prefix = prefix
        self._start = clock()
        self._last = self._start

    def begin_iteration(self, iteration: int) -> None:
        """Restart the clock for a new iteration (numbered from 1 in the lines)."""
        self.prefix = f"iteration {iteration}: "
        self._start = self._last = self.clock()

    def tick(self, phase: str, done: int, total: int, unit: str = "steps") -> None:
        """``done`` of ``total`` units of ``phase`` are finished (host-side counters only)."""
        if self.stop():
            raise IterationInterrupted(f"{phase} stopped at {done}/{total} {unit}")
        if self.write is None:
            return
        now = self.clock()
        if now - self._last >= self.every_s:
            self._last = now
            percent = 100.0 * done / max(total, 1)
            self.write(f"{self.prefix}{phase} {percent:.0f} % ({done}/{total} {unit}), "
                       f"{now - self._start:.0f} s")


def progress_line(bar: Any) -> Callable[[str], None]:
    """A writer that prints a line to stderr above a tqdm progress ``bar`` without breaking it."""
    return lambda line: bar.write(line, file=sys.stderr)


_active: PhaseProgress | None = None


def tick(phase: str, done: int, total: int, unit: str = "steps") -> None:
    """Report progress to the active :class:`PhaseProgress`, if any (else do nothing)."""
    if _active is not None:
        _active.tick(phase, done, total, unit)


@contextmanager
def reporting(progress: PhaseProgress) -> Iterator[PhaseProgress]:
    """Make ``progress`` the reporter :func:`tick` talks to, for the duration of the block."""
    global _active
    previous, _active = _active, progress
    try:
        yield progress
    finally:
        _active = previous


class _Trainable(Protocol):
    iteration: int
    checkpoints: Any

    def iterate(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def save(self) -> Path: ...


class IterationGuard:
    """Runs a trainer's iterations so that an interrupted one leaves the previous state to be saved."""

    def __init__(self, trainer: _Trainable, progress: PhaseProgress | None = None) -> None:
        """``progress`` (optional) is the reporter :func:`tick` talks to while an iteration runs."""
        self.trainer = trainer
        self.progress = progress
        self._snapshot: dict[str, Any] | None = None  # state before the iteration in flight
        self._snapshot_iteration = 0
        self.interrupted = False  # an iteration was cut short (Ctrl-C, or an exception inside it)

    def iterate(self) -> dict[str, float] | None:
        """One iteration; None when a stop request cut it short (its partial work is dropped)."""
        # Device-side copies (no host sync); cheap next to an iteration: the model, optimizer and counters.
        self._snapshot = copy.deepcopy(self.trainer.state_dict())
        self._snapshot_iteration = self.trainer.iteration
        if self.progress is not None:
            self.progress.begin_iteration(self.trainer.iteration + 1)
        try:
            if self.progress is None:
                metrics = self.trainer.iterate()
            else:
                with reporting(self.progress):
                    metrics = self.trainer.iterate()
        except IterationInterrupted:
            self.interrupted = True
            return None
        except BaseException:
            self.interrupted = True
            raise
        self._snapshot = None
        return metrics

    def save(self) -> Path:
        """Checkpoint the last finished iteration: the snapshot if one was cut short, else the live state."""
        if self.interrupted and self._snapshot is not None:
            return self.trainer.checkpoints.save(self._snapshot, self._snapshot_iteration)
        return self.trainer.save()
