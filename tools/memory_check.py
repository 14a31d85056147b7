"""Does a long CPU training run keep its resident memory flat? Runs the real training loop and samples RSS.

    python tools/memory_check.py --iterations 200 --num-envs 8 --bound-mb 64

Builds a :class:`~ktorch_sim.training.trainer.Trainer` from a config (default ``configs/kbot_walk.toml`` on the
native MuJoCo engine, ``--num-envs`` worlds, a ``--rollout-seconds`` rollout), then runs
:meth:`Trainer.train` as ``python -m ktorch_sim.train`` does: metrics to ``metrics.jsonl`` every
iteration, a checkpoint every ``--checkpoint-every-seconds`` (default: every iteration, so the save path
is exercised as often as possible), wandb as ``--wandb-mode`` (default disabled). The resident set size
(``VmRSS`` from ``/proc/self/status``) is read after every iteration.

Allocators and caches fill up during the first iterations, so growth is measured from the end of a
``--warmup`` (default 10 iterations) to the last iteration. Prints one JSON object: RSS before training,
after warm-up, at the end and at its peak, ``growth_mb`` (end - warm-up), ``growth_per_100_iterations_mb``
and the least-squares slope over the post-warm-up samples (less sensitive to one noisy sample); the
exit status is 1 when ``growth_mb`` exceeds ``--bound-mb``, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "kbot_walk.toml"
STATUS_FILE = Path("/proc/self/status")


def rss_mb() -> float:
    """Return this process's resident set size in MiB (``VmRSS``); Linux only."""
    for line in STATUS_FILE.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0  # the kernel reports kB
    raise RuntimeError(f"no VmRSS line in {STATUS_FILE}")


def slope_per_100(samples: list[float]) -> float:
    """Least-squares slope of ``samples`` against their index, in units per 100 samples (0 for < 2 samples)."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2.0, sum(samples) / n
    covariance = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(samples))
    variance = sum((i - mean_x) ** 2 for i in range(n))
    return 100.0 * covariance / variance


def summarize(samples: list[float], before: float, warmup: int, bound_mb: float) -> dict[str, float | int | bool]:
    """Build the report for RSS ``samples`` (one per iteration, MiB), ``before`` MiB at the start of training."""
    base = samples[warmup - 1]
    growth = samples[-1] - base
    after = samples[warmup - 1:]
    return {
        "rss_before_training_mb": round(before, 1),
        "rss_after_warmup_mb": round(base, 1),
        "rss_end_mb": round(samples[-1], 1),
        "rss_max_mb": round(max(samples), 1),
        "growth_mb": round(growth, 2),
        "growth_per_100_iterations_mb": round(100.0 * growth / max(1, len(samples) - warmup), 2),
        "slope_per_100_iterations_mb": round(slope_per_100(after), 2),
        "bound_mb": bound_mb,
        "ok": growth <= bound_mb,
    }


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    p = _OneLineParser(prog="tools/memory_check.py", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cfg", type=Path, default=DEFAULT_CONFIG, help="training config (TOML)")
    p.add_argument("--iterations", type=_positive_int, default=200, help="training iterations")
    p.add_argument("--warmup", type=_positive_int, default=10, help="iterations before the baseline sample")
    p.add_argument("--num-envs", type=_positive_int, default=8, help="worlds (task.num_envs)")
    p.add_argument("--rollout-seconds", type=_positive_float, default=0.4, help="ppo.rollout_length_seconds")
    p.add_argument("--checkpoint-every-seconds", type=_positive_float, default=1e-6,
                   help="checkpoint.save_every_seconds (the default saves after every iteration)")
    p.add_argument("--wandb-mode", choices=("disabled", "offline"), default="disabled", help="logging.wandb_mode")
    p.add_argument("--bound-mb", type=_positive_float, default=64.0,
                   help="fail (exit 1) if RSS grows more than this from the end of warm-up to the end")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config override, as for python -m ktorch_sim.train")
    p.add_argument("--samples-out", type=Path, default=None, help="also write every RSS sample (MiB) as JSON here")
    p.add_argument("--run-dir", type=Path, default=None, help="parent of the run directory (default: a temp dir)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Train, sample RSS, print the JSON report; returns the exit status (0 ok, 1 over the bound, 2 bad input)."""
    args = build_parser().parse_args(argv)
    if args.warmup >= args.iterations:
        print(f"error: --warmup ({args.warmup}) must be smaller than --iterations ({args.iterations})",
              file=sys.stderr)
        return 2
    if not STATUS_FILE.is_file():
        print(f"error: {STATUS_FILE} is missing; this tool reads RSS from Linux's /proc", file=sys.stderr)
        return 2

    from ktorch_sim.checkpoint import CheckpointError
    from ktorch_sim.config import ConfigError, load_config
    from ktorch_sim.training.logging import RunDirError
    from ktorch_sim.training.trainer import Trainer

    with tempfile.TemporaryDirectory(prefix="memory_check_") as tmp:
        run_dir = args.run_dir if args.run_dir is not None else Path(tmp)
        overrides = [f"task.num_envs={args.num_envs}", "task.engine=mujoco", "task.device=cpu",
                     f"ppo.rollout_length_seconds={args.rollout_seconds}",
                     f"checkpoint.save_every_seconds={args.checkpoint_every_seconds}",
                     f"logging.wandb_mode={args.wandb_mode}", f"logging.run_dir={run_dir}", *args.overrides]
        try:
            config = load_config(args.cfg, overrides)
            # Stop after exactly --iterations: max_steps counts environment steps.
            config.ppo.max_steps = args.iterations * config.task.num_envs * config.rollout_steps
            trainer = Trainer(config)
        except (ConfigError, CheckpointError, RunDirError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

        samples: list[float] = []
        iterate = trainer.iterate

        def iterate_and_sample() -> dict[str, float]:
            metrics = iterate()
            samples.append(rss_mb())
            return metrics

        trainer.iterate = iterate_and_sample  # the real loop (logging, checkpoints) calls this each iteration
        before = rss_mb()
        trainer.train(progress=False)

    report = {"task": config.task_name, "engine": "mujoco", "num_envs": config.task.num_envs,
              "rollout_steps": config.rollout_steps, "iterations": len(samples), "warmup_iterations": args.warmup,
              **summarize(samples, before, args.warmup, args.bound_mb)}
    print(json.dumps(report))
    if args.samples_out is not None:
        args.samples_out.write_text(json.dumps({"rss_before_training_mb": before, "rss_mb": samples}) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
