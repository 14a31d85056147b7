"""Collecting a rollout: T control steps of N worlds into a preallocated [N, T] TensorDict.

The buffer is allocated once, from the layout of the first step, on the environment's device;
every later step is copied into its time slot in place. The recurrent carry is zeroed where an
episode ended, exactly as :meth:`PPOTask.get_ppo_variables` replays it.

With ``step_statistics`` (``ppo.normalizer_update = "step"``) the task's input normalizers take in
each step's inputs before the policy reads them, and the buffer keeps the normalized inputs
(``actor_input``, ``critic_input``) so the update sees every input exactly as the policy did.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from ktorch_sim.algorithms.carry import index_carry, reset_carry
from ktorch_sim.env import Env
from ktorch_sim.utils.phase_progress import tick
from ktorch_sim.ppo_task import PPOTask

__all__ = ["STORED_NEXT_KEYS", "RolloutCollector", "index_carry", "reset_carry"]

STORED_NEXT_KEYS = ("reward", "done", "terminated", "truncated", "bad_physics", "bad_action", "reward_terms")


class RolloutCollector:
    """Steps the env with the policy and fills the [N, T] buffer in place."""

    def __init__(self, env: Env, task: PPOTask, num_steps: int, generator: torch.Generator,
                 step_statistics: bool = False) -> None:
        """Prepare for rollouts of ``num_steps`` control steps; ``step_statistics``: move the task's input
        statistics every step (see the module docs; nothing to do when the task has no normalizers)."""
        self.env = env
        self.task = task
        self.num_steps = num_steps
        self.generator = generator
        self.step_statistics = step_statistics and task.normalizers is not None
        self.buffer: TensorDict | None = None
        self.current: TensorDict | None = None  # observation/command for the next action

    @torch.no_grad()
    def collect(self, model: torch.nn.Module, carry: Any) -> tuple[TensorDict, Any, Any, torch.Tensor]:
        """Run one rollout from ``carry``.

        Returns the buffer [N, T] (``observation``, ``command``, ``action``, ``log_prob``,
        ``value``, ``next_value`` and under ``next`` the step outcomes), the carry at the rollout
        start, the carry after it (for the next rollout), and V(s_T) [N].
        """
        if self.current is None:
            self.current = self.env.reset()
        start_carry = carry
        for t in range(self.num_steps):
            obs, cmd = self.current["observation"], self.current["command"]
            inputs = self._observe_inputs(obs, cmd)
            action, carry, extras = self.task.sample_action(model, carry, obs, cmd, self.generator)
            out = self.env.step(action)
            step = self._transition(obs, cmd, action, {**extras, **inputs}, out)
            self._storage(step)[:, t] = step
            carry = reset_carry(carry, out["next", "done"][:, 0])
            self.current = out["next"].select("observation", "command")
            tick("collect", t + 1, self.num_steps)  # host counters only: no GPU sync
        return self._finish(model, start_carry, carry)

    # --- shared with GraphedRolloutCollector ------------------------------------------------------

    def _observe_inputs(self, obs: TensorDict, cmd: TensorDict) -> dict[str, torch.Tensor]:
        """With ``step_statistics``: merge this step's inputs into the input statistics (no host sync) and
        return them normalized, to store (``actor_input``, ``critic_input``); else nothing to store."""
        if not self.step_statistics:
            return {}
        actor, critic = self.task.observe_inputs(obs, cmd)
        return {"actor_input": actor, "critic_input": critic}

    def _transition(self, obs: TensorDict, cmd: TensorDict, action: torch.Tensor, extras: dict[str, torch.Tensor],
                    out: TensorDict) -> TensorDict:
        """The [N] record of one control step: what the policy saw and did, and what followed."""
        keys = (*STORED_NEXT_KEYS, *getattr(self.task, "rollout_next_keys", ()))  # ks.AMPTask: its next observation
        return TensorDict({"observation": obs, "command": cmd, "action": action, **extras,
                           "next": out["next"].select(*keys)}, batch_size=[self.env.num_envs])

    def _storage(self, step: TensorDict) -> TensorDict:
        """The [N, T] buffer, allocated with ``step``'s layout on its device the first time."""
        if self.buffer is None:
            self.buffer = step.unsqueeze(1).expand(step.batch_size[0], self.num_steps).clone()
        return self.buffer

    def _finish(self, model: torch.nn.Module, start_carry: Any, carry: Any
                ) -> tuple[TensorDict, Any, Any, torch.Tensor]:
        """Bootstrap V(s_T) with one more critic pass, store ``next_value`` and return what :meth:`collect` does."""
        _, _, last = self.task.sample_action(model, carry, self.current["observation"], self.current["command"],
                                             self.generator)
        values = self.buffer["value"]
        self.buffer.set("next_value", torch.cat([values[:, 1:], last["value"][:, None]], dim=1))
        return self.buffer, start_carry, carry, last["value"]
