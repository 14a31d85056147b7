"""Time PPO minibatches on the CPU: the cart-pole test task with the MLP or the GRU actor-critic.

    python tools/bench_update.py                      # [64, 64] MLP, ms per 64-transition minibatch
    python tools/bench_update.py --policy gru         # GRU 64, 3 mixtures, head [64, 64], 4 sequences of 16
    python tools/bench_update.py --policy gru --set "model.head_hidden=[]"   # the same without the head MLP

32 worlds x 64 steps are collected once, then the update (10 passes over the 2,048 transitions in
minibatches of 64) is timed four times; the first is warm-up, the other three are printed. The GRU's
KL stop is off here (``ppo.target_kl=0``) so every minibatch takes its step and the figure is the cost
of one. docs/benchmarks.md ("PPO update on the CPU") records the figures with the commit.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.cartpole, run from anywhere

from ktorch_sim.config import load_config  # noqa: E402
from ktorch_sim.training.trainer import Trainer  # noqa: E402

NUM_ENVS, STEPS, PASSES, MINIBATCH = 32, 64, 10, 64
POLICY_SETTINGS = {
    "mlp": ["model.policy=mlp", "model.mlp_hidden=[64, 64]"],
    "gru": ["model.policy=gru", "model.hidden_size=64", "model.depth=1", "model.num_mixtures=3",
            "model.head_hidden=[64, 64]", "model.activation=tanh", "ppo.sequence_length=16", "ppo.target_kl=0"],
}


def time_update(policy: str, overrides: list[str]) -> list[float]:
    """Collect one rollout, time four updates of it; ms per minibatch of the last three."""
    with tempfile.TemporaryDirectory() as run_dir:
        config = load_config(None, [
            "task.name=tests.cartpole:CartpoleTask", f"task.num_envs={NUM_ENVS}",
            f"ppo.rollout_length_seconds={STEPS * 0.02}", f"ppo.num_passes={PASSES}", f"ppo.minibatch_size={MINIBATCH}",
            *POLICY_SETTINGS[policy], "logging.wandb_mode=disabled", f"logging.run_dir={run_dir}",
            "ppo.max_steps=0", "cpu.max_steps=0", *overrides])
        trainer = Trainer(config)
        trainer.model.eval()
        buffer, start, trainer.carry, _ = trainer.collector.collect(trainer.model, trainer.carry)
        trainer.model.train()
        minibatches = buffer.batch_size[0] * buffer.batch_size[1] // MINIBATCH * PASSES
        times = []
        for _ in range(4):
            rollout = buffer.clone()
            begin = time.perf_counter()
            trainer.ppo.update(rollout, start)
            times.append((time.perf_counter() - begin) / minibatches * 1e3)
        trainer.logger.close()
    return times[1:]


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, time the update, print ms per minibatch."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", choices=sorted(POLICY_SETTINGS), default="mlp", help="the actor-critic to time")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override after the policy's settings (repeatable)")
    args = parser.parse_args(argv)
    times = time_update(args.policy, args.set)
    print(" ".join(f"{t:.2f}" for t in times), "ms per minibatch")


if __name__ == "__main__":
    main()
