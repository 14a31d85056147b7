"""Export a trained policy's actor to ONNX for a robot, and optionally check it against torch.

    python tools/export.py RUN_DIR_OR_CHECKPOINT [--out policy.onnx] [--check] [--steps N] [--opset K]

writes (by default into the run directory) ``policy.onnx`` (step graph), ``policy.init.onnx``
(zero carry; recurrent policies only) and ``policy.json`` (metadata, also inside the ONNX
files); see docs/export.md for the format. ``--check`` then rolls out one episode (``--steps``
control steps) of ``--num-envs`` worlds on the native MuJoCo engine with the torch policy,
replays the recorded observations and commands through onnxruntime with the carry threaded
through and zeroed at every reset, and exits 1 if any action differs by more than
``--tolerance`` rad. ``--check-only`` checks existing files at
``--out`` without exporting. Prints one JSON line on stdout; what it is doing and, during the
check, a progress line every 10 s go to stderr. Bad input: one ``error:`` line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ktorch_sim.checkpoint import CheckpointError
from ktorch_sim.config import ConfigError
from ktorch_sim.utils.run_paths import default_output

ENGINE_OVERRIDES = ("task.engine=mujoco", "task.device=cpu")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    from ktorch_sim.deploy.export import DEFAULT_OPSET
    from ktorch_sim.deploy.check import DEFAULT_TOLERANCE

    parser = argparse.ArgumentParser(prog="python tools/export.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, metavar="RUN_DIR_OR_CHECKPOINT",
                        help="a run directory (its latest checkpoint) or a ckpt_*.pt file")
    parser.add_argument("--out", type=Path, default=None,
                        help="step graph path, e.g. policy.onnx (default: policy.onnx in the run directory; "
                             "policy_<checkpoint>.onnx for a checkpoint file)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--check", action="store_true", help="compare onnxruntime with torch over an episode")
    parser.add_argument("--check-only", action="store_true",
                        help="check the existing files at --out against the checkpoint; export nothing")
    parser.add_argument("--steps", type=int, default=None,
                        help="control steps of the check rollout (default: the task's episode length)")
    parser.add_argument("--num-envs", type=int, default=2, help="worlds in the check rollout (default 2)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest allowed |a_onnx - a_torch|, rad (default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for the check rollout only, e.g. task.episode_length_seconds=1 "
                             "(the export always uses the checkpoint's config)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = default_output(args.checkpoint, "policy.onnx")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Export (and check); 0 on success, 1 when the check fails, 2 on bad input."""
    args = parse_args(argv)
    from ktorch_sim.deploy.export import ExportError

    try:
        summary, failure = run(args)
    except (CheckpointError, ConfigError, ExportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    if failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> tuple[dict, str | None]:
    """Do the work; returns the JSON summary and a one-line failure (None when the check passed or was not run)."""
    from ktorch_sim.deploy.export import (
        ExportError,
        check_opset,
        check_writable,
        export_paths,
        export_policy,
        policy_interface,
    )
    from ktorch_sim.deploy.check import check_export, require_onnxruntime
    from ktorch_sim.utils.phase_progress import PhaseProgress, reporting
    from ktorch_sim.playback.trained import load_trained_policy, resolve_checkpoint

    check = args.check or args.check_only
    if args.num_envs < 1 or (args.steps is not None and args.steps < 1) or not args.tolerance > 0:
        raise ExportError("--num-envs and --steps must be >= 1 and --tolerance > 0")
    paths = export_paths(args.out)
    resolve_checkpoint(args.checkpoint)  # a missing checkpoint fails before anything slow
    if args.check_only:
        if not paths.step.is_file():
            raise ExportError(f"--check-only: {paths.step} does not exist; export it first (drop --check-only)")
    else:
        check_writable(paths)
        check_opset(args.opset)
    if check:
        require_onnxruntime()
    base = [*ENGINE_OVERRIDES, f"task.num_envs={args.num_envs}"]
    _stage(f"loading {args.checkpoint} and building its environment")
    policy = load_trained_policy(args.checkpoint, overrides=base)
    if not args.check_only:
        _stage(f"exporting to {paths.step}")
        export_policy(policy, paths.step, opset=args.opset)
    interface = policy_interface(policy)
    summary = {"step": str(paths.step), "init": str(paths.init) if interface.carry_shape is not None else None,
               "metadata": str(paths.metadata), "checkpoint": str(policy.checkpoint), "iteration": policy.iteration,
               "inputs": interface.input_names, "outputs": interface.output_names,
               "carry_shape": list(interface.carry_shape) if interface.carry_shape is not None else None}
    if not check:
        return summary, None
    if args.overrides:
        policy = load_trained_policy(args.checkpoint, overrides=[*base, *args.overrides])
    _stage("checking: torch rollout on MuJoCo, then the same inputs through onnxruntime (a line every 10 s)")
    with reporting(PhaseProgress(prefix="export check: ")):
        result = check_export(policy, paths, steps=args.steps, tolerance=args.tolerance)
    summary["check"] = result.as_dict()
    failure = None if result.passed else (
        f"check failed: max |a_onnx - a_torch| = {result.max_abs_diff:.3g} rad at step {result.worst_step} "
        f"(world {result.worst_world}) > tolerance {result.tolerance:g} rad")
    return summary, failure


def _stage(text: str) -> None:
    """One progress line on stderr (stdout carries only the JSON summary)."""
    print(f"export: {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
