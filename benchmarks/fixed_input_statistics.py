"""The MLP with input statistics fixed from the first step: a probe of why moving statistics cost Hopper.

    python -m benchmarks.fixed_input_statistics record --env Hopper-v5 --seed 1 --out stats.json
    python -m benchmarks.fixed_input_statistics fixed --stats stats.json --env Hopper-v5 --seed 0 --out run.json

``record`` trains the ``ktorch-mlp`` preset (raw inputs) and writes, next to the usual result, the mean and
variance of the policy inputs of every rollout of the run (the statistics a normalizer would hold at its end).
``fixed`` trains the same preset with ``ppo.normalize_observations = true`` and those statistics loaded before
the first step, never moving (the normalizers' limit, ``ppo.normalizer_steps``, already reached). Both record,
every 10 iterations, the normalizers' std per input and the share of normalized inputs at the +-10 clip
(``inputs``; empty for ``record``). docs/learning.md (eighteenth session) has what it measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from benchmarks import learning
from ktorch_sim.algorithms.normalizer import RunningNormalizer

RECORD_EVERY = 10  # iterations


def run(mode: str, env_id: str, seed: int, steps: int, stats: dict[str, list[float]] | None = None
        ) -> dict[str, Any]:
    """:func:`benchmarks.learning.run_ktorch` of the ``ktorch-mlp`` preset, probed; ``mode`` is ``record`` or
    ``fixed`` (with ``stats``, a record run's result)."""
    if mode not in ("record", "fixed") or (mode == "fixed") != (stats is not None):
        raise ValueError(f"mode must be 'record' (no stats) or 'fixed' (with stats), got {mode!r}")
    seen: list[RunningNormalizer] = []  # record: the pooled statistics of every rollout's raw inputs
    inputs: list[dict[str, Any]] = []
    held: dict[str, list[float]] = {}  # fixed: what the normalizer holds after the last iteration

    def load(trainer: Any) -> None:
        for normalizer in trainer.task.normalizers.values():
            normalizer.mean.copy_(torch.tensor(stats["mean"]))
            normalizer.var.copy_(torch.tensor(stats["var"]))
            normalizer.count.fill_(1.0)
            normalizer.until = 1.0  # already reached: the statistics never move

    def observe(trainer: Any) -> None:
        buffer = trainer.collector.buffer
        raw = trainer.task.actor_features(buffer["observation"], buffer["command"])
        if mode == "record":
            if not seen:
                seen.append(RunningNormalizer(raw.shape[-1]))
            seen[0].update(raw)
            return
        normalizer = trainer.task.normalizers["actor"]
        held.update(mean=normalizer.mean.tolist(), var=normalizer.var.tolist())
        if trainer.iteration % RECORD_EVERY == 0:
            clipped = (normalizer(raw).abs() >= normalizer.clip).reshape(-1, raw.shape[-1]).float().mean(0)
            inputs.append({"steps": trainer.env_steps, "std": _rounded(normalizer.var.sqrt()),
                           "clipped": _rounded(clipped)})

    overrides = ["ppo.normalize_observations=true"] if mode == "fixed" else []
    result = learning.run_ktorch("ktorch-mlp", env_id, seed, steps, overrides,
                                 setup=load if mode == "fixed" else None, after_iteration=observe)
    result.update(mode=mode, inputs=inputs, lib=f"ktorch-mlp-{mode}-statistics", env=env_id, seed=seed, steps=steps)
    if seen:
        result.update(mean=seen[0].mean.tolist(), var=seen[0].var.tolist())
    if held:
        result["statistics_at_end"] = held
    return result


def _rounded(values: torch.Tensor) -> list[float]:
    return [round(float(v), 4) for v in values]


def main(argv: list[str] | None = None) -> int:
    """Run one probe and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("record", "fixed"))
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=204_800)
    parser.add_argument("--stats", type=Path, help="a record run's JSON (fixed mode)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if (args.mode == "fixed") != (args.stats is not None):
        parser.error("--stats (a record run's JSON) is required in fixed mode and only there")
    torch.set_num_threads(1)
    stats = json.loads(args.stats.read_text()) if args.stats else None
    result = run(args.mode, args.env, args.seed, args.steps, stats)
    learning.write_json_atomic(args.out, result)
    print(f"{args.mode} {args.env} seed {args.seed}: final {result['final']['mean']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
