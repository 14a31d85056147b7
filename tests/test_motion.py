"""ktorch_sim.motion: .npz reference clips survive a save/load round trip and match K-Bot's qpos layout."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.motion import MotionClip, load_motion, save_motion
from ktorch_sim.robots import kbot_home_qpos, load_kbot_model


@pytest.fixture(scope="module")
def kbot() -> mujoco.MjModel:
    return load_kbot_model()


def _joint_names(model: mujoco.MjModel) -> tuple[str, ...]:
    return tuple(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(1, model.njnt))


def _walk_like_clip(model: mujoco.MjModel, frames: int = 25, fps: float = 50.0) -> MotionClip:
    """Home pose with the base moving forward at 0.5 m/s and the knees swinging: varied, finite numbers."""
    t = torch.arange(frames, dtype=torch.float64) / fps
    qpos = torch.tensor(kbot_home_qpos(model)).repeat(frames, 1)
    qpos[:, 0] = 0.5 * t
    qpos[:, 7:] += 0.2 * torch.sin(2 * torch.pi * t)[:, None] * torch.linspace(-1, 1, model.nq - 7)
    qvel = torch.zeros(frames, model.nv, dtype=torch.float64)
    qvel[:, 0] = 0.5
    return MotionClip(fps=fps, joint_names=_joint_names(model), qpos=qpos, qvel=qvel)


def test_round_trip_keeps_every_value(tmp_path: Path, kbot: mujoco.MjModel) -> None:
    clip = _walk_like_clip(kbot)
    path = save_motion(tmp_path / "walk.npz", clip)
    loaded = load_motion(path, kbot)
    assert loaded.fps == 50.0 and loaded.joint_names == clip.joint_names
    assert loaded.qpos.dtype == torch.float32 and loaded.qpos.shape == (25, kbot.nq)
    assert torch.equal(loaded.qpos, clip.qpos) and torch.equal(loaded.qvel, clip.qvel)
    assert loaded.num_frames == 25 and loaded.duration == pytest.approx(24 / 50)
    assert [p.name for p in tmp_path.iterdir()] == ["walk.npz"], "no temporary file may be left"


def test_clip_without_qvel_and_overwrite(tmp_path: Path, kbot: mujoco.MjModel) -> None:
    first = _walk_like_clip(kbot, frames=10)
    path = save_motion(tmp_path / "clip.npz", first)
    second = MotionClip(fps=30, joint_names=first.joint_names, qpos=first.qpos[:3])
    save_motion(path, second)
    loaded = load_motion(path)
    assert loaded.qvel is None and loaded.fps == 30.0 and torch.equal(loaded.qpos, first.qpos[:3])


def test_reads_plain_and_compressed_numpy_archives(tmp_path: Path, kbot: mujoco.MjModel) -> None:
    """Files written by numpy itself (no ktorch_sim) load; the frame is MuJoCo's qpos, usable as is."""
    qpos = np.tile(kbot_home_qpos(kbot), (3, 1))
    for name, writer in (("plain.npz", np.savez), ("small.npz", np.savez_compressed)):
        writer(tmp_path / name, fps=np.float32(30), joint_names=np.array(_joint_names(kbot)), qpos=qpos)
        clip = load_motion(tmp_path / name, kbot)
        data = mujoco.MjData(kbot)
        data.qpos[:] = clip.qpos[1].double().numpy()
        mujoco.mj_kinematics(kbot, data)
        base = kbot.jnt_bodyid[0]  # the free joint's body sits where qpos[:3] says
        np.testing.assert_allclose(data.xpos[base], qpos[1, :3], atol=1e-6)
        np.testing.assert_allclose(data.xquat[base], qpos[1, 3:7], atol=1e-6)
        assert clip.fps == 30.0
