"""``PPOTask``: an :class:`RLTask` with an actor-critic policy, ksim's PPO hooks in torch.

A ksim user overrides the same hooks as in the K-Scale humanoid benchmark notebook:
``get_model``, ``get_optimizer``, ``run_actor``/``run_critic`` (observations and commands to a
distribution / value, with a recurrent carry), ``get_ppo_variables`` (a whole [B, T]
trajectory at once, with the carry reset where episodes ended) and ``sample_action``. The
defaults here build the GRU mixture-of-Gaussians actor-critic from the ``model`` config and
feed the actor the noisy observations and the critic the clean ones (asymmetric actor-critic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict

from ktorch_sim.task import ConfigT, RLTask

Carry = Any


@dataclass(frozen=True)
class PolicySpec:
    """Sizes a policy needs, measured from the environment."""

    num_actor_inputs: int
    num_critic_inputs: int
    num_actions: int
    action_bias: torch.Tensor  # the home pose in action order: the actor's mean offset


@dataclass
class PPOVariables:
    """What the PPO loss needs from the model for a [B, T] trajectory.

    Attributes:
        log_probs: log pi(a_t | history), summed over action dimensions, [B, T].
        values: V(s_t), [B, T].
        entropy: policy entropy summed over action dimensions, [B, T].
        action_std: mean standard deviation of the action distribution (for logging).
    """

    log_probs: torch.Tensor
    values: torch.Tensor
    entropy: torch.Tensor
    action_std: torch.Tensor


class PPOTask(RLTask[ConfigT]):
    """RLTask plus the actor-critic hooks PPO trains through; see the module docstring."""

    model_config: Any = None  # set by the trainer from the config's [model] section
    normalizers: torch.nn.ModuleDict | None = None  # {"actor", "critic"} RunningNormalizers when enabled

    @classmethod
    def launch(cls, config: ConfigT, resume: Any = None, progress: bool = True, **sections: Any) -> Any:
        """Train this task from Python, as ksim's ``Task.launch(config)``; returns the run directory.

        See :func:`_launch` for how ``ppo``/``model``/``logging``/``checkpoint`` sections are formed.
        """
        return _launch(cls, config, resume=resume, progress=progress, **sections)

    # --- what each network sees -------------------------------------------------------------

    def get_actor_observation_names(self, observation_names: Sequence[str]) -> list[str]:
        """Observations the actor reads (default: all); their ``noisy_`` versions are used when present."""
        return [n for n in observation_names if not n.startswith("noisy_")]

    def get_critic_observation_names(self, observation_names: Sequence[str]) -> list[str]:
        """Observations the critic reads, clean (default: all)."""
        return [n for n in observation_names if not n.startswith("noisy_")]

    def actor_inputs(self, observations: TensorDict, commands: TensorDict) -> torch.Tensor:
        """The actor's input vector [..., D], normalized when ``ppo.normalize_observations`` is on."""
        return self._normalized("actor", self.actor_features(observations, commands))

    def critic_inputs(self, observations: TensorDict, commands: TensorDict) -> torch.Tensor:
        """The critic's input vector [..., D], normalized when ``ppo.normalize_observations`` is on."""
        return self._normalized("critic", self.critic_features(observations, commands))

    def actor_features(self, observations: TensorDict, commands: TensorDict) -> torch.Tensor:
        """The actor's raw input [..., D]: chosen observations (noisy if available), then commands."""
        names = self.get_actor_observation_names(list(observations.keys()))
        parts = [observations.get(f"noisy_{n}", observations[n]) for n in names]
        return _concat(parts + [commands[k] for k in sorted(commands.keys())])

    def critic_features(self, observations: TensorDict, commands: TensorDict) -> torch.Tensor:
        """The critic's raw input [..., D]: chosen clean observations, then commands."""
        names = self.get_critic_observation_names(list(observations.keys()))
        return _concat([observations[n] for n in names] + [commands[k] for k in sorted(commands.keys())])

    def update_normalizer_statistics(self, observations: TensorDict, commands: TensorDict,
                                     mask: torch.Tensor | None = None) -> None:
        """Merge these observations (e.g. a rollout's, [N, T]) into the input statistics; rows where
        ``mask`` is False are left out.

        The trainer calls this after the PPO update of a rollout, never during it: the update
        must see each input normalized exactly as it was when the action was sampled, or the
        probability ratio starts away from 1 (measured: a KL of 0.5 and 80 % clipped samples in
        the first update when the statistics moved during the rollout).
        """
        if self.normalizers is None:
            return
        self.normalizers["actor"].update(self.actor_features(observations, commands), mask)
        self.normalizers["critic"].update(self.critic_features(observations, commands), mask)

    def _normalized(self, which: str, x: torch.Tensor) -> torch.Tensor:
        return x if self.normalizers is None else self.normalizers[which](x)

    # --- the model ----------------------------------------------------------------------------

    def get_model(self, spec: PolicySpec) -> torch.nn.Module:
        """The actor-critic (default: GRU mixture of Gaussians, or MLP, per the ``model`` config)."""
        from ktorch_sim.policies import ActorCritic, GRUActor, GRUCritic, MLPActor, MLPCritic

        m = self.model_config
        if m is None or m.policy == "gru":
            kw = {} if m is None else dict(hidden_size=m.hidden_size, depth=m.depth, sequence_method=m.sequence_method)
            actor_kw = {} if m is None else dict(num_mixtures=m.num_mixtures, min_std=m.min_std, max_std=m.max_std,
                                                 var_scale=m.var_scale)
            return ActorCritic(
                GRUActor(spec.num_actor_inputs, spec.num_actions, mean_bias=spec.action_bias, **kw, **actor_kw),
                GRUCritic(spec.num_critic_inputs, **kw))
        return ActorCritic(
            MLPActor(spec.num_actor_inputs, spec.num_actions, hidden_sizes=tuple(m.mlp_hidden), init_std=m.init_std,
                     mean_bias=spec.action_bias, activation=m.activation),
            MLPCritic(spec.num_critic_inputs, hidden_sizes=tuple(m.mlp_hidden), activation=m.activation))

    def get_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """AdamW with the ``ppo`` config's learning rate and weight decay (set by the trainer).

        The fused implementation (one kernel for every parameter, on CUDA and on the CPU) is used:
        on the CPU it cut the optimizer step of a small MLP about 4x against the per-tensor loop.
        """
        lr, wd = getattr(self, "_lr", 3e-4), getattr(self, "_weight_decay", 1e-5)
        eps = getattr(self, "_adam_eps", 1e-8)
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd, eps=eps, fused=True)

    def get_initial_model_carry(self, model: torch.nn.Module, batch_size: int) -> Carry:
        """Zero recurrent state for ``batch_size`` fresh episodes."""
        return model.initial_carry(batch_size, next(model.parameters()).device)

    # --- running the model (the notebook's hooks) ---------------------------------------------

    def run_actor(self, model: torch.nn.Module, observations: TensorDict, commands: TensorDict,
                  carry: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """The action distribution for one step, and the next actor carry."""
        return model.actor(self.actor_inputs(observations, commands), carry)

    def run_critic(self, model: torch.nn.Module, observations: TensorDict, commands: TensorDict,
                   carry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The value [B, 1] for one step, and the next critic carry."""
        return model.critic(self.critic_inputs(observations, commands), carry)

    def sample_action(self, model: torch.nn.Module, carry: Carry, observations: TensorDict, commands: TensorDict,
                      generator: torch.Generator | None = None, argmax: bool = False
                      ) -> tuple[torch.Tensor, Carry, dict[str, torch.Tensor]]:
        """Action [B, A], next carry, and ``log_prob`` [B] / ``value`` [B] for the rollout."""
        actor_carry, critic_carry = carry
        dist, actor_carry = self.run_actor(model, observations, commands, actor_carry)
        value, critic_carry = self.run_critic(model, observations, commands, critic_carry)
        action = dist.mode() if argmax else dist.sample(generator)
        extras = {"log_prob": dist.log_prob(action).sum(-1), "value": value[..., 0]}
        return action, (actor_carry, critic_carry), extras

    def get_ppo_variables(self, model: torch.nn.Module, trajectory: TensorDict, carry: Carry
                          ) -> tuple[PPOVariables, Carry]:
        """Log-probs, values and entropy for a [B, T] trajectory, replayed from ``carry``.

        The carry is zeroed before step t when step t-1 ended an episode (``done``), exactly as
        during the rollout.
        """
        done = trajectory["next", "done"][..., 0]
        resets = torch.zeros_like(done)
        resets[:, 1:] = done[:, :-1]
        obs, cmd = trajectory["observation"], trajectory["command"]
        actor_carry, critic_carry = carry
        dist, actor_carry = model.actor.forward_sequence(self.actor_inputs(obs, cmd), actor_carry, resets)
        values, critic_carry = model.critic.forward_sequence(self.critic_inputs(obs, cmd), critic_carry, resets)
        variables = PPOVariables(log_probs=dist.log_prob(trajectory["action"]).sum(-1), values=values[..., 0],
                                 entropy=dist.entropy().sum(-1), action_std=dist.stddev.mean().detach())
        return variables, (actor_carry, critic_carry)


def policy_spec(task: PPOTask, env: Any, first: TensorDict) -> PolicySpec:
    """Measure the policy's sizes from the env's first step ``first`` (its ``observation``/``command``).

    Position actuators bias the actor's means by the start pose of the actuated joints, so an
    untrained policy holds the robot near home; other actuators get no bias.
    """
    from ktorch_sim.actuators import PositionActuators
    from ktorch_sim.components.base import joint_qpos_indices

    obs, cmd = first["observation"], first["command"]
    actuators = env.spec.actuators
    if isinstance(actuators, PositionActuators):
        bias = env._initial_qpos[joint_qpos_indices(env.model, actuators.joint_names)]
    else:
        bias = torch.zeros(env.num_actions, device=env.device)
    return PolicySpec(num_actor_inputs=task.actor_inputs(obs, cmd).shape[-1],
                      num_critic_inputs=task.critic_inputs(obs, cmd).shape[-1],
                      num_actions=env.num_actions, action_bias=bias.detach().clone())


def _concat(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.to(torch.float32) for p in parts], dim=-1)


def _launch(task_cls: type[PPOTask], config: Any, resume: Any = None, progress: bool = True, **sections: Any) -> Any:
    """Train ``task_cls`` with ``config`` from Python, as ksim's ``Task.launch(config)``.

    ``config`` is the task's config (an RLConfig subclass). Training sections (``ppo``,
    ``model``, ``logging``, ``checkpoint``) may be passed as dataclasses; any of their fields
    that ``config`` itself defines (a ksim config that subclasses PPOConfig carries
    ``learning_rate``, ``batch_size`` ...) are taken from ``config``. Returns the run directory.
    """
    import dataclasses

    from ktorch_sim.config import CheckpointConfig, LoggingConfig, ModelConfig, PPOConfig, TrainConfig, validate
    from ktorch_sim.trainer import Trainer

    built = {}
    for name, cls in (("ppo", PPOConfig), ("model", ModelConfig), ("logging", LoggingConfig),
                      ("checkpoint", CheckpointConfig)):
        section = sections.get(name) or cls()
        shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls) if hasattr(config, f.name)}
        built[name] = dataclasses.replace(section, **shared) if name not in sections else section
    train_config = TrainConfig(task_name=_recorded_task_name(task_cls), task=config, **built)
    validate(train_config, task_cls)
    return Trainer(train_config, resume=resume, task=task_cls(config)).train(progress=progress)


_WARNED_UNIMPORTABLE: set[str] = set()


def _recorded_task_name(task_cls: type[PPOTask]) -> str:
    """Return the ``task.name`` a launched run records: one ``tools/play.py`` and ``tools/export.py`` resolve.

    A task class defined in the script being run lives in module ``__main__``, a name no later
    process can import; :func:`ktorch_sim.config.importable_task_name` names it by its file (or
    ``python -m`` module) instead. When there is no such name (a notebook, a class defined inside a
    function) the run records ``module:ClassName`` and warns once that the tools will need
    ``--set task.name=...``.
    """
    import warnings

    from ktorch_sim.config import importable_task_name

    name = importable_task_name(task_cls)
    if name is not None:
        return name
    fallback = f"{task_cls.__module__}:{task_cls.__qualname__}"
    if fallback not in _WARNED_UNIMPORTABLE:
        _WARNED_UNIMPORTABLE.add(fallback)
        warnings.warn(f"task {task_cls.__qualname__} is not defined in a file Python can import again (a notebook, "
                      f"an interactive session or a function), so this run records task.name={fallback!r}; "
                      f"tools/play.py, tools/export.py and tools/render.py will need --set "
                      f"task.name=path/to/file.py:{task_cls.__name__} (or package.module:{task_cls.__name__}) "
                      "naming a file that defines it", UserWarning, stacklevel=4)
    return fallback

