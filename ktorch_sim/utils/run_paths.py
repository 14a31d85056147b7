"""Where a run's files are: the run directory of a checkpoint, the tools' default outputs, and the
lines printed at the end of training (what was written, and the next commands for that run).

Torch-free, so the tools can compute their default paths before anything heavy is imported.
"""

from __future__ import annotations

import shlex
from pathlib import Path

__all__ = ["default_output", "next_steps", "run_dir_of"]

CHECKPOINT_DIR = "checkpoints"


def run_dir_of(path: str | Path) -> Path:
    """The run directory of ``path``: a run directory itself, or a checkpoint file in its ``checkpoints/``."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".pt":
        return path
    return path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent


def default_output(checkpoint: str | Path, name: str) -> Path:
    """A tool's default output file for ``checkpoint``: ``name`` inside its run directory.

    For a checkpoint file the checkpoint's stem is added (``render.mp4`` -> ``render_ckpt_000040.mp4``),
    so outputs of different checkpoints of one run do not overwrite each other.
    """
    path = Path(checkpoint)
    out = Path(name)
    if path.suffix == ".pt" and not path.is_dir():
        out = out.with_name(f"{out.stem}_{path.stem}{out.suffix}")
    return run_dir_of(path) / out


def _latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / CHECKPOINT_DIR / "latest"
    try:
        name = pointer.read_text().strip()
    except OSError:
        name = ""
    if name and (run_dir / CHECKPOINT_DIR / name).is_file():
        return run_dir / CHECKPOINT_DIR / name
    found = sorted((run_dir / CHECKPOINT_DIR).glob("ckpt_*.pt"))
    return found[-1] if found else None


def next_steps(run_dir: str | Path) -> str:
    """Lines printed when training ends: the run's files, the commands to play, render and export it, and
    last the ``run directory: ...`` line scripts read."""
    run_dir = Path(run_dir)
    arg = shlex.quote(str(run_dir))
    checkpoint = _latest_checkpoint(run_dir)
    lines = [
        f"checkpoint:    {checkpoint if checkpoint is not None else '(none written)'}",
        f"metrics:       {run_dir / 'metrics.jsonl'}",
        f"config:        {run_dir / 'config.toml'}",
        "next steps for this run:",
        f"  python tools/play.py {arg} --episodes 32    # evaluate: JSON summary of survival and return",
        f"  python tools/render.py {arg} --seconds 10   # video -> {default_output(run_dir, 'render.mp4')}",
        f"  python tools/export.py {arg} --check        # ONNX -> {default_output(run_dir, 'policy.onnx')}",
        f"  python tools/plot.py {arg}                  # curves -> {default_output(run_dir, 'curves.png')}",
        f"  python -m ktorch_sim.train --resume {arg}   # train further",
        f"run directory: {run_dir}",  # last, as scripts read it
    ]
    return "\n".join(lines)
