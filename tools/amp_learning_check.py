"""AMP's CPU learning check: the arm of :mod:`benchmarks.amp_arm` learns a reference swing from the style reward alone.

    python tools/amp_learning_check.py --iterations 60 --out bench/amp_arm      # about 3 minutes on 2 cores

Writes ``OUT/amp_arm.json`` (per iteration: swing distance, style reward, discriminator logits) and,
with matplotlib installed, ``OUT/amp_arm.png`` (the curve). Prints one line per iteration and the
first and last swing distance. See docs/amp.md and docs/training_runs.md for a recorded run.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def arm_config(run_dir: str, seed: int = 0, **amp: object) -> object:
    """The check's training config: MLP policy, PPO, AMP with the style reward alone."""
    from benchmarks.amp_arm import AMPArmConfig
    from ktorch_sim.algorithms.amp_config import AMPConfig
    from ktorch_sim.algorithms.ppo_config import PPOConfig
    from ktorch_sim.config import TrainConfig
    from ktorch_sim.policies.config import ModelConfig
    from ktorch_sim.training.config import CheckpointConfig, LoggingConfig

    return TrainConfig(
        task_name="benchmarks.amp_arm:AMPArmTask",
        task=AMPArmConfig(num_envs=32, seed=seed, reference_state_init=float(amp.get("rsi", 0.0))),
        ppo=PPOConfig(rollout_length_seconds=2.0, minibatch_size=320, num_passes=5, learning_rate=1e-3, gamma=0.95,
                      lam=0.95, normalize_observations=True),
        amp=AMPConfig(**{"style_weight": 1.0, "style_scale": 1.0, "hidden_sizes": (64, 64), "learning_rate": 1e-4,
                         "batch_size": 256, "replay_size": 20000,
                         **{k: v for k, v in amp.items() if k not in ("init_std", "rsi")}}),
        model=ModelConfig(policy="mlp", mlp_hidden=(64, 64), activation="elu",
                          init_std=float(amp.get("init_std", 0.2))),
        logging=LoggingConfig(wandb_mode="disabled", run_dir=run_dir),
        checkpoint=CheckpointConfig(save_every_seconds=1e9))


def run(iterations: int, out: Path, seed: int = 0, **amp: object) -> list[dict[str, float]]:
    """Train ``iterations`` iterations; return one record per iteration (and write the JSON)."""
    from benchmarks.amp_arm import AMPArmTask, swing_distance
    from ktorch_sim.training.trainer import Trainer

    config = arm_config(str(out / "runs"), seed, **amp)
    trainer = Trainer(config, task=AMPArmTask(config.task))
    records, start = [], time.perf_counter()
    for i in range(iterations):
        metrics = trainer.iterate()
        features = trainer.collector.buffer["observation", trainer.task.amp_observation]
        distance = float(swing_distance(features[..., 0:2], features[..., 2:4]))
        record = {"iteration": i + 1, "env_steps": trainer.env_steps, "seconds": time.perf_counter() - start,
                  "swing_distance": distance, "style_reward": metrics["loss/amp_style_reward"],
                  "logit_reference": metrics.get("loss/amp_logit_reference", float("nan")),
                  "logit_policy": metrics.get("loss/amp_logit_policy", float("nan")),
                  "grad_penalty": metrics.get("loss/amp_grad_penalty", float("nan"))}
        records.append(record)
        print(f"iteration {i + 1:3d}: swing distance {distance:.3f}, style reward {record['style_reward']:.3f}, "
              f"D(ref) {record['logit_reference']:+.2f}, D(policy) {record['logit_policy']:+.2f}, "
              f"{record['seconds']:.0f} s", flush=True)
    trainer.logger.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / "amp_arm.json").write_text(json.dumps(records, indent=1))
    return records


def plot(records: list[dict[str, float]], path: Path) -> None:
    """Swing distance and style reward against env steps (skipped without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return
    steps = [r["env_steps"] for r in records]
    fig, left = plt.subplots(figsize=(7, 3.5))
    left.plot(steps, [r["swing_distance"] for r in records], color="tab:blue")
    left.set_xlabel("env steps")
    left.set_ylabel("swing distance (rad)", color="tab:blue")
    right = left.twinx()
    right.plot(steps, [r["style_reward"] for r in records], color="tab:orange")
    right.set_ylabel("style reward", color="tab:orange")
    left.set_title("AMP arm: style reward alone (benchmarks/amp_arm.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--iterations``, ``--out``, ``--seed``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path("bench/amp_arm"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an [amp] setting (e.g. learning_rate=1e-4), init_std (the policy's) or rsi "
                             "(task.reference_state_init)")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        try:
            overrides[key] = ast.literal_eval(value)  # numbers and tuples, never code
        except (ValueError, SyntaxError):
            parser.error(f"--set {item!r}: expected KEY=VALUE with a Python literal value (e.g. learning_rate=1e-4)")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
    records = run(args.iterations, args.out, args.seed, **overrides)
    plot(records, args.out / "amp_arm.png")
    print(f"swing distance: first iteration {records[0]['swing_distance']:.3f}, "
          f"last {records[-1]['swing_distance']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
