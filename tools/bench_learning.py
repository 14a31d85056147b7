"""Learning benchmark: ktorch_sim's PPO against Stable-Baselines3's on Gymnasium MuJoCo tasks.

    pip install -e ".[benchmark]"
    python tools/bench_learning.py --out bench/learning --steps 204800 --seeds 0 1 2 --jobs 2
    python tools/bench_learning.py --out bench/learning --report docs/learning_table.md --plot docs/learning.png

Every (library, task, seed) is one subprocess (``python -m benchmarks.learning``) writing one
JSON under ``--out``; runs whose JSON exists are skipped, so an interrupted benchmark resumes.
``--report`` writes a markdown table (final deterministic return, mean +- std over seeds, and
the ratio to SB3) and ``--plot`` the training curves (mean over seeds, shaded min-max), from
whatever JSONs are there. Libraries: ``ktorch-mlp``, ``ktorch-gru`` (ktorch_sim presets in
``benchmarks/learning.py``), ``defaults-mlp``, ``defaults-gru`` (ktorch_sim with nothing set but the
policy), ``sb3`` (SB3's PPO with its defaults), ``sb3-norm`` (the same with SB3's observation
normalization, ``VecNormalize(norm_reward=False)``), ``sb3-norm-frozen`` (the same with the statistics held
after 20,480 steps) and ``sb3-unclipped`` (SB3 with its action clip made a no-op, so the env sees raw samples as
ktorch_sim's unclamped runs do). ``--set`` passes a
ktorch_sim config override to every ktorch run, ``--tag`` names such a variant's files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ENVS = ("Walker2d-v5", "HalfCheetah-v5", "Ant-v5")
PANELS_PER_ROW = 4  # the figure wraps its task panels into rows of this many
DEFAULT_LIBS = ("ktorch-mlp", "sb3")


def main(argv: list[str] | None = None) -> int:
    """Run what is missing, then report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder of per-run JSON files")
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS))
    parser.add_argument("--libs", nargs="+", default=list(DEFAULT_LIBS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=204_800, help="environment steps per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (one CPU core each)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="ktorch_sim config override for every ktorch run (repeatable)")
    parser.add_argument("--tag", default="", help="suffix of the ktorch runs' library name, for variants")
    parser.add_argument("--no-run", action="store_true", help="only report on the JSONs already in --out")
    parser.add_argument("--report", type=Path, help="write the markdown table here")
    parser.add_argument("--plot", type=Path, help="write the curves here (PNG)")
    args = parser.parse_args(argv)
    _check_args(parser, args)
    if not args.no_run:
        jobs = [(lib, env, seed) for env in args.envs for lib in args.libs for seed in args.seeds]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            failures = [f for f in pool.map(lambda job: _run(args, *job), jobs) if f]
        for failure in failures:
            print(failure, file=sys.stderr)
    results = load_results(args.out)
    if not results:
        print(f"no run JSONs in {args.out}: nothing to report or plot (run without --no-run first)", file=sys.stderr)
        return 1
    report = markdown_table(results)
    if rules := rules_table(results):
        report += "\n\nFinal return by evaluation rule (benchmarks.learning.EVAL_RULES):\n\n" + rules
    print(report)
    if args.report:
        args.report.write_text(report + "\n")
    if args.plot:
        plot_curves(results, args.plot)
    return 0


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from benchmarks.learning import LIBS

    unknown = [lib for lib in args.libs if lib not in LIBS]
    if unknown:
        parser.error(f"unknown --libs {unknown}; choose from {list(LIBS)}")
    if args.steps < 1 or args.jobs < 1:
        parser.error("--steps and --jobs must be >= 1")
    try:
        from benchmarks.gym_tasks import GYM_TASKS
    except ImportError as e:
        parser.error(f"the benchmark needs its extra: pip install -e \".[benchmark]\" ({e})")
    missing = [env for env in args.envs if env not in GYM_TASKS]
    if missing:
        parser.error(f"unknown --envs {missing}; choose from {sorted(GYM_TASKS)}")


def _is_sb3(lib: str) -> bool:
    """SB3's runs (``sb3``, ``sb3-norm``, ``sb3-norm-frozen``, ``sb3-unclipped``) take no ktorch_sim overrides and
    no variant tag."""
    return lib.startswith("sb3")


def _label(args: argparse.Namespace, lib: str) -> str:
    return lib + (f"-{args.tag}" if args.tag and not _is_sb3(lib) else "")


def _claim(path: Path) -> bool:
    """Claim a job for this process with a ``.running`` marker holding our PID (atomic create).

    A marker whose process is gone (a killed benchmark) is taken over, so several benchmark
    processes can share one ``--out`` folder and an interrupted one resumes.
    """
    marker = path.with_suffix(".running")
    for _ in range(2):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(marker.read_text() or 0), 0)
                return False  # another live process runs it
            except (ProcessLookupError, ValueError):
                marker.unlink(missing_ok=True)  # stale: its process died
                continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def _run(args: argparse.Namespace, lib: str, env: str, seed: int) -> str | None:
    """Run one job unless its JSON exists or another process runs it; returns an error line on failure."""
    path = args.out / f"{_label(args, lib)}__{env}__{seed}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    if path.exists() or not _claim(path):
        return None
    try:
        return _run_claimed(args, lib, env, seed, path)
    finally:
        path.with_suffix(".running").unlink(missing_ok=True)


def _run_claimed(args: argparse.Namespace, lib: str, env: str, seed: int, path: Path) -> str | None:
    cmd = [sys.executable, "-m", "benchmarks.learning", "--lib", lib, "--env", env, "--seed", str(seed),
           "--steps", str(args.steps), "--out", str(path)]
    if not _is_sb3(lib):
        for override in args.overrides:
            cmd += ["--set", override]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        return f"FAILED {lib} {env} seed {seed}: {done.stderr.strip().splitlines()[-1:] or done.returncode}"
    print(done.stdout.strip(), flush=True)
    if args.tag and not _is_sb3(lib):  # name the variant in the file so reports tell them apart
        data = json.loads(path.read_text())
        data["lib"] = _label(args, lib)
        path.write_text(json.dumps(data, indent=1))
    return None


def load_results(folder: Path) -> dict[tuple[str, str], list[dict]]:
    """Every run JSON in ``folder``, grouped by (library, task), each group in seed order."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        groups[(data["lib"], data["env"])].append(data)
    return {key: sorted(runs, key=lambda run: run["seed"]) for key, runs in groups.items()}


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


TRAINING_WINDOW = 0.15  # the training return: training episodes of the last 15 % of a run's steps


def training_return(run: dict) -> float | None:
    """Mean of the run's curve points in the last :data:`TRAINING_WINDOW` of its steps (the last three of the
    benchmark's 20 bins): the return of the stochastic policy as it trains, steadier than 10 deterministic episodes.
    None when no training episode ended there."""
    points = [ret for step, ret in run.get("curve", ()) if step > run["steps"] * (1 - TRAINING_WINDOW)]
    return sum(points) / len(points) if points else None


RATIO_LEVEL = 0.95  # the bootstrap interval printed next to each ratio
RATIO_DRAWS = 10_000


def ratio_interval(numerator: list[float], denominator: list[float], level: float = RATIO_LEVEL,
                   draws: int = RATIO_DRAWS, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of mean(numerator) / mean(denominator), resampling each side's seeds with
    replacement: how far the ratio of two libraries' means could move with other seeds. A fixed ``seed`` makes the
    table reproducible; with few seeds the interval is rough (three seeds have ten distinct resamples). None when a
    resample's denominator mean is not positive (a ratio through zero has no interval)."""
    rng = np.random.default_rng(seed)
    top = rng.choice(np.asarray(numerator, dtype=float), (draws, len(numerator))).mean(axis=1)
    bottom = rng.choice(np.asarray(denominator, dtype=float), (draws, len(denominator))).mean(axis=1)
    if (bottom <= 0).any():
        return None
    ratios = top / bottom
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail], method="inverted_cdf")
    return float(low), float(high)


def _ratio_cell(numerator: list[float], denominator: list[float]) -> str:
    """``mean ratio [interval]``; "" when a side has no values or the denominator's mean is not positive (no
    meaningful ratio), and no interval where :func:`ratio_interval` has none."""
    if not numerator or not denominator or (bottom := _mean_std(denominator)[0]) <= 0:
        return ""
    ratio = f"{_mean_std(numerator)[0] / bottom:.2f}"
    interval = ratio_interval(numerator, denominator)
    return ratio if interval is None else f"{ratio} [{interval[0]:.2f}, {interval[1]:.2f}]"


def markdown_table(results: dict[tuple[str, str], list[dict]]) -> str:
    """Return the table of final deterministic returns per (library, task).

    Columns: mean +- std over seeds, the seeds, steps, and the ratios of the means to SB3's and to
    ``ktorch-mlp``'s on the same task (where those ran); then the same for the training return
    (:func:`training_return`, over the seeds that have one). Each ratio carries its bootstrap interval
    (:func:`ratio_interval`).
    """
    lines = ["| task | library | final return (mean +- std over seeds) | per seed | env steps | vs SB3 "
             "| vs ktorch-mlp | training return | training vs SB3 | training vs ktorch-mlp |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def values(runs: list[dict]) -> tuple[list[float], list[float]]:
        return [r["final"]["mean"] for r in runs], [t for t in map(training_return, runs) if t is not None]

    for (lib, env) in sorted(results, key=lambda k: (k[1], k[0])):
        runs = results[(lib, env)]
        finals, trained = values(runs)
        mean, std = _mean_std(finals)
        ratios, training_ratios = [], []
        for other in ("sb3", "ktorch-mlp"):
            base = results.get((other, env))
            base_finals, base_trained = values(base) if base and lib != other else ([], [])
            ratios.append(_ratio_cell(finals, base_finals))
            training_ratios.append(_ratio_cell(trained, base_trained))
        steps = sorted({r["steps"] for r in runs})
        training = f"{_mean_std(trained)[0]:.0f}" if trained else ""
        lines.append(f"| {env} | {lib} | {mean:.0f} +- {std:.0f} | {', '.join(f'{f:.0f}' for f in finals)} "
                     f"| {', '.join(map(str, steps))} | {ratios[0]} | {ratios[1]} "
                     f"| {training} | {training_ratios[0]} | {training_ratios[1]} |")
    return "\n".join(lines)


def rules_table(results: dict[tuple[str, str], list[dict]]) -> str:
    """Return the table of mean final returns per evaluation rule, or "" when no run recorded rules.

    Rules: ``deterministic`` and each of ``final_by_rule``; each (library, task) row averages the seeds
    that recorded every rule the fullest run records (SB3's runs, MLP runs and older ones record fewer).
    """
    recorded = [r["final_by_rule"] for runs in results.values() for r in runs if r.get("final_by_rule")]
    if not recorded:
        return ""
    rules = ["deterministic", *max(recorded, key=len)]
    rows = []
    for (lib, env) in sorted(results, key=lambda k: (k[1], k[0])):
        runs = [r for r in results[(lib, env)] if set(rules[1:]) <= set(r.get("final_by_rule") or ())]
        if not runs:
            continue
        per_rule = [_mean_std([r["final"]["mean"] if n == "deterministic" else r["final_by_rule"][n]
                               for r in runs])[0] for n in rules]
        rows.append(f"| {env} | {lib} | {', '.join(str(r['seed']) for r in runs)} | "
                    + " | ".join(f"{v:.0f}" for v in per_rule) + " |")
    header = [f"| task | library | seeds | {' | '.join(rules)} |", "|---|---|---|" + "---|" * len(rules)]
    return "\n".join([*header, *rows])


def plot_curves(results: dict[tuple[str, str], list[dict]], path: Path) -> None:
    """One panel per task (up to :data:`PANELS_PER_ROW` a row): mean training-episode return over seeds against env
    steps, min-max shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    envs = sorted({env for _, env in results})
    cols = min(len(envs), PANELS_PER_ROW)
    rows = -(-len(envs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(envs):]:
        ax.set_visible(False)
    for ax, env in zip(axes.flat, envs):
        for (lib, e), runs in sorted(results.items()):
            if e != env:
                continue
            grid = sorted({int(x) for r in runs for x, _ in r["curve"]})
            table = np.full((len(runs), len(grid)), np.nan)
            for i, run in enumerate(runs):
                for x, y in run["curve"]:
                    table[i, grid.index(int(x))] = y
            with np.errstate(all="ignore"):
                ax.plot(grid, np.nanmean(table, 0), label=f"{lib} ({len(runs)} seeds)")
                ax.fill_between(grid, np.nanmin(table, 0), np.nanmax(table, 0), alpha=0.2)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylabel("training episode return")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
