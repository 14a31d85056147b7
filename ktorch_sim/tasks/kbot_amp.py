"""``kbot_amp``: K-Bot walking on velocity commands, styled by AMP from K-Bot's generated gaits.

The walking task (:mod:`ktorch_sim.tasks.kbot_walk`: commands, observations, sim-to-real settings,
randomizers, pushes, terminations) with a lean task reward (velocity tracking, staying alive and
upright, smoothness and joint-limit penalties) and no hand-made gait shaping: how to walk comes from
the style reward of a discriminator trained on the reference clips (:mod:`ktorch_sim.algorithms.amp`).
The clips are the 34-clip gait family generated in memory when the task is built
(:func:`ktorch_sim.motion.gait.default_family`, about a second), or every ``*.npz`` in
``task.motion_dir``. A ``task.reference_state_init`` share of episodes starts from a random clip frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mujoco

import ktorch_sim.components as kc
from ktorch_sim.algorithms.amp_task import AMPTask
from ktorch_sim.motion.clip import MotionClip, MotionError, load_motion
from ktorch_sim.tasks.configs import KbotAMPConfig  # defined there (importable without torch)
from ktorch_sim.tasks.kbot_walk import COMMAND, KbotWalkTask

FOOT_SITES = ("left_foot", "right_foot")


class KbotAMPTask(AMPTask, KbotWalkTask):
    """K-Bot velocity walking plus AMP's style reward; see the module docstring."""

    config_class = KbotAMPConfig

    def get_reference_motions(self, model: mujoco.MjModel) -> Sequence[MotionClip]:
        """Every clip in ``task.motion_dir``, or the generated gait family."""
        directory = self.config.motion_dir
        if directory:
            paths = sorted(Path(directory).glob("*.npz"))
            if not paths:
                raise MotionError(f"task.motion_dir {directory!r} holds no *.npz clip "
                                  "(tools/gen_motion.py writes them)")
            return [load_motion(p, model) for p in paths]
        from ktorch_sim.motion.gait import default_family, generate_gait

        return [generate_gait(spec.command, spec.params, model) for spec in default_family()]

    def get_amp_foot_sites(self, model: mujoco.MjModel) -> Sequence[str]:
        """K-Bot's sole-centre sites."""
        return FOOT_SITES

    def get_resets(self, model: mujoco.MjModel) -> Sequence[kc.Reset]:
        """The walking task's resets, then reference-state initialization for a share of the episodes."""
        resets = tuple(super().get_resets(model))
        share = self.config.reference_state_init
        return resets + ((self.reference_state_reset(share),) if share > 0 else ())

    def get_rewards(self, model: mujoco.MjModel) -> Sequence[kc.Reward]:
        """Velocity tracking, alive and upright, smoothness and limits; the gait comes from the style reward."""
        return (
            kc.LinearVelocityReward(cmd=COMMAND, scale=1.0),
            kc.AngularVelocityReward(cmd=COMMAND, index=2, scale=0.5),
            kc.StayAliveReward(balance=10.0, scale=1.0),
            kc.UprightReward(scale=0.5),
            kc.ActionSmoothnessPenalty(scale=0.01),
            kc.AvoidLimitsPenalty.create(model, scale=0.01),
        )
