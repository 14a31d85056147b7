"""Where the time of a control step goes: physics, each component family, policy, resets, storage.

:class:`StepProfiler` wraps named methods of a live environment, engine and task (instance
attributes shadow the class methods; :meth:`StepProfiler.close` removes them) and accumulates
*exclusive* wall time per phase: a reset's ``engine.forward`` counts as physics, not as reset.
Nothing in the library is changed for profiling, and an unprofiled run pays nothing.

Timing is honest but intrusive: every phase boundary synchronizes the device (a no-op on the
CPU), so on a GPU the profiled run is slower than the real one and the shares, not the absolute
times, are what to read. The ``other`` phase is what no wrapper covers: rollout storage writes,
carry resets and the env's bookkeeping.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["StepProfiler"]


class StepProfiler:
    """Exclusive wall time per named phase of ``env.step`` and the policy, per control step."""

    def __init__(self, device: torch.device) -> None:
        """Profile work on ``device`` (synchronized at every phase boundary when it is CUDA)."""
        self.device = device
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[list[Any]] = []  # [phase, start, time spent in nested phases]
        self._patched: list[tuple[object, str]] = []

    # --- instrumenting ---------------------------------------------------------------------

    def wrap(self, owner: object, method: str, phase: str) -> None:
        """Time every call of ``owner.method`` as ``phase`` (exclusive of nested wrapped calls)."""
        original = getattr(owner, method)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._enter(phase)
            try:
                return original(*args, **kwargs)
            finally:
                self._exit()

        object.__setattr__(owner, method, timed)  # also on frozen dataclass components
        self._patched.append((owner, method))

    def instrument_env(self, env: Any, task: Any | None = None) -> StepProfiler:
        """Wrap the standard phases of an :class:`ktorch_sim.env.Env` (and the task's policy call)."""
        self.wrap(env.engine, "step", "physics")
        self.wrap(env.engine, "forward", "physics")
        self.wrap(env.engine, "reset", "physics")
        self.wrap(env._pipeline, "substep_targets", "actuators")
        self.wrap(env.spec.actuators, "ctrl", "actuators")
        for event in env.spec.events:
            self.wrap(event, "apply", "events")
        self.wrap(env, "_terminations", "terminations")
        self.wrap(env, "_rewards", "rewards")
        for command in env.spec.commands:
            self.wrap(command, "update", "commands")
        self.wrap(env, "_reset_worlds", "resets")
        for randomizer in env.spec.randomizers:
            self.wrap(randomizer, "apply", "randomizers")
        self.wrap(env.engine, "recompute_constants", "set_const")
        self.wrap(env, "_observe", "observations")
        if task is not None:
            self.wrap(task, "sample_action", "policy")
        return self

    def close(self) -> None:
        """Remove every wrapper (the class methods show through again)."""
        for owner, method in reversed(self._patched):
            object.__delattr__(owner, method)
        self._patched.clear()

    # --- measuring -------------------------------------------------------------------------

    def measure(self, body: Callable[[], None], steps: int) -> dict[str, float]:
        """Run ``body`` (``steps`` control steps of work) and return ms per control step by phase.

        ``total`` is the whole body's time; ``other`` is total minus every wrapped phase.
        """
        self.totals.clear()
        self._sync()
        start = time.perf_counter()
        body()
        self._sync()
        total = time.perf_counter() - start
        phases = {k: 1e3 * v / steps for k, v in sorted(self.totals.items(), key=lambda kv: -kv[1])}
        phases["other"] = 1e3 * total / steps - sum(phases.values())
        phases["total"] = 1e3 * total / steps
        return phases

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _enter(self, phase: str) -> None:
        self._sync()
        self._stack.append([phase, time.perf_counter(), 0.0])

    def _exit(self) -> None:
        self._sync()
        phase, start, nested = self._stack.pop()
        elapsed = time.perf_counter() - start
        self.totals[phase] += elapsed - nested
        if self._stack:
            self._stack[-1][2] += elapsed
