"""The ``[amp]`` section: Adversarial Motion Priors' settings and their checks, beside the algorithm
(:mod:`ktorch_sim.algorithms.amp`) that reads them.

Torch-free, like every config section, so the config loader checks it before the heavy imports.
Only tasks that subclass ``ks.AMPTask`` read it; for every other task it is inert (but still checked).
"""

from __future__ import annotations

from dataclasses import dataclass

from ktorch_sim.errors import require
from ktorch_sim.task_config import config_field


@dataclass(kw_only=True)
class AMPConfig:
    """Discriminator, style reward and replay settings (Peng et al. 2021; AMP for hardware's defaults
    where the paper has none).
    """

    style_weight: float = config_field(0.5, "Share of the style reward in the training reward: reward = (1 - w) * "
                                            "task reward + w * style_scale * style reward, in [0, 1] (AMP for "
                                            "hardware: 0.7).")
    style_scale: float = config_field(1.0, "Scale of the style reward max(0, 1 - 0.25 (d - 1)^2) before mixing "
                                           "(AMP for hardware: 2.0).")
    hidden_sizes: tuple[int, ...] = config_field((1024, 512), "Hidden layer sizes of the discriminator MLP (ReLU).")
    learning_rate: float = config_field(1e-4, "Adam learning rate of the discriminator.")
    trunk_weight_decay: float = config_field(1e-4, "L2 weight decay on the discriminator's hidden layers.")
    head_weight_decay: float = config_field(1e-2, "L2 weight decay on the discriminator's output layer (larger: "
                                                  "keeps its logits from growing without bound).")
    grad_penalty_coef: float = config_field(10.0, "Gradient penalty coef/2 * mean ||dD/dx||^2 on reference "
                                                  "transitions (Peng et al.: 10).")
    batch_size: int = config_field(512, "Reference and policy transitions per discriminator step (each).")
    steps_per_minibatch: int = config_field(1, "Discriminator steps after each PPO minibatch (0: the "
                                               "discriminator is not trained).")
    replay_size: int = config_field(100000, "Policy transitions kept in the discriminator's replay buffer "
                                            "(newest replace oldest; checkpointed for an exact resume).")
    grad_clip: float = config_field(1.0, "Max gradient norm of a discriminator step.")

    def check(self) -> None:
        """Ranges; raises :class:`ConfigError` naming the key."""
        require(0 <= self.style_weight <= 1, "amp.style_weight", f"must be in [0, 1], got {self.style_weight}")
        for name in ("style_scale", "trunk_weight_decay", "head_weight_decay", "grad_penalty_coef",
                     "steps_per_minibatch"):
            require(getattr(self, name) >= 0, f"amp.{name}", f"must be >= 0, got {getattr(self, name)}")
        for name in ("learning_rate", "grad_clip"):
            require(getattr(self, name) > 0, f"amp.{name}", f"must be > 0, got {getattr(self, name)}")
        for name in ("batch_size", "replay_size"):
            require(getattr(self, name) >= 1, f"amp.{name}", f"must be >= 1, got {getattr(self, name)}")
        sizes = "[" + ", ".join(str(h) for h in self.hidden_sizes) + "]"
        require(len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes), "amp.hidden_sizes",
                f"must be a non-empty array of sizes >= 1, got {sizes}")
