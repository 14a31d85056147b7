"""The batched environment: an engine plus components, one TensorDict per control step.

Order inside :meth:`Env.step` (tests rely on it):

1. the policy maps observations (and its carry) to an action (outside, before ``step``);
2. events act, the actuators turn the action into per-substep targets (latency, drops, zero
   offsets, update rate) and the engine steps ``ctrl_dt / dt`` physics substeps;
3. terminations, then rewards, are evaluated on the new state; commands advance;
4. worlds that are done are reset: physics randomizers are redrawn, reset components build the
   new state, commands, stateful components, actuator and sim-to-real state start over;
5. observations for the next step are computed after the reset.

Broken worlds never reach the learner: a world whose physics went non-finite or overflowed a
buffer (``Engine.bad_worlds``) is terminated and reset in the same step and flagged
``bad_physics``; a row of the action that is not finite is replaced by that world's previous
action before it reaches the actuators, so NaN never enters the physics, and the world is
flagged ``bad_action``, terminated and reset (its policy carry is suspect). Both flags are
counted per iteration, and PPO masks the flagged transitions out of its update. The physics
of every other world is untouched (bit-identical to a run without the broken ones; see
tests/test_nan_handling.py), though later random draws differ: the generator is shared, and
on the CPU a step without any reset skips the reset components' draws.

Everything is batched over worlds with masks: no Python loop over worlds and no host sync in
``step``. Metrics of finished episodes accumulate on the device and are read once per
iteration with :meth:`Env.pop_metrics`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np
import torch
from tensordict import TensorDict

from ktorch_sim.actuators import Actuators
from ktorch_sim.components.base import (
    Command,
    ComponentState,
    EnvContext,
    Event,
    Observation,
    PhysicsRandomizer,
    Reset,
    Reward,
    Termination,
)
from ktorch_sim.components.noise import is_active
from ktorch_sim.components.observations import init_bias_state, noisy, reset_bias
from ktorch_sim.components.robot_base import base_body, base_position
from ktorch_sim.components.terminations import EpisodeLengthTermination
from ktorch_sim.engines import Engine, EngineConfig, make_engine
from ktorch_sim.engines.base import FIELDS_NEEDING_SET_CONST
from ktorch_sim.sim2real import ControlPipeline, Sim2RealConfig


@dataclass(frozen=True, kw_only=True)
class EnvSpec:
    """The components of a task: what the environment runs every control step."""

    actuators: Actuators
    observations: Sequence[Observation] = ()
    commands: Sequence[Command] = ()
    rewards: Sequence[Reward] = ()
    terminations: Sequence[Termination] = ()
    resets: Sequence[Reset] = ()
    events: Sequence[Event] = ()
    randomizers: Sequence[PhysicsRandomizer] = ()
    sim2real: Sim2RealConfig = field(default_factory=Sim2RealConfig)
    initial_qpos: np.ndarray | None = None
    recompute_constants: bool = True  # mj_setConst after randomizing fields that need it (see RLConfig)
    clip_actions: float | None = None  # clamp actions to +-this before anything uses them (see RLConfig)

    def __post_init__(self) -> None:
        """Component names must be unique: they are the TensorDict keys."""
        for kind in ("observations", "commands", "rewards", "terminations"):
            names = [c.name for c in getattr(self, kind)]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind} have duplicate names {duplicates}; every {kind[:-1]} needs its own name")
        if not self.terminations:
            raise ValueError("at least one termination is required (e.g. EpisodeLengthTermination)")


class Env:
    """N worlds of a task on one engine; see the module docstring for the step order."""

    def __init__(self, model: mujoco.MjModel, spec: EnvSpec, engine_config: EngineConfig, engine: str = "auto",
                 seed: int = 0) -> None:
        """Configure the model's actuators, build the engine and allocate every buffer."""
        self.spec = spec
        model = copy.copy(model)
        spec.actuators.configure(model)
        fields = sorted({f for r in spec.randomizers for f in r.fields} | set(engine_config.batched_fields))
        self.engine: Engine = make_engine(engine, model, engine_config.replace(batched_fields=tuple(fields)))
        self.model = self.engine.model
        self.num_envs = n = self.engine.num_envs
        self.device = dev = self.engine.device
        self.ctrl_dt = self.engine.ctrl_dt
        self.generator = torch.Generator(device=dev).manual_seed(seed)
        self._needs_set_const = spec.recompute_constants and bool(FIELDS_NEEDING_SET_CONST.intersection(fields))
        self._initial_qpos = torch.tensor(self._initial_qpos_array(spec.initial_qpos), dtype=torch.float32, device=dev)

        a = spec.actuators.num_actions
        self.ctx = EnvContext(
            physics=self.engine.state, model=self.model, ctrl_dt=self.ctrl_dt,
            action=torch.zeros(n, a, device=dev), prev_action=torch.zeros(n, a, device=dev),
            prev_prev_action=torch.zeros(n, a, device=dev), commands={}, observations={},
            curriculum_level=torch.zeros(n, device=dev), episode_steps=torch.zeros(n, dtype=torch.long, device=dev),
            generator=self.generator,
        )
        self._pipeline = ControlPipeline(spec.sim2real, n, self.model.nu, self.engine.substeps, self.engine.dt, dev,
                                         position_control=_is_position_control(spec.actuators))
        self._actuator_state = spec.actuators.init_state(n, dev)
        self._states: dict[int, ComponentState] = {}
        self._obs_bias: dict[str, torch.Tensor] = {}
        self._episode_return = torch.zeros(n, device=dev)
        # Steps an episode's clock started at (desynchronize_episodes); episode_length metrics subtract it.
        self._clock_start = torch.zeros(n, dtype=torch.long, device=dev)
        self._max_distance = torch.zeros(n, device=dev)  # farthest horizontal distance from the origin this episode
        self._base = base_body(self.model) if self.model.nbody > 1 else None  # the base the distance metric tracks
        self._metric_sums: dict[str, torch.Tensor] = {}
        self._last_td: TensorDict | None = None
        self._pinned_commands: dict[str, torch.Tensor] = {}
        self.ctx.extras.update(terminated=torch.zeros(n, dtype=torch.bool, device=dev),
                               truncated=torch.zeros(n, dtype=torch.bool, device=dev),
                               joint_zero_offset=self._pipeline.zero_offset)
        for component in self._stateful_components():
            self._states[self._key(component)] = component.init_state(self.ctx)
            self._sync_commands()  # later commands may read earlier ones (a gait clock reads velocity)
        self._reset_worlds(torch.ones(n, dtype=torch.bool, device=dev))

    # --- public API -----------------------------------------------------------------------

    @property
    def num_actions(self) -> int:
        """Action dimension."""
        return self.spec.actuators.num_actions

    def set_curriculum_level(self, level: torch.Tensor | float) -> None:
        """Set the curriculum level in [0, 1] for every world (read by components)."""
        level = torch.as_tensor(level, dtype=torch.float32, device=self.device)
        self.ctx.curriculum_level.copy_(level.expand(self.num_envs))

    def pin_command(self, name: str, value: torch.Tensor | Sequence[float] | None) -> None:
        """Hold command ``name`` at ``value`` ((D,) or (N, D)) in every world through steps and resets.

        For watching or evaluating a policy on one command (``tools/render.py --command``). The
        pinned value is written right after each command update and reset, before later commands
        read it (a gait clock sees it). The command still makes its random draws, so every other
        random stream is unchanged. ``None`` releases the pin (the command resamples from then on).
        """
        names = [c.name for c in self.spec.commands]
        if name not in names:
            raise ValueError(f"no command {name!r} to pin; this task's commands are {names}")
        if value is None:
            self._pinned_commands.pop(name, None)
            return
        current = self._states[self._key(self.spec.commands[names.index(name)])]["value"]
        pinned = torch.as_tensor(value, dtype=current.dtype, device=self.device)
        if pinned.shape not in (current.shape[1:], current.shape):
            raise ValueError(f"command {name!r} takes {current.shape[-1]} values per world, got shape "
                             f"{tuple(pinned.shape)}")
        self._pinned_commands[name] = pinned.expand_as(current).clone()
        self._sync_commands()

    def reset(self) -> TensorDict:
        """Reset every world; returns ``observation`` and ``command`` TensorDicts."""
        self._reset_worlds(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        self._last_td = self._observe()
        return self._last_td.clone(recurse=False)

    @property
    def max_episode_steps(self) -> int | None:
        """The time limit in control steps (the shortest :class:`EpisodeLengthTermination`), or None without one."""
        limits = [t.max_steps(self.ctrl_dt) for t in self.spec.terminations if isinstance(t, EpisodeLengthTermination)]
        return min(limits) if limits else None

    def desynchronize_episodes(self, generator: torch.Generator | None = None) -> None:
        """Start every world's episode clock at a random step in [0, time limit), uniformly.

        Worlds reset together reach their time limit together, so without this every rollout holds
        the same stretch of every world's episode (e.g. only the first 256 steps after a standing
        start), and the update sees the episode's phases in turn rather than mixed (legged_gym's
        ``init_at_random_ep_len``). Each world's first episode is cut short by the offset (a time-limit
        truncation, bootstrapped); its logged ``episode_length`` counts the steps it ran. A task
        without an :class:`EpisodeLengthTermination` is left as it is. Call right after :meth:`reset`.
        """
        limit = self.max_episode_steps
        if limit is None:
            return
        start = torch.randint(0, limit, (self.num_envs,), generator=generator,
                              device="cpu" if generator is None else generator.device)
        self.ctx.episode_steps.copy_(start)
        self._clock_start.copy_(start)

    def step(self, action: torch.Tensor) -> TensorDict:
        """Apply ``action`` (N, A) for one control step; see the module docstring for the order.

        Returns a TensorDict with the TorchRL layout: ``observation``, ``command`` and
        ``action`` of this step, and under ``next``: ``observation`` and ``command`` after the
        automatic reset of done worlds, ``reward`` (N, 1), ``done``, ``terminated``,
        ``truncated`` (N, 1) bool, ``reward_terms`` (each reward's scaled contribution, (N,)),
        ``terminations`` (each termination's int8 verdict (N,): -1 failure, +1 time limit, 0 go
        on; which one ended an episode), ``bad_physics`` (N,) bool for worlds reset because
        their physics broke, and ``bad_action`` (N,) bool for worlds whose action was not
        finite (replaced by the previous action, then reset). The top-level ``action`` is the
        action applied (clamped to +-``clip_actions`` when the spec sets it).
        """
        if self._last_td is None:
            self._last_td = self._observe()
        ctx = self.ctx
        ctx.prev_prev_action.copy_(ctx.prev_action)
        ctx.prev_action.copy_(ctx.action)
        bad_action = ~torch.isfinite(action).all(-1)
        action = torch.where(bad_action[:, None], ctx.prev_action, action)
        if self.spec.clip_actions is not None:
            action = action.clamp(-self.spec.clip_actions, self.spec.clip_actions)
        ctx.action.copy_(action)

        for event in self.spec.events:
            event.apply(self._states[self._key(event)], ctx)
        ctrl = self.spec.actuators.ctrl(action, self._actuator_state, self.generator)
        self.engine.step(self._pipeline.substep_targets(ctrl, ctx.curriculum_level, self.generator))
        ctx.episode_steps += 1

        terminated, truncated, bad, verdicts = self._terminations(bad_action)
        reward, terms = self._rewards()
        for command in self.spec.commands:
            command.update(self._states[self._key(command)], ctx)
            self._sync_commands()
        done = terminated | truncated
        self._record_episode_metrics(reward, done, terminated)
        self._record_health_metrics(bad, bad_action)

        self._reset_worlds(done)
        nxt = self._observe()
        nxt.update({"reward": reward[:, None], "done": done[:, None], "terminated": terminated[:, None],
                    "truncated": truncated[:, None], "reward_terms": TensorDict(terms, batch_size=[self.num_envs]),
                    "terminations": TensorDict(verdicts, batch_size=[self.num_envs]), "bad_physics": bad,
                    "bad_action": bad_action})
        out = self._last_td.clone(recurse=False)
        out.set("action", action)
        out.set("next", nxt)
        self._last_td = nxt.select("observation", "command")
        return out

    def pop_metrics(self) -> dict[str, torch.Tensor]:
        """Sums over episodes finished since the last call (device scalars), then clear them.

        Keys: ``episodes``, ``episode_return``, ``episode_length``, ``distance_from_origin``
        (largest horizontal distance of the base from the world origin, :mod:`ktorch_sim.components.robot_base`;
        absent for a model without any body; sums, divide by ``episodes``), ``failures``,
        ``termination/<name>`` counts, and per step (not per episode) counts of world resets:
        ``bad_physics`` (non-finite state or overflow), ``overflow`` (the overflow part of it)
        and ``bad_action`` (non-finite actions kept out of the physics).
        """
        metrics = {k: v.clone() for k, v in self._metric_sums.items()}
        for v in self._metric_sums.values():
            v.zero_()
        return metrics

    # --- the steps of step() --------------------------------------------------------------

    def _terminations(self, bad_action: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        verdicts = [t.check(self.ctx) for t in self.spec.terminations]
        stacked = torch.stack(verdicts) if verdicts else torch.zeros(0, self.num_envs, device=self.device)
        bad = self.engine.bad_worlds()
        terminated = (stacked < 0).any(0) | bad | bad_action
        truncated = (stacked > 0).any(0) & ~terminated
        self.ctx.extras["terminated"].copy_(terminated)
        self.ctx.extras["truncated"].copy_(truncated)
        for term, verdict in zip(self.spec.terminations, verdicts):
            self._add_metric(f"termination/{term.name}", ((verdict != 0) & (terminated | truncated)).sum())
        return terminated, truncated, bad, {t.name: v for t, v in zip(self.spec.terminations, verdicts, strict=True)}

    def _rewards(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = {}
        for r in self.spec.rewards:
            value = r.get_reward(self.ctx, self._states[self._key(r)]) * r.signed_scale
            if r.scale_by_curriculum:
                value = value * self.ctx.curriculum_level
            terms[r.name] = torch.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0)
        total = torch.stack(list(terms.values())).sum(0) if terms else torch.zeros(self.num_envs, device=self.device)
        return total, terms

    def _reset_worlds(self, mask: torch.Tensor) -> None:
        ctx = self.ctx
        if mask.device.type == "cpu" and not bool(mask.any()):
            # Nothing to reset. On the CPU this check costs no device sync, and it skips every
            # component's masked no-op; the forward pass still runs, as after any reset.
            self.engine.forward()
            return
        for randomizer in self.spec.randomizers:
            randomizer.apply(self.engine, mask, ctx)
        if self.spec.randomizers and self._needs_set_const:
            self.engine.recompute_constants()
        qpos = self._initial_qpos.expand(self.num_envs, -1).clone()
        qvel = torch.zeros(self.num_envs, self.model.nv, device=self.device)
        for reset in self.spec.resets:
            reset.apply(qpos, qvel, mask, ctx)
        self.engine.reset(mask, qpos, qvel)
        for buffer in (ctx.action, ctx.prev_action, ctx.prev_prev_action):
            buffer.masked_fill_(mask[:, None], 0.0)
        ctx.episode_steps.masked_fill_(mask, 0)
        self._clock_start.masked_fill_(mask, 0)
        self._episode_return.masked_fill_(mask, 0.0)
        self._max_distance.masked_fill_(mask, 0.0)
        for component in self._stateful_components():
            component.reset(self._states[self._key(component)], mask, ctx)
            self._sync_commands()
        self.spec.actuators.reset(self._actuator_state, mask, self.generator)
        self._pipeline.reset(mask, ctx.curriculum_level, self.generator)
        for obs in self.spec.observations:
            if obs.name in self._obs_bias:
                reset_bias(obs, self._obs_bias[obs.name], mask, ctx)

    def _observe(self) -> TensorDict:
        ctx = self.ctx
        self._sync_commands()
        clean, noisy_obs = {}, {}
        for obs in self.spec.observations:
            value = obs.observe(ctx, self._states[self._key(obs)])
            clean[obs.name] = value
            if is_active(obs.noise) or is_active(obs.bias):
                bias = self._obs_bias.get(obs.name)
                if bias is None:  # first observation: draw every world's per-episode bias
                    bias = self._obs_bias[obs.name] = init_bias_state(obs, value.shape, ctx)
                noisy_obs[f"noisy_{obs.name}"] = noisy(obs, value, bias, ctx)
        ctx.observations = clean
        n = [self.num_envs]
        return TensorDict({"observation": TensorDict({**clean, **noisy_obs}, batch_size=n),
                           "command": TensorDict(dict(ctx.commands), batch_size=n)}, batch_size=n)

    def _sync_commands(self) -> None:
        """Point ``ctx.commands`` at each command's current value (commands may rebind it)."""
        self.ctx.commands = {c.name: self._states[self._key(c)]["value"] for c in self.spec.commands
                             if self._key(c) in self._states}
        for name, value in self._pinned_commands.items():
            self.ctx.commands[name].copy_(value)

    # --- bookkeeping ----------------------------------------------------------------------

    def _record_episode_metrics(self, reward: torch.Tensor, done: torch.Tensor, terminated: torch.Tensor) -> None:
        self._episode_return += reward
        if self._base is not None:
            xy = base_position(self.ctx.physics, self._base)[:, :2]
            torch.maximum(self._max_distance, xy.norm(dim=-1), out=self._max_distance)
            self._add_metric("distance_from_origin", (self._max_distance * done).sum())
        self._add_metric("episodes", done.sum())
        self._add_metric("episode_return", (self._episode_return * done).sum())
        self._add_metric("episode_length", ((self.ctx.episode_steps - self._clock_start) * done).sum())
        self._add_metric("failures", terminated.sum())

    def _record_health_metrics(self, bad_physics: torch.Tensor, bad_action: torch.Tensor) -> None:
        self._add_metric("bad_physics", bad_physics.sum())
        self._add_metric("overflow", self.engine.overflowed_worlds().sum())
        self._add_metric("bad_action", bad_action.sum())

    def _add_metric(self, name: str, value: torch.Tensor) -> None:
        total = self._metric_sums.get(name)
        if total is None:
            self._metric_sums[name] = value.to(torch.float32).clone()
        else:
            total += value

    def _stateful_components(self) -> list:
        s = self.spec
        return [*s.observations, *s.commands, *s.rewards, *s.terminations, *s.events]

    @staticmethod
    def _key(component: object) -> int:
        """State key: the component object itself (two pushes of one class keep separate timers)."""
        return id(component)

    def _initial_qpos_array(self, qpos: np.ndarray | None) -> np.ndarray:
        """The reset pose: the spec's, else the model's ``home`` keyframe, else ``qpos0``."""
        if qpos is not None:
            qpos = np.asarray(qpos, dtype=np.float64)
            if qpos.shape != (self.model.nq,):
                raise ValueError(f"initial_qpos must have shape ({self.model.nq},), got {qpos.shape}")
            return qpos
        key = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_KEY, "home")
        return np.array(self.model.key_qpos[key] if key >= 0 else self.model.qpos0)


def _is_position_control(actuators: Actuators) -> bool:
    from ktorch_sim.actuators import PositionActuators

    return isinstance(actuators, PositionActuators)
