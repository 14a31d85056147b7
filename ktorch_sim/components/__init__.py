"""The component library, under ksim's class names (``ks.JointPositionObservation`` ...)."""

from ktorch_sim.components.base import (
    Command,
    Component,
    Curriculum,
    EnvContext,
    Event,
    Observation,
    PhysicsRandomizer,
    Reset,
    Reward,
    Termination,
)
from ktorch_sim.components.commands import *  # noqa: F403
from ktorch_sim.components.commands import __all__ as _commands
from ktorch_sim.components.curriculum import *  # noqa: F403
from ktorch_sim.components.curriculum import __all__ as _curricula
from ktorch_sim.components.events import *  # noqa: F403
from ktorch_sim.components.events import __all__ as _events
from ktorch_sim.components.noise import (
    AdditiveGaussianBias,
    AdditiveGaussianNoise,
    AdditiveUniformBias,
    AdditiveUniformNoise,
    ChainedNoise,
    MultiplicativeGaussianBias,
    MultiplicativeGaussianNoise,
    MultiplicativeUniformBias,
    MultiplicativeUniformNoise,
    NoBias,
    NoNoise,
)
from ktorch_sim.components.observations import *  # noqa: F403
from ktorch_sim.components.observations import __all__ as _observations
from ktorch_sim.components.randomizers import *  # noqa: F403
from ktorch_sim.components.randomizers import __all__ as _randomizers
from ktorch_sim.components.resets import *  # noqa: F403
from ktorch_sim.components.resets import __all__ as _resets
from ktorch_sim.components.rewards import *  # noqa: F403
from ktorch_sim.components.rewards import __all__ as _rewards
from ktorch_sim.components.terminations import *  # noqa: F403
from ktorch_sim.components.terminations import __all__ as _terminations

_BASES = ["Command", "Component", "Curriculum", "EnvContext", "Event", "Observation", "PhysicsRandomizer", "Reset",
          "Reward", "Termination"]
_NOISE = ["AdditiveGaussianBias", "AdditiveGaussianNoise", "AdditiveUniformBias", "AdditiveUniformNoise", "ChainedNoise",
          "MultiplicativeGaussianBias", "MultiplicativeGaussianNoise", "MultiplicativeUniformBias",
          "MultiplicativeUniformNoise", "NoBias", "NoNoise"]

__all__ = [*_BASES, *_NOISE, *_observations, *_commands, *_rewards, *_terminations, *_resets, *_events, *_randomizers,
           *_curricula]
