"""Draw a run's training curves into one PNG: return, episode length, reward terms, losses, throughput, lr.

    python tools/plot.py RUN_DIR --out curves.png

Reads ``RUN_DIR/metrics.jsonl`` (what every training run writes, wandb or not) and draws one
small panel per metric against env steps (ktorch_sim/training/plotting.py lists the panels). Needs
matplotlib (``pip install -e ".[tools]"``). The PNG is written atomically. Bad input (no such
run directory, no metrics yet, an unwritable --out): one ``error: ...`` line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ktorch_sim.training.logging import METRICS_FILE, read_metrics


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        """Report a usage problem as one line and exit 2."""
        print(f"error: {message} (see python tools/plot.py --help)", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (one ``error:`` line and exit 2 on bad usage)."""
    p = _Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="a training run directory (holds metrics.jsonl)")
    p.add_argument("--out", type=Path, default=None, help="PNG to write (default RUN_DIR/curves.png)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parse_args(argv)
    out = args.out if args.out is not None else args.run_dir / "curves.png"
    if not args.run_dir.is_dir():
        print(f"error: run directory {args.run_dir} does not exist; give a training run directory", file=sys.stderr)
        return 2
    if not out.parent.is_dir():
        print(f"error: --out {out}: directory {out.parent} does not exist", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401 - only to report a missing install in one line

        from ktorch_sim.training.plotting import draw_curves, save_png
    except ImportError:
        print('error: tools/plot.py needs matplotlib; install the tools extra: pip install -e ".[tools]"',
              file=sys.stderr)
        return 2
    try:
        rows = read_metrics(args.run_dir)
    except (ValueError, OSError) as e:  # a corrupt line other than the last
        print(f"error: cannot read {args.run_dir / METRICS_FILE}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    if not rows:
        print(f"error: {args.run_dir / METRICS_FILE} has no metrics yet; plot a run that finished an iteration",
              file=sys.stderr)
        return 2
    try:
        figure = draw_curves(rows, title=args.run_dir.resolve().name)
        save_png(figure, out)
    except ValueError as e:
        print(f"error: {args.run_dir / METRICS_FILE}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(out), "panels": len(figure.axes), "rows": len(rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
