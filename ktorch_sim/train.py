"""``python -m ktorch_sim.train --cfg configs/kbot_walk.toml [--set key=value ...] [--resume RUN_DIR]``.

Trains a task with PPO, logging to wandb (online, offline or disabled) and to the run
directory's ``metrics.jsonl``, with atomic checkpoints. Ctrl-C (or SIGTERM) stops within a
control step or minibatch, drops the unfinished iteration, saves the checkpoint of the last
finished one and exits cleanly; ``--resume RUN_DIR`` continues it. Under ``torchrun --nproc-per-node K``
it trains on K processes (docs/distributed.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Nothing here imports torch, MuJoCo or Warp: the config and the command line are checked first, so a
# bad input is reported in well under a second; the trainer (and with it torch) is imported after that.
from ktorch_sim.config import (
    ConfigError,
    TrainConfig,
    cap_notes,
    config_from_dict,
    config_help,
    layout_note,
    load_config,
    require_ppo_task,
    source_of,
)
from ktorch_sim.errors import CheckpointError, ModelFileError, RunDirError, RunFinished
from ktorch_sim.utils.run_paths import next_steps


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` also lists every config field with its default)."""
    parser = argparse.ArgumentParser(
        prog="python -m ktorch_sim.train", description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_epilog(argv))
    parser.add_argument("--cfg", type=Path, default=None,
                        help="TOML config file (default: the run's config with --resume, else kbot_walk defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set ppo.learning_rate=1e-3 (repeatable)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its latest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    return parser.parse_args(argv)


def _epilog(argv: list[str] | None) -> str | None:
    args = sys.argv[1:] if argv is None else argv
    if "-h" not in args and "--help" not in args:
        return None
    return "config fields (TOML section.key, type, default):\n" + config_help()


def main(argv: list[str] | None = None) -> int:
    """Run training; bad input exits with status 2 and one line on stderr."""
    args = parse_args(argv)
    notes: list[str] = []
    try:
        if args.resume is not None and not args.resume.is_dir():
            raise CheckpointError(f"--resume {args.resume}: no such run directory")
        cfg = args.cfg
        config = None
        if cfg is None and args.resume is not None:
            if (args.resume / "config.toml").is_file():
                cfg = args.resume / "config.toml"  # resume with the run's own resolved config
            else:
                config, note = _config_from_checkpoint(args.resume, args.overrides)
                notes.append(note)
        if config is None:
            config = load_config(cfg, args.overrides, note_caps=False)
        require_ppo_task(config)
        from ktorch_sim.training.trainer import Trainer

        try:
            trainer = Trainer(config, resume=args.resume, refuse_finished=True)
        except ConfigError as e:  # raised while building (memory bounds): name where the key came from
            raise (e if e.source else e.at(source_of(config, e.key))) from None
    except (ConfigError, CheckpointError, RunDirError, ModelFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunFinished as e:
        print(e, file=sys.stderr)
        return 0
    # After the bad-input checks, so an error stays the only line.
    layout = layout_note(config, trainer.config)
    for line in (*notes, *cap_notes(config), *([layout] if layout else [])):
        print(line, file=sys.stderr)
    from ktorch_sim.training import distributed

    try:
        run_dir = trainer.train(progress=not args.no_progress)
    except distributed.DistributedError as e:  # another rank died or hung (rank 0 saved its last checkpoint)
        print(f"error: {e}", file=sys.stderr)
        return 1
    distributed.shutdown()  # under torchrun: leave the process group (no-op for one process)
    if trainer.dist.is_main:  # one summary per job, not one per rank
        print(trainer.summary())
        print(next_steps(run_dir))  # where the files are and the next commands; last line "run directory: ..."
    return 0


def _config_from_checkpoint(run_dir: Path, overrides: list[str]) -> tuple[TrainConfig, str]:
    """Return the config stored in the run's latest checkpoint (its config.toml is gone) and a note saying so."""
    from ktorch_sim.checkpoint import CheckpointManager, load_checkpoint

    path = CheckpointManager(run_dir).resume_path()
    stored = load_checkpoint(path)["config"]
    config = config_from_dict(stored, overrides, source=f"{path} (stored config)", note_caps=False)
    return config, (f"note: {run_dir / 'config.toml'} is missing; resuming with the config stored in the "
                    f"checkpoint {path}")


if __name__ == "__main__":
    sys.exit(main())
