"""Crash safety: SIGKILL a real training run again and again, resume it each time, and check that the run
directory always holds a loadable checkpoint, that the iteration never goes back, and that training
finishes from the last one. One kill is placed inside a checkpoint write (tests/crash_driver.py)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ktorch_sim.checkpoint import CheckpointError, CheckpointManager, load_checkpoint
from ktorch_sim.training.logging import read_metrics, rewind_metrics

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "task.name=tests.cartpole:CartpoleTask", "--set", "task.num_envs=8", "--set", "ppo.batch_size=4",
        "--set", "ppo.rollout_length_seconds=0.2", "--set", "model.hidden_size=16", "--set", "model.depth=1",
        "--set", "logging.wandb_mode=disabled", "--no-progress"]
RANDOM_KILL_ROUNDS = 4
FROZEN_SAVE = 2  # the round with the kill inside a write freezes its process's 2nd checkpoint file
WAIT_S = 180.0


def _start(args: list[str], log: Path, driver: list[str] | None = None) -> subprocess.Popen:
    """Start the training CLI (or the crash driver around it) with stdout and stderr going to ``log``."""
    entry = ["-m", "tests.crash_driver", *driver] if driver else ["-m", "ktorch_sim.train"]
    with open(log, "a") as out:
        return subprocess.Popen([sys.executable, *entry, *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _wait_for(condition, proc: subprocess.Popen, log: Path, what: str) -> None:
    """Poll ``condition()`` until it holds; fail with the child's output if the child exits or time runs out."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"training exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            _kill(proc)
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def _pointer(run_dir: Path) -> str:
    try:
        return (run_dir / "checkpoints" / "latest").read_text().strip()
    except OSError:
        return ""


def _check_run_dir(run_dir: Path) -> int:
    """Every final-name checkpoint loads, ``latest()`` finds one; returns its iteration."""
    manager = CheckpointManager(run_dir)
    for path in manager.checkpoints():
        load_checkpoint(path)  # a final-name file is never partial
    latest = manager.latest()
    assert latest is not None, f"no loadable checkpoint in {run_dir}: {os.listdir(run_dir / 'checkpoints')}"
    assert not latest.name.endswith(".tmp")
    return int(load_checkpoint(latest)["counters"]["iteration"])


@pytest.mark.slow
def test_sigkill_at_random_moments_and_inside_a_checkpoint_write(tmp_path: Path) -> None:
    rng = random.Random(1234)
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    first = [*TINY, "--set", f"logging.run_dir={tmp_path}", "--set", "logging.run_name=run",
             "--set", "checkpoint.save_every_seconds=1e-6", "--set", "checkpoint.keep_last=2",
             "--set", "ppo.max_steps=1000000000"]
    resume = ["--resume", str(run_dir), "--no-progress"]
    frozen_round = 2
    iterations = [0]
    for round_index in range(RANDOM_KILL_ROUNDS + 1):
        args = first if round_index == 0 else resume
        before = _pointer(run_dir)
        if round_index == frozen_round:
            marker = tmp_path / "frozen"
            proc = _start(args, log, driver=[str(FROZEN_SAVE), str(marker)])
            _wait_for(marker.exists, proc, log, "the frozen checkpoint write")
            _kill(proc)
            tmp_file = Path(marker.read_text().strip())
            assert tmp_file.exists() and tmp_file.name.endswith(".tmp"), tmp_file
            with pytest.raises(CheckpointError, match="truncated or corrupt"):
                load_checkpoint(tmp_file)  # it really is cut off
            half_written = int(tmp_file.name.split("_")[1].split(".")[0])
            assert not (run_dir / "checkpoints" / f"ckpt_{half_written:08d}.pt").exists()
        else:
            proc = _start(args, log)
            # Wait for this process's first new checkpoint, then kill at a random moment of a later iteration
            # (iterations take ~0.1 s and each one ends with a save, so kills land in rollouts, updates and saves).
            _wait_for(lambda old=before: _pointer(run_dir) not in ("", old), proc, log, "a new checkpoint")
            time.sleep(rng.uniform(0.0, 0.5))
            _kill(proc)
        iteration = _check_run_dir(run_dir)
        assert iteration > iterations[-1], f"round {round_index}: iteration {iteration} after {iterations}"
        iterations.append(iteration)
        if round_index == frozen_round:
            assert iteration == half_written - 1, "latest() must be the last complete file, not the cut-off one"
            assert list((run_dir / "checkpoints").glob("*.tmp")), "the cut-off temp file should still be there"

    # A clean resume goes past the last checkpoint and ends normally; leftovers are gone.
    state = load_checkpoint(CheckpointManager(run_dir).latest())
    steps_per_iteration = state["counters"]["env_steps"] // state["counters"]["iteration"]
    target = iterations[-1] + 3
    proc = _start([*resume, "--set", f"ppo.max_steps={target * steps_per_iteration}"], log)
    assert proc.wait(timeout=WAIT_S) == 0, log.read_text()[-3000:]
    assert _check_run_dir(run_dir) == target > iterations[-1]
    assert not list((run_dir / "checkpoints").glob("*.tmp"))
    assert len(CheckpointManager(run_dir).checkpoints()) <= 2  # keep_last still prunes after crashes

    # metrics.jsonl reads as one run: every iteration once, in order, although kills left extra lines behind.
    logged = [row["iteration"] for row in read_metrics(run_dir)]
    assert logged == list(range(1, target + 1)), logged


def test_rewind_metrics_drops_lines_after_the_checkpoint_and_a_cut_off_line(tmp_path: Path) -> None:
    rows = [json.dumps({"iteration": i, "env_steps": 10 * i, "loss": 0.5}) for i in (1, 2, 3, 4)]
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(rows) + "\n" + rows[0][:9])  # a kill cut the 5th line off mid-write
    assert rewind_metrics(tmp_path, 2) == 3
    assert path.read_text() == rows[0] + "\n" + rows[1] + "\n"
    assert rewind_metrics(tmp_path, 2) == 0  # nothing more to drop: the file is left as it is
    assert [r["iteration"] for r in read_metrics(tmp_path)] == [1, 2]
    assert rewind_metrics(tmp_path / "missing", 5) == 0
    assert not list(tmp_path.glob("*.tmp"))
