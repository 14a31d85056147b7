"""AMP features: one function for simulated states and reference clips, and (s, s') transitions.

:func:`amp_features` maps a batch of MuJoCo states (``qpos``, ``qvel`` and the world positions of the
feet) to the vector the AMP discriminator sees, in this order:

==================  =====  ==========================================================================
part                width  meaning
==================  =====  ==========================================================================
joint positions     J      ``qpos[7:]``, rad
joint velocities    J      ``qvel[6:]``, rad/s
base linear vel.    3      world linear velocity in the heading (yaw-only) frame, m/s
base angular vel.   3      angular velocity in the heading frame, rad/s
base height         1      ``qpos[2]``, m
feet                3 F    each foot's position minus the base's, in the heading frame, m
==================  =====  ==========================================================================

Everything is invariant to where the robot is on the floor and which way it faces, so a cyclic
clip's frame after its last one (the first frame moved by the clip's wrap transform) has the
features of its first frame. The environment computes the same features with
:class:`AMPFeatureObservation` (from its own ``qpos``, ``qvel`` and ``site_xpos``), and
:func:`clip_features` computes them for a clip by running MuJoCo's kinematics on each frame: one
function for both, so a policy that reproduces a clip exactly produces the clip's features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np
import torch

from ktorch_sim.components.base import ComponentState, EnvContext, Observation
from ktorch_sim.motion.clip import MotionClip, MotionError
from ktorch_sim.motion.velocity import finite_difference_qvel
from ktorch_sim.utils.rotations import heading_xy, quat_rotate, quat_yaw

AMP_OBSERVATION = "amp_feature_observation"
"""The observation name under which the environment emits :func:`amp_features` (:class:`AMPFeatureObservation`)."""


def _in_heading_frame(yaw: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """World vectors ``v`` (..., 3) expressed in the yaw-only frame ``yaw`` (...): x, y rotated, z kept."""
    return torch.cat([heading_xy(yaw, v), v[..., 2:]], dim=-1)


def amp_features(qpos: torch.Tensor, qvel: torch.Tensor, feet: torch.Tensor) -> torch.Tensor:
    """The AMP feature vector (..., 2 J + 7 + 3 F) of states ``qpos`` (..., 7 + J), ``qvel`` (..., 6 + J)
    and foot world positions ``feet`` (..., F, 3); see the module docstring for the layout.

    ``qpos``/``qvel`` follow MuJoCo's free-joint convention: base xyz and wxyz quaternion, world
    linear velocity and body-frame angular velocity.
    """
    quat = qpos[..., 3:7]
    yaw = quat_yaw(quat)
    base = qpos[..., :3]
    linear = _in_heading_frame(yaw, qvel[..., :3])
    angular = _in_heading_frame(yaw, quat_rotate(quat, qvel[..., 3:6]))
    relative = _in_heading_frame(yaw[..., None], feet - base[..., None, :])
    return torch.cat([qpos[..., 7:], qvel[..., 6:], linear, angular, base[..., 2:3],
                      relative.flatten(-2)], dim=-1)


def feature_size(num_joints: int, num_feet: int) -> int:
    """Width of :func:`amp_features` for ``num_joints`` hinge joints and ``num_feet`` feet."""
    return 2 * num_joints + 7 + 3 * num_feet


def site_ids(model: mujoco.MjModel, names: Sequence[str]) -> list[int]:
    """Site ids of ``names``; raises :class:`MotionError` naming a site the model lacks."""
    ids = []
    for name in names:
        i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, name)
        if i < 0:
            raise MotionError(f"AMP features: the model has no site {name!r} (the foot sites the task names)")
        ids.append(i)
    return ids


def clip_features(clip: MotionClip, model: mujoco.MjModel, foot_sites: Sequence[str]) -> torch.Tensor:
    """:func:`amp_features` of every frame of ``clip`` [T, D], foot sites placed by ``mj_kinematics``.

    A clip without ``qvel`` gets it by finite differences (across the wrap when cyclic).
    """
    if clip.qpos.shape[1] != model.nq:
        raise MotionError(f"AMP features: clip has qpos width {clip.qpos.shape[1]}, the model nq {model.nq}")
    qpos = clip.qpos.double().numpy()
    qvel = clip.qvel.double().numpy() if clip.qvel is not None else \
        finite_difference_qvel(qpos, clip.fps, wrap=clip.wrap_transform)
    ids = site_ids(model, foot_sites)
    data = mujoco.MjData(model)
    feet = np.empty((len(qpos), len(ids), 3))
    for k, frame in enumerate(qpos):
        data.qpos[:] = frame
        mujoco.mj_kinematics(model, data)
        feet[k] = data.site_xpos[ids]
    return amp_features(torch.from_numpy(qpos), torch.from_numpy(np.asarray(qvel)),
                        torch.from_numpy(feet)).float()


def transitions(features: torch.Tensor, cyclic: bool) -> torch.Tensor:
    """(s, s') pairs [M, 2 D] of consecutive frames' ``features`` [T, D]; a cyclic clip adds (last, first)."""
    following = torch.roll(features, -1, dims=0) if cyclic else features[1:]
    current = features if cyclic else features[:-1]
    return torch.cat([current, following], dim=-1)


def reference_transitions(clips: Sequence[MotionClip], model: mujoco.MjModel,
                          foot_sites: Sequence[str]) -> torch.Tensor:
    """Every clip's (s, s') transitions stacked [M, 2 D] (float32, CPU); raises :class:`MotionError` when empty."""
    if not clips:
        raise MotionError("AMP needs at least one reference clip; get_reference_motions returned none")
    return torch.cat([transitions(clip_features(c, model, foot_sites), c.cyclic) for c in clips])


@dataclass(frozen=True, kw_only=True)
class AMPFeatureObservation(Observation):
    """:func:`amp_features` of the current state, from the engine's ``qpos``, ``qvel`` and foot ``site_xpos``.

    Emitted as the observation :data:`AMP_OBSERVATION`; ``ks.AMPTask`` keeps it out of the actor's
    and the critic's inputs (it is the discriminator's).
    """

    foot_site_ids: tuple[int, ...] = field(default=())

    @classmethod
    def create(cls, model: mujoco.MjModel, foot_sites: Sequence[str]) -> AMPFeatureObservation:
        """The observation for ``model``'s sites named ``foot_sites``."""
        return cls(foot_site_ids=tuple(site_ids(model, foot_sites)))

    def observe(self, ctx: EnvContext, state: ComponentState) -> torch.Tensor:
        """(N, D) features of every world."""
        physics = ctx.physics
        return amp_features(physics.qpos, physics.qvel, physics.site_xpos[:, list(self.foot_site_ids)])
