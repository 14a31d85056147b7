"""SB3's PPO with ktorch_sim's timing of the observation statistics: a probe of one difference.

    python -m benchmarks.sb3_deferred_normalizer --env HalfCheetah-v5 --seed 0 --out run.json

``sb3-norm`` (SB3's ``VecNormalize``) merges every observation into the running mean/std as it
arrives. ktorch_sim freezes the statistics while it collects a rollout and merges the rollout after
the update that used it (so the first rollout's inputs pass unnormalized, the statistics being 0 and 1).
This runs ``sb3-norm`` with ktorch_sim's timing: VecNormalize's statistics defer their updates to the
start of the next rollout (after SB3's ``train()``), and the last rollout is merged before evaluation,
as ktorch_sim's are. Everything else is :func:`benchmarks.learning.run_sb3`. docs/learning.md
(twelfth session: HalfCheetah; thirteenth: Hopper) records what it measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import learning


def run_deferred(env_id: str, seed: int, steps: int) -> dict[str, Any]:
    """``run_sb3(normalize_observations=True)`` with the statistics merged once per rollout, after its update."""
    import stable_baselines3
    import torch
    from stable_baselines3.common import vec_env
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    class DeferredStatistics(RunningMeanStd):
        """A RunningMeanStd whose updates wait in a list until :meth:`merge`."""

        def __init__(self, shape: tuple[int, ...]) -> None:
            super().__init__(shape=shape)
            self.pending: list[np.ndarray] = []

        def update(self, arr: np.ndarray) -> None:
            self.pending.append(np.array(arr, copy=True))

        def merge(self) -> None:
            if self.pending:
                super().update(np.concatenate(self.pending))
                self.pending = []

    training_envs: list[Any] = []

    class DeferredVecNormalize(vec_env.VecNormalize):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self.training:  # the evaluation env reads the training statistics, frozen
                self.obs_rms = DeferredStatistics(self.obs_rms.mean.shape)
                training_envs.append(self)

    class MergeAtRolloutStart(BaseCallback):
        def _on_rollout_start(self) -> None:  # after train() of the previous rollout
            for env in training_envs:
                env.obs_rms.merge()

        def _on_step(self) -> bool:
            return True

    original_learn = stable_baselines3.PPO.learn

    def learn(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_learn(self, *args, **{**kwargs, "callback": MergeAtRolloutStart()})
        for env in training_envs:
            env.obs_rms.merge()  # the last rollout, before evaluation
        return result

    torch.set_num_threads(1)
    original_vec_normalize = vec_env.VecNormalize
    stable_baselines3.PPO.learn, vec_env.VecNormalize = learn, DeferredVecNormalize
    try:
        result = learning.run_sb3(env_id, seed, steps, normalize_observations=True)
    finally:
        stable_baselines3.PPO.learn, vec_env.VecNormalize = original_learn, original_vec_normalize
    result["config"]["statistics"] = "merged once per rollout, after its update (ktorch_sim's timing)"
    return result


def main(argv: list[str] | None = None) -> int:
    """Run one probe and write its JSON (the learning benchmark's format, lib ``sb3-norm-deferred``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="Gymnasium id, e.g. HalfCheetah-v5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=204_800)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = run_deferred(args.env, args.seed, args.steps)
    result.update(lib="sb3-norm-deferred", env=args.env, seed=args.seed, steps=args.steps)
    learning.write_json_atomic(args.out, result)
    print(f"{args.env} seed {args.seed}: {result['final']['mean']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
