"""Time one PPO minibatch on the CPU: the [64, 64] MLP actor-critic on the cart-pole test task.

    python tools/bench_update.py            # prints three figures, ms per 64-transition minibatch

32 worlds x 64 steps are collected once, then the update (10 passes of 64-transition minibatches,
320 in all) is timed four times; the first is warm-up. docs/benchmarks.md ("PPO update on the CPU")
records the figures with the commit.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.cartpole, run from anywhere

from ktorch_sim.config import load_config  # noqa: E402
from ktorch_sim.training.trainer import Trainer  # noqa: E402

MINIBATCHES = 320


def main() -> None:
    """Collect one rollout, time three updates of it, print ms per minibatch."""
    with tempfile.TemporaryDirectory() as run_dir:
        config = load_config(None, [
            "task.name=tests.cartpole:CartpoleTask", "task.num_envs=32", "ppo.rollout_length_seconds=1.28",
            "ppo.num_passes=10", "ppo.minibatch_size=64", "model.policy=mlp", "model.mlp_hidden=[64, 64]",
            "logging.wandb_mode=disabled", f"logging.run_dir={run_dir}", "ppo.max_steps=0", "cpu.max_steps=0"])
        trainer = Trainer(config)
        trainer.model.eval()
        buffer, start, trainer.carry, _ = trainer.collector.collect(trainer.model, trainer.carry)
        trainer.model.train()
        times = []
        for _ in range(4):
            rollout = buffer.clone()
            begin = time.perf_counter()
            trainer.ppo.update(rollout, start)
            times.append((time.perf_counter() - begin) / MINIBATCHES * 1e3)
        trainer.logger.close()
    print(" ".join(f"{t:.2f}" for t in times[1:]), "ms per minibatch")


if __name__ == "__main__":
    main()
