"""Adversarial Motion Priors (Peng et al. 2021) on top of PPO: the discriminator, its losses, and :class:`AMPPPO`.

Pure pieces first (each testable by hand), then :class:`AMPDiscriminatorTrainer`, which owns the
discriminator, its optimizer, its feature normalizer, the policy replay buffer and the reference
transitions, and :class:`AMPPPO`, the PPO that uses it. Choices, against the peers
(``shared/reference/peers.md`` section 4.4, ``ksim_features.md`` section 4.5):

- The discriminator sees (s, s') transitions of :func:`ktorch_sim.motion.amp_features.amp_features`,
  normalized by running statistics of both the reference and the policy transitions (AMP for
  hardware's normalizer; ksim has none).
- Least-squares GAN: targets +1 for reference transitions and -1 for policy ones; the loss terms
  are **means** over the batch, 0.5 E[(D(ref) - 1)^2] + 0.5 E[(D(pol) + 1)^2] (ksim sums over
  batch and time, so its scale, and the weight of its penalty, grow with the batch).
- Gradient penalty on reference inputs: (coef / 2) E[||dD/dx||^2] with coef 10 (Peng et al.; x is the
  normalized input).
- Weight decay as L2 in Adam (AMP for hardware), larger on the output layer than on the trunk.
- Policy transitions go to a replay buffer (newest replace oldest) and the discriminator trains
  on samples from it: ``amp.steps_per_minibatch`` steps after each PPO minibatch.
- Style reward max(0, 1 - 0.25 (d - 1)^2) from the discriminator as it is when the rollout ends,
  mixed as ``(1 - w) r_task + w * scale * r_style`` before the advantages (AMP for hardware's lerp).
- A transition that ends an episode has no s' (the next observation is the new episode's), so
  its style reward is 0 and it never enters the replay buffer; nor do masked (broken) ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ktorch_sim.algorithms.amp_config import AMPConfig
from ktorch_sim.algorithms.normalizer import RunningNormalizer
from ktorch_sim.algorithms.ppo import PPO, _keep_extras, invalid_transitions, masked_mean


def style_reward(logits: torch.Tensor) -> torch.Tensor:
    """The least-squares GAN style reward max(0, 1 - 0.25 (d - 1)^2) of discriminator outputs ``logits``."""
    return torch.clamp(1.0 - 0.25 * (logits - 1.0) ** 2, min=0.0)


def lsgan_losses(reference_logits: torch.Tensor, policy_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(0.5 mean (D_ref - 1)^2, 0.5 mean (D_pol + 1)^2): the two least-squares terms, means over the batch."""
    return 0.5 * ((reference_logits - 1.0) ** 2).mean(), 0.5 * ((policy_logits + 1.0) ** 2).mean()


def gradient_penalty(discriminator: nn.Module, inputs: torch.Tensor, coef: float) -> torch.Tensor:
    """(coef / 2) * mean over the batch of ||dD/dx||^2 at ``inputs`` [B, D] (differentiable: create_graph)."""
    x = inputs.detach().requires_grad_(True)
    out = discriminator(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return 0.5 * coef * grad.pow(2).sum(-1).mean()


class Discriminator(nn.Module):
    """MLP from (s, s') features [..., D] to one logit [...]: ReLU hidden layers (``trunk``), linear ``head``."""

    def __init__(self, num_inputs: int, hidden_sizes: tuple[int, ...] = (1024, 512)) -> None:
        """Layers ``num_inputs -> hidden_sizes... -> 1``."""
        super().__init__()
        layers: list[nn.Module] = []
        width = num_inputs
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [...] of inputs [..., D]."""
        return self.head(self.trunk(x))[..., 0]


class TransitionReplay:
    """A ring buffer of policy transitions [capacity, D] on one device; newest replace oldest."""

    def __init__(self, capacity: int, width: int, device: torch.device | str) -> None:
        """An empty buffer of ``capacity`` rows of ``width``."""
        self.data = torch.zeros(capacity, width, device=device)
        self.capacity = capacity
        self.size = 0  # host ints: rows filled, next row to write
        self.pointer = 0

    def add(self, rows: torch.Tensor) -> None:
        """Append ``rows`` [n, D] (only the last ``capacity`` if there are more)."""
        rows = rows[-self.capacity:]
        n = rows.shape[0]
        index = (self.pointer + torch.arange(n, device=self.data.device)) % self.capacity
        self.data[index] = rows.to(self.data.dtype)
        self.pointer = (self.pointer + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` rows drawn uniformly, with replacement, from the filled part (the buffer must not be empty)."""
        index = torch.randint(self.size, (n,), generator=generator, device=generator.device)
        return self.data[index.to(self.data.device)]

    def state_dict(self) -> dict[str, Any]:
        """The filled rows (in storage order) and the counters."""
        return {"data": self.data[:self.size].clone(), "size": self.size, "pointer": self.pointer}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` wrote (into a buffer of the same width)."""
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"amp replay of {size} transitions does not fit amp.replay_size {self.capacity}")
        self.data.zero_()
        self.data[:size] = state["data"].to(self.data.device)
        self.size, self.pointer = size, int(state["pointer"]) % self.capacity


class AMPDiscriminatorTrainer:
    """The discriminator half of AMP: network, Adam, feature normalizer, replay buffer, reference transitions.

    ``reference`` [M, D] holds every reference (s, s') transition (on the training device).
    Random draws use ``generator`` (the trainer's, so a resume replays them exactly).
    """

    def __init__(self, reference: torch.Tensor, config: AMPConfig, generator: torch.Generator,
                 device: torch.device | str) -> None:
        """Fresh discriminator and statistics for transitions as wide as ``reference``'s."""
        self.config = config
        self.generator = generator
        self.reference = reference.to(device=device, dtype=torch.float32)
        width = self.reference.shape[-1]
        self.discriminator = Discriminator(width, tuple(config.hidden_sizes)).to(device)
        self.normalizer = RunningNormalizer(width).to(device)
        self.normalizer.update(self.reference)
        self.optimizer = torch.optim.Adam([
            {"params": self.discriminator.trunk.parameters(), "weight_decay": config.trunk_weight_decay},
            {"params": self.discriminator.head.parameters(), "weight_decay": config.head_weight_decay},
        ], lr=config.learning_rate)
        self.replay = TransitionReplay(config.replay_size, width, device)
        self.skipped_steps = 0
        # Averages the discriminator's gradients over torchrun ranks (set by the trainer; one process: no-op).
        self.average_gradients: Callable[[Iterable[torch.nn.Parameter], torch.Tensor], torch.Tensor] = _keep_extras

    @torch.no_grad()
    def logits(self, transitions: torch.Tensor) -> torch.Tensor:
        """Discriminator outputs [...] for raw transitions [..., D] (normalized here), no gradient."""
        return self.discriminator(self.normalizer(transitions))

    def add_policy_transitions(self, transitions: torch.Tensor) -> None:
        """Store policy transitions [n, D] and merge them, with as many reference ones, into the statistics."""
        if transitions.shape[0] == 0:
            return
        self.replay.add(transitions)
        self.normalizer.update(transitions)
        self.normalizer.update(self.sample_reference(transitions.shape[0]))

    def sample_reference(self, n: int) -> torch.Tensor:
        """``n`` reference transitions drawn uniformly with replacement."""
        index = torch.randint(self.reference.shape[0], (n,), generator=self.generator, device=self.generator.device)
        return self.reference[index.to(self.reference.device)]

    def step(self) -> dict[str, torch.Tensor]:
        """One discriminator step on ``amp.batch_size`` reference and replayed policy transitions; its metrics.

        A step whose loss or gradient is not finite is not applied (counted in ``skipped_steps``).
        """
        cfg = self.config
        reference = self.normalizer(self.sample_reference(cfg.batch_size))
        policy = self.normalizer(self.replay.sample(cfg.batch_size, self.generator))
        d_ref, d_pol = self.discriminator(reference), self.discriminator(policy)
        loss_ref, loss_pol = lsgan_losses(d_ref, d_pol)
        penalty = gradient_penalty(self.discriminator, reference, cfg.grad_penalty_coef)
        total = loss_ref + loss_pol + penalty
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        # Under torchrun every rank steps on the average gradient; the summed loss makes one skip decision.
        total_everywhere = self.average_gradients(self.discriminator.parameters(), total.detach().reshape(1))[0]
        grad_norm = nn.utils.clip_grad_norm_(self.discriminator.parameters(), cfg.grad_clip, foreach=True)
        if bool(torch.isfinite(total_everywhere) & torch.isfinite(grad_norm)):
            self.optimizer.step()
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
        with torch.no_grad():
            accuracy = 0.5 * ((d_ref > 0).float().mean() + (d_pol < 0).float().mean())
        return {"amp_loss_reference": loss_ref.detach(), "amp_loss_policy": loss_pol.detach(),
                "amp_grad_penalty": penalty.detach(), "amp_loss": total.detach(),
                "amp_logit_reference": d_ref.detach().mean(), "amp_logit_policy": d_pol.detach().mean(),
                "amp_accuracy": accuracy, "amp_grad_norm": grad_norm.detach()}

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint entry ``amp``: discriminator, optimizer, normalizer, replay buffer, skipped steps."""
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "normalizer": self.normalizer.state_dict(), "replay": self.replay.state_dict(),
                "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` wrote."""
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.replay.load_state_dict(state["replay"])
        self.skipped_steps = int(state.get("skipped_steps", 0))


class AMPPPO(PPO):
    """PPO whose rewards mix in AMP's style reward and whose minibatches interleave discriminator steps.

    The task must be a ``ks.AMPTask``: its AMP observation (``task.amp_observation``) is stored in
    the rollout for the state before (``observation``) and after (``next.observation``) each step,
    and ``task.amp_reference_transitions()`` gives the reference (s, s') set. Checkpoints gain the
    ``amp`` entry (:meth:`AMPDiscriminatorTrainer.state_dict`); one without it (plain PPO's) loads
    with a fresh discriminator.
    """

    def __init__(self, task: Any, model: nn.Module, config: Any, generator: torch.Generator, *,
                 num_envs: int | None = None, optimizer: torch.optim.Optimizer | None = None,
                 amp: AMPConfig | None = None) -> None:
        """PPO's arguments plus the ``amp`` section (default: every AMP default)."""
        super().__init__(task, model, config, generator, num_envs=num_envs, optimizer=optimizer)
        self.amp_config = amp or AMPConfig()
        device = next(model.parameters()).device
        self.amp = AMPDiscriminatorTrainer(task.amp_reference_transitions(), self.amp_config, generator, device)

    @classmethod
    def from_train_config(cls, task: Any, model: nn.Module, config: Any, generator: torch.Generator, *,
                          num_envs: int | None = None) -> AMPPPO:
        """Build from the whole training config: its ``ppo`` and ``amp`` sections."""
        return cls(task, model, config.ppo, generator, num_envs=num_envs, amp=config.amp)

    def rollout_transitions(self, buffer: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, s') transitions [N, T, D] of a rollout (followed by the task's ``amp_command`` value when it
        has one), and where they are real [N, T] (no episode end, no fault)."""
        name = self.task.amp_observation
        nxt = buffer["next"]
        usable = ~(invalid_transitions(nxt) | nxt["done"][..., 0])
        parts = [buffer["observation", name], nxt["observation", name]]
        command = getattr(self.task, "amp_command", None)
        if command is not None:
            parts.append(buffer["command", command].to(parts[0].dtype))
        pairs = torch.cat(parts, dim=-1)
        return torch.where(usable[..., None], pairs, 0.0), usable

    def update(self, buffer: Any, start_carry: Any) -> dict[str, torch.Tensor]:
        """Style rewards into the rollout's rewards, policy transitions into the replay, then PPO's update."""
        cfg = self.amp_config
        pairs, usable = self.rollout_transitions(buffer)
        style = torch.where(usable, style_reward(self.amp.logits(pairs)), 0.0)
        reward = buffer["next", "reward"]
        task_reward = reward[..., 0].clone()
        reward.copy_(((1.0 - cfg.style_weight) * task_reward + cfg.style_weight * cfg.style_scale * style)[..., None])
        self.amp.add_policy_transitions(pairs[usable])
        out = super().update(buffer, start_carry)
        valid = ~invalid_transitions(buffer["next"])
        out["amp_style_reward"] = masked_mean(style, usable)
        out["amp_task_reward"] = masked_mean(task_reward, valid)
        out["amp_skipped_steps"] = torch.tensor(float(self.amp.skipped_steps), device=style.device)
        return out

    def synchronized_modules(self) -> list[nn.Module]:
        """The discriminator and its feature normalizer: under torchrun rank 0's copies are broadcast at the
        start and the normalizer merges its moments over ranks (each rank keeps its own replay buffer)."""
        return [self.amp.discriminator, self.amp.normalizer]

    def after_optimizer_step(self) -> dict[str, torch.Tensor]:
        """``amp.steps_per_minibatch`` discriminator steps after each PPO step (metrics averaged); PPO calls this
        only when it stepped (not when ``ppo.target_kl`` ended the update there, nor when the step was skipped as
        not finite), so the discriminator steps exactly ``steps_per_minibatch`` times per PPO step."""
        self.amp.average_gradients = self.average_gradients  # the trainer's rank averaging, for both networks
        steps = self.amp_config.steps_per_minibatch if self.amp.replay.size else 0
        sums: dict[str, torch.Tensor] = {}
        for _ in range(steps):
            for k, v in self.amp.step().items():
                sums[k] = sums[k] + v if k in sums else v
        return {k: v / steps for k, v in sums.items()}

    def state_dict(self) -> dict[str, object]:
        """PPO's entries plus ``amp`` (discriminator, its optimizer, normalizer and replay buffer)."""
        return {**super().state_dict(), "amp": self.amp.state_dict()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore PPO's entries and, when the checkpoint has one, the ``amp`` entry."""
        super().load_state_dict(state)
        if state.get("amp") is not None:
            self.amp.load_state_dict(state["amp"])  # type: ignore[arg-type]
