"""Check an ONNX export against the torch policy it came from, over recorded episodes.

:func:`record_rollout` steps the policy's environment with the torch actor (deterministic mode)
and records, per control step, exactly what the actor read (each observation as the actor sees
it, i.e. the noisy version where one exists, and each command), where the carry was zeroed
(the first step of each episode) and the torch action. :func:`replay_onnx` feeds the recorded
inputs to the step graph with onnxruntime, one step at a time, threading the carry through and
replacing it by the init graph's zero carry wherever the torch side reset it. :func:`check_export`
compares the two action streams.

Tolerance: :data:`DEFAULT_TOLERANCE` = 1e-4 rad. Both sides compute in float32 (machine epsilon
1.2e-7) with differently ordered sums (torch's CPU kernels against onnxruntime's MLAS), so actions
differ by a few float32 ulps (measured: 1.2e-7 rad over a 1200-step kbot_walk episode for tiny GRU
and MLP policies, 7.2e-7 rad over a 1000-step kbot_stand episode for a GRU 5x128 trained 141
iterations). 1e-4 rad (0.006 deg) leaves two orders of magnitude for that rounding, yet is 200
times smaller than the action noise kbot_walk trains with (0.02 rad) and 350 times smaller than its
joint-angle observation noise (2 deg): a difference this small cannot change what the robot does.
Any real export error (a wrong input order, a missing normalization, a dropped carry, a wrong
mixture component) is far larger. One caveat: the mixture mode picks the component with
the largest logit, so two logits tied to within rounding could pick different components; an
export that fails only at one isolated step while the rest match to 1e-6 is worth a second look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ktorch_sim.deploy.export import CARRY_INPUT, ExportError, ExportPaths, PolicyInterface, action_scale, policy_interface
from ktorch_sim.utils.phase_progress import tick
from ktorch_sim.playback.trained import TrainedPolicy

__all__ = ["DEFAULT_TOLERANCE", "CheckResult", "Recording", "check_export", "default_steps", "record_rollout",
           "replay_onnx", "require_onnxruntime"]

DEFAULT_TOLERANCE = 1e-4  # rad; see the module docstring
FALLBACK_STEPS = 1000  # rollout length when the task has no time limit


@dataclass
class Recording:
    """A rollout of the torch policy, as numpy arrays with time first.

    Attributes:
        inputs: step-graph input name -> [T, B, size] float32 (observations and commands).
        resets: [T, B] bool, true where the carry was zeroed before step t (always at t = 0).
        actions: [T, B, A] float32, the torch actions times the action scale (what the graph outputs).

    """

    inputs: dict[str, np.ndarray]
    resets: np.ndarray
    actions: np.ndarray


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check_export`."""

    steps: int
    num_envs: int
    episodes_started: int  # carry resets, including the first step of every world
    max_abs_diff: float  # rad, over every step, world and joint
    worst_step: int
    worst_world: int
    tolerance: float

    @property
    def passed(self) -> bool:
        """Whether every action matched to within the tolerance."""
        return self.max_abs_diff <= self.tolerance

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"steps": self.steps, "num_envs": self.num_envs, "episodes_started": self.episodes_started,
                "max_abs_diff": self.max_abs_diff, "worst_step": self.worst_step, "worst_world": self.worst_world,
                "tolerance": self.tolerance, "passed": self.passed}


def default_steps(policy: TrainedPolicy) -> int:
    """One full episode: the task's time limit in control steps (or 1000 steps without one)."""
    limit = policy.env.max_episode_steps
    return FALLBACK_STEPS if limit is None else limit


@torch.no_grad()
def record_rollout(policy: TrainedPolicy, steps: int) -> Recording:
    """Roll out ``steps`` control steps of every world from a fresh reset with the deterministic torch policy."""
    interface = policy_interface(policy)
    env = policy.env
    n, scale = env.num_envs, action_scale(policy)
    step = env.reset()
    carry = policy.initial_carry(n)
    inputs = {name: np.zeros((steps, n, size), dtype=np.float32)
              for name, size in interface.observations + interface.commands}
    resets = np.zeros((steps, n), dtype=bool)
    resets[0] = True
    actions = np.zeros((steps, n, interface.num_actions), dtype=np.float32)
    for t in range(steps):
        obs, cmd = step["observation"], step["command"]
        for name, _ in interface.observations:
            inputs[name][t] = _numpy(obs.get(f"noisy_{name}", obs[name]))
        for key, _ in interface.commands:
            inputs[key][t] = _numpy(cmd[key])
        action, carry = policy.act(obs, cmd, carry)
        actions[t] = _numpy(action * scale)
        step = env.step(action)["next"]
        done = step["done"][:, 0]
        carry = policy.reset_carry(carry, done)
        if t + 1 < steps:
            resets[t + 1] = _numpy(done)
        tick("torch rollout", t + 1, steps)
    return Recording(inputs=inputs, resets=resets, actions=actions)


def replay_onnx(paths: ExportPaths, interface: PolicyInterface, recording: Recording) -> np.ndarray:
    """Run the step graph over ``recording`` with onnxruntime; returns its actions [T, B, A]."""
    ort = require_onnxruntime()
    step = _session(ort, paths.step)
    names = [i.name for i in step.get_inputs()]
    if names != interface.input_names:
        raise ExportError(f"{paths.step} reads {names}, but this checkpoint's actor reads {interface.input_names}: "
                          "was it exported from another checkpoint?")
    steps, n = recording.resets.shape
    carry = zero = None
    if interface.carry_shape is not None:
        if not paths.init.is_file():
            raise ExportError(f"{paths.init} is missing: a recurrent export needs its init graph")
        (zero,) = _session(ort, paths.init).run(None, {})
        carry = np.repeat(zero, n, axis=0)
    actions = np.zeros_like(recording.actions)
    for t in range(steps):
        feeds = {name: recording.inputs[name][t] for name, _ in interface.observations + interface.commands}
        if carry is not None:
            reset = recording.resets[t].reshape((n,) + (1,) * (zero.ndim - 1))
            carry = np.where(reset, zero, carry)
            feeds[CARRY_INPUT] = carry
        outputs = step.run(None, feeds)
        actions[t] = outputs[0]
        if carry is not None:
            carry = outputs[1]
        tick("onnxruntime replay", t + 1, steps)
    return actions


def check_export(policy: TrainedPolicy, paths: ExportPaths, steps: int | None = None,
                 tolerance: float = DEFAULT_TOLERANCE) -> CheckResult:
    """Record ``steps`` (default: one episode) with torch, replay them with onnxruntime, compare the actions."""
    steps = default_steps(policy) if steps is None else steps
    if steps < 1:
        raise ExportError(f"--steps must be >= 1, got {steps}")
    interface = policy_interface(policy)
    recording = record_rollout(policy, steps)
    onnx_actions = replay_onnx(paths, interface, recording)
    diff = np.nan_to_num(np.abs(onnx_actions.astype(np.float64) - recording.actions), nan=math.inf)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return CheckResult(steps=steps, num_envs=recording.resets.shape[1], episodes_started=int(recording.resets.sum()),
                       max_abs_diff=float(diff.max()), worst_step=int(worst[0]), worst_world=int(worst[1]),
                       tolerance=tolerance)


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float32).numpy() if x.dtype != torch.bool else x.detach().cpu().numpy()


def _session(ort: Any, path: Any) -> Any:
    """Open a single-threaded CPU inference session (small graphs: threads only add overhead)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot load {path}: {str(e).strip().splitlines()[0]}") from e


def require_onnxruntime() -> Any:
    """Import onnxruntime, or fail with one line saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ExportError('the onnxruntime package is not installed: pip install -e ".[tools]"') from None
    return onnxruntime
