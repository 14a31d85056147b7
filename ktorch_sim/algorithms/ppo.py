"""PPO: advantages, the clipped losses, and the minibatch update over whole environment sequences.

Pure functions first (easy to test against hand-worked numbers), then :class:`PPO`, which
owns the optimizer step. Design choices, each a documented departure from or match with ksim
and rsl_rl (the quirk numbers are ksim's PPO differences as this project lists them):

- GAE is torchrl's ``generalized_advantage_estimate`` on [N, T, 1] tensors (time_dim=-2),
  computed once per rollout with the rollout's values (rsl_rl), not re-computed with the
  current critic in every minibatch (ksim's quirk #2).
- Time-limit truncations bootstrap: the next-state value of a truncated step is V(s_t), the
  value of the last observed state (the terminal observation is replaced by the reset one),
  the same one-step approximation ksim uses for "success" terminations. Failures do not.
- The bootstrap at the end of a rollout is V(s_T) from the critic run one step further
  (ksim repeats V(s_{T-1}): quirk #4).
- Losses are means over valid steps: every step is valid except transitions whose physics
  broke (``bad_physics``) or whose action was not finite (``bad_action``). Those are zeroed in
  the buffer before anything reads it, so NaN or garbage there cannot reach a loss or a
  gradient (a ``0 * NaN`` in a masked mean would), and with value, next value and reward zero
  their advantage is exactly 0: the step before sees the episode cut off at the last good
  state, bootstrapped from its value, and nothing of the broken step leaks into it.
- An update whose loss or gradient norm is not finite, or whose minibatch holds no valid
  step, never reaches the optimizer: it is skipped and counted (``PPO.skipped_updates``).
- Minibatches: shuffled single transitions for feed-forward policies (SB3, CleanRL); for
  recurrent ones, sequences of ``ppo.sequence_length`` steps across worlds, each replayed from
  the carry at its first step (truncated BPTT over the sequence; the whole rollout by default).
- Advantages are normalized per minibatch for single transitions (SB3) and once per rollout for
  sequences (rsl_rl): a minibatch of a few correlated sequences normalized by its own statistics
  cost an MLP trained on 16-step sequences three quarters of its Hopper score (docs/learning.md).
- Rewards may be clipped (``ppo.reward_clip``) and scaled by the running std of the discounted
  return (``ppo.normalize_rewards``, as SB3's VecNormalize) before the advantages. When that scale
  moves, ``ppo.preserve_values`` multiplies the critic's output layer and the rollout's values by
  old / new scale, so the values and the rewards of one rollout share a scale (PopArt).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch
from torchrl.objectives.value.functional import generalized_advantage_estimate

from ktorch_sim.algorithms.carry import index_carry, is_recurrent, map_carry, reset_carry, stack_carries
from ktorch_sim.algorithms.normalizer import ReturnScaler
from ktorch_sim.errors import ConfigError
from ktorch_sim.utils.phase_progress import tick


class Step(enum.Enum):
    """What :meth:`PPO._minibatch` did with its minibatch."""

    APPLIED = "applied"  # an optimizer step on the whole loss
    CRITIC_ONLY = "critic_only"  # an optimizer step on the value loss alone: ppo.target_kl has stopped the actor
    SKIPPED = "skipped"  # no step: the loss or the gradient was not finite, or no transition was valid
    CRITIC_ONLY_SKIPPED = "critic_only_skipped"  # no step, as SKIPPED, on a minibatch where the actor had stopped
    STOPPED = "stopped"  # no step: ppo.target_kl ends the update here (target_kl_stops = "update")

    @property
    def stepped(self) -> bool:
        """Whether the optimizer took a step."""
        return self in (Step.APPLIED, Step.CRITIC_ONLY)

    @property
    def actor_stopped(self) -> bool:
        """Whether the actor takes no more steps in this update (even if this minibatch's step was skipped)."""
        return self in (Step.CRITIC_ONLY, Step.CRITIC_ONLY_SKIPPED)


@dataclass(frozen=True)
class PPOLossConfig:
    """The loss hyperparameters (a subset of the training config's ``ppo`` section)."""

    clip_param: float = 0.2
    value_loss_coef: float = 0.5
    use_clipped_value_loss: bool = True
    entropy_coef: float = 0.008
    normalize_advantages: bool = True
    log_clip_value: float = 5.0


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, dones: torch.Tensor,
                terminated: torch.Tensor, truncated: torch.Tensor, gamma: float, lam: float,
                bootstrap_truncated: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and value targets, both [N, T], for one rollout.

    Args:
        rewards, values: [N, T] per step.
        next_values: [N, T], V(s_{t+1}) as seen by the critic (the value of the observation
            after step t; after a reset that is the new episode's first observation).
        dones, terminated, truncated: [N, T] bool, after step t.
        gamma, lam: discount and GAE lambda.
        bootstrap_truncated: bootstrap a truncated step's return (else it counts as a termination).
    """
    if not bootstrap_truncated:
        terminated = terminated | truncated
    # A truncated step's next observation belongs to the next episode: bootstrap from V(s_t).
    next_values = torch.where(truncated, values, next_values)
    adv, target = generalized_advantage_estimate(
        gamma, lam, values[..., None], next_values[..., None], rewards[..., None], dones[..., None],
        terminated[..., None], time_dim=-2)
    return adv[..., 0], target[..., 0]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over entries where ``mask`` is true (0 if none); masked-out NaN/inf are ignored."""
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp_min(1).to(x.dtype)


def invalid_transitions(nxt: object) -> torch.Tensor:
    """Bool [N, T]: steps flagged ``bad_physics`` or ``bad_action`` in a rollout's ``next``."""
    invalid = nxt["bad_physics"]
    if "bad_action" in nxt.keys():
        invalid = invalid | nxt["bad_action"]
    return invalid


def zero_invalid_transitions(buffer: object, invalid: torch.Tensor) -> None:
    """Zero every floating-point entry of the [N, T] ``buffer`` at ``invalid`` steps, in place.

    Observations, commands, actions, log-probs, values, next values, rewards and reward terms
    of a broken step are all zero afterwards; the recurrent replay is unaffected beyond that
    step because a broken step always ends its episode (the carry is zeroed after it).
    """
    for value in buffer.values(include_nested=True, leaves_only=True):
        if value.is_floating_point():
            value.masked_fill_(invalid.view(*invalid.shape, *[1] * (value.dim() - invalid.dim())), 0.0)


def explained_variance(values: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - Var(targets - values) / Var(targets) over the masked entries (1: perfect critic, <= 0: useless)."""
    def var(x: torch.Tensor) -> torch.Tensor:
        return masked_mean((x - masked_mean(x, mask)) ** 2, mask)

    return 1.0 - var(targets - values) / var(targets).clamp_min(1e-8)


def normalize(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std over the masked entries, std floored at 1e-6."""
    mean = masked_mean(x, mask)
    std = masked_mean((x - mean) ** 2, mask).sqrt().clamp_min(1e-6)
    return (x - mean) / std


def ppo_losses(log_probs: torch.Tensor, old_log_probs: torch.Tensor, values: torch.Tensor, old_values: torch.Tensor,
               advantages: torch.Tensor, value_targets: torch.Tensor, entropy: torch.Tensor, mask: torch.Tensor,
               config: PPOLossConfig, mirrored_log_probs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The PPO loss terms (TorchRL names ``loss_*``) and diagnostics, for [B, T] inputs.

    ``log_probs``/``old_log_probs`` are summed over action dimensions; ``entropy`` too.
    Returns ``loss_objective``, ``loss_critic``, ``loss_entropy`` (sum them for the total)
    and detached ``kl``, ``clip_fraction``, ``entropy``, ``ratio``.

    ``mirrored_log_probs`` (``ppo.symmetry = "augment"``): the current policy's log-probability of each mirrored
    action given the mirrored observation. The objective is then the mean over both halves of the doubled
    batch (rsl_rl's augmentation): the mirrored half shares the advantages and is weighted against
    ``old_log_probs``, the probability with which the collected action was drawn (the mirror image of the
    rollout's policy drew the mirrored action with that same probability). The KL and clip fraction stay the
    collected half's; ``mirror_ratio`` and ``mirror_clip_fraction`` describe the mirrored half.
    """
    assert log_probs.shape == old_log_probs.shape == values.shape == advantages.shape == mask.shape
    if config.normalize_advantages:
        advantages = normalize(advantages, mask)
    objective, ratio, log_ratio = _clipped_surrogate(log_probs, old_log_probs, advantages, mask, config)
    with torch.no_grad():
        kl = masked_mean((ratio - 1.0) - log_ratio, mask)  # k3 estimator of KL(old || new), >= 0
        clip_fraction = masked_mean(((ratio - 1.0).abs() > config.clip_param).float(), mask)
    out = {}
    if mirrored_log_probs is not None:
        mirrored, mirror_ratio, _ = _clipped_surrogate(mirrored_log_probs, old_log_probs, advantages, mask, config)
        objective = 0.5 * (objective + mirrored)
        with torch.no_grad():
            out["mirror_ratio"] = masked_mean(mirror_ratio, mask)
            out["mirror_clip_fraction"] = masked_mean(((mirror_ratio - 1.0).abs() > config.clip_param).float(), mask)
    return {
        "loss_objective": objective,
        "loss_critic": value_loss(values, old_values, value_targets, mask, config),
        "loss_entropy": -config.entropy_coef * masked_mean(entropy, mask),
        "kl": kl,
        "clip_fraction": clip_fraction,
        "entropy": masked_mean(entropy, mask).detach(),
        "ratio": masked_mean(ratio, mask).detach(),
        **out,
    }


def _clipped_surrogate(log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
                       mask: torch.Tensor, config: PPOLossConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped objective as a loss (the negated masked mean), the ratio and the clamped log-ratio."""
    log_ratio = torch.clamp(log_probs - old_log_probs, -config.log_clip_value, config.log_clip_value)
    ratio = torch.exp(log_ratio)
    surrogate = torch.min(ratio * advantages,
                          torch.clamp(ratio, 1.0 - config.clip_param, 1.0 + config.clip_param) * advantages)
    return -masked_mean(surrogate, mask), ratio, log_ratio


def value_loss(values: torch.Tensor, old_values: torch.Tensor, value_targets: torch.Tensor, mask: torch.Tensor,
               config: PPOLossConfig) -> torch.Tensor:
    """The critic's loss ``loss_critic`` of :func:`ppo_losses`: half the squared error to the targets (the larger of
    the clipped and unclipped errors with ``use_clipped_value_loss``), times ``value_loss_coef``."""
    value_error = (values - value_targets) ** 2
    if config.use_clipped_value_loss:
        clipped = old_values + torch.clamp(values - old_values, -config.clip_param, config.clip_param)
        value_error = torch.max(value_error, (clipped - value_targets) ** 2)
    return config.value_loss_coef * 0.5 * masked_mean(value_error, mask)


def learning_rate_at(iteration: int, base: float, warmup: int, schedule: str, total: int, min_fraction: float) -> float:
    """Learning rate for ``iteration``: linear warmup from 1 % then constant, cosine or linear decay
    to ``min_fraction * base`` at ``total`` iterations (decays need ``total > warmup``)."""
    if warmup > 0 and iteration < warmup:
        return base * (0.01 + 0.99 * iteration / warmup)
    if schedule in ("cosine", "linear") and total > warmup:
        progress = min(1.0, (iteration - warmup) / (total - warmup))
        remaining = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
        return base * (min_fraction + (1 - min_fraction) * remaining)
    return base


def adamw(model: torch.nn.Module, config: object) -> torch.optim.Optimizer:
    """AdamW with the ``ppo`` section's learning rate, weight decay and epsilon.

    The fused implementation (one kernel for every parameter, on CUDA and on the CPU) is used:
    on the CPU it cut the optimizer step of a small MLP about 4x against the per-tensor loop.
    """
    return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                             eps=config.adam_eps, fused=True)


class AdaptiveKL:
    """rsl_rl's and ksim's KL controllers: scale the learning rate (rsl_rl) or the KL penalty
    coefficient (ksim) by 1.5 when the measured KL leaves [desired / 2 (or 1.5), desired * 2 (1.5)]."""

    def __init__(self, desired_kl: float, kl_coef: float, adapt_lr: bool, adapt_coef: bool) -> None:
        """Start from ``kl_coef`` and the optimizer's learning rate."""
        self.desired_kl = desired_kl
        self.kl_coef = kl_coef
        self.adapt_lr = adapt_lr
        self.adapt_coef = adapt_coef
        self.lr_scale = 1.0

    def update(self, kl: float) -> None:
        """Adjust after a minibatch given its KL (a host float)."""
        if self.adapt_coef:
            if kl > 1.5 * self.desired_kl:
                self.kl_coef = min(self.kl_coef * 1.5, 1e2)
            elif kl < self.desired_kl / 1.5:
                self.kl_coef = max(self.kl_coef / 1.5, 1e-8)
        if self.adapt_lr:
            if kl > 2.0 * self.desired_kl:
                self.lr_scale = max(self.lr_scale / 1.5, 1e-3)
            elif kl < self.desired_kl / 2.0:
                self.lr_scale = min(self.lr_scale * 1.5, 1e2)

    def state_dict(self) -> dict[str, float]:
        """Checkpointed state."""
        return {"kl_coef": self.kl_coef, "lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore from a checkpoint."""
        self.kl_coef = float(state["kl_coef"])
        self.lr_scale = float(state["lr_scale"])


def require_feed_forward_actor(recurrent: bool) -> None:
    """Refuse ``ppo.symmetry = "augment"`` for a recurrent actor (one ConfigError line): its carry, the memory of the
    unmirrored episode, has no mirror image to replay the mirrored inputs from."""
    if recurrent:
        raise ConfigError('"augment" needs a feed-forward actor (model.policy = "mlp" without model.history): a '
                          "recurrent actor's memory has no mirror image to replay the mirrored inputs from",
                          key="ppo.symmetry")


class PPO:
    """One PPO update per rollout: ``num_passes`` epochs over shuffled minibatches.

    What a minibatch holds depends on the policy (:meth:`PPOConfig.layout`; recurrent when its carry
    holds state): a feed-forward policy trains on single transitions drawn across worlds and time
    (SB3, CleanRL); a recurrent one on sequences of ``ppo.sequence_length`` steps drawn across worlds,
    each replayed from the carry the policy had at its first step. Either way a
    minibatch holds about ``ppo.minibatch_size`` transitions.

    The algorithm owns its optimization state, as rsl_rl's PPO does: the optimizer (the task's
    ``get_optimizer`` when it returns one, else AdamW from the ``ppo`` section), the learning-rate
    schedule (:meth:`start_iteration`), the adaptive KL controller, the return scaler of
    ``ppo.normalize_rewards`` and their checkpointed state (:meth:`state_dict`). The trainer only
    tells it the iteration and reads :attr:`learning_rate` for its metrics.

    Metrics stay on the device and are returned as tensors; the trainer reads them once per
    iteration. The per-minibatch host reads are the KL when an adaptive controller is on, and
    the check (one bool) that keeps a non-finite loss or an all-masked minibatch from reaching
    the optimizer; ``skipped_updates`` counts those, cumulatively.
    """

    def __init__(self, task: object, model: torch.nn.Module, config: object, generator: torch.Generator, *,
                 num_envs: int | None = None, optimizer: torch.optim.Optimizer | None = None) -> None:
        """``config`` is the training config's ``ppo`` section (a PPOConfig); ``num_envs`` sizes the
        return scaler of ``ppo.normalize_rewards`` (required then; automatic: on for a recurrent ``model``
        whose ``task`` has input normalizers, :meth:`PPOConfig.scales_returns`); ``optimizer`` replaces the
        one the task or the config would give (tests)."""
        self.task = task
        self.model = model
        self.config = config
        self.generator = generator
        self.optimizer = optimizer or task.get_optimizer(model) or adamw(model, config)
        self.reward_scaler: ReturnScaler | None = None
        recurrent = is_recurrent(model.initial_carry(1))
        inputs_normalized = getattr(task, "normalizers", None) is not None
        if config.scales_returns(recurrent=recurrent, inputs_normalized=inputs_normalized):
            if num_envs is None:
                raise ValueError("ppo.normalize_rewards needs PPO(num_envs=...) to size its return statistics")
            device = next(model.parameters()).device
            self.reward_scaler = ReturnScaler(num_envs, config.gamma).to(device)
        self.value_output = value_output_layer(model, config, scales_returns=self.reward_scaler is not None)
        self.loss_config = PPOLossConfig(clip_param=config.clip_param, value_loss_coef=config.value_loss_coef,
                                         use_clipped_value_loss=config.use_clipped_value_loss,
                                         entropy_coef=config.entropy_coef,
                                         normalize_advantages=config.normalize_advantages,
                                         log_clip_value=config.log_clip_value)
        self.kl = AdaptiveKL(config.desired_kl, config.kl_coef, adapt_lr=config.adaptive_lr,
                             adapt_coef=config.adaptive_kl)
        self.base_lr = config.learning_rate
        self.clip_groups = gradient_clip_groups(
            model, per_network=config.clips_gradients_per_network(recurrent, inputs_normalized),
            required=config.grad_clip_scope == "per_network")
        self.skipped_updates = 0
        self.mirrors = None  # ppo.symmetry = "augment": the task's PolicyMirrors, given by set_mirrors
        # Several training processes (ktorch_sim.training.distributed sets these): average the gradients
        # over processes (summing the small ``extras`` tensor with them), and the KL before adapting to it.
        self.average_gradients: Callable[[Iterable[torch.nn.Parameter], torch.Tensor], torch.Tensor] = _keep_extras
        self.average_kl: Callable[[torch.Tensor], torch.Tensor] = _identity

    @classmethod
    def from_train_config(cls, task: object, model: torch.nn.Module, config: object, generator: torch.Generator, *,
                          num_envs: int | None = None) -> PPO:
        """Build from the whole training config (a TrainConfig): PPO reads its ``ppo`` section; a subclass
        may read its own (:class:`ktorch_sim.algorithms.amp.AMPPPO`: ``amp``)."""
        return cls(task, model, config.ppo, generator, num_envs=num_envs)

    @property
    def learning_rate(self) -> float:
        """The learning rate in use: the schedule's, times the adaptive-KL scale."""
        return float(self.optimizer.param_groups[0]["lr"])

    def start_iteration(self, iteration: int, total_iterations: int) -> None:
        """Set the scheduled learning rate for ``iteration`` of ``total_iterations`` (0: unlimited):
        ``ppo.warmup_iterations`` of linear warmup, then constant or cosine (``ppo.lr_schedule``)."""
        cfg = self.config
        self.set_learning_rate(learning_rate_at(iteration, cfg.learning_rate, cfg.warmup_iterations, cfg.lr_schedule,
                                                total_iterations, cfg.min_lr_fraction))

    def set_learning_rate(self, lr: float) -> None:
        """Use ``lr`` (times the adaptive-KL scale) in every parameter group from now on."""
        self.base_lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr * self.kl.lr_scale

    def set_mirrors(self, mirrors: object) -> None:
        """Train the actor on each minibatch's mirror image too (``ppo.symmetry = "augment"``); ``mirrors`` is the
        task's :class:`ktorch_sim.policy_mirror.PolicyMirrors`. The actor must be feed-forward
        (:func:`require_feed_forward_actor`)."""
        self.mirrors = mirrors

    def synchronized_modules(self) -> list[torch.nn.Module]:
        """Modules besides the policy whose state every torchrun rank must share (a subclass's extra networks):
        the trainer broadcasts rank 0's copies at the start and merges their running normalizers over ranks."""
        return []

    def state_dict(self) -> dict[str, object]:
        """The checkpoint entries this algorithm owns: ``optimizer``, ``reward_scaler`` and ``ppo``
        (adaptive-KL state and the skipped-update count), under the checkpoint format's keys."""
        return {"optimizer": self.optimizer.state_dict(),
                "reward_scaler": None if self.reward_scaler is None else self.reward_scaler.state_dict(),
                "ppo": {**self.kl.state_dict(), "skipped_updates": self.skipped_updates}}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state_dict` wrote (a checkpoint without a return scaler keeps the fresh one)."""
        self.optimizer.load_state_dict(state["optimizer"])
        if self.reward_scaler is not None and state.get("reward_scaler") is not None:
            self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.kl.load_state_dict(state["ppo"])
        self.skipped_updates = int(state["ppo"].get("skipped_updates", 0))

    def update(self, buffer: object, start_carry: object) -> dict[str, torch.Tensor]:
        """Compute advantages for the rollout in ``buffer`` and train on it; returns mean metrics."""
        cfg = self.config
        nxt = buffer["next"]
        invalid = invalid_transitions(nxt)
        zero_invalid_transitions(buffer, invalid)
        valid = ~invalid
        done = nxt["done"][..., 0]
        rewards = nxt["reward"][..., 0]
        if cfg.reward_clip is not None:
            rewards = rewards.clamp(-cfg.reward_clip, cfg.reward_clip)
        if self.reward_scaler is not None:
            previous_scale = self.reward_scaler.scale() if self.value_output is not None else None
            rewards = self.reward_scaler(rewards, done)
            if previous_scale is not None:
                preserve_values(self.value_output, (buffer["value"], buffer["next_value"]),
                                previous_scale / self.reward_scaler.scale())
        advantages, targets = compute_gae(rewards, buffer["value"], buffer["next_value"], done,
                                          nxt["terminated"][..., 0], nxt["truncated"][..., 0], cfg.gamma, cfg.lam,
                                          cfg.bootstrap_truncated)
        num_envs, num_steps = buffer.batch_size
        recurrent = is_recurrent(start_carry)
        length, per_minibatch = cfg.layout(num_envs, num_steps, recurrent)
        target_kl = cfg.kl_target(recurrent)
        scope = cfg.advantage_scope(sequences=length > 1)
        if scope == "rollout":
            advantages = normalize(advantages, valid)  # once, over every valid transition (rsl_rl)
        per_minibatch_norm = scope == "minibatch"
        carries = self._sequence_carries(buffer, start_carry, length)
        batch = buffer.exclude("next_value", ("next", "reward_terms"))
        batch.update({"advantage": advantages, "value_target": targets, "valid": valid})
        batch = batch.reshape(num_envs * num_steps // length, length)
        sums: dict[str, torch.Tensor] = {}
        count = 0
        done, total = 0, cfg.num_passes * -(-batch.batch_size[0] // per_minibatch)
        recent_kl: deque[float] = deque(maxlen=cfg.target_kl_window)  # the KLs the ppo.target_kl check averages
        stopped = False  # ppo.target_kl ended the update (target_kl_stops = "update")
        actor_stopped = False  # ... or only the actor's steps (target_kl_stops = "actor")
        for _ in range(cfg.num_passes):
            order = torch.randperm(batch.batch_size[0], generator=self.generator, device=self.generator.device)
            for idx in order.to(buffer.device).split(per_minibatch):
                traj, carry = batch[idx], index_carry(carries, idx)
                metrics, step = self._minibatch(traj, carry, target_kl if count > 0 and not actor_stopped else None,
                                                normalize_advantages=per_minibatch_norm, critic_only=actor_stopped,
                                                recent_kl=recent_kl)
                if step.stepped:
                    metrics.update(self.after_optimizer_step())
                done += 1
                tick("update", done, total, "minibatches")  # host counters only: no GPU sync
                if step is Step.STOPPED:
                    stopped = True
                    break
                actor_stopped = actor_stopped or step.actor_stopped
                if step is Step.APPLIED:
                    for k, v in metrics.items():
                        sums[k] = sums[k] + v if k in sums else v.clone()
                    count += 1
            if stopped:
                break
        # Means over the applied updates; if every one was skipped, the last (non-finite) metrics show why.
        out = {k: v / count for k, v in sums.items()} if count else dict(metrics)
        if target_kl is not None:
            out["minibatches_applied"] = torch.tensor(float(count), device=advantages.device)
        out["advantage_mean"] = masked_mean(advantages, valid)
        out["value_target_mean"] = masked_mean(targets, valid)
        out["explained_variance"] = explained_variance(buffer["value"], targets, valid)
        if self.reward_scaler is not None:
            out["reward_scale"] = self.reward_scaler.scale().reshape(())
        return out

    @torch.no_grad()
    def _sequence_carries(self, buffer: object, start_carry: object, length: int) -> object:
        """The carry before each ``length``-step sequence of the rollout, rows ordered as the reshape.

        For a feed-forward policy the (empty) carries are just repeated. For a recurrent one the
        rollout is replayed once with the current weights, which are the weights that collected
        it (no gradient step has happened yet), so the carries equal those of the rollout.
        """
        num_envs, num_steps = buffer.batch_size
        chunks = num_steps // length
        if chunks == 1:
            return start_carry
        if not is_recurrent(start_carry):
            return map_carry(start_carry, lambda c: c.repeat_interleave(chunks, dim=0))
        done = buffer["next", "done"][..., 0]
        carry, starts = start_carry, []
        for c in range(chunks):
            starts.append(carry)
            if c == chunks - 1:
                break
            _, carry = self.task.get_ppo_variables(self.model, buffer[:, c * length:(c + 1) * length], carry)
            carry = reset_carry(carry, done[:, (c + 1) * length - 1])
        return stack_carries(starts)

    def after_optimizer_step(self) -> dict[str, torch.Tensor]:
        """Called after each minibatch on which the optimizer stepped (never after a skipped or stopped one);
        returns metrics to merge into that minibatch's. PPO does nothing here; a subclass trains a second
        network in step with the policy (:class:`ktorch_sim.algorithms.amp.AMPPPO`: the discriminator)."""
        return {}

    def _minibatch(self, traj: object, carry: object, target_kl: float | None = None, normalize_advantages: bool = True,
                   critic_only: bool = False, recent_kl: deque[float] | None = None
                   ) -> tuple[dict[str, torch.Tensor], Step]:
        """One gradient step on a minibatch; returns its metrics and what was done (:class:`Step`).

        ``target_kl`` (``ppo.target_kl`` resolved, passed after at least one applied step): check the
        minibatch's KL against it first (one host sync per minibatch, as SB3), averaged with the update's previous
        checks held in ``recent_kl`` (its length is ``ppo.target_kl_window``). Past 1.5 x ``target_kl``, the update
        ends here with no step (``STOPPED``; ``target_kl_stops = "update"``, SB3) or, with
        ``target_kl_stops = "actor"``, this and every later minibatch of the update step on the value loss
        alone (``CRITIC_ONLY``, from the losses already computed). ``normalize_advantages``: normalize them
        within this minibatch (False when the update already normalized them over the rollout, or never).
        ``critic_only``: step on the value loss alone (the actor's parameters get no gradient, so the
        optimizer leaves them be); where the task can replay its critic alone (``value_replay``), the actor's
        forward pass is skipped, with the same values and so the same step.
        """
        valid = traj["valid"]
        value_replay = getattr(self.task, "value_replay", None)
        get_values = value_replay() if critic_only and value_replay is not None else None
        if get_values is not None:
            values = get_values(self.model, traj, carry)
            total = value_loss(values, traj["value"], traj["value_target"], valid, self.loss_config)
            metrics = {"loss_critic": total.detach(), "loss": total.detach(), "value_mean": values.detach().mean()}
            return metrics, self._optimizer_step(total, valid, critic_only=True, metrics=metrics)
        variables, _ = self.task.get_ppo_variables(self.model, traj, carry)
        loss_config = self.loss_config
        if loss_config.normalize_advantages != normalize_advantages:
            loss_config = replace(loss_config, normalize_advantages=normalize_advantages)
        mirrored = None if self.mirrors is None else self.task.get_mirrored_variables(
            self.model, traj, carry, self.mirrors, action_mean=variables.action_mean)
        mirror_half = {} if mirrored is None else {"mirrored_log_probs": mirrored.log_probs}
        losses = ppo_losses(variables.log_probs, traj["log_prob"], variables.values, traj["value"],
                            traj["advantage"], traj["value_target"], variables.entropy, valid, loss_config,
                            **mirror_half)
        if mirrored is not None:
            losses["mirror_gap"] = masked_mean(mirrored.mean_gap, valid)
        if target_kl is not None and _kl_past(float(self.average_kl(losses["kl"].detach())), recent_kl,
                                              1.5 * target_kl):
            # SB3: the policy moved far enough from the one that collected the rollout.
            if self.config.target_kl_stops == "update":
                return {}, Step.STOPPED
            critic_only = True
        if critic_only:
            total = losses["loss_critic"]
        else:
            total = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
            if mirrored is not None and self.config.mirror_loss_coef > 0:
                total = total + self.config.mirror_loss_coef * losses["mirror_gap"]
        if self.kl.kl_coef > 0 and not critic_only:
            clip = self.loss_config.log_clip_value
            log_ratio = torch.clamp(variables.log_probs - traj["log_prob"], -clip, clip)
            kl_penalty = self.kl.kl_coef * masked_mean(torch.exp(log_ratio) - 1.0 - log_ratio, valid)
            total = total + kl_penalty
        metrics = {**{k: v.detach() for k, v in losses.items()}, "loss": total.detach(),
                   "action_std": variables.action_std, "value_mean": variables.values.detach().mean()}
        step = self._optimizer_step(total, valid, critic_only, metrics)
        if step is Step.APPLIED and (self.kl.adapt_lr or self.kl.adapt_coef):
            self.kl.update(float(self.average_kl(losses["kl"])))
            self.set_learning_rate(self.base_lr)
        return metrics, step

    def _optimizer_step(self, total: torch.Tensor, valid: torch.Tensor, critic_only: bool,
                        metrics: dict[str, torch.Tensor]) -> Step:
        """Backpropagate ``total`` and step the optimizer (the actor's parameters left be in a critic-only step);
        adds ``grad_norm`` to ``metrics``. Returns APPLIED or CRITIC_ONLY, or a SKIPPED kind when the loss or the
        gradient is not finite or no transition of the minibatch (``valid``) is valid, on any process."""
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        # The actor's parameters in a critic-only step: no gradient, so the optimizer skips them (no momentum step).
        frozen = [p for p in self.model.parameters() if p.grad is None] if critic_only else []
        # Averaged over processes before clipping, so every process clips and steps identically.
        checks = self.average_gradients(self.model.parameters(),
                                        torch.stack([total.detach(), valid.sum().to(total.dtype)]))
        for p in frozen:  # the multi-process average gives every parameter a gradient, zeros included
            p.grad = None
        grad_norm = clip_gradients(self.clip_groups, self.config.grad_clip)
        metrics["grad_norm"] = grad_norm.detach()
        # Never feed NaN to the optimizer, nor a step of pure Adam momentum when nothing is valid.
        if not bool(torch.isfinite(checks[0]) & torch.isfinite(grad_norm) & (checks[1] > 0)):
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_updates += 1
            return Step.CRITIC_ONLY_SKIPPED if critic_only else Step.SKIPPED
        self.optimizer.step()
        return Step.CRITIC_ONLY if critic_only else Step.APPLIED


def value_output_layer(model: torch.nn.Module, config: object, scales_returns: bool) -> torch.nn.Linear | None:
    """The critic's output layer that ``ppo.preserve_values`` rescales (``model.critic.output_layer``), or None when
    the setting is off; set where it cannot apply (returns not scaled, no output layer), a ConfigError naming why."""
    if not config.preserve_values:
        return None
    if not scales_returns:
        raise ConfigError("is true, but this run's returns are not scaled (ppo.normalize_rewards is false or "
                          "resolved to false), so there is no scale to preserve the values through: set "
                          "ppo.normalize_rewards = true, or ppo.preserve_values = false", key="ppo.preserve_values")
    layer = getattr(getattr(model, "critic", None), "output_layer", None)
    if not isinstance(layer, torch.nn.Linear):
        raise ConfigError(f"is true, but {type(model).__name__} has no .critic.output_layer (the nn.Linear whose "
                          "output is the value, as the library's critics have): add one, or set "
                          "ppo.preserve_values = false", key="ppo.preserve_values")
    return layer


@torch.no_grad()
def preserve_values(layer: torch.nn.Linear, values: Iterable[torch.Tensor], ratio: torch.Tensor) -> None:
    """Multiply the critic's output ``layer`` and the rollout's stored ``values`` by ``ratio`` (old return scale /
    new), in place and without a host sync: the critic then predicts in the new scale exactly what it predicted
    in the old, and the advantages compare the rollout's values with rewards of the same scale (PopArt's output
    preservation for a scale without a shift)."""
    layer.weight.mul_(ratio)
    if layer.bias is not None:
        layer.bias.mul_(ratio)
    for value in values:
        value.mul_(ratio)


def gradient_clip_groups(model: torch.nn.Module, per_network: bool, required: bool = False
                         ) -> list[list[torch.nn.Parameter]]:
    """The parameter groups whose gradient norms ``ppo.grad_clip`` bounds one by one: all of ``model``'s together,
    or with ``per_network`` the actor's, the critic's and any others' (a model without ``.actor`` and ``.critic``
    modules gets one group, or, when the setting was explicit, ``required``, a ConfigError).

    A shared clip over separate networks lets the critic's gradient (from a value loss on returns in the
    hundreds) set the norm, so the actor's step is scaled by ``grad_clip / |critic gradient|``, a factor that
    differs from minibatch to minibatch (measured on Hopper: the actor's share of the norm falls from 5 % to 1 %).
    """
    params = list(model.parameters())
    actor, critic = getattr(model, "actor", None), getattr(model, "critic", None)
    separable = isinstance(actor, torch.nn.Module) and isinstance(critic, torch.nn.Module)
    if per_network and not separable and required:
        missing = " or ".join(f".{name}" for name, module in (("actor", actor), ("critic", critic))
                              if not isinstance(module, torch.nn.Module))
        raise ConfigError(f'ppo.grad_clip_scope = "per_network" needs a model with .actor and .critic modules; '
                          f'{type(model).__name__} has no {missing} module: use "global"', key="ppo.grad_clip_scope")
    if not (per_network and separable):
        return [params]
    groups = [list(actor.parameters()), list(critic.parameters())]
    grouped = {id(p) for group in groups for p in group}
    rest = [p for p in params if id(p) not in grouped]
    return [group for group in groups + [rest] if group]


def clip_gradients(groups: list[list[torch.nn.Parameter]], max_norm: float) -> torch.Tensor:
    """Clip each group's gradient to ``max_norm`` (no host sync); returns the norm of all of them before clipping."""
    norms = [torch.nn.utils.clip_grad_norm_(group, max_norm, foreach=True) for group in groups]
    return norms[0] if len(norms) == 1 else torch.linalg.vector_norm(torch.stack(norms))


def _kl_past(kl: float, recent_kl: deque[float] | None, limit: float) -> bool:
    """Whether ``kl``, averaged with the update's earlier checks in ``recent_kl`` (appended to; None: ``kl`` alone),
    exceeds ``limit``."""
    if recent_kl is None:
        return kl > limit
    recent_kl.append(kl)
    return sum(recent_kl) / len(recent_kl) > limit


def _keep_extras(parameters: Iterable[torch.nn.Parameter], extras: torch.Tensor) -> torch.Tensor:
    """One process's gradient averaging: nothing to do; ``extras`` as given."""
    return extras


def _identity(x: torch.Tensor) -> torch.Tensor:
    """One process's KL averaging: the KL itself."""
    return x
