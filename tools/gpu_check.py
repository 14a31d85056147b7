"""The GPU path in one prepared run: environment, correctness, physics, throughput and learning.

    python tools/gpu_check.py --minutes 8 --out DIR            # on a GPU machine (DEVELOPERS.md)
    python tools/gpu_check.py --smoke --out DIR                # every stage at toy sizes on the CPU (CI)

Stages, in order (``tools/gpu_check_stages.py`` holds what each one does):

1. ``environment``: library versions, the GPU, its driver and memory, Warp's devices, and the
   time until the first K-Bot step of a WarpEngine has run (Warp's kernel compile, on its own).
2. ``correctness``: the engine parity check on the Warp engine of the device, the captured-vs-eager
   rollout test (``pytest -m cuda``), the NaN-injection tests, and a rollout collection with
   ``torch.cuda.set_sync_debug_mode("error")`` (no host sync may happen while collecting).
3. ``physics``: raw captured ``mujoco_warp.step`` against WarpEngine at N = 1024, 4096, 8192
   (``tools/bench.py``), and the contact/constraint peaks that size ``nconmax``/``njmax``.
4. ``throughput``: kbot_walk training at 4096 worlds with ``ppo.capture_rollout`` off/on and
   ``model.sequence_method`` packed/loop (``tools/bench_training.py``), a per-phase breakdown,
   the GPU memory peak.
5. ``learning``: a training run through ``python -m ktorch_sim.train`` for the minutes left; its
   config, metrics and final checkpoint are packed into ``DIR/learning_run.tar``.

Each stage runs in its own process (a CUDA error or a crash cannot take the others down) within
a time allowance; the learning stage gets what is left. ``DIR/gpu_check.json`` is rewritten
atomically after every stage with every figure, the device, driver, versions, commit and
settings; a stage that fails records its traceback and the next one starts; a stage that runs
past its allowance is stopped (its finished measurements are kept); stages the budget cannot
fit are recorded as skipped, with the reason. Each stage's output goes to ``DIR/<stage>.log``.
DIR holds at most 7 files, so a remote run that returns at most 8 files brings all of it back.

This file is the orchestrator and imports only the standard library, so it starts at once and
survives any failure of the stages. Tests inject faults with ``GPU_CHECK_FAULT=stage=raise`` or
``stage=hang`` (comma-separated) and shorten allowances with ``--allowance stage=seconds``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STAGES = ("environment", "correctness", "physics", "throughput", "learning")
REPORT_NAME = "gpu_check.json"
LEARNING_TAR = "learning_run.tar"
FAULT_ENV = "GPU_CHECK_FAULT"
SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class StageBudget:
    """How long a stage may run.

    Attributes:
        nominal_s: the allowance when the budget has room (the last stage gets all that is left).
        min_s: below this much time left, the stage is skipped instead of started.

    """

    nominal_s: float
    min_s: float


# Allowances on the GPU: a cold Warp compile (NVRTC) dominates the first stage; the learning stage
# takes everything the others leave (405 s at most go to the first four: with --minutes 8 the
# learning run gets at least 55 s, plus whatever the other stages did not use).
GPU_BUDGETS = {"environment": StageBudget(120, 20), "correctness": StageBudget(90, 30),
               "physics": StageBudget(75, 30), "throughput": StageBudget(120, 40),
               "learning": StageBudget(0, 45)}
# Smoke (CPU): generous caps, since a cold Warp CPU compile of K-Bot takes minutes on 2 cores.
SMOKE_BUDGETS = {"environment": StageBudget(600, 5), "correctness": StageBudget(600, 5),
                 "physics": StageBudget(600, 5), "throughput": StageBudget(600, 5),
                 "learning": StageBudget(0, 5)}
KILL_GRACE_S = {"gpu": 15.0, "smoke": 5.0}  # after its allowance a stage gets this long to stop on SIGINT
END_MARGIN_S = 20.0  # kept free at the end of the budget for the grace period and the last write


# --- report file --------------------------------------------------------------------------------


def now_iso() -> str:
    """Return the current UTC time, ISO 8601, seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """Return the JSON object in ``path``, or None when it is missing or not valid JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def git_commit() -> str:
    """Short hash of HEAD with ``+dirty`` when tracked files changed, or "unknown" (no git, no .git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_report(args: argparse.Namespace, stages: Sequence[str]) -> dict:
    """Start the report: settings, commit, every selected stage pending."""
    commit = git_commit()
    if commit == "unknown" and args.commit:
        commit = args.commit
    return {
        "schema": SCHEMA_VERSION, "tool": "tools/gpu_check.py", "mode": "smoke" if args.smoke else "gpu",
        "started": now_iso(), "finished": None, "commit": commit,
        "settings": {"minutes": args.minutes, "stages": list(stages), "smoke": args.smoke,
                     "learn_cfg": args.learn_cfg, "learn_set": list(args.learn_set),
                     "allowance_overrides": dict(args.allowance), "fault_injection": os.environ.get(FAULT_ENV),
                     "argv": sys.argv[1:], "python": sys.executable, "cwd": os.getcwd()},
        "stages": {name: {"status": "pending"} for name in stages},
        "not_selected": [s for s in STAGES if s not in stages],
    }


# --- budget ---------------------------------------------------------------------------------------


def stage_allowance(stage: str, budget: StageBudget, remaining_s: float, last: bool) -> float | None:
    """Seconds the stage may run, or None when ``remaining_s`` is below its minimum.

    The last stage (learning, when selected) gets all that remains; every other stage at most its
    nominal allowance.
    """
    if remaining_s < budget.min_s:
        return None
    return remaining_s if last or budget.nominal_s <= 0 else min(budget.nominal_s, remaining_s)


def budgets_for(args: argparse.Namespace) -> dict[str, StageBudget]:
    """Stage budgets of the mode, with ``--allowance`` overrides applied to the nominal seconds."""
    base = dict(SMOKE_BUDGETS if args.smoke else GPU_BUDGETS)
    for stage, seconds in args.allowance.items():
        base[stage] = StageBudget(seconds, min(base[stage].min_s, seconds))
    return base


# --- running one stage --------------------------------------------------------------------------


def stage_command(stage: str, args: argparse.Namespace, result: Path, deadline: float) -> list[str]:
    """Command line of the child process that runs ``stage``."""
    cmd = [sys.executable, "-u", str(Path(__file__).resolve()), "--stage", stage, "--out", str(args.out),
           "--result", str(result), "--deadline", f"{deadline:.3f}", "--learn-cfg", args.learn_cfg]
    cmd += ["--smoke"] if args.smoke else []
    for item in args.learn_set:
        cmd += ["--learn-set", item]
    return cmd


def stop_process_group(proc: subprocess.Popen, grace_s: float) -> str:
    """SIGINT the child's process group, then SIGKILL it after ``grace_s``; returns how it ended."""
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return "exited"
        try:
            proc.wait(timeout=wait_s)
            return "stopped by SIGINT" if sig == signal.SIGINT else "killed by SIGKILL"
        except subprocess.TimeoutExpired:
            continue
    return "did not stop"


def run_stage(stage: str, args: argparse.Namespace, allowance_s: float, scratch: Path) -> dict:
    """Run ``stage`` in a child process with its output in ``DIR/<stage>.log``; return its report entry."""
    result = scratch / f"{stage}.json"
    log = args.out / f"{stage}.log"
    grace = KILL_GRACE_S["smoke" if args.smoke else "gpu"]
    start = time.time()
    cmd = stage_command(stage, args, result, start + allowance_s)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=allowance_s + grace)
            ended = None
        except subprocess.TimeoutExpired:
            ended = stop_process_group(proc, grace)
            rc = proc.returncode
    entry = {"status": "failed", "figures": {}, **(read_json(result) or {})}
    if entry["status"] not in ("ok", "failed", "skipped"):  # the child ended before writing its last status
        entry["status"] = "failed"
    entry.update({"seconds": round(time.time() - start, 2), "allowance_s": round(allowance_s, 1),
                  "exit_code": rc, "log": log.name})
    if ended is not None:
        entry["status"] = "timeout"
        entry["reason"] = (f"ran past its allowance of {allowance_s:.0f} s (+{grace:.0f} s grace): "
                           f"{ended}; the measurements finished before that are kept")
    elif rc != 0 and entry["status"] == "ok":
        entry["status"] = "failed"
        entry["error"] = f"exit code {rc} after the stage reported success"
    elif rc != 0 and "error" not in entry:
        entry["error"] = f"exit code {rc} without a traceback (a crash?); last lines of {log.name}:\n{log_tail(log)}"
    return entry


def log_tail(path: Path, lines: int = 30) -> str:
    """Return the last ``lines`` lines of a log file (text, undecodable bytes replaced)."""
    try:
        return "\n".join(path.read_bytes().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def skip_reason_after(stage: str, entry: dict, smoke: bool) -> str | None:
    """Why every later stage is pointless after ``stage`` ended as ``entry`` (None: carry on)."""
    if smoke or stage != "environment":
        return None
    device = entry.get("figures", {}).get("device", {})
    if device and not device.get("cuda_available", False):
        return "no CUDA device: the environment stage found torch.cuda.is_available() False"
    return None


# --- the whole run --------------------------------------------------------------------------------


def run_all(args: argparse.Namespace) -> dict:
    """Run the selected stages in order within ``--minutes``; write the report after each; return it."""
    args.out.mkdir(parents=True, exist_ok=True)
    stages = [s for s in STAGES if s in args.stages]
    report = new_report(args, stages)
    path = args.out / REPORT_NAME
    write_json_atomic(path, report)
    budgets = budgets_for(args)
    deadline = time.time() + args.minutes * 60.0
    blocked: str | None = None
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as scratch:
        for stage in stages:
            remaining = deadline - time.time() - END_MARGIN_S * (0 if args.smoke else 1)
            allowance = stage_allowance(stage, budgets[stage], remaining, last=stage == "learning")
            if blocked is not None:
                entry = {"status": "skipped", "reason": blocked}
            elif allowance is None:
                entry = {"status": "skipped",
                         "reason": f"time budget: {max(remaining, 0):.0f} s left of {args.minutes:g} min, the stage "
                                   f"needs at least {budgets[stage].min_s:.0f} s"}
            else:
                print(f"gpu_check: {stage}: started ({allowance:.0f} s allowed; log {args.out / stage}.log)",
                      flush=True)
                report["stages"][stage] = {"status": "running", "allowance_s": round(allowance, 1)}
                write_json_atomic(path, report)
                entry = run_stage(stage, args, allowance, Path(scratch))
                blocked = skip_reason_after(stage, entry, args.smoke)
            report["stages"][stage] = entry
            write_json_atomic(path, report)
            print(f"gpu_check: {stage}: {entry['status']}" + (f" ({entry['reason']})" if entry.get("reason") else "")
                  + (f" in {entry['seconds']:.1f} s" if "seconds" in entry else ""), flush=True)
    report["finished"] = now_iso()
    report["summary"] = {name: report["stages"][name]["status"] for name in stages}
    write_json_atomic(path, report)
    print(summary_text(report), flush=True)
    return report


def summary_text(report: dict) -> str:
    """Format the headline figures as a few lines for the end of the console output."""
    lines = [f"gpu_check: commit {report['commit']}, mode {report['mode']}: " +
             ", ".join(f"{k} {v}" for k, v in report.get("summary", {}).items())]
    for name, entry in report["stages"].items():
        headline = entry.get("figures", {}).get("headline")
        if headline:
            lines.append(f"  {name}: " + "; ".join(f"{k} {v}" for k, v in headline.items()))
        if entry.get("status") in ("failed", "timeout") and entry.get("error"):
            lines.append(f"  {name}: error: {str(entry['error']).strip().splitlines()[-1]}")
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------------


def _stage_list(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in STAGES]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"unknown stage(s) {bad or text!r}; stages: {','.join(STAGES)}")
    return items


def _allowance(text: str) -> tuple[str, float]:
    stage, _, seconds = text.partition("=")
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if stage not in STAGES or not value > 0:
        raise argparse.ArgumentTypeError(f"expected STAGE=SECONDS with a stage of {','.join(STAGES)}, got {text!r}")
    return stage, value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the ``tools/gpu_check.py`` argument parser."""
    p = argparse.ArgumentParser(prog="tools/gpu_check.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--minutes", type=_positive_float, default=None,
                   help="time budget for all stages (default: 8 on the GPU, 30 with --smoke)")
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, the logs, the learning run")
    p.add_argument("--smoke", action="store_true", help="every stage at toy sizes on the CPU (Warp on CPU)")
    p.add_argument("--stages", type=_stage_list, default=list(STAGES), help="comma-separated stages to run")
    p.add_argument("--learn-cfg", default="configs/kbot_walk.toml", help="training config of the learning stage")
    p.add_argument("--learn-set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the learning run (repeatable)")
    p.add_argument("--commit", default="", help="commit to record when the checkout has no git (a copied tree)")
    p.add_argument("--allowance", type=_allowance, action="append", default=[], metavar="STAGE=SECONDS",
                   help="override a stage's nominal allowance (tests, reruns)")
    # The child process of one stage (internal).
    p.add_argument("--stage", choices=STAGES, default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; fill the mode's default budget."""
    args = build_parser().parse_args(argv)
    if args.minutes is None:
        args.minutes = 30.0 if args.smoke else 8.0
    args.allowance = dict(args.allowance)
    args.out = args.out.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Orchestrate the stages (or, with the internal ``--stage``, run one); 0 when nothing failed."""
    args = parse_args(argv)
    if args.stage is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from gpu_check_stages import run_stage_child

        return run_stage_child(args)
    report = run_all(args)
    return 1 if any(e.get("status") in ("failed", "timeout") for e in report["stages"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
