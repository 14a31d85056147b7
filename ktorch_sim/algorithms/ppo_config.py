"""The ``[ppo]`` section: PPO's hyperparameters and their checks, beside the algorithm that reads them.

Torch-free, like every config section, so the config loader checks it before the heavy imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ktorch_sim.errors import ConfigError, require
from ktorch_sim.task_config import RLConfig, config_field
from ktorch_sim.utils.limits import C_INT_MAX

if TYPE_CHECKING:
    from ktorch_sim.policies.config import ModelConfig

# The automatic batching (ppo.rollout_length_seconds, ppo.minibatch_size and ppo.sequence_length left unset):
# SB3's MuJoCo layout at small scale (2048 transitions per update in 32 minibatches of 64), rsl_rl's 24 steps per
# world and large minibatches at GPU scale. docs/learning.md measures it against the hand-set presets.
AUTO_ROLLOUT_TRANSITIONS = 2048
AUTO_MIN_ROLLOUT_STEPS = 24
AUTO_MINIBATCHES = 32
AUTO_MIN_MINIBATCH = 64
AUTO_SEQUENCE_LENGTH = 16
# ppo.target_kl left unset: policies trained on sequences stop their actor's steps at this KL (SB3's MuJoCo value);
# feed-forward policies never stop (SB3's default). docs/learning.md, tenth session.
AUTO_TARGET_KL = 0.03
# ppo.normalizer_steps left unset: a feed-forward policy's input statistics stop moving after this fraction
# (1 / share) of ppo.max_steps (docs/learning.md, eighteenth and nineteenth sessions).
AUTO_NORMALIZER_SHARE = 10


@dataclass(kw_only=True)
class PPOConfig:
    """PPO hyperparameters (ksim's PPOConfig and walking example, rsl_rl where ksim has none)."""

    batch_size: int | None = config_field(None, "Worlds per minibatch (ksim's batch_size), used when "
                                                 "ppo.minibatch_size is 0: a minibatch then holds batch_size x "
                                                 "rollout steps transitions. Must divide task.num_envs (a value above "
                                                 "task.num_envs means all of them). none: ppo.minibatch_size decides.")
    minibatch_size: int = config_field(0, "Transitions per minibatch (SB3's batch_size). Feed-forward policies draw "
                                          "single transitions across worlds and time; recurrent ones whole "
                                          "sequences of ppo.sequence_length steps. 0: ppo.batch_size worlds when "
                                          "that is set, else automatic: a 32nd of the rollout's transitions, at "
                                          f"least {AUTO_MIN_MINIBATCH} (SB3's 64 of 2048).")
    sequence_length: int | None = config_field(
        None, "Recurrent policies: steps per training sequence (truncated BPTT); the rollout is cut into sequences "
              "of this length, each replayed from the carry the policy had at its first step. Must divide the "
              "rollout steps. 0: the whole rollout (ksim). none: automatic, the largest divisor of the rollout "
              f"steps up to {AUTO_SEQUENCE_LENGTH} (docs/learning.md). Feed-forward policies ignore it.")
    num_passes: int = config_field(10, "Epochs over the rollout per iteration (SB3: 10; rsl_rl: 5; ksim: 4).")
    rollout_length_seconds: float | None = config_field(
        None, "Rollout length per iteration, seconds of simulated time (also the truncated-BPTT horizon with "
              "ppo.sequence_length = 0). none: automatic, the control steps that give each process "
              f"{AUTO_ROLLOUT_TRANSITIONS} transitions (SB3's n_steps), at least {AUTO_MIN_ROLLOUT_STEPS} per world "
              "(rsl_rl's num_steps_per_env).")
    gamma: float = config_field(0.99, "Discount factor, in (0, 1].")
    lam: float = config_field(0.95, "GAE lambda, in (0, 1].")
    clip_param: float = config_field(0.2, "PPO ratio clip epsilon (also clips the value loss).")
    value_loss_coef: float = config_field(1.0, "Weight of the value loss 0.5 (V - target)^2 (1.0 = SB3's vf_coef 0.5 "
                                                "on the plain squared error).")
    use_clipped_value_loss: bool = config_field(False, "Clip the value update around the rollout's values to "
                                                       "+-clip_param (rsl_rl, CleanRL). Off by default (SB3): in raw "
                                                       "reward units it keeps the critic from reaching large returns "
                                                       "(docs/learning.md).")
    bootstrap_truncated: bool = config_field(True, "At a time-limit truncation, bootstrap the return from the "
                                                   "value of the last state (SB3, CleanRL's newer scripts, rsl_rl); "
                                                   "false: treat it as a termination (the older PPO habit).")
    entropy_coef: float = config_field(0.0, "Weight of the entropy bonus (SB3, CleanRL: 0; ksim: 0.008).")
    kl_coef: float = config_field(0.0, "Weight of the KL(old || new) penalty (ksim: 1e-3; 0 disables it).")
    adaptive_kl: bool = config_field(False, "Adapt kl_coef x/÷1.5 to keep the KL near desired_kl (ksim).")
    desired_kl: float = config_field(0.01, "Target KL per minibatch for adaptive_kl and adaptive_lr.")
    adaptive_lr: bool = config_field(False, "Adapt the learning rate x/÷1.5 to keep the KL near desired_kl (rsl_rl).")
    target_kl: float | None = config_field(
        None, "Early stop (SB3's target_kl): before each minibatch's step, if its KL (old || current) exceeds 1.5 x "
              "target_kl, end what ppo.target_kl_stops names. 0: never stop. none: automatic, "
              f"{AUTO_TARGET_KL} for policies trained on sequences (a gru, or an mlp with a history: their update "
              "otherwise runs away from the rollout's policy, docs/learning.md), never for feed-forward policies.")
    target_kl_stops: str = config_field("actor", "What ppo.target_kl ends: only the actor's steps (actor: the critic "
                                                 "keeps training on the remaining minibatches, so a stopped update "
                                                 "still fits the values; docs/learning.md) or the whole update "
                                                 "(SB3, CleanRL).", choices=("actor", "update"))
    target_kl_window: int = config_field(1, "Minibatch KLs the ppo.target_kl check averages: the last N checked in "
                                            "the update (1: each minibatch's own, SB3). A recurrent minibatch of a "
                                            "few sequences gives a noisy KL, which a window smooths; on Hopper's "
                                            "gru a window of 8 scored lower (1,040 against 1,494 over 8 seeds; "
                                            "docs/learning.md, thirteenth session).")
    symmetry: str = config_field(
        "none", "Left-right symmetry (rsl_rl's data augmentation): augment trains the actor on every minibatch and "
                "on its mirror image (mirrored observations and actions, same advantages, ratio against the "
                "collected action's probability), so each transition also teaches the mirrored case. The mirror "
                "map comes from the model's geometry (ktorch_sim.symmetry) and each actor observation's "
                "mirror(); a feed-forward actor only. none: off.", choices=("none", "augment"))
    mirror_loss_coef: float = config_field(
        0.0, "With ppo.symmetry = augment: weight of rsl_rl's mirror loss, how far the policy's mean at a mirrored "
             "observation is from the mirror of its mean at the observation, as a KL (half the squared gap in "
             "standard deviations, summed over action dimensions; logged as loss/mirror_gap either way). 0: off.")
    log_clip_value: float = config_field(5.0, "Clip of the summed log-ratio before exp (ksim: 5.0).")
    normalize_advantages: bool = config_field(True, "Normalize advantages to zero mean, unit std (over "
                                                     "ppo.advantage_normalization_scope).")
    advantage_normalization_scope: str = config_field(
        "auto", "Where advantages are normalized: minibatch (SB3, CleanRL), rollout (rsl_rl's default: once over "
                "the whole rollout) or auto: minibatch for shuffled single transitions, rollout for minibatches of "
                "sequences (recurrent policies), whose few correlated sequences make a minibatch's own mean and "
                "std a poor reference (docs/learning.md).", choices=("auto", "minibatch", "rollout"))
    learning_rate: float = config_field(3e-4, "AdamW learning rate.")
    adam_eps: float = config_field(1e-5, "AdamW epsilon (SB3 and CleanRL: 1e-5; PyTorch's default: 1e-8).")
    weight_decay: float = config_field(0.0, "AdamW weight decay (ksim: 1e-5).")
    grad_clip: float = config_field(0.5, "Max gradient norm (SB3, CleanRL: 0.5; rsl_rl: 1.0; ksim walking: 2.0), "
                                         "over what ppo.grad_clip_scope says.")
    grad_clip_scope: str = config_field(
        "auto", "What ppo.grad_clip bounds. global (SB3, CleanRL, rsl_rl, ksim): one norm over the actor and the "
                "critic together, so a value loss on large returns sets the norm and shrinks the actor's step by a "
                "factor that changes from minibatch to minibatch. per_network: the actor's gradient and the "
                "critic's clipped separately (needs a model with .actor and .critic). auto: per_network for a "
                "feed-forward policy on raw inputs (its training return rose on Hopper, Walker2d, HalfCheetah and "
                "Ant), global otherwise (mixed with normalized inputs; the gru worse on Hopper; docs/learning.md, "
                "fifteenth session).", choices=("auto", "global", "per_network"))
    warmup_iterations: int = config_field(0, "Iterations of linear learning-rate warmup from 1 %.")
    lr_schedule: str = config_field("constant", "Learning-rate schedule after warmup: constant, or cosine or linear "
                                                "(SB3 zoo, CleanRL) decay to min_lr_fraction over max_steps.",
                                    choices=("constant", "cosine", "linear"))
    min_lr_fraction: float = config_field(0.01, "Final learning rate of the cosine or linear schedule, as a fraction.")
    normalize_observations: bool | None = config_field(
        None, "Running mean/std normalization of policy inputs (ksim: none; rsl_rl, mjlab: on). none: automatic, "
              "on for the recurrent policy (model.policy = gru); for the feed-forward mlp on when the run has a "
              "step budget (ppo.max_steps > 0), its statistics then held after a tenth of it (ppo.normalizer_steps), "
              "off without one (statistics that move all run cost the mlp on Hopper); off for an mlp with "
              "model.history > 1 and for a task that overrides actor_inputs or critic_inputs "
              "(ktorch_sim.ppo_task.normalizes_inputs). Measured on the Gymnasium benchmark, docs/learning.md.")
    normalizer_update: str = config_field(
        "auto", "When the input statistics of ppo.normalize_observations move. step: every control step during "
                "collection, before the policy reads the step's inputs (SB3's VecNormalize, rsl_rl); the rollout "
                "stores each input as the policy saw it and the update reads those. rollout: once per rollout, "
                "after its update (which re-normalizes the stored raw inputs with the statistics the rollout saw). "
                "auto: step for a feed-forward policy, rollout for a recurrent one, each measured the better on "
                "Hopper (step against rollout: the normalized mlp 1,086 against 778 over 8 seeds, the gru 1,061 "
                "against 1,578 over 10; docs/learning.md, fourteenth session).", choices=("auto", "rollout", "step"))
    normalizer_steps: int | None = config_field(
        None, "Env steps (transitions, of every world and process) whose inputs the statistics of "
              "ppo.normalize_observations take in; from then on they stay fixed, so each input keeps one meaning "
              "for the policy (rsl_rl's EmpiricalNormalization until; the batch that reaches the count, one step's "
              "or one rollout's inputs per ppo.normalizer_update, is merged whole). 0: they move for the whole run. "
              f"none: automatic, 1/{AUTO_NORMALIZER_SHARE} of ppo.max_steps for a feed-forward policy (the mlp "
              "with normalized inputs: Hopper 1,086 -> 2,651 over 10 seeds, at or above raw inputs on seven "
              "tasks), 0 for a recurrent one (held, the gru lost on Hopper) or a run without a step budget; "
              "docs/learning.md, eighteenth and nineteenth sessions.")
    normalize_rewards: bool | None = config_field(
        None, "Divide rewards by the running std of the discounted return, clipped to +-10 (SB3's VecNormalize, "
              "Gymnasium's NormalizeReward). none: automatic, on for a recurrent policy whose inputs are "
              "normalized (ppo.normalize_observations, resolved: the gru's default), off otherwise (the mlp's "
              "measured best; docs/learning.md).")
    preserve_values: bool = config_field(
        False, "When ppo.normalize_rewards moves its return scale (after every rollout), multiply the critic's "
               "output layer and the rollout's stored values by old scale / new scale, so the critic's predictions "
               "keep their meaning in rewards and each rollout's advantages compare values of one scale (PopArt's "
               "output preservation, Hessel et al. 2019, for a scale without a shift). Needs scaled returns and a "
               "critic with an output_layer (the library's critics). Off by default: on Hopper it did not lift "
               "the gru (docs/learning.md, twentieth session).")
    desynchronize_episodes: bool = config_field(
        True, "Start each world's first episode at a random step of its time limit, so that worlds reset together "
              "do not reach the limit together and every rollout mixes all phases of an episode (legged_gym's "
              "init_at_random_ep_len). Measured where episodes run to the limit: HalfCheetah's normalized mlp "
              "1,119 -> 1,577, the velocity-free HalfCheetah's gru 754 -> 1,797; it cost the gru on Ant "
              "(1,221 -> 920 over 4 seeds); docs/learning.md, twelfth and thirteenth sessions. false: every "
              "world starts at step 0.")
    max_steps: int = config_field(0, "Stop after this many environment steps in total (0: run until stopped).")
    max_seconds: float = config_field(
        0.0, "Stop after this many seconds of training in total: collection and update, summed over resumes (the "
             "checkpoints' elapsed_seconds; start-up, logging and checkpoint writes not counted). With "
             "ppo.max_steps, whichever comes first. 0: no time limit.")
    reward_clip: float | None = config_field(None, "Clip each step's total reward to [-x, x] (none: no clip).")
    capture_rollout: bool = config_field(False, "Record the whole control step (policy, actuators, physics, "
                                                "components, resets, storage) as one CUDA graph and replay it "
                                                "(CUDA + Warp only; not yet verified on a GPU).")

    def advantage_scope(self, sequences: bool) -> str | None:
        """Where advantages are normalized ("minibatch" or "rollout"; None: not at all) when minibatches hold
        ``sequences`` of several steps (else single transitions); resolves ``auto``."""
        if not self.normalize_advantages:
            return None
        scope = self.advantage_normalization_scope
        if scope == "auto":
            return "rollout" if sequences else "minibatch"
        return scope

    def kl_target(self, recurrent: bool) -> float | None:
        """The KL at which updates stop (``ppo.target_kl`` resolved; None: never) for a policy that is
        ``recurrent`` (carries a state, so PPO trains it on sequences) or feed-forward."""
        if self.target_kl is None:
            return AUTO_TARGET_KL if recurrent else None
        return self.target_kl or None

    def updates_statistics_each_step(self, recurrent: bool) -> bool:
        """Whether the input statistics move every control step (``ppo.normalizer_update`` resolved) for a
        policy that is ``recurrent`` (carries a state) or feed-forward; else once per rollout."""
        if self.normalizer_update == "auto":
            return not recurrent
        return self.normalizer_update == "step"

    def clips_gradients_per_network(self, recurrent: bool, inputs_normalized: bool) -> bool:
        """Whether ``ppo.grad_clip`` bounds the actor's and the critic's gradients separately
        (``ppo.grad_clip_scope`` resolved) for a policy that is ``recurrent`` (carries a state) or feed-forward,
        with normalized inputs or raw ones."""
        if self.grad_clip_scope == "auto":
            return not recurrent and not inputs_normalized
        return self.grad_clip_scope == "per_network"

    def normalizes_inputs_by_default(self, model: ModelConfig) -> bool:
        """What ``ppo.normalize_observations = none`` means for ``model`` (the ``[model]`` section): normalized for
        the gru; for the feed-forward mlp only in a run with a step budget, which gives
        :meth:`input_statistics_steps` a point to hold its statistics at; raw for an mlp with a history."""
        if model.policy == "gru":
            return True
        return not model.trains_on_sequences and self.max_steps > 0

    def input_statistics_steps(self, model: ModelConfig) -> int:
        """Env steps after which normalized input statistics stop moving for ``model`` (``ppo.normalizer_steps``
        resolved; 0: never): automatic, a share of ``ppo.max_steps`` for a feed-forward policy, never for one
        trained on sequences."""
        if self.normalizer_steps is not None:
            return self.normalizer_steps
        return 0 if model.trains_on_sequences else self.max_steps // AUTO_NORMALIZER_SHARE

    def scales_returns(self, recurrent: bool, inputs_normalized: bool) -> bool:
        """Whether rewards are divided by the running std of the return (``ppo.normalize_rewards`` resolved)
        for a policy that is ``recurrent`` (carries a state) or not, with normalized inputs or raw ones."""
        if self.normalize_rewards is None:
            return recurrent and inputs_normalized
        return self.normalize_rewards

    def rollout_steps(self, ctrl_dt: float, num_envs: int) -> int:
        """Control steps per world in one rollout: ``rollout_length_seconds / ctrl_dt`` rounded, or automatic."""
        if self.rollout_length_seconds is not None:
            return max(1, round(self.rollout_length_seconds / ctrl_dt))
        return max(AUTO_MIN_ROLLOUT_STEPS, -(-AUTO_ROLLOUT_TRANSITIONS // num_envs))

    def sequence_steps(self, rollout_steps: int) -> int:
        """Steps per training sequence of a recurrent policy in a rollout of ``rollout_steps``."""
        if self.sequence_length is None:
            return max(d for d in _divisors(rollout_steps) if d <= AUTO_SEQUENCE_LENGTH)
        return self.sequence_length or rollout_steps

    def minibatch_transitions(self, num_envs: int, rollout_steps: int) -> int:
        """Transitions per minibatch: ``minibatch_size``, else ``batch_size`` worlds, else automatic."""
        if self.minibatch_size:
            return self.minibatch_size
        if self.batch_size is not None:
            return min(self.batch_size, num_envs) * rollout_steps
        return max(AUTO_MIN_MINIBATCH, num_envs * rollout_steps // AUTO_MINIBATCHES)

    def layout(self, num_envs: int, rollout_steps: int, recurrent: bool) -> tuple[int, int]:
        """(steps per training sequence, sequences per minibatch) for a rollout of ``num_envs`` x
        ``rollout_steps``: feed-forward policies train on single shuffled transitions, recurrent ones on
        sequences of :meth:`sequence_steps`."""
        length = self.sequence_steps(rollout_steps) if recurrent else 1
        if rollout_steps % length:
            raise ValueError(f"ppo.sequence_length ({length}) must divide the rollout's {rollout_steps} steps")
        return length, max(1, self.minibatch_transitions(num_envs, rollout_steps) // length)

    def num_minibatches(self, num_envs: int, rollout_steps: int, recurrent: bool) -> int:
        """Minibatches per pass over one rollout."""
        length, per_minibatch = self.layout(num_envs, rollout_steps, recurrent)
        return -(-(num_envs * rollout_steps // length) // per_minibatch)

    def check(self, task: RLConfig) -> None:
        """Ranges, and consistency with the task's control period; raises :class:`ConfigError` naming the key."""
        _check_values(self, task)

    def check_batches(self, task: RLConfig) -> None:
        """What depends on ``task.num_envs`` and ``max_steps``, which the CPU caps may change (checked after them)."""
        _check_batches(self, task)


def _check_values(p: PPOConfig, t: RLConfig) -> None:
    require(p.batch_size is None or p.batch_size >= 1, "ppo.batch_size",
             f"must be >= 1 or none (ppo.minibatch_size decides), got {p.batch_size}")
    require(p.num_passes >= 1, "ppo.num_passes", f"must be >= 1, got {p.num_passes}")
    require(p.minibatch_size >= 0, "ppo.minibatch_size",
             f"must be >= 0 (0: ppo.batch_size worlds, or automatic), got {p.minibatch_size}")
    require(p.sequence_length is None or p.sequence_length >= 0, "ppo.sequence_length",
             f"must be >= 0 (0: the whole rollout) or none (automatic), got {p.sequence_length}")
    if p.rollout_length_seconds is not None:
        require(p.rollout_length_seconds >= t.ctrl_dt, "ppo.rollout_length_seconds",
                 f"must be >= task.ctrl_dt ({t.ctrl_dt}) or none (automatic), got {p.rollout_length_seconds}")
        ratio = p.rollout_length_seconds / t.ctrl_dt
        require(ratio <= C_INT_MAX, "ppo.rollout_length_seconds",
                 f"must be at most {C_INT_MAX} control steps of task.ctrl_dt ({t.ctrl_dt}), got "
                 f"{p.rollout_length_seconds} ({ratio:.3g} steps)")
    for name in ("gamma", "lam"):
        value = getattr(p, name)
        require(0 < value <= 1, f"ppo.{name}", f"must be in (0, 1], got {value}")
    for name in ("clip_param", "learning_rate", "grad_clip", "log_clip_value", "adam_eps", "desired_kl"):
        require(getattr(p, name) > 0, f"ppo.{name}", f"must be > 0, got {getattr(p, name)}")
    for name in ("value_loss_coef", "entropy_coef", "kl_coef", "mirror_loss_coef", "weight_decay", "warmup_iterations",
                 "max_steps", "max_seconds"):
        require(getattr(p, name) >= 0, f"ppo.{name}", f"must be >= 0, got {getattr(p, name)}")
    require(p.normalizer_steps is None or p.normalizer_steps >= 0, "ppo.normalizer_steps",
             f"must be >= 0 (0: never stop) or none (automatic), got {p.normalizer_steps}")
    require(not p.adaptive_kl or p.kl_coef > 0, "ppo.kl_coef",
             f"must be > 0 when ppo.adaptive_kl is true (it is the starting coefficient), got {p.kl_coef}")
    require(p.mirror_loss_coef == 0 or p.symmetry != "none", "ppo.mirror_loss_coef",
             f'is {p.mirror_loss_coef}, but ppo.symmetry is "none": the mirror loss needs ppo.symmetry = "augment" '
             "(or set ppo.mirror_loss_coef = 0)")
    require(0 <= p.min_lr_fraction <= 1, "ppo.min_lr_fraction", f"must be in [0, 1], got {p.min_lr_fraction}")
    require(p.target_kl is None or p.target_kl >= 0, "ppo.target_kl",
             f"must be >= 0 (0: never stop) or none (automatic), got {p.target_kl}")
    require(p.target_kl_window >= 1, "ppo.target_kl_window",
             f"must be >= 1 (the number of minibatch KLs averaged), got {p.target_kl_window}")
    require(p.reward_clip is None or p.reward_clip > 0, "ppo.reward_clip", f"must be > 0 or none, got {p.reward_clip}")


def _divisors(n: int) -> list[int]:
    """Return the divisors of ``n`` (trial division up to sqrt(n): fast for a rollout's 2**31 steps)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})


def _check_batches(p: PPOConfig, t: RLConfig) -> None:
    """Check what depends on task.num_envs and ppo.max_steps, which the CPU caps may change."""
    if p.minibatch_size == 0 and p.batch_size is not None:
        size = min(p.batch_size, t.num_envs)
        if t.num_envs % size:
            fast = t.num_envs <= 10**12  # trial division up to 10**6; beyond, the gcd is a divisor too
            divisor = max(d for d in _divisors(t.num_envs) if d <= size) if fast else math.gcd(t.num_envs, size)
            raise ConfigError(f"must divide task.num_envs ({t.num_envs}), got {p.batch_size} (e.g. use {divisor})",
                              key="ppo.batch_size")
    steps = p.rollout_steps(t.ctrl_dt, t.num_envs)
    if p.sequence_length and steps % p.sequence_length:
        nearest = min(_divisors(steps), key=lambda d: abs(d - p.sequence_length))
        raise ConfigError(f"must divide the rollout's {steps} steps (ppo.rollout_length_seconds / task.ctrl_dt), "
                          f"got {p.sequence_length} (e.g. use {nearest}, or none for the automatic length)",
                          key="ppo.sequence_length")
    require(p.lr_schedule == "constant" or p.max_steps > 0, "ppo.lr_schedule",
             f'"{p.lr_schedule}" decays over ppo.max_steps, which must then be > 0 (0 means unlimited)')
