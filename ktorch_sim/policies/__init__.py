"""Policies: the K-Scale humanoid benchmark's GRU mixture-of-Gaussians actor-critic, MLPs, distributions.

Names are imported on first use, so the ``[model]`` section (:mod:`ktorch_sim.policies.config`) can be
read and checked by the config loader without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    **dict.fromkeys(("ActorCritic", "GRUActor", "GRUCritic", "MLPActor", "MLPCritic"),
                    "ktorch_sim.policies.actor_critic"),
    **dict.fromkeys(("DiagGaussian", "MixtureOfGaussians"), "ktorch_sim.policies.distributions"),
    **dict.fromkeys(("GRUStack", "orthogonal_init"), "ktorch_sim.policies.gru"),
    "ModelConfig": "ktorch_sim.policies.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
