"""Render a trained policy to a video: ``python tools/render.py CHECKPOINT_OR_RUN_DIR [--out video.mp4]``.

Rolls the policy out (its deterministic mode unless ``--stochastic``) in one world on the native
MuJoCo engine on the CPU, whatever engine it was trained on, and renders it offscreen with a
camera that tracks the base; green arrows show the commanded velocity, blue ones the measured
velocity (see ktorch_sim/playback/render.py). ``--command vx,vy,wz`` holds one velocity command for the
whole video; by default (``--sample-commands``) the task draws commands as in training. When an
episode ends (a fall or the time limit) the environment resets and the video goes on.

    python tools/render.py runs/20261121-kbot_walk --seconds 10 --command 0.5,0,0   # -> its render.mp4
    python tools/render.py runs/20261121-kbot_walk/checkpoints/ckpt_000100.pt --out walk.gif --fps 20

``--motion CLIP.npz`` renders a K-Bot reference clip (tools/gen_motion.py) kinematically instead:
each frame's qpos is set and ``mj_forward`` run, no physics; arrows show the clip's command and
its base velocity. A cyclic clip loops (moved on by its wrap transform) for ``--seconds``
(default: the clip's length); the video goes next to the clip unless ``--out`` says otherwise.

    python tools/render.py --motion motions/forward_0.4_T0.8.npz --seconds 4    # -> motions/forward_0.4_T0.8.mp4

Needs an offscreen OpenGL backend: MUJOCO_GL is used as set, else EGL and then OSMesa are tried
(docs/rendering.md says what to install). Bad input, a missing backend or a missing optional
package give one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

OVERRIDES = ["task.engine=mujoco", "task.num_envs=1", "task.device=cpu"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python tools/render.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT_OR_RUN_DIR", nargs="?",
                        help="a run directory (its latest checkpoint) or a checkpoint file")
    parser.add_argument("--motion", type=Path, default=None, metavar="CLIP.npz",
                        help="render this K-Bot motion clip kinematically instead of a policy")
    parser.add_argument("--out", type=Path, default=None,
                        help="output video, .mp4 or .gif (default: render.mp4 in the run directory; "
                             "render_<checkpoint>.mp4 for a checkpoint file)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="video length in seconds (default 10; a --motion clip's own length)")
    parser.add_argument("--fps", type=float, default=30.0,
                        help="frames per second (default 30; 50 shows every 0.02 s control step)")
    parser.add_argument("--width", type=int, default=640, help="image width in pixels (default 640)")
    parser.add_argument("--height", type=int, default=480, help="image height in pixels (default 480)")
    commands = parser.add_mutually_exclusive_group()
    commands.add_argument("--command", type=str, default=None, metavar="VX,VY,WZ",
                          help="hold this velocity command (m/s, m/s, rad/s; heading frame) for the whole video")
    commands.add_argument("--sample-commands", action="store_true",
                          help="let the task draw commands as in training (the default)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the policy's mode")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the environment (resets, commands, pushes) and of sampled actions (default 0)")
    args = parser.parse_args(argv)
    if (args.checkpoint is None) == (args.motion is None):
        parser.error("give either CHECKPOINT_OR_RUN_DIR or --motion CLIP.npz")
    if args.motion is not None:
        if args.command is not None or args.stochastic:
            parser.error("--command and --stochastic drive a policy; a --motion clip has its own command")
        if args.out is None:
            args.out = args.motion.with_suffix(".mp4")
        return args
    if args.seconds is None:
        args.seconds = 10.0
    if args.out is None:
        from ktorch_sim.utils.run_paths import default_output

        args.out = default_output(args.checkpoint, "render.mp4")
    return args


def _check(args: argparse.Namespace) -> tuple[float, float, float] | None:
    """Validate the numbers and the output path; return the parsed --command. Raises ValueError (one line)."""
    from ktorch_sim.playback.policy_rollout import parse_velocity_command
    from ktorch_sim.playback.render import check_video_path

    if args.seconds is not None and not args.seconds > 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if not 0 < args.fps <= 1000:
        raise ValueError(f"--fps must be in (0, 1000], got {args.fps}")
    if not (16 <= args.width <= 8192 and 16 <= args.height <= 8192):
        raise ValueError(f"--width and --height must be 16..8192 pixels, got {args.width}x{args.height}")
    check_video_path(args.out)
    if args.out.suffix.lower() == ".mp4" and (args.width % 2 or args.height % 2):
        raise ValueError(f"MP4 needs an even --width and --height, got {args.width}x{args.height}")
    if args.out.is_dir():
        raise ValueError(f"--out {args.out} is a directory; give a file name ending in .mp4 or .gif")
    return None if args.command is None else parse_velocity_command(args.command)


def _missing_packages(suffix: str) -> list[str]:
    """List the optional packages this output needs that are not installed."""
    import importlib.util

    needed = ["imageio"] + (["imageio_ffmpeg"] if suffix == ".mp4" else ["PIL"])
    return [name for name in needed if importlib.util.find_spec(name) is None]


def render_motion(args: argparse.Namespace) -> int:
    """Render the ``--motion`` clip kinematically (module docstring); one line on stderr and status 2 on error."""
    import mujoco
    import numpy as np

    from ktorch_sim.motion import MotionError, load_motion
    from ktorch_sim.motion.velocity import finite_difference_qvel, looped_frame
    from ktorch_sim.playback.offscreen import GLBackendError
    from ktorch_sim.playback.render import FrameRenderer, num_frames, write_video
    from ktorch_sim.robots import load_kbot_model

    model = load_kbot_model()
    try:
        clip = load_motion(args.motion, model)
        seconds = args.seconds if args.seconds is not None else clip.num_frames / clip.fps
        qpos, wrap = clip.qpos.double().numpy(), clip.wrap_transform
        qvel = clip.qvel.double().numpy() if clip.qvel is not None else finite_difference_qvel(qpos, clip.fps, wrap)
        command = clip.metadata.get("command")
        steps = [round(k * clip.fps / args.fps) for k in range(num_frames(seconds, args.fps))]
        with FrameRenderer(model, args.width, args.height) as renderer:
            frames = [renderer.render(looped_frame(qpos, k, wrap), _looped_velocity(qvel, qpos, k, wrap),
                                      None if command is None else np.asarray(command)) for k in steps]
        path = write_video(args.out, frames, args.fps)
    except (MotionError, ValueError, GLBackendError, mujoco.FatalError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    looped = f", {steps[-1] // clip.num_frames + 1} laps of the clip" if steps[-1] >= clip.num_frames and wrap else ""
    print(f"wrote {path} ({len(frames)} frames, {seconds:g} s at {args.fps:g} fps{looped}) from {args.motion} "
          f"({clip.num_frames} frames at {clip.fps:g} fps)")
    return 0


def _looped_velocity(qvel, qpos, k: int, wrap):  # noqa: ANN001, ANN202 - numpy arrays, tool-local helper
    """Return the qvel of frame ``k`` of a looped clip: the base's world-frame linear velocity turns each lap."""
    import math

    import numpy as np

    frames = qpos.shape[0]
    velocity = np.array(qvel[k % frames if wrap else min(k, frames - 1)])
    laps = k // frames if wrap else 0
    if laps:
        yaw = laps * wrap[2]
        c, s = math.cos(yaw), math.sin(yaw)
        velocity[0], velocity[1] = c * velocity[0] - s * velocity[1], s * velocity[0] + c * velocity[1]
    return velocity


def main(argv: list[str] | None = None) -> int:
    """Render the video; one line on stderr and status 2 for bad input."""
    args = parse_args(argv)
    # Choose the GL backend first: it sets MUJOCO_GL (egl, else osmesa) when the user has not.
    from ktorch_sim.playback.offscreen import GLBackendError, select_gl_backend

    try:
        command = _check(args)
        missing = _missing_packages(args.out.suffix.lower())
        if missing:
            raise ValueError(f"writing {args.out.suffix} videos needs {', '.join(missing)}: "
                             'pip install -e ".[tools]"')
        select_gl_backend()
    except (ValueError, GLBackendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.motion is not None:
        return render_motion(args)

    import torch

    from ktorch_sim.checkpoint import CheckpointError
    from ktorch_sim.config import ConfigError
    from ktorch_sim.playback.policy_rollout import record_rollout
    from ktorch_sim.playback.render import render_rollout, steps_for, write_video
    from ktorch_sim.playback.trained import load_trained_policy

    try:
        policy = load_trained_policy(args.checkpoint, overrides=[*OVERRIDES, f"task.seed={args.seed}"])
        num_steps = steps_for(args.seconds, args.fps, policy.env.ctrl_dt)
        generator = torch.Generator(device=policy.env.device).manual_seed(args.seed)
        rollout = record_rollout(policy, num_steps, command=command, deterministic=not args.stochastic,
                                 generator=generator)
        frames = render_rollout(policy.env.model, rollout, args.seconds, args.fps, args.width, args.height)
        path = write_video(args.out, frames, args.fps)
    except (CheckpointError, ConfigError, ValueError, GLBackendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    falls = int(rollout.done[1:].sum())
    print(f"wrote {path} ({len(frames)} frames, {args.seconds:g} s at {args.fps:g} fps, {rollout.num_steps} "
          f"control steps, {falls} episode reset{'s' if falls != 1 else ''}) from {policy.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
