"""Determinism of training on the CPU: a fixed seed gives bit-identical parameters, optimizer state and
metrics, run to run, in another process, with any number of native MuJoCo threads, and on Warp's CPU
backend; two resumes from one checkpoint agree bit for bit. What is not deterministic (a resumed run
against an uninterrupted one, Warp on CUDA) is written down in docs/determinism.md."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ktorch_sim.checkpoint import CheckpointManager, load_checkpoint
from ktorch_sim.config import TrainConfig, load_config
from ktorch_sim.training.logging import read_metrics
from ktorch_sim.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
ITERATIONS = 3
# kbot_stand with its randomizers, pushes and noise; a 1 s rollout of 4 worlds ends several episodes per
# iteration, so resets (and the random draws they make) are part of what is compared.
SMALL = ["task.name=kbot_stand", "task.num_envs=4", "task.device=cpu", "ppo.batch_size=2",
         "ppo.rollout_length_seconds=1.0", "model.hidden_size=16", "model.depth=1", "model.num_mixtures=2",
         "logging.wandb_mode=disabled", "checkpoint.save_every_seconds=1e9"]
TIMING_PREFIXES = ("time/", "perf/")


def small_config(run_dir: Path, engine: str = "mujoco", num_threads: int = 1, seed: int = 1337) -> TrainConfig:
    return load_config(None, [*SMALL, f"logging.run_dir={run_dir}", f"task.engine={engine}",
                              f"task.num_threads={num_threads}", f"task.seed={seed}"])


class Outcome:
    """What a run leaves behind: parameters, optimizer state and per-iteration metrics (timings removed)."""

    def __init__(self, trainer: Trainer, metrics: list[dict[str, float]]) -> None:
        self.params = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        self.optimizer = trainer.optimizer.state_dict()["state"]
        self.metrics = [{k: v for k, v in m.items() if not k.startswith(TIMING_PREFIXES)} for m in metrics]


def train(config: TrainConfig, iterations: int = ITERATIONS, resume: Path | None = None,
          before: list[dict[str, float]] = ()) -> tuple[Outcome, Trainer]:
    trainer = Trainer(config, resume=resume)
    metrics = [*before, *(trainer.iterate() for _ in range(iterations))]
    trainer.logger.close()
    return Outcome(trainer, metrics), trainer


def bits(value: float) -> bytes:
    """A float's exact bit pattern (NaN equals NaN, 0.0 differs from -0.0)."""
    return struct.pack("<d", value)


def differences(a: Outcome, b: Outcome) -> list[str]:
    """Names of everything that is not bit-identical between two outcomes."""
    diffs = [f"param {k}" for k in a.params if not torch.equal(a.params[k], b.params[k])]
    for index in a.optimizer:
        for key, value in a.optimizer[index].items():
            if not torch.equal(torch.as_tensor(value), torch.as_tensor(b.optimizer[index][key])):
                diffs.append(f"optimizer {index}.{key}")
    assert len(a.metrics) == len(b.metrics)
    for i, (ma, mb) in enumerate(zip(a.metrics, b.metrics, strict=True)):
        assert ma.keys() == mb.keys()
        diffs += [f"iteration {i + 1} {k}: {ma[k]!r} vs {mb[k]!r}" for k in ma if bits(ma[k]) != bits(mb[k])]
    return diffs


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The native MuJoCo run every other run is compared with (one engine thread)."""
    outcome, _ = train(small_config(tmp_path_factory.mktemp("reference")))
    assert sum(m["episode/count"] for m in outcome.metrics) > 0, "the runs should end episodes (and reset worlds)"
    return outcome


def test_native_mujoco_same_seed_is_bit_identical_and_threads_do_not_matter(reference: Outcome, tmp_path: Path):
    again, _ = train(small_config(tmp_path / "again"))
    assert differences(reference, again) == []
    threaded, _ = train(small_config(tmp_path / "threads", num_threads=4))  # one world per thread
    assert differences(reference, threaded) == []


def test_another_seed_differs(reference: Outcome, tmp_path: Path):
    """The comparison can fail: with another seed nearly everything differs."""
    other, _ = train(small_config(tmp_path, seed=7))
    assert len(differences(reference, other)) > 20


def test_native_mujoco_cli_run_in_another_process_is_bit_identical(reference: Outcome, tmp_path: Path):
    """A fresh interpreter (its own hash seed, two engine threads) gives the same metrics and parameters."""
    steps = 4 * 50 * ITERATIONS  # num_envs * rollout steps per iteration * iterations
    args = [arg for item in [*SMALL, f"logging.run_dir={tmp_path}", "logging.run_name=cli", "task.engine=mujoco",
                             "task.num_threads=2", f"ppo.max_steps={steps}"] for arg in ("--set", item)]
    out = subprocess.run([sys.executable, "-m", "ktorch_sim.train", *args, "--no-progress"], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "cli"
    rows = read_metrics(run_dir)
    assert [row["iteration"] for row in rows] == list(range(1, ITERATIONS + 1))
    for row, expected in zip(rows, reference.metrics, strict=True):
        logged = {k: v for k, v in row.items() if k in expected}
        assert logged.keys() == expected.keys()
        assert [k for k in expected if bits(logged[k]) != bits(expected[k])] == []
    params = load_checkpoint(CheckpointManager(run_dir).latest())["model"]
    assert [k for k in reference.params if not torch.equal(params[k], reference.params[k])] == []
    json.dumps(rows[-1])  # strict JSON


def test_two_resumes_from_one_checkpoint_agree(tmp_path: Path):
    """Resuming is deterministic. (It does not reproduce the uninterrupted run: the environment's state is not
    in the checkpoint, so the resumed run starts from freshly reset worlds; see docs/determinism.md.)"""
    config = small_config(tmp_path)
    first, trainer = train(config, iterations=1)
    trainer.save()
    a, _ = train(config, iterations=2, resume=trainer.run_dir, before=first.metrics)
    b, _ = train(config, iterations=2, resume=trainer.run_dir, before=first.metrics)
    assert differences(a, b) == []


@pytest.mark.slow
def test_warp_cpu_same_seed_is_bit_identical(tmp_path: Path):
    """Measured: Warp's CPU backend runs each kernel launch serially, so its atomic adds happen in one order."""
    pytest.importorskip("mujoco_warp")
    a, _ = train(small_config(tmp_path / "a", engine="warp"))
    b, _ = train(small_config(tmp_path / "b", engine="warp"))
    assert sum(m["episode/count"] for m in a.metrics) > 0
    assert differences(a, b) == []
