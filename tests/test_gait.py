"""ktorch_sim.motion.gait: the procedural K-Bot gait family, held to stated numeric bounds.

Every bound is written next to its assertion with the worst value measured over the 34-clip
family (gait periods 0.7, 0.8, 1.0 s at 50 Hz; docs/motion.md lists each clip), so each test
fails when the generator regresses. The whole module runs in a few seconds on one core.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.motion import MotionClip, MotionError, load_motion, save_motion
from ktorch_sim.motion.checks import ClipFigures, measure_clip
from ktorch_sim.motion.gait import (
    FAMILY_COMMANDS,
    GaitCommand,
    GaitError,
    GaitParams,
    default_family,
    frame_at,
    generate_gait,
    stance_mask,
)
from ktorch_sim.motion.velocity import finite_difference_qvel, looped_frame, wrap_frame
from ktorch_sim.robots import kbot_metadata, load_kbot_model

REPO = Path(__file__).resolve().parents[1]
Family = dict[str, tuple[MotionClip, ClipFigures]]
"""Clip name -> (clip, its measured figures)."""


@pytest.fixture(scope="module")
def kbot() -> mujoco.MjModel:
    return load_kbot_model()


@pytest.fixture(scope="module")
def family(kbot: mujoco.MjModel) -> Family:
    """Every clip of the default family with its measured figures (the frame after its end included)."""
    out = {}
    for spec in default_family():
        clip = generate_gait(spec.command, spec.params, kbot)
        last = clip.qpos[-1].double().numpy()
        after = frame_at(clip.num_frames / clip.fps, spec.command, spec.params, kbot, seed=last)
        out[spec.name] = (clip, measure_clip(clip, kbot, kbot_metadata(), after))
    return out


def _worst(family: Family, field: str, lowest: bool = False) -> tuple[float, str]:
    """(worst value of a figure over the family, the clip it comes from)."""
    values = {name: getattr(figures, field) for name, (_, figures) in family.items()}
    name = (min if lowest else max)(values, key=values.__getitem__)
    return values[name], name


def test_family_covers_the_issue(family: Family) -> None:
    """Forward and backward at several speeds, both sideways, turning both ways, arcs, standing; 3 periods."""
    assert len(family) == 1 + 3 * (len(FAMILY_COMMANDS) - 1) == 34
    commands = {tuple(clip.metadata["command"]) for clip, _ in family.values()}
    assert {(0.2, 0, 0), (0.4, 0, 0), (0.6, 0, 0), (-0.2, 0, 0), (-0.4, 0, 0), (0, 0.15, 0), (0, -0.15, 0),
            (0, 0, 0.5), (0, 0, -0.5), (0, 0, 0)} <= commands
    for clip, _ in family.values():
        assert clip.fps == 50.0 and clip.cyclic and clip.qvel is not None
        assert clip.num_frames == round(clip.metadata["period"] * 50)


def test_no_stance_foot_skating(family: Family) -> None:
    """A stance foot stays put: world speed of its sole site under 5 mm/s from qvel (worst measured 0.5 mm/s),
    and it moves under 0.1 mm/s between consecutive stance frames in forward kinematics (measured 0.005 mm/s)."""
    speed, name = _worst(family, "stance_foot_speed")
    assert speed < 0.005, f"{name}: stance foot at {speed * 1000:.2f} mm/s"
    drift, name = _worst(family, "stance_foot_drift")
    assert drift < 1e-4, f"{name}: stance foot drifts {drift * 1000:.3f} mm/s"


def test_feet_never_below_the_floor_and_down_in_stance(family: Family) -> None:
    """Lowest foot-capsule point >= 0 m over every frame (measured +0.73 mm); a stance sole at most 4 mm up
    (measured 2.0 mm, the set sole height); walking swings lift the sole 5-7 cm (clearance 6 cm)."""
    lowest, name = _worst(family, "min_sole_height", lowest=True)
    assert lowest >= 0.0, f"{name}: a foot {-lowest * 1000:.2f} mm below the floor"
    stance, name = _worst(family, "max_stance_sole_height")
    assert stance <= 0.004, f"{name}: a stance foot {stance * 1000:.1f} mm above the floor"
    for name, (clip, figures) in family.items():
        walking = not GaitCommand(*clip.metadata["command"]).standing
        assert (0.05 <= figures.max_swing_height <= 0.07) if walking else figures.max_swing_height <= 0.004, name


def test_every_joint_inside_its_range(family: Family) -> None:
    """Every joint at least 0.05 rad (2.9 deg) inside its MJCF range on every frame (measured 0.145 rad)."""
    margin, name = _worst(family, "min_joint_margin", lowest=True)
    assert margin >= 0.05, f"{name}: a joint {margin:.3f} rad from its limit"


def test_joint_speeds_under_the_motor_limits(family: Family) -> None:
    """|joint velocity| <= 50 % of the motor's max_velocity in joints.toml (measured 31 %, 5.5 rad/s)."""
    assert all(kbot_metadata().motors[j.motor].max_velocity > 10 for j in kbot_metadata())
    ratio, name = _worst(family, "max_joint_speed_ratio")
    assert ratio <= 0.5, f"{name}: a joint at {ratio:.0%} of its motor's velocity limit"


def test_continuity_at_stance_swing_switches(family: Family) -> None:
    """At a switch the foot moves < 3 mm in one frame (measured 1.3 mm) and its velocity changes < 0.3 m/s
    (measured 0.20 m/s); no joint velocity changes by more than 4 rad/s between frames (measured 2.6)."""
    step, name = _worst(family, "switch_position_step")
    assert step < 0.003, f"{name}: foot jumps {step * 1000:.1f} mm at a switch"
    jump, name = _worst(family, "switch_velocity_jump")
    assert jump < 0.3, f"{name}: foot velocity jumps {jump:.2f} m/s at a switch"
    accel, name = _worst(family, "max_joint_accel")
    assert accel / 50 < 4.0, f"{name}: a joint velocity jumps {accel / 50:.2f} rad/s in one frame"


def test_mean_base_velocity_equals_the_command(family: Family) -> None:
    """Mean (vx, vy) in the heading frame within 1 mm/s of the command (measured 0.003 mm/s); yaw rate within
    1e-3 rad/s (measured 1e-8)."""
    error, name = _worst(family, "mean_velocity_error")
    assert error < 1e-3, f"{name}: mean velocity off by {error:.4f} m/s"
    error, name = _worst(family, "mean_yaw_rate_error")
    assert error < 1e-3, f"{name}: mean yaw rate off by {error:.4f} rad/s"


def test_cyclic_clip_wraps_smoothly(family: Family, kbot: mujoco.MjModel) -> None:
    """The generator's frame after the last equals the wrapped first frame within 1e-5 (measured 6e-7); the
    joint velocity step across the wrap is no larger than the largest step inside the clip; a 2-cycle clip
    repeats the 1-cycle one: second cycle = wrapped first within 1e-5, same joint velocities within 1e-4."""
    error, name = _worst(family, "wrap_position_error")
    assert error < 1e-5, f"{name}: wrap misses by {error:.2e}"
    for name, (clip, _) in family.items():
        qvel = clip.qvel.double().numpy()[:, 6:]
        inside = np.abs(np.diff(qvel, axis=0)).max()
        assert np.abs(qvel[0] - qvel[-1]).max() <= inside + 1e-6, name
    command, params = GaitCommand(vx=0.3, wz=0.4), GaitParams(period=0.8)
    one = generate_gait(command, params, kbot)
    two = generate_gait(command, dataclasses.replace(params, cycles=2), kbot)
    q1, q2 = one.qpos.double().numpy(), two.qpos.double().numpy()
    wrapped = np.stack([wrap_frame(q, one.wrap_transform) for q in q1])
    assert np.abs(q2[40:] - wrapped).max() < 1e-5 and np.abs(q2[:40] - q1).max() < 1e-5
    v1, v2 = one.qvel.double().numpy(), two.qvel.double().numpy()
    assert np.abs(v2[40:, 6:] - v1[:, 6:]).max() < 1e-4 and np.abs(v2[:40, 6:] - v1[:, 6:]).max() < 1e-4
    assert np.allclose(looped_frame(q1, 45, one.wrap_transform), q2[45], atol=1e-5)


def test_arms_swing_opposite_the_legs(family: Family, kbot: mujoco.MjModel) -> None:
    """Walking forward, each arm is forward while its own foot is back (correlation < -0.9) and the two arms
    move half a period apart (correlation < -0.7, measured -0.79: the foot's path is a 60/40 stance/swing
    sawtooth, not a sine); swing amplitude 0.1-0.5 rad at 0.4 m/s."""
    clip, _ = family["forward_0.4_T0.8"]
    names = clip.joint_names
    q = clip.qpos.double().numpy()
    data = mujoco.MjData(kbot)
    feet = {"left": [], "right": []}
    for frame in q:
        data.qpos[:] = frame
        mujoco.mj_kinematics(kbot, data)
        for side in feet:
            feet[side].append(data.site(f"{side}_foot").xpos[0] - frame[0])
    forward = {}
    for side in ("left", "right"):
        joint = f"dof_{side}_shoulder_pitch_03"
        sign = -np.sign(kbot.jnt_axis[mujoco.mj_name2id(kbot, mujoco.mjtObj.mjOBJ_JOINT, joint)][1])
        forward[side] = sign * q[:, 7 + names.index(joint)]
        assert np.corrcoef(forward[side], feet[side])[0, 1] < -0.9, side
        assert 0.1 <= np.ptp(forward[side]) / 2 <= 0.5, side
    assert np.corrcoef(forward["left"], forward["right"])[0, 1] < -0.7


def test_the_checks_catch_a_broken_clip(family: Family, kbot: mujoco.MjModel) -> None:
    """Negative controls: the figures the tests bound go far past those bounds on clips broken on purpose."""
    clip, _ = family["forward_0.4_T0.8"]
    meta = kbot_metadata()
    # The base runs 50 % faster than the legs step: stance feet skate, the mean velocity is off.
    qpos = clip.qpos.double().numpy().copy()
    qpos[:, 0] *= 1.5
    wrap = list(clip.wrap_transform)
    wrap[0] *= 1.5
    fast = _rebuilt(clip, qpos, wrap)
    figures = measure_clip(fast, kbot, meta)
    assert figures.stance_foot_speed > 0.1 and figures.stance_foot_drift > 0.1
    assert figures.mean_velocity_error > 0.1
    # The legs lag the base and the phase clock by 3 frames (the stance-path phase bug): skating and jumps.
    qpos = clip.qpos.double().numpy().copy()
    qpos[:, 7:] = np.roll(qpos[:, 7:], 3, axis=0)
    lagged = measure_clip(_rebuilt(clip, qpos, clip.wrap_transform), kbot, meta)
    assert lagged.stance_foot_speed > 0.05 and lagged.switch_velocity_jump > 0.3
    # A sole pushed 5 mm into the floor and a knee driven to its limit.
    qpos = clip.qpos.double().numpy().copy()
    qpos[:, 2] -= 0.007
    qpos[5, 7 + clip.joint_names.index("dof_left_knee_04")] = 0.0
    sunk = measure_clip(_rebuilt(clip, qpos, clip.wrap_transform), kbot, meta)
    assert sunk.min_sole_height < -0.004 and sunk.min_joint_margin < 0.05 and sunk.max_joint_accel / 50 > 4.0


def _rebuilt(clip: MotionClip, qpos: np.ndarray, wrap: list[float] | tuple[float, ...]) -> MotionClip:
    """``clip`` with new frames and wrap transform, qvel differenced again."""
    metadata = {**clip.metadata, "wrap_transform": list(wrap)}
    qvel = finite_difference_qvel(qpos, clip.fps, wrap)
    return MotionClip(fps=clip.fps, joint_names=clip.joint_names, qpos=torch.from_numpy(qpos),
                      qvel=torch.from_numpy(qvel), metadata=metadata)


def test_finite_differences_match_mujoco(kbot: mujoco.MjModel, family: Family) -> None:
    """Our central difference equals MuJoCo's mj_differentiatePos (free-base convention) to 1e-9."""
    clip, _ = family["arc_left_0.3_0.4_T0.8"]
    q = clip.qpos.double().numpy()
    ours = finite_difference_qvel(q, clip.fps, clip.wrap_transform)
    for k in (1, 17, 30):
        expected = np.zeros(kbot.nv)
        mujoco.mj_differentiatePos(kbot, expected, 2 / clip.fps, q[k - 1], q[k + 1])
        np.testing.assert_allclose(ours[k], expected, atol=1e-9)
    expected = np.zeros(kbot.nv)
    mujoco.mj_differentiatePos(kbot, expected, 2 / clip.fps, q[-2], wrap_frame(q[0], clip.wrap_transform))
    np.testing.assert_allclose(ours[-1], expected, atol=1e-9)


def test_stance_mask_alternates_with_double_support() -> None:
    """Stance fraction 0.6: each foot is down 60 % of the frames, at least one always, both 20 %."""
    params, command = GaitParams(period=1.0), GaitCommand(vx=0.3)
    mask = stance_mask(50, params, command)
    assert mask["left"].mean() == pytest.approx(0.6) and mask["right"].mean() == pytest.approx(0.6)
    assert (mask["left"] | mask["right"]).all() and (mask["left"] & mask["right"]).mean() == pytest.approx(0.2)
    assert stance_mask(10, params, GaitCommand())["left"].all()


def test_generated_clip_round_trips_with_metadata(tmp_path: Path, kbot: mujoco.MjModel,
                                                  family: Family) -> None:
    clip, _ = family["turn_left_0.5_T0.7"]
    loaded = load_motion(save_motion(tmp_path / "turn.npz", clip), kbot)
    assert loaded.metadata == clip.metadata and loaded.cyclic
    assert loaded.wrap_transform == pytest.approx((0.0, 0.0, 0.35))
    assert loaded.metadata["gait"]["period"] == 0.7 and loaded.metadata["generator"] == "ktorch_sim.motion.gait"
    assert torch.equal(loaded.qpos, clip.qpos) and torch.equal(loaded.qvel, clip.qvel)


@pytest.mark.parametrize(("metadata", "expect"), [
    (np.array("{not json"), "metadata is not valid JSON"),
    (np.array(["{}", "{}"]), "metadata has shape [2]"),
    (np.array("[1, 2]"), "metadata is list; expected a JSON object"),
    (np.array(json.dumps({"cyclic": True})), "metadata says cyclic but has no 'wrap_transform'"),
    (np.array(json.dumps({"period": -1})), "metadata 'period' is -1; expected a finite number of seconds > 0"),
    (np.array(json.dumps({"cyclic": "yes", "wrap_transform": [0, 0, 0]})), "metadata 'cyclic' is 'yes'"),
    (np.array(json.dumps({"command": [0.1, 0.2]})), "metadata 'command' is [0.1, 0.2]; expected [vx, vy, wz]"),
    (np.array(json.dumps({"stance_fraction": 1.5})), "metadata 'stance_fraction' is 1.5"),
    (np.array('{"wrap_transform": [NaN, 0, 0], "cyclic": true}'), "metadata 'wrap_transform' is [nan, 0, 0]"),
])
def test_bad_metadata_is_one_line_naming_the_file(tmp_path: Path, kbot: mujoco.MjModel, metadata: np.ndarray,
                                                  expect: str) -> None:
    names = [mujoco.mj_id2name(kbot, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(1, kbot.njnt)]
    path = tmp_path / "clip.npz"
    np.savez(path, fps=np.array(50.0), joint_names=np.array(names), qpos=np.tile(kbot.key_qpos[0], (3, 1)),
             metadata=metadata)
    with pytest.raises(MotionError) as info:
        load_motion(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)) and expect in message, message


@pytest.mark.parametrize(("params", "command", "expect"), [
    (GaitParams(period=0.75), GaitCommand(vx=0.2), "period 0.75 s is 37.5 frames at 50 fps"),
    (GaitParams(stance_fraction=0.3), GaitCommand(vx=0.2), "stance_fraction is 0.3; expected in [0.5, 1)"),
    (GaitParams(clearance=-0.01), GaitCommand(vx=0.2), "clearance is -0.01; expected >= 0"),
    (GaitParams(cycles=0), GaitCommand(vx=0.2), "cycles is 0"),
    (GaitParams(), GaitCommand(vx=math.inf), "command vx is inf"),
    (GaitParams(), GaitCommand(vx=2.0), "leg IK misses its foot target"),
])
def test_bad_gait_settings_are_one_line(kbot: mujoco.MjModel, params: GaitParams, command: GaitCommand,
                                        expect: str) -> None:
    with pytest.raises(GaitError) as info:
        generate_gait(command, params, kbot)
    assert "\n" not in str(info.value) and expect in str(info.value), str(info.value)


def _tool(name: str):  # noqa: ANN202 - a module loaded from tools/
    spec = importlib.util.spec_from_file_location(f"ktorch_{name}_tool", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gen_motion_writes_clips_and_refuses_bad_arguments(tmp_path: Path, kbot: mujoco.MjModel,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    gen = _tool("gen_motion")
    assert gen.main([str(tmp_path / "out"), "--only", "forward_0.2", "--periods", "0.8,1.0", "--cycles", "2"]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["forward_0.2_T0.8.npz", "forward_0.2_T1.npz"]
    clip = load_motion(tmp_path / "out" / "forward_0.2_T1.npz", kbot)
    assert clip.num_frames == 100 and clip.metadata["gait"]["cycles"] == 2
    assert "stance-foot speed" in capsys.readouterr().out
    assert gen.main([str(tmp_path / "one"), "--command", "0.3,0.1,0.2", "--period", "0.9", "--name", "mine"]) == 0
    assert load_motion(tmp_path / "one" / "mine.npz").metadata["command"] == [0.3, 0.1, 0.2]
    (tmp_path / "file").write_text("x")
    for argv, expect in [
        ([str(tmp_path / "x"), "--periods", "0.75"], "period 0.75 s is 37.5 frames"),
        ([str(tmp_path / "x"), "--command", "1,2"], "--command '1,2': expected 3 numbers"),
        ([str(tmp_path / "x"), "--only", "moonwalk"], "--only moonwalk: no clip name matches"),
        ([str(tmp_path / "file")], "is a file; expected a directory"),
        ([], "give OUT_DIR"),
        ([str(tmp_path / "x"), "--command", "3,0,0"], "leg IK misses its foot target"),
    ]:
        assert gen.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and expect in err, (argv, err)
    assert not (tmp_path / "x").exists() or not list((tmp_path / "x").iterdir())


def test_render_motion_clip(tmp_path: Path, family: Family,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """tools/render.py --motion renders a clip kinematically (looping it) into a video a person can watch."""
    from ktorch_sim.playback.offscreen import GLBackendError, select_gl_backend

    if importlib.util.find_spec("imageio") is None or importlib.util.find_spec("PIL") is None:
        pytest.skip("writing videos needs imageio and Pillow (the tools extra)")
    try:
        select_gl_backend()
    except GLBackendError as e:
        pytest.skip(f"no offscreen OpenGL: {e}")
    clip, _ = family["forward_0.4_T0.8"]
    path = save_motion(tmp_path / "walk.npz", clip)
    render = _tool("render")
    assert render.main(["--motion", str(path), "--seconds", "1", "--fps", "10", "--width", "96", "--height", "64",
                        "--out", str(tmp_path / "walk.gif")]) == 0
    assert "2 laps of the clip" in capsys.readouterr().out
    import imageio.v3 as iio

    frames = iio.imread(tmp_path / "walk.gif")
    assert frames.shape[:3] == (10, 64, 96) and frames.std() > 5
    assert np.abs(frames[2].astype(int) - frames[0].astype(int)).mean() > 0.5, "the robot should move"
    assert render.main(["--motion", str(tmp_path / "none.npz"), "--out", str(tmp_path / "x.gif")]) == 2
    assert "no such motion file" in capsys.readouterr().err
