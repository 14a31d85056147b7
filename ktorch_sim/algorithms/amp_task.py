"""``ks.AMPTask``: a PPOTask trained with Adversarial Motion Priors (ksim's AMPTask, in torch).

A subclass names its reference motion and the robot's feet; everything else is a PPOTask's:

- :meth:`AMPTask.get_reference_motions` returns the clips (:class:`ktorch_sim.motion.MotionClip`,
  the model's joints in qpos order), e.g. generated with :mod:`ktorch_sim.motion.gait` or read with
  :func:`ktorch_sim.motion.load_motion`;
- :meth:`AMPTask.get_amp_foot_sites` names the sites whose positions relative to the base enter the
  features (:mod:`ktorch_sim.motion.amp_features`).

The task adds :class:`~ktorch_sim.motion.amp_features.AMPFeatureObservation` to its observations
(kept out of the actor's and critic's inputs), asks the rollout to store it for the state after
each step too (:attr:`rollout_next_keys`), and names :class:`~ktorch_sim.algorithms.amp.AMPPPO` as
its algorithm (:attr:`algorithm_class`, which the trainer reads). With :attr:`amp_command` set to a
command's name, the discriminator also sees that command's value (a conditional discriminator: the
style is judged against the clips that perform the command; each clip's value is
:meth:`clip_condition`, by default its metadata ``command``). The ``[amp]`` config section
sets the discriminator and the reward mix. :meth:`reference_state_reset` gives the optional
reference-state initialization for :meth:`get_resets`.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import torch

from ktorch_sim.algorithms.amp import AMPPPO
from ktorch_sim.components.base import Observation
from ktorch_sim.motion.amp_features import AMP_OBSERVATION, AMPFeatureObservation, reference_transitions
from ktorch_sim.motion.clip import MotionClip, MotionError
from ktorch_sim.motion.reference_reset import ReferenceStateReset
from ktorch_sim.ppo_task import PPOTask
from ktorch_sim.task import ConfigT


class AMPTask(PPOTask[ConfigT]):
    """A PPOTask whose reward adds AMP's style reward from a discriminator (module docstring)."""

    algorithm_class = AMPPPO
    amp_observation = AMP_OBSERVATION
    amp_command: str | None = None
    """A command whose value conditions the discriminator (None: unconditional AMP); see :meth:`clip_condition`."""
    rollout_next_keys: tuple[tuple[str, str], ...] = (("observation", AMP_OBSERVATION),)
    _reference_clips: list[MotionClip] | None = None

    # --- what a subclass provides ---------------------------------------------------------------

    def get_reference_motions(self, model: mujoco.MjModel) -> Sequence[MotionClip]:
        """The reference clips for ``model`` (at least one)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_reference_motions(model)")

    def get_amp_foot_sites(self, model: mujoco.MjModel) -> Sequence[str]:
        """Names of the foot sites in the AMP features (default: none)."""
        return ()

    # --- built from those ------------------------------------------------------------------------

    def reference_motions(self) -> list[MotionClip]:
        """:meth:`get_reference_motions` for this task's model, computed once and kept."""
        if self._reference_clips is None:
            self._reference_clips = list(self.get_reference_motions(self.get_mujoco_model()))
        return self._reference_clips

    def clip_condition(self, clip: MotionClip) -> torch.Tensor:
        """The value of :attr:`amp_command` that ``clip`` performs (default: its metadata ``command``)."""
        command = clip.metadata.get("command")  # type: ignore[union-attr]
        if command is None:
            raise MotionError(f"{type(self).__name__}.amp_command is {self.amp_command!r}, so every clip needs a "
                              "'command' in its metadata (or override clip_condition)")
        return torch.tensor(command, dtype=torch.float32)

    def amp_reference_transitions(self) -> torch.Tensor:
        """Every reference (s, s') transition [M, 2 D] (float32, CPU), read by :class:`AMPPPO`; with
        :attr:`amp_command` each is followed by its clip's condition ([M, 2 D + C])."""
        model = self.get_mujoco_model()
        sites = self.get_amp_foot_sites(model)
        if self.amp_command is None:
            return reference_transitions(self.reference_motions(), model, sites)
        rows = []
        for clip in self.reference_motions():
            pairs = reference_transitions([clip], model, sites)
            rows.append(torch.cat([pairs, self.clip_condition(clip).expand(pairs.shape[0], -1)], dim=-1))
        return torch.cat(rows)

    def reference_state_reset(self, probability: float) -> ReferenceStateReset:
        """Reference-state initialization from this task's clips with ``probability`` (put it last in the resets)."""
        return ReferenceStateReset.from_clips(self.reference_motions(), probability)

    def get_observations(self, model: mujoco.MjModel) -> Sequence[Observation]:
        """The task's observations plus the AMP features."""
        return (*super().get_observations(model), AMPFeatureObservation.create(model, self.get_amp_foot_sites(model)))

    def get_actor_observation_names(self, observation_names: Sequence[str]) -> list[str]:
        """The PPOTask's choice without the AMP features (they are the discriminator's)."""
        return [n for n in super().get_actor_observation_names(observation_names) if n != self.amp_observation]

    def get_critic_observation_names(self, observation_names: Sequence[str]) -> list[str]:
        """The PPOTask's choice without the AMP features."""
        return [n for n in super().get_critic_observation_names(observation_names) if n != self.amp_observation]
