"""Rollout collection with the whole control step as one replayable body, captured as a CUDA graph.

One control step — policy forward and sampling, actuator law, physics substeps, events,
terminations, rewards, commands, resets of done worlds, observations, and the write into the
rollout storage — is written as :meth:`GraphedRolloutCollector._step_body`, a function of
static buffers only: the current observation/command and carry live in fixed tensors that the
body reads and overwrites in place, and the storage slot is a device counter (``index_copy_``)
instead of a Python index. Such a body can be recorded once and replayed T times:

- ``mode="eager"`` runs the body as Python every step (any device). It consumes the random
  streams in the same order as :class:`RolloutCollector` and fills a bit-identical buffer
  (``tests/test_graphed_rollout.py``), which is what makes the captured mode trustworthy.
- ``mode="cuda_graph"`` (CUDA only) runs the first rollout eagerly (compiling kernels,
  allocating every lazily built buffer), captures the body with ``torch.cuda.graph`` on the
  second, then replays it. MuJoCo Warp's kernels are recorded into the same graph through
  Warp's external-capture mode (see ``WarpEngine._launch``), the env's and the policy's
  generators are registered with the graph so every replay draws fresh numbers.

Status: the eager mode is tested on the CPU; the captured mode has not yet run on a GPU (no
GPU was available when it was written), so ``ppo.capture_rollout`` defaults to off.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from ktorch_sim.algorithms.carry import map_carry, reset_carry
from ktorch_sim.algorithms.rollout import RolloutCollector
from ktorch_sim.env import Env
from ktorch_sim.utils.phase_progress import tick
from ktorch_sim.ppo_task import PPOTask

__all__ = ["GraphedRolloutCollector"]

MODES = ("eager", "cuda_graph")


class GraphedRolloutCollector(RolloutCollector):
    """A :class:`RolloutCollector` whose per-step work is one static-buffer body (see the module docs)."""

    def __init__(self, env: Env, task: PPOTask, num_steps: int, generator: torch.Generator,
                 mode: str = "eager", step_statistics: bool = False) -> None:
        """Prepare rollouts of ``num_steps`` steps; ``mode`` is ``eager`` or ``cuda_graph``; ``step_statistics``
        as for :class:`RolloutCollector`."""
        super().__init__(env, task, num_steps, generator, step_statistics)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "cuda_graph" and env.device.type != "cuda":
            raise ValueError(f"mode='cuda_graph' needs the env on a CUDA device; it is on {env.device}")
        self.mode = mode
        self._slot = torch.zeros(1, dtype=torch.long, device=env.device)  # storage column of the next step
        self._carry: Any = None
        self._model: torch.nn.Module | None = None
        self._graph: Any = None
        self._rollouts = 0

    @torch.no_grad()
    def collect(self, model: torch.nn.Module, carry: Any) -> tuple[TensorDict, Any, Any, torch.Tensor]:
        """Run one rollout from ``carry``; same returns as :meth:`RolloutCollector.collect`."""
        if self.current is None:
            self.current = self.env.reset()
        if self._model is not None and model is not self._model and self._graph is not None:
            raise ValueError("a captured rollout is bound to one model object; build a new collector for another")
        self._model = model
        self._carry = _static_copy(carry, self._carry)
        start_carry = _clone(carry)
        self._slot.zero_()
        if self.mode == "cuda_graph" and self._rollouts >= 1:
            if self._graph is None:
                self._graph = self._capture()
            for t in range(self.num_steps):
                self._graph.replay()
                tick("collect", t + 1, self.num_steps)  # host counters only: no GPU sync
        else:
            for t in range(self.num_steps):
                self._step_body()
                tick("collect", t + 1, self.num_steps)
        self._rollouts += 1
        return self._finish(model, start_carry, _clone(self._carry))

    def _step_body(self) -> None:
        """One control step, reading and writing static buffers only (capturable)."""
        obs, cmd = self.current["observation"], self.current["command"]
        inputs = self._observe_inputs(obs, cmd)
        action, carry, extras = self.task.sample_action(self._model, self._carry, obs, cmd, self.generator)
        out = self.env.step(action)
        step = self._transition(obs, cmd, action, {**extras, **inputs}, out)
        stored = self._storage(step).exclude("next_value")  # shares the buffer's tensors
        stored.apply_(lambda column, new: column.index_copy_(1, self._slot, new.unsqueeze(1)), step)
        self._slot += 1
        _copy_into(self._carry, reset_carry(carry, out["next", "done"][:, 0]))
        self.current.update_(out["next"].select("observation", "command"))

    def _capture(self) -> Any:
        """Record :meth:`_step_body` as a CUDA graph (its kernels do not run during capture)."""
        graph = torch.cuda.CUDAGraph()
        for generator in (self.generator, self.env.generator):
            register = getattr(graph, "register_generator_state", None)
            if register is None:
                raise RuntimeError("capturing the rollout needs torch.cuda.CUDAGraph.register_generator_state "
                                   "(PyTorch >= 2.5 with CUDA)")
            register(generator)
        slot = self._slot.clone()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._step_body()
        self._slot.copy_(slot)  # capture recorded the increment without running it; keep the count honest
        return graph


def _clone(carry: Any) -> Any:
    return map_carry(carry, torch.clone)


def _copy_into(dst: Any, src: Any) -> None:
    if isinstance(dst, (tuple, list)):
        for d, s in zip(dst, src, strict=True):
            _copy_into(d, s)
    elif dst is not None:
        dst.copy_(src)


def _static_copy(carry: Any, static: Any) -> Any:
    """Copy ``carry`` into the static carry buffers (allocated on first use)."""
    if static is None:
        return _clone(carry)
    _copy_into(static, carry)
    return static
