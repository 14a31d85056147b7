"""Reference-state initialization (RSI): start episodes from random frames of the reference clips.

ksim's ``InitialMotionStateReset`` and Peng et al.'s RSI: a new episode starts, with probability
``probability``, in the state (pose and velocity) of a frame drawn uniformly from every frame of
every clip, turned to a uniformly random heading and placed at the world's current reset x, y.
The other new episodes keep what the earlier resets built. Put it last in a task's resets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ktorch_sim.components.base import EnvContext, Reset, uniform
from ktorch_sim.motion.clip import MotionClip, MotionError
from ktorch_sim.motion.velocity import finite_difference_qvel
from ktorch_sim.utils.rotations import axis_angle_quat, quat_mul, quat_yaw


@dataclass(frozen=True, kw_only=True)
class ReferenceStateReset(Reset):
    """Sets ``qpos``/``qvel`` of a ``probability`` share of the reset worlds to a random clip frame.

    Attributes:
        qpos: every frame's qpos [M, nq] (CPU; moved to the env's device on first use).
        qvel: every frame's qvel [M, nv].
        probability: chance that a reset world starts from a clip frame, in [0, 1].

    """

    qpos: torch.Tensor = field(compare=False, repr=False)
    qvel: torch.Tensor = field(compare=False, repr=False)
    probability: float = 1.0

    @classmethod
    def from_clips(cls, clips: Sequence[MotionClip], probability: float = 1.0) -> ReferenceStateReset:
        """Every frame of ``clips`` (qvel by finite differences where a clip has none)."""
        if not clips:
            raise MotionError("reference-state initialization needs at least one clip")
        if not 0.0 <= probability <= 1.0:
            raise MotionError(f"reference-state initialization probability must be in [0, 1], got {probability}")
        qpos, qvel = [], []
        for clip in clips:
            qpos.append(clip.qpos)
            qvel.append(clip.qvel if clip.qvel is not None else torch.from_numpy(np.asarray(
                finite_difference_qvel(clip.qpos.double().numpy(), clip.fps, wrap=clip.wrap_transform))).float())
        return cls(qpos=torch.cat(qpos).float(), qvel=torch.cat(qvel).float(), probability=probability)

    def apply(self, qpos: torch.Tensor, qvel: torch.Tensor, mask: torch.Tensor, ctx: EnvContext) -> None:
        """Overwrite the chosen rows of ``qpos``/``qvel`` with a re-headed clip frame each."""
        n, device = qpos.shape[0], qpos.device
        chosen = mask & (torch.rand(n, generator=ctx.generator, device=device) < self.probability)
        frame = torch.randint(self.qpos.shape[0], (n,), generator=ctx.generator, device=device)
        heading = uniform(-math.pi, math.pi, (n,), ctx.generator, device)
        ref_qpos = self.qpos.to(device)[frame]
        ref_qvel = self.qvel.to(device)[frame]
        turn = heading - quat_yaw(ref_qpos[:, 3:7])
        new_qpos = ref_qpos.clone()
        new_qpos[:, :2] = qpos[:, :2]
        quat = quat_mul(axis_angle_quat(turn, 2), ref_qpos[:, 3:7])
        new_qpos[:, 3:7] = quat / quat.norm(dim=-1, keepdim=True)
        new_qvel = ref_qvel.clone()
        c, s = torch.cos(turn), torch.sin(turn)
        vx, vy = ref_qvel[:, 0], ref_qvel[:, 1]
        new_qvel[:, 0], new_qvel[:, 1] = c * vx - s * vy, s * vx + c * vy  # world linear velocity turns too
        qpos.copy_(torch.where(chosen[:, None], new_qpos, qpos))
        qvel.copy_(torch.where(chosen[:, None], new_qvel, qvel))
