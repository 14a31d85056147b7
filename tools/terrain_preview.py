"""Draw a generated terrain grid as a height map PNG, one labelled box per cell.

    python tools/terrain_preview.py --out terrain.png
    python tools/terrain_preview.py --levels 5 --cell-size 4 --kinds flat,stairs_up,stepping_stones --seed 1

Generates the grid with :func:`ktorch_sim.terrain.generate_terrain` (no MuJoCo, no GL) and draws
its heights (colour, m) in world x (levels, difficulty rising to the right) and y (kinds). Needs
matplotlib (``pip install -e ".[tools]"``). Bad input: one ``error: ...`` line, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("terrain.png"), help="PNG to write")
    p.add_argument("--levels", type=int, default=10, help="difficulty levels (cells along x)")
    p.add_argument("--cell-size", type=float, default=8.0, help="cell side, m")
    p.add_argument("--kinds", type=lambda t: tuple(t.split(",")), default=None,
                   help="comma-separated kinds (default: every kind)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate, draw, write; returns the exit status."""
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ktorch_sim.terrain import KINDS, TerrainConfig, generate_terrain

    try:
        config = TerrainConfig(kinds=args.kinds or KINDS, num_levels=args.levels, cell_size=args.cell_size,
                               seed=args.seed)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    terrain = generate_terrain(config)
    sx, sy = terrain.half_size
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * config.num_levels, 0.6 + 0.7 * len(config.kinds)), dpi=90)
    image = ax.imshow(terrain.heights, origin="lower", extent=(-sx, sx, -sy, sy), cmap="terrain")
    for k, kind in enumerate(config.kinds):
        x0, y0 = terrain.cell_origin(0, k)
        ax.text(x0 - 0.3, y0 + config.cell_size / 2, kind, ha="right", va="center", fontsize=8)
    ax.set_xlabel("x, m (level 0 ... {}: difficulty 0 -> 1)".format(config.num_levels - 1))
    ax.set_yticks([])
    fig.colorbar(image, ax=ax, label="height, m", shrink=0.8)
    fig.tight_layout()
    try:
        fig.savefig(args.out)
    except OSError as e:
        print(f"error: cannot write {args.out}: {e}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
