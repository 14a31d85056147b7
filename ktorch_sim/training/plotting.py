"""Training curves from a run's ``metrics.jsonl``: one grid of small panels against env steps.

Panels, in order, for each metric the run logged (at least one finite value):

* ``episode/return`` and ``episode/length`` (means over the episodes finished each iteration);
* one panel per reward term ``reward/<term>`` (scaled per-step contributions), ``reward/total`` last;
* one panel per ``loss/<name>`` (PPO losses and diagnostics);
* throughput ``perf/env_steps_per_s``;
* the learning rate ``train/learning_rate``.

A resumed run appends to the same file; when ``env_steps`` goes back (a resume from an earlier
checkpoint), the rows it replaces are dropped, so each curve is the history that led to the
last row. Drawing uses matplotlib's Agg backend (no display needed); :func:`save_png` writes
through a temporary file renamed over the target, so a crash never leaves half a PNG.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Panel", "draw_curves", "latest_branch", "metric_panels", "save_png"]

COLUMNS = 4  # panels per row of the grid
SINGLE_PANELS = {
    "episode/return": "episode return",
    "episode/length": "episode length (steps)",
    "perf/env_steps_per_s": "throughput (env steps/s)",
    "train/learning_rate": "learning rate",
}


@dataclass(frozen=True)
class Panel:
    """One small plot: the metric ``key`` drawn against env steps, under ``title``."""

    key: str
    title: str


def latest_branch(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Return the rows on the path to the last one: a row replaces earlier rows at or after its env_steps."""
    kept: list[Mapping[str, Any]] = []
    for row in rows:
        while kept and _x(kept[-1]) >= _x(row):
            kept.pop()
        kept.append(row)
    return kept


def metric_panels(rows: Sequence[Mapping[str, Any]]) -> list[Panel]:
    """Return the panels to draw for ``rows``: the groups of the module docstring that are present."""
    present = {k for row in rows for k, v in row.items() if isinstance(v, int | float) and math.isfinite(v)}
    rewards = sorted(k for k in present if k.startswith("reward/") and k != "reward/total")
    rewards += ["reward/total"] if "reward/total" in present else []
    losses = sorted(k for k in present if k.startswith("loss/"))
    panels = [Panel(k, SINGLE_PANELS[k]) for k in ("episode/return", "episode/length") if k in present]
    panels += [Panel(k, k) for k in rewards + losses]
    panels += [Panel(k, SINGLE_PANELS[k]) for k in ("perf/env_steps_per_s", "train/learning_rate") if k in present]
    return panels


def draw_curves(rows: Sequence[Mapping[str, Any]], title: str = "") -> Figure:
    """Draw one panel per :func:`metric_panels` entry in a grid; raises ValueError when there is none."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = latest_branch(rows)
    panels = metric_panels(rows)
    if not panels:
        raise ValueError("no plottable metrics (episode/*, reward/*, loss/*, perf/env_steps_per_s, "
                         "train/learning_rate) in the rows")
    nrows = math.ceil(len(panels) / COLUMNS)
    ncols = min(COLUMNS, len(panels))
    figure = Figure(figsize=(4.0 * ncols, 2.6 * nrows + 0.4), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg backend: no display, no pyplot state
    for i, panel in enumerate(panels):
        ax = figure.add_subplot(nrows, ncols, i + 1)
        points = [(_x(r), r[panel.key]) for r in rows if isinstance(r.get(panel.key), int | float)]
        ax.plot([x for x, _ in points], [y for _, y in points], linewidth=1.2, marker="." if len(points) < 30 else "")
        ax.set_title(panel.title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i >= len(panels) - ncols:
            ax.set_xlabel("env steps", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=11)
    return figure


def save_png(figure: Figure, path: str | Path) -> None:
    """Write ``figure`` as a PNG to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        figure.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _x(row: Mapping[str, Any]) -> float:
    """Return the x value of a row: env steps (iteration for rows without them)."""
    return float(row.get("env_steps", row.get("iteration", 0)))
