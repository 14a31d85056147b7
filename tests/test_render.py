"""Rendering: pinned commands, frame timing, arrows, tracking camera, video files, tools/render.py, training videos.

Tests that draw pixels need an offscreen OpenGL backend (EGL or OSMesa) and are skipped, with the
reason, only when neither works; .ci/run installs one so CI runs them.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.playback import offscreen
from ktorch_sim.checkpoint import load_checkpoint
from ktorch_sim.playback.offscreen import GLBackendError, select_gl_backend
from ktorch_sim.playback.render import (
    BLUE,
    GREEN,
    LIGHT_BLUE,
    YAW_ARROW_SCALE,
    FrameRenderer,
    frame_steps,
    num_frames,
    velocity_arrows,
    write_video,
)
from ktorch_sim.tasks.kbot_walk import KbotWalkConfig, KbotWalkTask
from ktorch_sim.training.videos import FPS, TrainingVideos
from tests.conftest import train_tiny_run

REPO = Path(__file__).resolve().parents[1]
RENDER_CLI = REPO / "tools" / "render.py"


def _gl_missing_reason() -> str | None:
    try:
        select_gl_backend()
    except GLBackendError as e:
        return str(e)
    return None


@pytest.fixture(scope="module")
def gl() -> None:
    reason = _gl_missing_reason()
    if reason is not None:
        pytest.skip(f"no offscreen OpenGL: {reason}")


def _read_frames(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


def _walk_env(num_envs: int = 4, seed: int = 0, episode_seconds: float = 24.0):
    config = KbotWalkConfig(num_envs=num_envs, engine="mujoco", device="cpu", seed=seed,
                            episode_length_seconds=episode_seconds)
    return KbotWalkTask(config).make_env()


# --- pinned commands (no OpenGL needed) -------------------------------------------------------------------------


def test_pinned_command_is_what_the_env_reports_at_every_step_through_resets():
    env = _walk_env(episode_seconds=0.1)  # 5-step episodes: every world resets (and resamples) 6 times below
    pinned = torch.tensor([0.5, -0.1, 0.3])
    env.pin_command("velocity_command", pinned)
    step = env.reset()
    assert torch.equal(step["command"]["velocity_command"], pinned.expand(4, 3))
    resets = 0
    for _ in range(30):
        out = env.step(torch.zeros(4, env.num_actions))
        resets += int(out["next"]["done"].sum())
        assert torch.equal(out["command"]["velocity_command"], pinned.expand(4, 3))
        assert torch.equal(out["next"]["command"]["velocity_command"], pinned.expand(4, 3))
    assert resets >= 20
    env.pin_command("velocity_command", None)  # released: the next resets draw commands again
    for _ in range(5):
        out = env.step(torch.zeros(4, env.num_actions))
    assert not torch.equal(out["next"]["command"]["velocity_command"], pinned.expand(4, 3))


def test_pinned_command_is_seen_by_later_commands_and_leaves_random_streams_alone():
    free, pinned = _walk_env(episode_seconds=0.1), _walk_env(episode_seconds=0.1)
    pinned.pin_command("velocity_command", [0.0, 0.0, 0.0])
    free.reset(), pinned.reset()
    gait_offset = 0.06  # kbot_walk's SinusoidalGaitCommand height_offset: a stopped command holds every foot there
    for _ in range(12):
        a, b = free.step(torch.zeros(4, free.num_actions)), pinned.step(torch.zeros(4, pinned.num_actions))
        # the gait clock reads the velocity command after each reset/update: it must see the pinned zero
        assert torch.allclose(b["next"]["command"]["sinusoidal_gait_command"], torch.full((4, 2), gait_offset))
        # pinning changes no random draw: resets, pushes and physics stay identical
        assert torch.equal(a["next"]["observation"]["joint_position_observation"],
                           b["next"]["observation"]["joint_position_observation"])
    assert not torch.allclose(a["next"]["command"]["sinusoidal_gait_command"], torch.full((4, 2), gait_offset))


def test_pin_command_rejects_unknown_names_and_wrong_widths():
    env = _walk_env(num_envs=2)
    with pytest.raises(ValueError, match="no command 'speed'.*velocity_command"):
        env.pin_command("speed", [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="takes 3 values per world"):
        env.pin_command("velocity_command", [0.5, 0.0])


# --- timing, arrows, files (no OpenGL needed) -------------------------------------------------------------------


def test_frame_timing_worked_by_hand():
    assert num_frames(2.0, 25) == 50 and num_frames(0.3, 10) == 3 and num_frames(1.0, 30) == 30
    assert frame_steps(5, 50, 0.02) == [0, 1, 2, 3, 4]  # 50 fps = every control step
    assert frame_steps(5, 25, 0.02) == [0, 2, 4, 6, 8]  # 25 fps = every second step
    assert frame_steps(4, 10, 0.02) == [0, 5, 10, 15]
    assert frame_steps(4, 100, 0.02) == [0, 0, 1, 2]  # faster than control: steps repeat (k/2, ties to even)


def test_velocity_arrows_turn_the_heading_frame_command_into_the_world():
    qpos = np.zeros(27)
    qpos[:3] = (1.0, 2.0, 0.7)
    qpos[3:7] = (math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4))  # heading +90 deg (facing world +y)
    qvel = np.zeros(26)
    qvel[:3] = (0.5, 0.0, 0.0)  # moving along world +x, i.e. sideways to the robot's right
    qvel[5] = 2.0  # body-frame yaw rate = world yaw rate for an upright base
    arrows = {a.rgba: np.subtract(a.end, a.start) for a in velocity_arrows(qpos, qvel, np.array([1.0, 0.0, -1.0]))}
    np.testing.assert_allclose(arrows[GREEN], [0.0, 1.0, 0.0], atol=1e-12)  # forward = world +y
    np.testing.assert_allclose(arrows[BLUE], [0.5, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(arrows[LIGHT_BLUE], [0.0, 0.0, 2.0 * YAW_ARROW_SCALE], atol=1e-12)
    assert all(a.start[2] > 0.7 + 0.5 for a in velocity_arrows(qpos, qvel, None))  # above the robot's head


def test_body_velocity_arrows_work_without_a_free_joint_and_agree_with_it(kbot_model):
    from ktorch_sim.playback.render import ARROW_HEIGHT, body_velocity_arrows
    from tests.planar_walker import planar_walker_model

    model = planar_walker_model()  # root: slide x, slide z, hinge y; qpos[3:7] are leg joints
    d = mujoco.MjData(model)
    d.qpos[:3] = (1.0, -0.1, 0.3)
    d.qvel[:3] = (0.8, 0.0, 0.0)  # moving forward along x, upright-ish, not turning
    mujoco.mj_forward(model, d)
    arrows = {a.rgba: a for a in body_velocity_arrows(model, d, 1, np.array([0.5, 0.0, 0.0]))}
    np.testing.assert_allclose(np.subtract(arrows[BLUE].end, arrows[BLUE].start), [0.8, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(np.subtract(arrows[GREEN].end, arrows[GREEN].start), [0.5, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(arrows[BLUE].start, d.xpos[1] + [0.0, 0.0, ARROW_HEIGHT], atol=1e-9)
    assert LIGHT_BLUE not in arrows  # no yaw rate about world z

    # a free-joint robot: the same arrows as the qpos/qvel version
    d = mujoco.MjData(kbot_model)
    d.qpos[:] = kbot_model.qpos0
    d.qpos[:3] = (1.0, 2.0, 0.7)
    d.qpos[3:7] = (math.cos(math.pi / 8), 0.0, 0.0, math.sin(math.pi / 8))
    d.qvel[:3], d.qvel[5] = (0.5, -0.2, 0.0), 1.5
    mujoco.mj_forward(kbot_model, d)
    free = velocity_arrows(d.qpos, d.qvel, np.array([1.0, 0.0, -1.0]))
    body = body_velocity_arrows(kbot_model, d, 1, np.array([1.0, 0.0, -1.0]))
    assert [a.rgba for a in body] == [a.rgba for a in free]
    for a, b in zip(body, free, strict=True):
        np.testing.assert_allclose(a.start, b.start, atol=1e-9)
        np.testing.assert_allclose(a.end, b.end, atol=1e-9)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_write_video_frame_count_and_nothing_half_written(tmp_path, suffix):
    rng = np.random.default_rng(0)
    frames = [np.full((48, 64, 3), 20 * k, dtype=np.uint8) + rng.integers(0, 5, (48, 64, 3), dtype=np.uint8)
              for k in range(7)]
    path = write_video(tmp_path / f"v{suffix}", frames, fps=10)
    back = _read_frames(path)
    assert back.shape[:3] == (7, 48, 64)
    assert abs(float(back[3].mean()) - float(frames[3].mean())) < 8  # the right frame in the right place
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"v{suffix}"]
    with pytest.raises(ValueError, match="unknown video format '.avi'"):
        write_video(tmp_path / "v.avi", frames, fps=10)
    with pytest.raises(ValueError, match="even width and height"):
        write_video(tmp_path / "odd.mp4", [f[:47] for f in frames], fps=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"v{suffix}"]


def test_no_gl_backend_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys, tiny_kbot_walk_run):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(offscreen, "probe_backend", lambda backend: "libEGL.so.1: cannot open shared object file")
    select_gl_backend.cache_clear()
    try:
        status = _render_main()([str(tiny_kbot_walk_run), "--out", str(tmp_path / "v.mp4")])
    finally:
        select_gl_backend.cache_clear()
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert "no offscreen OpenGL backend: install libegl1 (MUJOCO_GL=egl) or libosmesa6 (MUJOCO_GL=osmesa)" in err
    assert not any(tmp_path.iterdir())


def _render_main():
    spec = importlib.util.spec_from_file_location("render_cli", RENDER_CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize(("args", "message"), [
    (["--command", "1,2"], "expected three numbers vx,vy,wz"),
    (["--seconds", "0"], "--seconds must be > 0"),
    (["--width", "65"], "even --width and --height"),
])
def test_render_cli_bad_input_is_one_line(tmp_path, capsys, tiny_kbot_walk_run, args, message):
    status = _render_main()([str(tiny_kbot_walk_run), "--out", str(tmp_path / "v.mp4"), *args])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err, err
    assert not any(tmp_path.iterdir())


# --- pixels -----------------------------------------------------------------------------------------------------


def _whitish(image: np.ndarray) -> np.ndarray:
    """Bool mask of the robot's light grey pixels (the floor is dark blue, the sky blue to black)."""
    rgb = image.astype(np.int32)
    return (rgb.min(-1) > 120) & (rgb.max(-1) - rgb.min(-1) < 40)


def test_tracking_camera_keeps_the_robot_in_the_middle(gl):
    model = mujoco.MjModel.from_xml_path(str(REPO / "ktorch_sim" / "assets" / "kbot" / "scene.xml"))
    qpos = model.key_qpos[0].copy() if model.nkey else model.qpos0.copy()
    qvel = np.zeros(model.nv)
    with FrameRenderer(model, 160, 120) as renderer:
        for x, y in [(0.0, 0.0), (4.0, -3.0)]:  # far from the origin too: a fixed camera would lose it
            qpos[:2] = (x, y)
            image = renderer.render(qpos, qvel)
            column, row = renderer.project(qpos[:3])
            assert abs(column - 80) < 12 and abs(row - 60) < 20, (x, y, column, row)
            # pixels agree: the robot's light grey is in the middle columns, not at the sides
            robot = _whitish(image)
            middle, sides = robot[:, 64:96].mean(), np.concatenate([robot[:, :32], robot[:, -32:]], 1).mean()
            assert middle > 0.1 and middle > 5 * sides, (x, y, middle, sides)
        right = np.asarray(renderer.renderer.scene.camera[0].forward)
        right = np.cross(right, renderer.renderer.scene.camera[0].up)
        column, _ = renderer.project(qpos[:3] + 0.5 * right)  # the projection can tell left from right
        assert column > 100


def test_render_cli_writes_the_expected_frames(gl, tmp_path, tiny_kbot_walk_run):
    out = tmp_path / "video" / "walk.mp4"
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}  # the CLI picks a backend itself
    result = subprocess.run([sys.executable, str(RENDER_CLI), str(tiny_kbot_walk_run), "--out", str(out),
                             "--seconds", "0.8", "--fps", "10", "--width", "160", "--height", "120",
                             "--command", "0.5,0,0.5"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "8 frames" in result.stdout
    frames = _read_frames(out)
    assert frames.shape == (8, 120, 160, 3)  # round(0.8 s * 10 fps)
    assert frames.mean() > 20  # not black
    assert max(np.abs(frames[k].astype(int) - frames[0]).mean() for k in range(1, 8)) > 0.5  # not all identical
    green = (frames[..., 1] > 150) & (frames[..., 0] < 100) & (frames[..., 2] < 100)
    assert green.any(axis=(1, 2)).all()  # the commanded-velocity arrows are drawn in every frame


# --- training videos --------------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_training_videos_are_due_every_n_minutes(tmp_path):
    from ktorch_sim.config import load_config

    config = load_config(None, ["task.engine=mujoco", "task.device=cpu", "logging.video_every_minutes=2"])
    clock = _Clock()
    videos = TrainingVideos(config, tmp_path, logger=None, clock=clock)
    clock.now = 119.0
    assert not videos.due()
    clock.now = 120.0
    assert videos.due()
    off = load_config(None, ["task.engine=mujoco", "task.device=cpu"])  # the default: 0 = never
    assert not TrainingVideos(off, tmp_path, logger=None, clock=clock).due()


def test_training_writes_videos_without_changing_training(gl, tmp_path):
    video = ("logging.video_every_minutes=1e-9", "logging.video_seconds=0.2", "ppo.max_steps=20")
    with_videos = train_tiny_run(tmp_path / "a", extra=video)
    without = train_tiny_run(tmp_path / "b", extra=("ppo.max_steps=20",))
    files = sorted(p.name for p in (with_videos / "videos").iterdir())
    assert files == ["iter_1.mp4", "iter_2.mp4"]
    assert _read_frames(with_videos / "videos" / "iter_2.mp4").shape[0] == round(0.2 * FPS)
    assert not (without / "videos").exists()
    a = load_checkpoint(next((with_videos / "checkpoints").glob("ckpt_*.pt")))
    b = load_checkpoint(next((without / "checkpoints").glob("ckpt_*.pt")))
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key  # the video's rollout disturbed no training stream
    ra, rb = a["rng"], b["rng"]
    assert torch.equal(ra["torch"], rb["torch"]) and ra["python"] == rb["python"]
    assert all(np.array_equal(x, y) for x, y in zip(ra["numpy"], rb["numpy"], strict=True))
    for name in ("env", "ppo"):
        assert torch.equal(ra["generators"][name], rb["generators"][name]), name


def test_a_failing_video_warns_once_and_training_goes_on(tmp_path, monkeypatch, capsys):
    import ktorch_sim.playback.render

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ktorch_sim.playback.render, "render_rollout", broken)
    run = train_tiny_run(tmp_path, extra=("logging.video_every_minutes=1e-9", "logging.video_seconds=0.2",
                                          "ppo.max_steps=30"))
    err = capsys.readouterr().err
    assert err.count("training video failed") == 1 and "disk on fire" in err, err
    assert load_checkpoint(next((run / "checkpoints").glob("ckpt_*.pt")))["counters"]["iteration"] == 3
    assert not (run / "videos").exists() or not any((run / "videos").iterdir())
