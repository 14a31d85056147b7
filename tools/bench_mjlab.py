"""Side-by-side training throughput: mjlab's G1 flat velocity task against ktorch_sim's ``g1_velocity``.

One command (docs/mjlab_comparison.md has the GPU procedure)::

    python tools/bench_mjlab.py --device cuda --num-envs 4096 --iterations 20 \
        --mjlab-python /tmp/mjlab_venv/bin/python --out mjlab_vs_ktorch.json

It runs, each in a fresh process, for ``--warmup`` + ``--iterations`` PPO iterations of 24 control
steps at ``--num-envs`` worlds:

1. mjlab: ``<mjlab-python> -m mjlab.scripts.train Mjlab-Velocity-Flat-Unitree-G1`` (rsl_rl,
   tensorboard logger, no video) in a temporary directory. rsl_rl prints each iteration's
   "Collection time" (rollout with policy inference, plus its return computation) and "Learning
   time" (the PPO update); the warm-up iterations are dropped and the rest summed.
2. ktorch_sim: configs/g1_velocity.toml (MLP 512-256-128) and configs/g1_velocity_gru.toml (GRU
   mixture of Gaussians), through :class:`ktorch_sim.training.trainer.Trainer`, on the same G1 MJCF as the
   mjlab run (found through the mjlab interpreter unless ``--g1-xml`` is given); the trainer's
   ``time/collect_s`` and ``time/update_s`` of each timed iteration are summed the same way.

Both sides: collection env steps/s = N * 24 * K / collection seconds; end-to-end env steps/s =
N * 24 * K / (collection + update seconds); per-iteration logging and checkpointing are outside
both. The JSON printed last also holds the whole-run wall time of each process (start-up, kernel
compilation and warm-up included), the ratios ktorch_sim / mjlab, and the GPU, driver and package
versions of both sides. Without ``--mjlab-python`` (or when its run fails) the mjlab part is
skipped with the reason in the JSON; the ktorch_sim part still runs (CPU smoke test:
``--device cpu --num-envs 4 --iterations 1``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MJLAB_TASK = "Mjlab-Velocity-Flat-Unitree-G1"
STEPS_PER_ITERATION = 24  # rsl_rl num_steps_per_env of mjlab's G1 config; configs/g1_velocity*.toml: 0.48 s at 50 Hz
KTORCH_CONFIGS = {"ktorch_mlp": "configs/g1_velocity.toml", "ktorch_gru": "configs/g1_velocity_gru.toml"}
RESULT_PREFIX = "BENCH_RESULT "
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ITERATION = re.compile(r"Learning iteration\s+(\d+)/(\d+)")
_COLLECTION = re.compile(r"Collection time:\s*([0-9.eE+-]+)\s*s")
_LEARNING = re.compile(r"Learning time:\s*([0-9.eE+-]+)\s*s")


# --- parsing and rates ----------------------------------------------------------------------------

def parse_rsl_rl_log(text: str) -> list[tuple[float, float]]:
    """Return (collection s, learning s) of every iteration rsl_rl printed, in order."""
    rows, collect = [], None
    for line in _ANSI.sub("", text).splitlines():
        if m := _COLLECTION.search(line):
            collect = float(m.group(1))
        elif (m := _LEARNING.search(line)) and collect is not None:
            rows.append((collect, float(m.group(1))))
            collect = None
    return rows


def rates(times: list[tuple[float, float]], num_envs: int, steps: int = STEPS_PER_ITERATION) -> dict:
    """Return collection and end-to-end env steps/s of timed iterations [(collect s, update s), ...]."""
    collect = sum(c for c, _ in times)
    update = sum(u for _, u in times)
    env_steps = num_envs * steps * len(times)
    return {"timed_iterations": len(times), "env_steps": env_steps,
            "collect_s_per_iteration": collect / len(times), "update_s_per_iteration": update / len(times),
            "collect_env_steps_per_s": env_steps / collect,
            "end_to_end_env_steps_per_s": env_steps / (collect + update)}


# --- mjlab ----------------------------------------------------------------------------------------

def _run(cmd: list[str], timeout_s: float, cwd: str | None = None, env: dict | None = None
         ) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)


def mjlab_env(pythonpath: str = "") -> dict:
    """Environment of the mjlab processes: ours, with ``pythonpath`` (mjlab's own packages) as PYTHONPATH."""
    return {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": pythonpath}


def mjlab_g1_xml(mjlab_python: str, pythonpath: str = "") -> str | None:
    """Return the G1 MJCF inside the mjlab that ``mjlab_python`` imports (None if it has none)."""
    code = ("import importlib.util, pathlib; s = importlib.util.find_spec('mjlab'); "
            "print(pathlib.Path(list(s.submodule_search_locations)[0]) / 'asset_zoo/robots/unitree_g1/xmls/g1.xml' "
            "if s else '')")
    try:
        out = _run([mjlab_python, "-c", code], 120, env=mjlab_env(pythonpath)).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if out and Path(out).is_file() else None


def mjlab_versions(mjlab_python: str, pythonpath: str = "") -> dict:
    """Return the package versions in the mjlab environment."""
    code = ("import importlib.metadata as m, json; out = {}\n"
            "for p in ('mjlab', 'mujoco', 'mujoco-warp', 'warp-lang', 'torch', 'rsl-rl-lib'):\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: out[p] = None\n"
            "print(json.dumps(out))")
    try:
        out = _run([mjlab_python, "-c", code], 120, env=mjlab_env(pythonpath)).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {}


def run_mjlab(mjlab_python: str | None, device: str, num_envs: int, iterations: int, warmup: int,
              timeout_s: float, pythonpath: str = "") -> dict:
    """Run mjlab's G1 flat velocity training, timed from its own per-iteration log; or why it was skipped."""
    if not mjlab_python:
        return {"skipped": "no --mjlab-python given (the interpreter of a venv with `pip install mjlab`)"}
    if not Path(mjlab_python).is_file():
        return {"skipped": f"--mjlab-python {mjlab_python}: no such file"}
    gpu_ids = "None" if device == "cpu" else (device.split(":")[1] if ":" in device else "0")
    cmd = [mjlab_python, "-m", "mjlab.scripts.train", MJLAB_TASK, "--env.scene.num-envs", str(num_envs),
           "--agent.max-iterations", str(warmup + iterations), "--agent.logger", "tensorboard",
           "--agent.save-interval", "1000000", "--gpu-ids", gpu_ids]
    env = mjlab_env(pythonpath)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        try:
            proc = _run(cmd, timeout_s, cwd=tmp, env=env)
        except subprocess.TimeoutExpired:
            return {"skipped": f"mjlab run exceeded {timeout_s:.0f} s", "command": " ".join(cmd)}
        wall = time.perf_counter() - start
    rows = parse_rsl_rl_log(proc.stdout + proc.stderr)
    if proc.returncode != 0 or len(rows) < warmup + iterations:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        return {"skipped": f"mjlab run failed (exit {proc.returncode}, {len(rows)} iterations logged): {tail}",
                "command": " ".join(cmd)}
    return {"command": " ".join(cmd), "wall_s": wall, "num_envs": num_envs,
            **rates(rows[warmup:warmup + iterations], num_envs),
            "versions": mjlab_versions(mjlab_python, pythonpath)}


# --- ktorch_sim -----------------------------------------------------------------------------------

def measure_ktorch(config_path: str, device: str, engine: str, num_envs: int, iterations: int, warmup: int,
                   g1_xml: str | None) -> dict:
    """Time ``iterations`` Trainer iterations of a g1_velocity config after ``warmup`` (this process)."""
    from ktorch_sim.config import load_config
    from ktorch_sim.training.trainer import Trainer

    with tempfile.TemporaryDirectory() as run_dir:
        overrides = [f"task.num_envs={num_envs}", f"task.engine={engine}", f"task.device={device}",
                     f"ppo.batch_size={max(1, num_envs // 4)}", "logging.wandb_mode=disabled",
                     f"logging.run_dir={run_dir}", "checkpoint.save_every_seconds=1e9"]
        if g1_xml:
            overrides.append(f"task.model_path={g1_xml}")
        trainer = Trainer(load_config(str(REPO / config_path), overrides))
        steps = trainer.collector.num_steps
        for _ in range(warmup):
            trainer.iterate()
        rows = [trainer.iterate() for _ in range(iterations)]
        trainer.logger.close()
    m = trainer.config.model
    policy = f"mlp {'-'.join(map(str, m.mlp_hidden))}" if m.policy == "mlp" else \
        f"gru {m.hidden_size}x{m.depth} K{m.num_mixtures}"
    times = [(r["time/collect_s"], r["time/update_s"]) for r in rows]
    return {"config": config_path, "engine": type(trainer.env.engine).__name__, "policy": policy,
            "num_envs": num_envs, "steps_per_iteration": steps, **rates(times, num_envs, steps)}


def run_ktorch(name: str, args: argparse.Namespace, g1_xml: str | None) -> dict:
    """One ktorch_sim config in a fresh process (as mjlab's run), returning its measurement."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", KTORCH_CONFIGS[name], "--device", args.device,
           "--engine", args.engine, "--num-envs", str(args.num_envs), "--iterations", str(args.iterations),
           "--warmup", str(args.warmup)] + (["--g1-xml", g1_xml] if g1_xml else [])
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    start = time.perf_counter()
    try:
        proc = _run(cmd, args.timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"failed": f"exceeded {args.timeout_s:.0f} s"}
    wall = time.perf_counter() - start
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return {**json.loads(line[len(RESULT_PREFIX):]), "wall_s": wall}
    tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
    return {"failed": f"exit {proc.returncode}: {tail}"}


# --- report ---------------------------------------------------------------------------------------

def system_info(device: str) -> dict:
    """GPU model, driver and this environment's package versions."""
    import importlib.metadata as md

    import torch

    info: dict = {"device": device, "python": sys.version.split()[0]}
    for p in ("torch", "mujoco", "mujoco-warp", "warp-lang"):
        try:
            info[p] = md.version(p)
        except md.PackageNotFoundError:
            info[p] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda_runtime"] = torch.version.cuda
        try:
            out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], 30)
            info["nvidia_smi"] = out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["nvidia_smi"] = None
    return info


def ratios(results: dict) -> dict:
    """ktorch_sim / mjlab env steps/s, per policy and measure (only where both sides ran)."""
    mj = results.get("mjlab", {})
    out = {}
    for name in KTORCH_CONFIGS:
        ours = results.get(name, {})
        for key in ("collect_env_steps_per_s", "end_to_end_env_steps_per_s"):
            if key in mj and key in ours:
                out[f"{name}/{key.removesuffix('_env_steps_per_s')}"] = ours[key] / mj[key]
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run the worker or the whole comparison; print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:k or cpu (default cuda)")
    parser.add_argument("--engine", default="auto", choices=("auto", "warp", "mujoco"),
                        help="ktorch_sim engine (auto: Warp on CUDA, native MuJoCo on the CPU)")
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--iterations", type=int, default=20, help="timed PPO iterations per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (compilation, capture)")
    parser.add_argument("--mjlab-python", default=None, help="python of the venv with mjlab installed")
    parser.add_argument("--mjlab-pythonpath", default="",
                        help="PYTHONPATH for the mjlab runs (e.g. a pip --target dir on an offline GPU machine)")
    parser.add_argument("--g1-xml", default=None, help="G1 MJCF for ktorch_sim (default: the mjlab venv's)")
    parser.add_argument("--only", nargs="+", default=["mjlab", *KTORCH_CONFIGS], choices=["mjlab", *KTORCH_CONFIGS],
                        help="which runs to do (default: all three)")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="limit per run")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("num_envs", "iterations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")

    if args.worker:
        result = measure_ktorch(args.worker, args.device, args.engine, args.num_envs, args.iterations, args.warmup,
                                args.g1_xml)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    g1_xml = args.g1_xml or (mjlab_g1_xml(args.mjlab_python, args.mjlab_pythonpath) if args.mjlab_python
                               else None)
    results: dict = {"task": {"mjlab": MJLAB_TASK, "ktorch_sim": "g1_velocity"}, "num_envs": args.num_envs,
                     "iterations": args.iterations, "warmup": args.warmup, "g1_xml": g1_xml,
                     "system": system_info(args.device)}
    for name in args.only:
        print(f"[bench_mjlab] running {name} ...", file=sys.stderr, flush=True)
        if name == "mjlab":
            results["mjlab"] = run_mjlab(args.mjlab_python, args.device, args.num_envs, args.iterations,
                                         args.warmup, args.timeout_s, args.mjlab_pythonpath)
            if "skipped" in results["mjlab"]:
                print(f"[bench_mjlab] mjlab skipped: {results['mjlab']['skipped']}", file=sys.stderr)
        else:
            results[name] = run_ktorch(name, args, g1_xml)
    results["ratios_ktorch_over_mjlab"] = ratios(results)
    text = json.dumps(results, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
