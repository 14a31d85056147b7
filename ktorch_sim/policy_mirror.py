"""The left-right mirror of a policy's inputs and actions, for ``ppo.symmetry = "augment"``.

:func:`policy_mirrors` assembles, from the environment's components, the signed permutation of the
actor's raw input vector (:meth:`ktorch_sim.ppo_task.PPOTask.actor_features`: each actor
observation's :meth:`~ktorch_sim.components.base.Observation.mirror`, then each command's, in
the same order) and of the action vector (the actuators' joints, :meth:`ModelMirror.actuators`).
A component without a mirror, or a model that is not symmetric, is refused with a ConfigError
that names it; a task can override :meth:`PPOTask.get_policy_mirrors` to give its own maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tensordict import TensorDict

from ktorch_sim.errors import ConfigError
from ktorch_sim.symmetry import Mirror, ModelMirror, SymmetryError


@dataclass(frozen=True)
class PolicyMirrors:
    """The mirror of the actor's raw input vector (``actor_features``) and of the action vector."""

    actor_features: Mirror
    actions: Mirror


def policy_mirrors(task: Any, env: Any, first: TensorDict, tolerance: float = 0.01) -> PolicyMirrors:
    """Mirror maps for ``task``'s actor on ``env``, sized from the env's first step ``first``.

    ``tolerance``: how far (metres) the model may be from exact left-right symmetry
    (:class:`ktorch_sim.symmetry.ModelMirror`).
    """
    try:
        model_mirror = ModelMirror(env.model, tolerance)
        observations, commands = first["observation"], first["command"]
        components = {o.name: o for o in env.spec.observations}
        parts = []
        for name in task.get_actor_observation_names(list(observations.keys())):
            width = observations.get(f"noisy_{name}", observations[name]).shape[-1]
            parts.append(_component_mirror(components.get(name), name, "observation", width, model_mirror))
        command_components = {c.name: c for c in env.spec.commands}
        for name in sorted(commands.keys()):
            parts.append(_component_mirror(command_components.get(name), name, "command", commands[name].shape[-1],
                                           model_mirror))
        actuator_ids = getattr(env.spec.actuators, "actuator_ids", None)
        if actuator_ids is None:
            raise SymmetryError(f"{type(env.spec.actuators).__name__} does not say which actuator each action "
                                "drives (an actuator_ids attribute), so the actions cannot be mirrored")
        actions = model_mirror.actuators(tuple(actuator_ids))
    except SymmetryError as error:
        raise ConfigError(f'"augment": {error}; override PPOTask.get_policy_mirrors to give the maps yourself, or '
                          'set ppo.symmetry = "none"', key="ppo.symmetry") from None
    return PolicyMirrors(actor_features=Mirror.concat(parts), actions=actions)


def _component_mirror(component: Any, name: str, kind: str, width: int, model_mirror: ModelMirror) -> Mirror:
    """The component's mirror, checked against the width of its output."""
    mirror = None if component is None else component.mirror(model_mirror)
    if mirror is None:
        what = "is not a component of the environment" if component is None else \
            f"({type(component).__name__}) has no mirror (its mirror() returns None)"
        raise SymmetryError(f"the actor's {kind} {name!r} {what}")
    if len(mirror) != width:
        raise SymmetryError(f"the mirror of {kind} {name!r} maps {len(mirror)} entries, but it has {width}")
    return mirror
