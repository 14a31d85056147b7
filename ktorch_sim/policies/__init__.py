"""Policies: the K-Scale humanoid benchmark's GRU mixture-of-Gaussians actor-critic, MLPs, distributions."""

from ktorch_sim.policies.actor_critic import ActorCritic, GRUActor, GRUCritic, MLPActor, MLPCritic
from ktorch_sim.policies.distributions import DiagGaussian, MixtureOfGaussians
from ktorch_sim.policies.gru import GRUStack, orthogonal_init

__all__ = [
    "ActorCritic",
    "DiagGaussian",
    "GRUActor",
    "GRUCritic",
    "GRUStack",
    "MLPActor",
    "MLPCritic",
    "MixtureOfGaussians",
    "orthogonal_init",
]
