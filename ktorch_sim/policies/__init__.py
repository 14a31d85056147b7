"""Policies: the K-Scale humanoid benchmark's GRU mixture-of-Gaussians actor-critic, MLPs, distributions.

Names are imported on first use, so the ``[model]`` section (:mod:`ktorch_sim.policies.config`) can be
read and checked by the config loader without importing torch.
"""

from __future__ import annotations

from ktorch_sim.utils.lazy import lazy_exports

_LAZY: dict[str, str] = {
    **dict.fromkeys(("ActorCritic", "GRUActor", "GRUCritic", "MLPActor", "MLPCritic"),
                    "ktorch_sim.policies.actor_critic"),
    **dict.fromkeys(("DiagGaussian", "MixtureOfGaussians"), "ktorch_sim.policies.distributions"),
    **dict.fromkeys(("GRUStack", "orthogonal_init"), "ktorch_sim.policies.gru"),
    "ModelConfig": "ktorch_sim.policies.config",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
