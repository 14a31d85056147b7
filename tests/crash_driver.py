"""``python -m ktorch_sim.train`` whose Nth checkpoint write stops half-way, for the crash-safety test.

    python -m tests.crash_driver SAVE_NUMBER MARKER_FILE [train arguments ...]

Runs the real training CLI, except that the ``SAVE_NUMBER``-th checkpoint file this process writes
(counting from 1) gets only half of its bytes: the driver writes them into the temporary file, flushes
and fsyncs them, creates ``MARKER_FILE`` and then sleeps, so the test can SIGKILL the process at a
moment known to be inside a checkpoint write. Only the checkpoint's own file is cut; the ``latest``
pointer and everything else are written normally.
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ktorch_sim import train


def freeze_nth_checkpoint_write(save_number: int, marker: Path) -> None:
    """Replace ``torch.save`` so that its ``save_number``-th write into a ``ckpt_*.tmp`` file stops half-way."""
    real_save = torch.save
    calls = 0

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        name = Path(getattr(f, "name", "")).name
        if not (name.startswith("ckpt_") and name.endswith(".tmp")):
            return real_save(obj, f, *args, **kwargs)
        calls += 1
        if calls != save_number:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        marker.write_text(f"{f.name}\n")
        time.sleep(3600)  # the test kills the process here
        raise AssertionError("the crash-safety test should have killed this process")

    torch.save = save


def main(argv: list[str]) -> int:
    """Install the frozen write, then run the training CLI with the remaining arguments."""
    save_number, marker, train_args = int(argv[0]), Path(argv[1]), argv[2:]
    freeze_nth_checkpoint_write(save_number, marker)
    return train.main(train_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
