"""Rebuild docs/learning.md's Result table and docs/learning.png from the committed run JSONs.

    python tools/learning_result.py --out bench/result --report table.md --plot docs/learning.png

The Result table draws runs from several folders of ``docs/learning_runs/`` (each folder is one
experiment; the table shows each library at its current settings). :data:`SOURCES` names them: the
folder, a file pattern and the label the table shows. The runs record the preset they were started
from as ``lib``, so they are copied into ``--out`` relabelled, and the recurrent policy's final score
is read by its current deterministic rule (:data:`GRU_RULE`, ``final_by_rule``); then
``tools/bench_learning.py --no-run`` writes the table and the curves from that folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tools.bench_learning, run from anywhere

from tools import bench_learning  # noqa: E402

RUNS = ROOT / "docs" / "learning_runs"
# (folder under docs/learning_runs, file pattern, label in the table). A later source whose folder is in
# REPLACING takes the place of every earlier run of the same label and task (a task rerun after a change of default).
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("main", "ktorch-mlp__*", "ktorch-mlp"),
    ("velocity_free_halfcheetah", "ktorch-mlp__*", "ktorch-mlp"),
    ("main", "sb3__*", "sb3"),
    ("mlp_normalized_inputs", "*", "ktorch-mlp-norm"),
    ("velocity_free_halfcheetah", "ktorch-mlp-norm__*", "ktorch-mlp-norm"),
    ("sb3_normalized_inputs", "*", "sb3-norm"),
    ("gru_head_mlp", "hh2__*", "ktorch-gru"),
    ("desynchronized", "ktorch-mlp__*", "ktorch-mlp"),
    ("desynchronized", "ktorch-mlp-norm__*", "ktorch-mlp-norm"),
    ("desynchronized", "ktorch-gru__*", "ktorch-gru"),
    ("normalizer_timing", "ktorch-mlp-norm__*", "ktorch-mlp-norm"),
    ("grad_clip_per_network", "ktorch-mlp__*", "ktorch-mlp"),
    # Seeds added in the sixteenth session at the same defaults (after the replacing sources, so they stay).
    ("more_seeds", "ktorch-mlp__*", "ktorch-mlp"),
    ("more_seeds", "ktorch-gru__*", "ktorch-gru"),
    ("more_seeds", "sb3__*", "sb3"),
    # Like-for-like action handling (sixteenth session): ktorch_sim clamping its actions to +-1 as SB3 does
    # (task.clip_actions = 1), and SB3 passing its raw samples as ktorch_sim's default does (lib sb3-unclipped).
    ("grad_clip_per_network", "ktorch-mlp-clip-actions__*", "ktorch-mlp-clip"),
    ("action_clip", "ktorch-mlp-clip__*", "ktorch-mlp-clip"),
    ("action_clip", "sb3-unclipped__*", "sb3-unclipped"),
    # Two more of Gymnasium's tasks at today's defaults (seventeenth session).
    ("more_tasks", "ktorch-mlp__*", "ktorch-mlp"),
    ("more_tasks", "ktorch-mlp-norm__*", "ktorch-mlp-norm"),
    ("more_tasks", "ktorch-gru__*", "ktorch-gru"),
    ("more_tasks", "sb3__*", "sb3"),
    ("more_tasks", "sb3-norm__*", "sb3-norm"),
    # Normalized inputs whose statistics stop moving after 20,480 steps (ppo.normalizer_steps; eighteenth session),
    # and SB3's VecNormalize held after as many steps.
    ("normalizer_steps", "ktorch-mlp-norm-frozen__*", "ktorch-mlp-norm-frozen"),
    ("normalizer_steps", "sb3-norm-frozen__*", "sb3-norm-frozen"),
)
# ppo.desynchronize_episodes, the default since the twelfth session; the feed-forward policy's input statistics
# moving every step (ppo.normalizer_update = auto), since the fourteenth; the feed-forward policy on raw inputs
# clipping its actor's and critic's gradients separately (ppo.grad_clip_scope = auto), since the fifteenth.
REPLACING = frozenset({"desynchronized", "normalizer_timing", "grad_clip_per_network"})
# MixtureOfGaussians.deterministic() since the eleventh session; older runs' "final" used the density mode.
GRU_RULE = "mixture_mean"


def collect(out: Path, runs: Path = RUNS) -> int:
    """Copy the runs of :data:`SOURCES` from ``runs`` into a fresh ``out``, relabelled (a source in :data:`REPLACING`
    first removing the earlier runs of its label and task); return how many are there.

    Raises ValueError if two sources give the same (label, task, seed): the table would silently keep one.
    """
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    count = 0
    for folder, pattern, label in SOURCES:
        paths = sorted((runs / folder).glob(pattern + ".json"))
        if folder in REPLACING:
            for env in {json.loads(path.read_text())["env"] for path in paths}:
                for old in out.glob(f"{label}__{env}__*.json"):
                    old.unlink()
                    count -= 1
        for path in paths:
            run = json.loads(path.read_text())
            run["lib"] = label
            if label == "ktorch-gru":
                run["final"] = {"mean": run["final_by_rule"][GRU_RULE]}
            target = out / f"{label}__{run['env']}__{run['seed']}.json"
            if target.exists():
                raise ValueError(f"{path} repeats {label} {run['env']} seed {run['seed']}; keep one source per run")
            target.write_text(json.dumps(run))
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    """Collect the runs, then report on them with tools/bench_learning.py."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to fill (emptied first)")
    parser.add_argument("--report", type=Path, help="write the markdown table here")
    parser.add_argument("--plot", type=Path, help="write the curves here (PNG)")
    args = parser.parse_args(argv)
    print(f"{collect(args.out)} runs from docs/learning_runs/")
    extra = [*(["--report", str(args.report)] if args.report else []), *(["--plot", str(args.plot)] if args.plot else [])]
    return bench_learning.main(["--out", str(args.out), "--no-run", *extra])


if __name__ == "__main__":
    raise SystemExit(main())
