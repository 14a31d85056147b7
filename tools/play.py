"""Evaluate a trained policy on either engine and print one JSON summary, or watch it in a viewer.

    python tools/play.py RUN_DIR_OR_CKPT --engine mujoco --episodes 32 [--num-envs 16]
        [--command 0.5,0,0] [--stochastic] [--seed 1] [--max-seconds 10] [--out summary.json]
    python tools/play.py RUN_DIR_OR_CKPT --viewer        # needs a display; keys steer the command

Prints exactly one JSON object on stdout (and writes it to ``--out``, atomically): survival
rate, falls (per termination), episode length and return, linear and yaw-rate tracking errors,
foot air time, and where the numbers came from. Definitions: docs/evaluation.md and
ktorch_sim/playback/evaluate.py. Evaluating one checkpoint with ``--engine warp`` and ``--engine mujoco``
is the sim2sim check. Bad input: one ``error: ...`` line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ktorch_sim.checkpoint import CheckpointError
from ktorch_sim.config import ConfigError
from ktorch_sim.playback.evaluate import EvalError
from ktorch_sim.playback.play import PlayOptions, evaluate_checkpoint, load_for_play


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        """Report a usage problem as one line and exit 2."""
        print(f"error: {message} (see python tools/play.py --help)", file=sys.stderr)
        raise SystemExit(2)


def _command(text: str) -> tuple[float, float, float]:
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"--command takes three numbers vx,vy,wz (m/s, m/s, rad/s), got {text!r}")
    return values  # type: ignore[return-value]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (one ``error:`` line and exit 2 on bad usage)."""
    p = _Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="run directory (its latest checkpoint) or a ckpt_*.pt file")
    p.add_argument("--engine", choices=("mujoco", "warp"), default="mujoco", help="physics engine (default mujoco)")
    p.add_argument("--device", default=None, help="torch device (default: cpu for mujoco, cuda if present for warp)")
    p.add_argument("--episodes", type=int, default=10, help="episodes to count (default 10)")
    p.add_argument("--num-envs", type=int, default=None, help="parallel worlds, at most --episodes "
                   "(default min(episodes, 64)); world i counts the first episodes//M + (i < episodes%%M) episodes")
    p.add_argument("--command", type=_command, default=None, metavar="VX,VY,WZ",
                   help="pin the velocity command for the whole evaluation (default: the task's sampled commands)")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic mode")
    p.add_argument("--seed", type=int, default=None, help="env and sampling seed (default: the checkpoint's)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="episode time limit in seconds (sets task.episode_length_seconds; default: the task's)")
    p.add_argument("--curriculum-level", type=float, default=None, help="curriculum level in [0, 1] "
                   "(default: the checkpoint's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="further config override, as for training (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON summary to this file")
    p.add_argument("--viewer", action="store_true", help="interactive viewer with keyboard commands (needs a display)")
    return p.parse_args(argv)


def _options(args: argparse.Namespace) -> PlayOptions:
    return PlayOptions(engine=args.engine, device=args.device, episodes=args.episodes, num_envs=args.num_envs,
                       command=args.command, stochastic=args.stochastic, seed=args.seed, max_seconds=args.max_seconds,
                       curriculum_level=args.curriculum_level, overrides=tuple(args.overrides))


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null (strict JSON); dicts and lists are converted recursively."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _view(args: argparse.Namespace) -> int:
    from ktorch_sim.playback.viewer import display_problem, key_map_text, run_viewer

    problem = display_problem()
    if problem is not None:
        print(f"error: --viewer needs a display ({problem}); run it where a screen is attached, or record a video "
              "with tools/render.py", file=sys.stderr)
        return 2
    if args.engine != "mujoco":
        print("note: the viewer runs the native MuJoCo engine", file=sys.stderr)
    policy = load_for_play(args.checkpoint, dataclasses.replace(_options(args), engine="mujoco", device="cpu"),
                           num_envs=1)
    print(f"viewer keys (velocity command):\n{key_map_text()}", flush=True)
    try:
        run_viewer(policy)
    except RuntimeError as e:
        print(f"error: --viewer needs a display (the viewer failed to open: {e})", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parse_args(argv)
    if args.out is not None and (args.out.is_dir() or not args.out.parent.is_dir()):
        problem = "is a directory" if args.out.is_dir() else f"directory {args.out.parent} does not exist"
        print(f"error: --out {args.out}: {problem}; give a file path", file=sys.stderr)
        return 2
    try:
        if args.viewer:
            return _view(args)
        summary = evaluate_checkpoint(args.checkpoint, _options(args))
    except (CheckpointError, ConfigError, EvalError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(_json_safe(summary), allow_nan=False)
    if args.out is not None:
        _write_atomic(args.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
