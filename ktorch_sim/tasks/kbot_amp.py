"""``kbot_amp``: K-Bot walking on velocity commands, styled by AMP from K-Bot's generated gaits.

The walking task (:mod:`ktorch_sim.tasks.kbot_walk`: commands, observations, sim-to-real settings,
randomizers, pushes, terminations) with a lean task reward (velocity tracking, staying alive and
upright, smoothness and joint-limit penalties) and no hand-made gait shaping: how to walk comes from
the style reward of a discriminator trained on the reference clips (:mod:`ktorch_sim.algorithms.amp`).
The clips are the 34-clip gait family generated in memory when the task is built
(:func:`ktorch_sim.motion.gait.default_family`, about a second), or every ``*.npz`` in
``task.motion_dir``. A ``task.reference_state_init`` share of episodes starts from a random clip frame.

With ``task.command_conditioned`` (the default) the style is selected by the command: velocity commands are
drawn from the clips' own commands (:class:`ClipVelocityCommand`) and the discriminator sees the command
next to each transition, so it learns which gait goes with which command and rewards the policy for the gait
of the clip it is asked to perform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mujoco
import torch

import ktorch_sim.components as kc
from ktorch_sim.algorithms.amp_task import AMPTask
from ktorch_sim.components.base import ComponentState
from ktorch_sim.motion.clip import MotionClip, MotionError, load_motion
from ktorch_sim.tasks.configs import KbotAMPConfig  # defined there (importable without torch)
from ktorch_sim.tasks.kbot_walk import COMMAND, KbotWalkTask

FOOT_SITES = ("left_foot", "right_foot")


@dataclass(frozen=True, kw_only=True)
class ClipVelocityCommand(kc.VelocityCommand):
    """:class:`~ktorch_sim.components.VelocityCommand` whose draws are uniform over a fixed set of commands (the
    clips'), under the name ``velocity_command``; ``zero_prob`` and the ranges are unused."""

    choices: tuple[tuple[float, float, float], ...] = ((0.0, 0.0, 0.0),)

    @property
    def name(self) -> str:
        """The walking task's command name, which its rewards and gait clock read."""
        return COMMAND

    def _resample(self, state: ComponentState, mask: torch.Tensor, ctx: kc.EnvContext) -> None:
        """Draw one of ``choices`` for each world in ``mask``."""
        table = torch.tensor(self.choices, dtype=state["value"].dtype, device=ctx.device)
        pick = table[torch.randint(len(self.choices), (ctx.num_envs,), generator=ctx.generator, device=ctx.device)]
        standing = (pick == 0).all(-1)
        state["value"].copy_(torch.where(mask[:, None], pick, state["value"]))
        state["standing"].copy_(torch.where(mask, standing, state["standing"]))


class KbotAMPTask(AMPTask, KbotWalkTask):
    """K-Bot velocity walking plus AMP's style reward; see the module docstring."""

    config_class = KbotAMPConfig

    def __init__(self, config: KbotAMPConfig) -> None:
        """With ``task.command_conditioned`` the discriminator sees the velocity command."""
        super().__init__(config)
        self.amp_command = COMMAND if config.command_conditioned else None

    def get_commands(self, model: mujoco.MjModel) -> Sequence[kc.Command]:
        """The walking task's commands; with ``task.command_conditioned`` the velocity is one of the clips'."""
        commands = tuple(super().get_commands(model))
        if not self.config.command_conditioned:
            return commands
        choices = sorted({tuple(float(v) for v in clip.metadata["command"]) for clip in self.reference_motions()})
        velocity = ClipVelocityCommand(choices=tuple(choices), switch_prob=self.config.ctrl_dt / 5.0)
        return tuple(velocity if c.name == COMMAND else c for c in commands)

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
