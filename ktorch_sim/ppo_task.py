"""``PPOTask``: an :class:`RLTask` with an actor-critic policy, ksim's PPO hooks in torch.

A ksim user overrides the same hooks as in the K-Scale humanoid benchmark notebook:
``get_model``, ``get_optimizer``, ``run_actor``/``run_critic`` (observations and commands to a
distribution / value, with a recurrent carry), ``get_ppo_variables`` (a whole [B, T]
trajectory at once, with the carry reset where episodes ended) and ``sample_action``. The
defaults here build the GRU mixture-of-Gaussians actor-critic from the ``model`` config and
feed the actor the noisy observations and the critic the clean ones (asymmetric actor-critic).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict

from ktorch_sim.actuators import PositionActuators
from ktorch_sim.algorithms.normalizer import RunningNormalizer
from ktorch_sim.algorithms.ppo_config import PPOConfig
from ktorch_sim.components.base import joint_qpos_indices
from ktorch_sim.errors import ConfigError
from ktorch_sim.policies.actor_critic import ActorCritic, GRUActor, GRUCritic, MLPActor, MLPCritic
from ktorch_sim.policies.config import ModelConfig
from ktorch_sim.policy_mirror import PolicyMirrors, policy_mirrors
from ktorch_sim.utils.registry import resolve_object
from ktorch_sim.task import ConfigT, RLTask

LAUNCHER = "ktorch_sim.training.launch:launch"
"""What :meth:`PPOTask.launch` calls: the training layer's entry point, by name (it imports this module)."""

Carry = Any


@dataclass(frozen=True)
class PolicySpec:
    """What a policy is built from: sizes measured from the environment and the ``model`` settings.

    Attributes:
        num_actor_inputs / num_critic_inputs: width of each network's input vector.
        num_actions: the action vector's width.
        action_bias: the home pose in action order, the actor's mean offset.
        model: the config's ``[model]`` section (a :class:`~ktorch_sim.policies.config.ModelConfig`).
        normalize_inputs: whether inputs go through running mean/std normalizers
            (``ppo.normalize_observations``).
    """

    num_actor_inputs: int
    num_critic_inputs: int
    num_actions: int
    action_bias: torch.Tensor
    model: ModelConfig = field(default_factory=ModelConfig)
    normalize_inputs: bool = False


@dataclass
class PPOVariables:
    """What the PPO loss needs from the model for a [B, T] trajectory.

    Attributes:
        log_probs: log pi(a_t | history), summed over action dimensions, [B, T].
        values: V(s_t), [B, T].
        entropy: policy entropy summed over action dimensions, [B, T].
        action_std: mean standard deviation of the action distribution (for logging).
        action_mean: the distribution's mean action, [B, T, A], without gradient (the mirror loss's target,
            ``ppo.mirror_loss_coef``); None where a task's own ``get_ppo_variables`` leaves it out, and the
            mirror loss then runs the actor again for it.
    """

    log_probs: torch.Tensor
    values: torch.Tensor
    entropy: torch.Tensor
    action_std: torch.Tensor
    action_mean: torch.Tensor | None = None


@dataclass
class MirroredVariables:
    """What ``ppo.symmetry`` needs from the actor on a [B, T] trajectory's mirror image.

    Attributes:
        log_probs: log pi(M a_t | M o_t), summed over action dimensions, [B, T].
        mean_gap: 0.5 * sum_i ((mu_i(M o_t) - (M mu(o_t))_i) / sigma_i)^2, [B, T]: how far the policy is from
            its own mirror image, in standard deviations (the unmirrored mean carries no gradient).
    """

    log_probs: torch.Tensor
    mean_gap: torch.Tensor


class PPOTask(RLTask[ConfigT]):
    """RLTask plus the actor-critic hooks PPO trains through; see the module docstring."""

    normalizers: torch.nn.ModuleDict | None = None  # {"actor", "critic"} RunningNormalizers; see init_normalizers

    @classmethod
    def launch(cls, config: ConfigT, resume: Any = None, progress: bool = True, **sections: Any) -> Any:
        """Train this task from Python, as ksim's ``Task.launch(config)``; returns the run directory.

        The training loop sits above the task layer, so it is bound by name here, once, rather than
        imported: see :func:`ktorch_sim.training.launch.launch` for how the ``ppo``/``model``/
        ``logging``/``checkpoint`` sections are formed.
        """
        return resolve_object(LAUNCHER)(cls, config, resume=resume, progress=progress, **sections)

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

        With ``ppo.normalizer_update = "rollout"`` the trainer calls this after the PPO update of a
        rollout, never during it: the update re-normalizes the stored raw inputs and must see each
        one as it was when the action was sampled, or the probability ratio starts away from 1
        (measured: a KL of 0.5 and 80 % clipped samples in the first update when the statistics
        moved during the rollout). With ``"step"`` the collector calls :meth:`observe_inputs` every step
        instead and stores the normalized inputs (:class:`ktorch_sim.algorithms.rollout.RolloutCollector`).
        """
        if self.normalizers is None:
            return
        self.normalizers["actor"].update(self.actor_features(observations, commands), mask)
        self.normalizers["critic"].update(self.critic_features(observations, commands), mask)

    def observe_inputs(self, observations: TensorDict, commands: TensorDict) -> tuple[torch.Tensor, torch.Tensor]:
        """One step's actor and critic inputs [N, D], merged into the input statistics first and then
        normalized with them (``ppo.normalizer_update = "step"``): what the policy reads at this step,
        computed once for the collector to store."""
        actor, critic = self.actor_features(observations, commands), self.critic_features(observations, commands)
        if self.normalizers is not None:
            self.normalizers["actor"].update(actor)
            self.normalizers["critic"].update(critic)
        return self._normalized("actor", actor), self._normalized("critic", critic)

    def init_normalizers(self, spec: PolicySpec) -> None:
        """Give this task fresh input normalizers when ``spec.normalize_inputs`` (else none)."""
        self.normalizers = None
        if spec.normalize_inputs:
            self.normalizers = torch.nn.ModuleDict({"actor": RunningNormalizer(spec.num_actor_inputs),
                                                    "critic": RunningNormalizer(spec.num_critic_inputs)})

    def _normalized(self, which: str, x: torch.Tensor) -> torch.Tensor:
        return x if self.normalizers is None else self.normalizers[which](x)

    # --- the model ----------------------------------------------------------------------------

    def get_model(self, spec: PolicySpec) -> torch.nn.Module:
        """The actor-critic (default: GRU mixture of Gaussians, or MLP, per ``spec.model``; ``model.critic``
        picks a feed-forward critic for the GRU actor). The actor is built first (the order of the draws)."""
        m = spec.model
        if m.policy == "gru":
            kw = dict(hidden_size=m.hidden_size, depth=m.depth, sequence_method=m.sequence_method, init=m.init,
                      head_hidden=tuple(m.head_hidden), activation=m.activation)
            actor = GRUActor(spec.num_actor_inputs, spec.num_actions, mean_bias=spec.action_bias, **kw,
                             num_mixtures=m.num_mixtures, min_std=m.min_std, max_std=m.max_std, var_scale=m.var_scale,
                             state_dependent_std=m.state_dependent_std, init_std=m.init_std)
        else:
            actor = MLPActor(spec.num_actor_inputs, spec.num_actions, hidden_sizes=tuple(m.mlp_hidden),
                             init_std=m.init_std, mean_bias=spec.action_bias, activation=m.activation, init=m.init,
                             history=m.history)
        if m.policy == "gru" and m.critic == "same":
            return ActorCritic(actor, GRUCritic(spec.num_critic_inputs, **kw))
        return ActorCritic(actor, MLPCritic(spec.num_critic_inputs, hidden_sizes=tuple(m.mlp_hidden),
                                            activation=m.activation, init=m.init))

    def get_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer | None:
        """An optimizer for ``model``, or None (the default) for PPO's own AdamW from the ``ppo`` section.

        PPO schedules the learning rate of whatever optimizer this returns
        (:meth:`ktorch_sim.algorithms.ppo.PPO.start_iteration`).
        """
        return None

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
        action = dist.deterministic() if argmax else dist.sample(generator)
        extras = {"log_prob": dist.log_prob(action).sum(-1), "value": value[..., 0]}
        return action, (actor_carry, critic_carry), extras

    def get_ppo_variables(self, model: torch.nn.Module, trajectory: TensorDict, carry: Carry
                          ) -> tuple[PPOVariables, Carry]:
        """Log-probs, values and entropy for a [B, T] trajectory, replayed from ``carry``.

        The carry is zeroed before step t when step t-1 ended an episode (``done``), exactly as
        during the rollout. Inputs the rollout stored already normalized (``actor_input`` /
        ``critic_input``, ``ppo.normalizer_update = "step"``) are read as stored.
        """
        resets = _replay_resets(trajectory)
        actor_x = _replay_inputs(self, trajectory, "actor")
        actor_carry, critic_carry = carry
        dist, actor_carry = model.actor.forward_sequence(actor_x, actor_carry, resets)
        values, critic_carry = model.critic.forward_sequence(_replay_inputs(self, trajectory, "critic"), critic_carry,
                                                             resets)
        variables = PPOVariables(log_probs=dist.log_prob(trajectory["action"]).sum(-1), values=values[..., 0],
                                 entropy=dist.entropy().sum(-1), action_std=dist.stddev.mean().detach(),
                                 action_mean=dist.mean.detach())
        return variables, (actor_carry, critic_carry)

    def get_policy_mirrors(self, env: Any, first: TensorDict) -> PolicyMirrors:
        """The left-right mirror of the actor's raw inputs and of the actions (``ppo.symmetry = "augment"``), from
        the model's geometry and each component's ``mirror()`` (:func:`ktorch_sim.policy_mirror.policy_mirrors`);
        ``first`` is the env's first step. Override to give maps of your own."""
        return policy_mirrors(self, env, first)

    def get_mirrored_variables(self, model: torch.nn.Module, trajectory: TensorDict, carry: Carry,
                               mirrors: PolicyMirrors, action_mean: torch.Tensor | None = None) -> MirroredVariables:
        """The actor on the mirror image of a [B, T] trajectory of a feed-forward actor (``ppo.symmetry``).

        The raw inputs are mirrored, then normalized as the actor's own are. Returns the log-probability of each
        mirrored action and, per step, how far the policy is from its own mirror image: KL(pi(.|M o) || M pi(.|o))
        for the Gaussian head with the unmirrored mean held fixed, i.e. half the squared gap between the means
        in units of the standard deviation (rsl_rl's mirror loss, measured in standard deviations).
        ``action_mean``: the actor's mean on the unmirrored trajectory when the caller has it
        (:attr:`PPOVariables.action_mean`); None runs the actor for it here.
        """
        resets = _replay_resets(trajectory)
        inputs = mirrors.actor_features.apply(self.actor_features(trajectory["observation"], trajectory["command"]))
        dist, _ = model.actor.forward_sequence(self._normalized("actor", inputs), carry[0], resets)
        if action_mean is None:
            with torch.no_grad():
                own, _ = model.actor.forward_sequence(_replay_inputs(self, trajectory, "actor"), carry[0], resets)
            action_mean = own.mean
        target = mirrors.actions.apply(action_mean.detach())
        gap = 0.5 * ((dist.mean - target) / dist.stddev).square().sum(-1)
        return MirroredVariables(log_probs=dist.log_prob(mirrors.actions.apply(trajectory["action"])).sum(-1),
                                 mean_gap=gap)

    def get_values(self, model: torch.nn.Module, trajectory: TensorDict, carry: Carry) -> torch.Tensor:
        """Values [B, T] for a [B, T] trajectory replayed from ``carry``: the critic's half of
        :meth:`get_ppo_variables`, for PPO's value-only steps (after ``ppo.target_kl`` has stopped the actor's
        steps for the rest of an update, the actor's forward pass would be thrown away). A task that overrides
        :meth:`get_ppo_variables` and not this is replayed through :meth:`get_ppo_variables` (:meth:`value_replay`)."""
        values, _ = model.critic.forward_sequence(_replay_inputs(self, trajectory, "critic"), carry[1],
                                                  _replay_resets(trajectory))
        return values[..., 0]

    def value_replay(self) -> Callable[[torch.nn.Module, TensorDict, Carry], torch.Tensor] | None:
        """:meth:`get_values` where it computes what :meth:`get_ppo_variables` would (neither is overridden, or
        ``get_values`` is), else None: PPO then takes the values of a value-only step from the full replay."""
        own_variables = getattr(self.get_ppo_variables, "__func__", None) is PPOTask.get_ppo_variables
        own_values = getattr(self.get_values, "__func__", None) is PPOTask.get_values
        return self.get_values if own_variables or not own_values else None


def _replay_inputs(task: Any, trajectory: TensorDict, which: str) -> torch.Tensor:
    """The actor's or the critic's inputs over a trajectory: as the rollout stored them, else built by ``task``."""
    key = f"{which}_input"
    if key in trajectory.keys():
        return trajectory[key]
    build = task.actor_inputs if which == "actor" else task.critic_inputs
    return build(trajectory["observation"], trajectory["command"])


def _replay_resets(trajectory: TensorDict) -> torch.Tensor:
    """[B, T] bool: the carry is zeroed before step t when step t-1 ended an episode."""
    done = trajectory["next", "done"][..., 0]
    resets = torch.zeros_like(done)
    resets[:, 1:] = done[:, :-1]
    return resets


def policy_spec(task: PPOTask, env: Any, first: TensorDict, model: ModelConfig | None = None,
                normalize_inputs: bool = False) -> PolicySpec:
    """Measure the policy's sizes from the env's first step ``first`` (its ``observation``/``command``).

    Position actuators bias the actor's means by the start pose of the actuated joints, so an
    untrained policy holds the robot near home; other actuators get no bias.
    """
    obs, cmd = first["observation"], first["command"]
    actuators = env.spec.actuators
    if isinstance(actuators, PositionActuators):
        bias = env._initial_qpos[joint_qpos_indices(env.model, actuators.joint_names)]
    else:
        bias = torch.zeros(env.num_actions, device=env.device)
    return PolicySpec(num_actor_inputs=task.actor_inputs(obs, cmd).shape[-1],
                      num_critic_inputs=task.critic_inputs(obs, cmd).shape[-1],
                      num_actions=env.num_actions, action_bias=bias.detach().clone(),
                      model=model or ModelConfig(), normalize_inputs=normalize_inputs)


def normalizes_inputs(task: PPOTask, model: ModelConfig, setting: bool | None, by_default: bool | None = None) -> bool:
    """Whether ``task``'s policy inputs are normalized under ``ppo.normalize_observations = setting``.

    None (automatic): ``by_default``, what the run's ``[ppo]`` section makes of it
    (:meth:`~ktorch_sim.algorithms.ppo_config.PPOConfig.normalizes_inputs_by_default`: the gru, and the mlp of a
    run with a step budget; None: that rule for the default section, a run without one). The normalizers sit between
    :meth:`PPOTask.actor_features` and :meth:`PPOTask.actor_inputs`; a task that replaces ``actor_inputs`` or
    ``critic_inputs`` themselves feeds its networks directly, so the automatic setting leaves it raw and ``true``
    is refused.
    """
    own_inputs = [name for name in ("actor_inputs", "critic_inputs")
                  if getattr(type(task), name) is not getattr(PPOTask, name)]
    if setting is None:
        if by_default is None:
            by_default = PPOConfig().normalizes_inputs_by_default(model)
        return by_default and not own_inputs
    if setting and own_inputs:
        raise ConfigError(f"is true, but {type(task).__name__} overrides {' and '.join(own_inputs)}, which then "
                          "skip the normalizers: override actor_features / critic_features instead (the raw "
                          "inputs that the normalizers read), or set ppo.normalize_observations = false",
                          key="ppo.normalize_observations")
    return setting


def build_policy(task: PPOTask, env: Any, first: TensorDict, model: ModelConfig | None = None,
                 normalize_inputs: bool | None = False) -> tuple[torch.nn.Module, PolicySpec]:
    """Build ``task``'s actor-critic for ``env`` on the env's device: the one recipe that training,
    playback and training videos share.

    ``normalize_inputs`` is ``ppo.normalize_observations`` (:func:`normalizes_inputs` resolves none).
    Measures the :class:`PolicySpec`, gives the task its input normalizers
    (:meth:`PPOTask.init_normalizers`) and calls :meth:`PPOTask.get_model`. Returns the model
    (on ``env.device``, fresh weights) and the spec.
    """
    model = model or ModelConfig()
    spec = policy_spec(task, env, first, model, normalizes_inputs(task, model, normalize_inputs))
    task.init_normalizers(spec)
    if task.normalizers is not None:
        task.normalizers.to(env.device)
    return task.get_model(spec).to(env.device), spec


def _concat(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.to(torch.float32) for p in parts], dim=-1)
