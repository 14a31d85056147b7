"""Measure a task's peak contacts and constraint rows and print MuJoCo Warp buffer sizes for it.

    python tools/size_buffers.py --task kbot_walk --engine warp --num-envs 64 --steps 500
    python tools/size_buffers.py --task kbot_walk_rough --set task.terrain_max_init_level=9

Prints one JSON object: the measured peaks (:class:`ktorch_sim.buffer_sizing.BufferPeaks`) and
the recommended ``task.nconmax`` / ``task.njmax`` (peaks x ``--margin``). Random actions around
the home pose make the robot stumble and fall, so the peaks cover fallen worlds too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ktorch_sim.buffer_sizing import measure_buffer_peaks, recommend
from ktorch_sim.config import ConfigError, load_config, resolve_task


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, measure, print JSON; exit 2 on bad input."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="kbot_walk", help="registered task name or package.module:Class")
    p.add_argument("--engine", default="warp", choices=("warp", "mujoco"))
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--steps", type=int, default=500, help="control steps to measure")
    p.add_argument("--action-noise", type=float, default=0.5, help="std of the random actions around home")
    p.add_argument("--margin", type=float, default=1.5, help="recommended size = peak x margin")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override, as for training (e.g. task.terrain_max_init_level=9)")
    args = p.parse_args(argv)
    if args.num_envs < 1 or args.steps < 1 or args.margin < 1.0:
        p.error("--num-envs and --steps must be >= 1 and --margin >= 1")
    try:
        config = load_config(None, [f"task.name={args.task}", f"task.num_envs={args.num_envs}",
                                    f"task.engine={args.engine}", f"task.device={args.device}", "ppo.batch_size=1",
                                    *args.set])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    env = resolve_task(config.task_name)[0](config.task).make_env()
    peaks = measure_buffer_peaks(env, args.steps, action_noise=args.action_noise, seed=args.seed)
    print(json.dumps({"task": args.task, "engine": args.engine, "device": args.device,
                      "configured": {"nconmax": config.task.nconmax, "njmax": config.task.njmax},
                      "peaks": peaks.as_dict(), "recommended": recommend(peaks, args.margin)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
