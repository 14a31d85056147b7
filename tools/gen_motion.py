"""Write K-Bot reference gait clips: ``python tools/gen_motion.py OUT_DIR [options]``.

Generates the procedural gait family of ktorch_sim.motion.gait (forward and backward at several
speeds, sideways, turning in place, arcs, standing; each at several gait periods) as one cyclic
.npz clip per gait (format: ktorch_sim/motion/clip.py, docs/motion.md), and prints one line of
measured figures per clip: the largest stance-foot speed, the lowest sole, the largest joint
speed as a fraction of its motor's limit.

    python tools/gen_motion.py motions/                         # the whole family (34 clips)
    python tools/gen_motion.py motions/ --only forward --periods 0.8 --cycles 2
    python tools/gen_motion.py motions/ --command 0.3,0.1,0.2 --period 0.9 --name my_walk
    python tools/gen_motion.py --list                           # names only, nothing written
    python tools/gen_motion.py motions/ --markdown              # figures as the table in docs/motion.md

Then look at one: ``python tools/render.py --motion motions/forward_0.4_T0.8.npz --seconds 4``.
Bad arguments give one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

DEFAULT_PERIODS = "0.7,0.8,1.0"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python tools/gen_motion.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("out", type=Path, nargs="?", metavar="OUT_DIR", help="directory to write the .npz clips to")
    parser.add_argument("--list", action="store_true", help="print the clip names and commands, write nothing")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="keep the family's clips whose name contains TEXT (repeatable)")
    parser.add_argument("--periods", default=DEFAULT_PERIODS, metavar="T1,T2,...",
                        help=f"gait periods in seconds for the family (default {DEFAULT_PERIODS}); each a whole "
                             "number of frames at --fps")
    parser.add_argument("--command", default=None, metavar="VX,VY,WZ",
                        help="one clip for this command (m/s, m/s, rad/s, heading frame) instead of the family")
    parser.add_argument("--period", type=float, default=0.8, help="gait period of the --command clip (default 0.8)")
    parser.add_argument("--name", default=None, help="file stem of the --command clip (default: from the command)")
    parser.add_argument("--fps", type=float, default=50.0, help="frames per second (default 50, the control rate)")
    parser.add_argument("--cycles", type=int, default=1, help="gait periods per clip (default 1; clips are cyclic)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the measured figures as a Markdown table (docs/motion.md) instead of one line "
                             "per clip")
    return parser.parse_args(argv)


def _numbers(text: str, option: str, count: int | None = None) -> list[float]:
    """Comma-separated finite numbers; ValueError (one line) naming ``option``."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected comma-separated numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{option} {text!r}: expected finite numbers")
    if count is not None and len(values) != count:
        raise ValueError(f"{option} {text!r}: expected {count} numbers, got {len(values)}")
    return values


def _specs(args: argparse.Namespace) -> list:
    """Return the GaitSpecs to write; ValueError/GaitError (one line) for bad settings."""
    from ktorch_sim.motion.gait import GaitCommand, GaitParams, GaitSpec, default_family

    if args.cycles < 1:
        raise ValueError(f"--cycles must be >= 1, got {args.cycles}")
    if args.command is not None:
        if args.only:
            raise ValueError("--only selects from the family; it cannot be combined with --command")
        command = GaitCommand(*_numbers(args.command, "--command", 3))
        name = args.name or "walk_{:g}_{:g}_{:g}_T{:g}".format(*command.as_list(), args.period)
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"--name {name!r}: expected a plain file stem")
        specs = [GaitSpec(name, command, GaitParams(period=args.period, fps=args.fps, cycles=args.cycles))]
    else:
        if args.name is not None:
            raise ValueError("--name names a --command clip; the family's clips have fixed names")
        periods = tuple(_numbers(args.periods, "--periods"))
        specs = list(default_family(periods, args.fps, args.cycles))
        if args.only:
            specs = [s for s in specs if any(text in s.name for text in args.only)]
            if not specs:
                raise ValueError(f"--only {' '.join(args.only)}: no clip name matches; see --list")
    for spec in specs:
        spec.params.check()
    return specs


def _check_out(out: Path | None) -> Path:
    """Return the output directory (created); ValueError (one line) if it is missing or a file."""
    if out is None:
        raise ValueError("give OUT_DIR (the directory to write the clips to), or --list")
    if out.exists() and not out.is_dir():
        raise ValueError(f"OUT_DIR {out} is a file; expected a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"OUT_DIR {out}: cannot create it ({e.strerror or e})") from None
    return out


MARKDOWN_HEADER = (
    "| clip | frames | max stance-foot speed (mm/s) | lowest sole (mm) | max joint speed (rad/s) | of its motor's "
    "limit | min joint margin (deg) | max foot roll (deg) | mean velocity error (mm/s) |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def _markdown_row(name: str, frames: int, f: object) -> str:
    """One table row of :data:`MARKDOWN_HEADER` for the ClipFigures ``f``."""
    return (f"| {name} | {frames} | {f.stance_foot_speed * 1000:.2f} | {f.min_sole_height * 1000:+.2f} | "
            f"{f.max_joint_speed:.2f} | {f.max_joint_speed_ratio:.0%} | {math.degrees(f.min_joint_margin):.1f} | "
            f"{math.degrees(f.max_foot_roll):.1f} | {f.mean_velocity_error * 1000:.3f} |")


def main(argv: list[str] | None = None) -> int:
    """Write (or list) the clips; one line on stderr and status 2 for bad input."""
    args = parse_args(argv)
    from ktorch_sim.motion import MotionError, save_motion
    from ktorch_sim.motion.gait import GaitError

    try:
        specs = _specs(args)
        if args.list:
            for spec in specs:
                print(f"{spec.name}: command {spec.command.as_list()}, period {spec.params.period:g} s")
            return 0
        out = _check_out(args.out)
    except (ValueError, GaitError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from ktorch_sim.motion.checks import measure_clip
    from ktorch_sim.motion.gait import generate_gait
    from ktorch_sim.robots import kbot_metadata, load_kbot_model

    model, metadata = load_kbot_model(), kbot_metadata()
    if args.markdown:
        print(MARKDOWN_HEADER)
    for spec in specs:
        try:
            clip = generate_gait(spec.command, spec.params, model)
            path = save_motion(out / f"{spec.name}.npz", clip)
        except (GaitError, MotionError) as e:
            print(f"error: {spec.name}: {e}", file=sys.stderr)
            return 2
        figures = measure_clip(clip, model, metadata)
        if args.markdown:
            print(_markdown_row(spec.name, clip.num_frames, figures))
            continue
        print(f"wrote {path} ({clip.num_frames} frames at {clip.fps:g} fps): stance-foot speed "
              f"{figures.stance_foot_speed * 1000:.2f} mm/s, lowest sole {figures.min_sole_height * 1000:+.2f} mm, "
              f"joint speed {figures.max_joint_speed_ratio:.0%} of its motor's limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
