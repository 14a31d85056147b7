"""The five stages of ``tools/gpu_check.py``; each runs in a process of its own.

A stage records its figures as it goes (:class:`StageContext.record` rewrites the stage's result
file atomically), so a stage stopped at its allowance keeps what it finished. Sizes differ
between the GPU run and ``--smoke`` (toy sizes, Warp on the CPU) only through :class:`Sizes`.
Nothing here needs Warp's CPU compiler on the GPU: every Warp engine uses the stage's device.
The measuring code is the project's own: ``tools/bench.py`` (physics), ``tools/bench_training.py``
(training throughput, per-phase breakdown), ``ktorch_sim.buffer_sizing`` (buffer peaks) and the
tests themselves (pytest, with ``tools/gpu_check_pytest.py`` choosing the engines they run on).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gpu_check import FAULT_ENV, LEARNING_TAR, REPO_ROOT, write_json_atomic

WALK_CFG = "configs/kbot_walk.toml"
PACKAGES = ("torch", "warp", "mujoco", "mujoco_warp", "tensordict", "torchrl", "numpy")
DISTRIBUTIONS = {"warp": "warp-lang", "mujoco_warp": "mujoco-warp"}
CAPTURED_TEST = "test_captured_rollout_equals_eager_on_cuda"  # tests/test_graphed_rollout.py, marked cuda
FILE_LIMIT_BYTES = 15 * 2**20  # learning_run.tar stays under the 16 MiB per file a remote run returns
THROUGHPUT_COMBOS = ((False, "packed"), (True, "packed"), (False, "loop"), (True, "loop"))


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Problem sizes of one mode (GPU or smoke)."""

    device: str  # torch device of every engine, model and test
    compile_worlds: int  # worlds of the engine whose first step is timed
    engine_specs: str  # GPU_CHECK_ENGINE_SPECS: the engines the engine tests run on (tools/gpu_check_pytest.py)
    parity_select: str  # pytest -k expression choosing the parity tests
    nan_select: str  # pytest -k expression choosing the NaN-injection tests of this device
    sync_worlds: int  # worlds of the sync-free collection check
    sync_steps: int  # control steps of that rollout
    physics_worlds: tuple[int, ...]  # N of the physics comparison
    physics_steps: tuple[int, ...]  # timed control steps per N (N x steps about constant)
    physics_repeats: int  # timed runs per N, best counts
    peak_worlds: int  # worlds of the buffer-peak measurement
    peak_steps: int  # its control steps (random actions: stumbles and falls)
    train_worlds: int  # worlds of the training-throughput runs
    train_rollout_steps: int  # rollout length of those runs
    train_iterations: int  # timed iterations per run (after one warm-up iteration)
    breakdown_steps: int  # control steps of the per-phase breakdown
    model_overrides: tuple[str, ...]  # config overrides for every trainer built here
    learn_overrides: tuple[str, ...]  # config overrides of the learning run
    learn_stop_margin_s: float  # the learning run is asked to stop this long before the stage's deadline


GPU_SIZES = Sizes(
    device="cuda", compile_worlds=1024, engine_specs="mujoco-cpu,warp-cuda", parity_select="test_engine_parity",
    nan_select="warp-cuda or (training_goes_on_through_broken_physics and warp)",
    sync_worlds=1024, sync_steps=16, physics_worlds=(1024, 4096, 8192), physics_steps=(400, 100, 50),
    physics_repeats=3, peak_worlds=1024, peak_steps=200, train_worlds=4096, train_rollout_steps=100,
    train_iterations=1, breakdown_steps=50, model_overrides=(), learn_overrides=(), learn_stop_margin_s=30.0)
SMOKE_MODEL = ("model.hidden_size=16", "model.depth=1", "model.num_mixtures=2")
SMOKE_SIZES = Sizes(
    device="cpu", compile_worlds=2, engine_specs="mujoco-cpu,warp-cpu",
    parity_select="test_engine_parity and not (mjwarp_humanoid or gym_)",  # K-Bot only (other models: minutes)
    nan_select="warp-cpu and flags_exactly_the_broken_worlds and not inf",
    sync_worlds=2, sync_steps=2, physics_worlds=(2, 4), physics_steps=(2, 2), physics_repeats=1,
    peak_worlds=2, peak_steps=3, train_worlds=2, train_rollout_steps=2, train_iterations=1, breakdown_steps=2,
    model_overrides=SMOKE_MODEL,
    learn_overrides=("task.num_envs=2", "task.engine=warp", "task.device=cpu", "ppo.batch_size=2",
                     "ppo.rollout_length_seconds=0.04", "ppo.max_steps=8", *SMOKE_MODEL),
    learn_stop_margin_s=5.0)


class StageContext:
    """What a stage needs (arguments, sizes, deadline) and where it records its figures."""

    def __init__(self, args: argparse.Namespace) -> None:
        """Read the child's arguments; the figures start empty."""
        self.args = args
        self.sizes = SMOKE_SIZES if args.smoke else GPU_SIZES
        self.deadline = args.deadline if args.deadline is not None else time.time() + 3600.0
        self.scratch = Path(tempfile.mkdtemp(prefix="stage-", dir=args.result.parent))
        self.figures: dict[str, Any] = {}
        self.failed: list[str] = []  # names of checks that failed (the stage then fails, after the others ran)

    def seconds_left(self) -> float:
        """Seconds until the stage's deadline."""
        return self.deadline - time.time()

    def record(self, key: str, value: Any) -> None:
        """Store one figure and rewrite the result file (kept if the stage is stopped later)."""
        self.figures[key] = value
        self.save("running")

    def save(self, status: str, **extra: Any) -> None:
        """Write the result file: status, figures and anything in ``extra`` (error, reason)."""
        write_json_atomic(self.args.result, {"status": status, "figures": self.figures, **extra})

    def check(self, name: str, fn: Callable[[], dict]) -> dict:
        """Run one check; its dict (with ``status``) goes under ``figures["checks"][name]``.

        An exception becomes ``status: failed`` with the traceback; the stage goes on.
        """
        start = time.perf_counter()
        print(f"--- check {name} ---", flush=True)
        try:
            result = fn()
        except Exception:  # noqa: BLE001 - every failure is recorded, the next check runs
            traceback.print_exc()
            result = {"status": "failed", "error": traceback.format_exc()}
        result["seconds"] = round(time.perf_counter() - start, 2)
        if result.get("status") == "failed":
            self.failed.append(name)
        self.record("checks", {**self.figures.get("checks", {}), name: result})
        return result


# --- child entry point ----------------------------------------------------------------------------


def injected_fault(stage: str) -> str | None:
    """Return the fault ``GPU_CHECK_FAULT`` asks for in ``stage`` (``raise`` or ``hang``), if any."""
    for item in os.environ.get(FAULT_ENV, "").split(","):
        name, _, kind = item.strip().partition("=")
        if name == stage:
            return kind or "raise"
    return None


def apply_fault(stage: str) -> None:
    """Raise or hang as ``GPU_CHECK_FAULT`` says (tests of the orchestrator)."""
    fault = injected_fault(stage)
    if fault == "hang":
        print(f"{stage}: injected hang ({FAULT_ENV})", flush=True)
        while True:
            time.sleep(1.0)
    if fault is not None:
        raise RuntimeError(f"injected failure in stage {stage} ({FAULT_ENV}={fault})")


def run_stage_child(args: argparse.Namespace) -> int:
    """Run ``args.stage`` and write its result file; 0 when it (and every check in it) passed."""
    sys.path.insert(0, str(REPO_ROOT))
    ctx = StageContext(args)
    ctx.save("running")
    print(f"=== stage {args.stage} ({'smoke' if args.smoke else 'gpu'}), {ctx.seconds_left():.0f} s allowed ===",
          flush=True)
    try:
        apply_fault(args.stage)
        STAGE_FUNCTIONS[args.stage](ctx)
    except BaseException:  # noqa: BLE001 - KeyboardInterrupt (stopped) too: keep what was measured
        traceback.print_exc()
        ctx.save("failed", error=traceback.format_exc())
        return 1
    if ctx.failed:
        ctx.save("failed", error=f"failed checks: {', '.join(ctx.failed)} (see figures.checks)")
        return 1
    ctx.save("ok")
    return 0


# --- helpers --------------------------------------------------------------------------------------


def import_tool(name: str) -> Any:
    """Import ``tools/<name>.py`` (bench, bench_training) as a module."""
    tools = str(REPO_ROOT / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    return importlib.import_module(name)


def synchronize(device: str) -> None:
    """Wait for queued torch and Warp work on ``device`` (no-op on the CPU)."""
    import_tool("bench").synchronizer(device)()


def where_in_repo(exc: BaseException) -> str:
    """``file:line in function: code`` of the innermost traceback frame inside this repository."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(REPO_ROOT) in str(f.filename)]
    if not frames:
        return "outside the repository"
    f = frames[-1]
    return f"{Path(f.filename).relative_to(REPO_ROOT)}:{f.lineno} in {f.name}: {(f.line or '').strip()}"


def walk_config(ctx: StageContext, num_envs: int, run_dir: Path, extra: Sequence[str] = ()) -> Any:
    """configs/kbot_walk.toml on the Warp engine of the stage's device with ``num_envs`` worlds."""
    import ktorch_sim as ks

    probe = ks.load_config(WALK_CFG)
    return ks.load_config(WALK_CFG, [
        f"task.num_envs={num_envs}", "task.engine=warp", f"task.device={ctx.sizes.device}",
        *([] if probe.ppo.batch_size is None else [f"ppo.batch_size={min(probe.ppo.batch_size, num_envs)}"]),
        "logging.wandb_mode=disabled",
        f"logging.run_dir={run_dir}", "logging.video_every_minutes=0", "checkpoint.save_every_seconds=1e9",
        *ctx.sizes.model_overrides, *extra])


class MemoryWatcher:
    """Peak device memory in use (everything on the GPU: torch, Warp, cuDNN), polled in a thread."""

    def __init__(self, device: str, period_s: float = 0.2) -> None:
        """Start polling ``torch.cuda.mem_get_info`` on a CUDA ``device``; on the CPU do nothing."""
        import torch

        self.peak_bytes = 0
        self._stop = threading.Event()
        self._cuda = torch.device(device).type == "cuda"
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
            self._thread = threading.Thread(target=self._poll, args=(period_s,), daemon=True)
            self._thread.start()

    def _poll(self, period_s: float) -> None:
        import torch

        while not self._stop.is_set():
            free, total = torch.cuda.mem_get_info()
            self.peak_bytes = max(self.peak_bytes, total - free)
            self._stop.wait(period_s)

    def stop(self) -> dict:
        """Stop polling; the device-wide and torch-allocator peaks in GiB (None on the CPU)."""
        import torch

        if not self._cuda:
            return {"device_used_peak_gib": None, "torch_allocated_peak_gib": None}
        self._stop.set()
        self._thread.join()
        return {"device_used_peak_gib": round(self.peak_bytes / 2**30, 3),
                "torch_allocated_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)}


# --- stage 1: environment -------------------------------------------------------------------------


def stage_environment(ctx: StageContext) -> None:
    """Machine, versions, GPU and driver, Warp's devices, and the time to the first K-Bot step."""
    ctx.record("machine", machine_info())
    ctx.record("versions", package_versions())
    ctx.record("device", device_info())
    ctx.record("warp", warp_info(ctx.sizes.device))
    first = time_first_kbot_step(ctx.sizes.device, ctx.sizes.compile_worlds)
    ctx.record("first_kbot_step", first)
    device = ctx.figures["device"]
    ctx.record("headline", {"gpu": device.get("gpu_name") or "none", "driver": device.get("driver") or "none",
                            "torch": ctx.figures["versions"].get("torch"),
                            "first K-Bot step (Warp compile) s": first["first_step_total_s"],
                            "kernel cache": "cold" if first["new_cache_entries"] else "warm"})


def machine_info() -> dict:
    """Python, OS, glibc, CPU and core count."""
    bench = import_tool("bench")
    return {"python": platform.python_version(), "platform": platform.platform(), "glibc": platform.libc_ver()[1],
            "cpu": bench.cpu_name(), "cpu_count": os.cpu_count(), "hostname": platform.node()}


def package_versions() -> dict:
    """Each package's version, or the import error (a package that does not load is a finding)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
            out[name] = getattr(module, "__version__", None) or importlib.metadata.version(
                DISTRIBUTIONS.get(name, name))
        except Exception as e:  # noqa: BLE001 - recorded
            out[name] = f"IMPORT FAILED: {type(e).__name__}: {e}"
    for dist in ("wandb", "pytest"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    import torch

    out["torch_cuda"] = torch.version.cuda
    out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return out


def device_info() -> dict:
    """Describe the GPU as torch sees it and the driver as nvidia-smi reports it."""
    import torch

    info: dict[str, Any] = {"cuda_available": torch.cuda.is_available(), "gpu_name": None, "driver": None}
    if info["cuda_available"]:
        p = torch.cuda.get_device_properties(0)
        info.update(gpu_name=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 2),
                    compute_capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count,
                    device_count=torch.cuda.device_count())
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        if smi.returncode == 0 and smi.stdout.strip():
            info["driver"] = smi.stdout.strip().splitlines()[0].split(",")[1].strip()
    except (OSError, subprocess.SubprocessError) as e:
        info["nvidia_smi"] = f"not available: {e}"
    return info


def warp_info(device: str) -> dict:
    """Warp's devices, CPU compiler, toolkit/driver and cache; on an import failure, ldd of warp.so."""
    try:
        from ktorch_sim.engines.warp import init_warp

        init_warp(cpu_only=device == "cpu")
        import warp as wp
    except Exception as e:  # noqa: BLE001 - what failed to load is the finding
        return {"error": f"{type(e).__name__}: {e}", "ldd": ldd_warp()}
    runtime = getattr(importlib.import_module("warp._src.context"), "runtime", None) \
        if importlib.util.find_spec("warp._src.context") else None
    return {"version": wp.config.version, "cuda_available": wp.is_cuda_available(),
            "cpu_kernels_available": wp.is_cpu_available(),
            "cuda_devices": [str(d) for d in wp.get_cuda_devices()],
            "toolkit": str(getattr(runtime, "toolkit_version", None)),
            "driver": str(getattr(runtime, "driver_version", None)),
            "kernel_cache_dir": wp.config.kernel_cache_dir}


def ldd_warp() -> str:
    """``ldd`` of the warp.so that ``import warp`` would load (why it did not load)."""
    spec = importlib.util.find_spec("warp")
    if spec is None or not spec.submodule_search_locations:
        return "warp not found"
    lib = Path(list(spec.submodule_search_locations)[0]) / "bin" / "warp.so"
    try:
        return subprocess.run(["ldd", str(lib)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return f"ldd {lib}: {e}"


def cache_entries(path: str) -> int:
    """Files under Warp's kernel cache (a cold cache gains entries while kernels compile)."""
    return sum(len(files) for _, _, files in os.walk(path)) if os.path.isdir(path) else 0


def time_first_kbot_step(device: str, num_envs: int) -> dict:
    """Seconds to build a WarpEngine for K-Bot and run its first step (compiles or loads every kernel)."""
    import torch

    import ktorch_sim as ks
    from ktorch_sim.engines.warp import init_warp

    init_warp(cpu_only=torch.device(device).type == "cpu")
    import warp as wp

    cache = wp.config.kernel_cache_dir
    before = cache_entries(cache)
    bench = import_tool("bench")
    model = bench.bench_model()
    start = time.perf_counter()
    engine = ks.make_engine("warp", model, ks.EngineConfig(num_envs=num_envs, device=device, dt=0.004, ctrl_dt=0.02))
    synchronize(device)
    built = time.perf_counter()
    targets = torch.from_numpy(bench.make_workload(model, num_envs).targets).to(engine.device)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        engine.step(targets)
        synchronize(device)
        times.append(time.perf_counter() - t)
    return {"device": device, "num_envs": num_envs, "build_s": round(built - start, 3),
            "first_step_s": round(times[0], 3), "steady_step_s": round(times[-1], 4),
            "first_step_total_s": round(built - start + times[0], 3),
            "kernel_cache_dir": cache, "cache_entries_before": before,
            "new_cache_entries": cache_entries(cache) - before}


# --- stage 2: correctness -------------------------------------------------------------------------


def stage_correctness(ctx: StageContext) -> None:
    """Run the parity, captured-vs-eager and NaN-injection tests on the device; check sync-free collection."""
    # One pytest process for all three (its start-up imports cost seconds on a CPU); one check per file.
    selection = ["tests/test_engine_parity.py", "tests/test_graphed_rollout.py", "tests/test_nan_handling.py", "-k",
                 f"({ctx.sizes.parity_select}) or {CAPTURED_TEST} or ({ctx.sizes.nan_select})"]
    tests = run_pytest(ctx, "pytest", selection)
    ctx.record("pytest", {k: v for k, v in tests.items() if k != "cases"})
    ctx.check("parity", lambda: pytest_check(tests, "test_engine_parity"))
    ctx.check("captured_vs_eager", lambda: pytest_check(tests, "test_graphed_rollout"))
    ctx.check("nan_injection", lambda: pytest_check(tests, "test_nan_handling"))
    ctx.check("sync_free_collection", lambda: check_sync_free(ctx, capture=False))
    ctx.check("sync_free_captured_collection", lambda: check_sync_free(ctx, capture=True))
    checks = ctx.figures.get("checks", {})
    ctx.record("headline", {name: c.get("status") for name, c in checks.items()})


def run_pytest(ctx: StageContext, name: str, selection: Sequence[str]) -> dict:
    """Run pytest on ``selection`` in a subprocess (output into the stage log).

    Returns the command, exit code, whether it ran past the stage's time, and every test case
    of its JUnit report (name, outcome, seconds, message).
    """
    xml = ctx.scratch / f"{name}.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "gpu_check_pytest",
           f"--junitxml={xml}", *selection]
    tools = str(REPO_ROOT / "tools")
    env = {**os.environ, "GPU_CHECK_ENGINE_SPECS": ctx.sizes.engine_specs,
           "PYTHONPATH": os.pathsep.join(p for p in (tools, os.environ.get("PYTHONPATH")) if p)}
    print(f"$ GPU_CHECK_ENGINE_SPECS={ctx.sizes.engine_specs} " + " ".join(cmd), flush=True)
    timeout = max(ctx.seconds_left() - 5.0, 10.0)
    start = time.perf_counter()
    try:
        rc: int | None = subprocess.run(cmd, cwd=REPO_ROOT, env=env, timeout=timeout,
                                        stdin=subprocess.DEVNULL).returncode
    except subprocess.TimeoutExpired:
        rc = None
    return {"command": cmd[2:], "exit_code": rc, "timeout_s": None if rc is not None else round(timeout),
            "pytest_seconds": round(time.perf_counter() - start, 2), "cases": junit_cases(xml)}


def pytest_check(run: dict, module: str) -> dict:
    """Make the check of one test module's cases in a :func:`run_pytest` result: counts and a status."""
    cases = [c for c in run["cases"] if f".{module}::" in c["name"] or c["name"].startswith(f"{module}::")]
    counts = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "errors", "skipped")}
    result = {"command": run["command"], "exit_code": run["exit_code"], "pytest_seconds": run["pytest_seconds"],
              "tests": len(cases), **counts, "cases": cases}
    if run["timeout_s"] is not None:
        return {**result, "status": "failed", "error": f"pytest ran past the stage's time ({run['timeout_s']} s)"}
    if not cases:
        return {**result, "status": "failed",
                "error": f"pytest ran no test of {module} (exit code {run['exit_code']}): renamed or not collected?"}
    if counts["failed"] or counts["errors"]:
        return {**result, "status": "failed"}
    if counts["skipped"] == len(cases):
        reasons = sorted({c["message"] for c in cases})
        return {**result, "status": "skipped", "reason": "; ".join(reasons)}
    return {**result, "status": "ok"}


def junit_cases(path: Path) -> list[dict]:
    """One entry per test case of a JUnit XML report: name, outcome, seconds, message."""
    cases: list[dict] = []
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        root = None
    for case in ([] if root is None else root.iter("testcase")):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "errors"}.get(tag, tag)
                message = (node.get("message") or node.text or "")[:500]
                break
        cases.append({"name": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "seconds": float(case.get("time") or 0.0), "message": message})
    return cases


def check_sync_free(ctx: StageContext, capture: bool) -> dict:
    """Collect a rollout under ``torch.cuda.set_sync_debug_mode("error")``: any host sync fails it.

    ``capture``: the whole-step CUDA graph collector (``ppo.capture_rollout``); its first two
    rollouts (eager warm-up, capture) run before the checked one, which replays the graph.
    """
    import torch

    if torch.device(ctx.sizes.device).type != "cuda":
        return {"status": "skipped", "reason": "torch.cuda.set_sync_debug_mode needs a CUDA device"}
    from ktorch_sim.training.trainer import Trainer

    n, steps = ctx.sizes.sync_worlds, ctx.sizes.sync_steps
    config = walk_config(ctx, n, ctx.scratch / f"sync-{capture}", [
        f"ppo.rollout_length_seconds={steps * 0.02}", f"ppo.capture_rollout={str(capture).lower()}"])
    trainer = Trainer(config)
    trainer.model.eval()
    collector, carry = trainer.collector, trainer.carry
    for _ in range(2 if capture else 1):
        carry = collector.collect(trainer.model, carry)[2]
    torch.cuda.synchronize()
    start = time.perf_counter()
    try:
        torch.cuda.set_sync_debug_mode("error")
        collector.collect(trainer.model, carry)
    except RuntimeError as e:
        return {"status": "failed", "error": str(e).splitlines()[0], "where": where_in_repo(e),
                "traceback": traceback.format_exc(), "worlds": n, "steps": steps}
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    return {"status": "ok", "worlds": n, "steps": steps, "collector": type(collector).__name__,
            "seconds_checked_rollout": round(time.perf_counter() - start, 3)}


# --- stage 3: physics -----------------------------------------------------------------------------


def stage_physics(ctx: StageContext) -> None:
    """WarpEngine against raw captured mujoco_warp.step at each N; buffer peaks of kbot_walk."""
    import ktorch_sim as ks

    bench = import_tool("bench")
    task = ks.load_config(WALK_CFG).task
    model = bench.bench_model()
    rows: list[dict] = []
    last: tuple[float, int] | None = None  # (seconds, N x steps) of the previous measurement
    for n, steps in zip(ctx.sizes.physics_worlds, ctx.sizes.physics_steps, strict=True):
        if last is not None and last[0] * (n * steps) / last[1] > ctx.seconds_left() - 10.0:
            rows.append({"num_envs": n, "status": "skipped", "reason": "not enough of the stage's time left"})
            ctx.record("rows", rows)
            continue
        settings = bench.PhysicsSettings(dt=task.dt, ctrl_dt=task.ctrl_dt, iterations=task.iterations,
                                         ls_iterations=task.ls_iterations, control_steps=steps, episode_steps=50,
                                         repeats=ctx.sizes.physics_repeats, nconmax=task.nconmax, njmax=task.njmax)
        start = time.perf_counter()
        try:
            row = {**bench.measure_physics_one("warp", ctx.sizes.device, n, settings, model), "status": "ok"}
        except Exception:  # noqa: BLE001 - a row that fails (out of memory at 8192, say) is recorded
            traceback.print_exc()
            row = {"num_envs": n, "status": "failed", "error": traceback.format_exc()}
            ctx.failed.append(f"physics N={n}")
        last = (time.perf_counter() - start, n * steps)
        rows.append(row)
        ctx.record("rows", rows)
    ctx.record("target", "WarpEngine >= 90 % of raw captured MuJoCo Warp (ratio_to_baseline >= 0.9)")
    ctx.record("buffer_peaks", ctx.check("buffer_peaks", lambda: measure_peaks(ctx)))
    ctx.record("headline", {f"N={r['num_envs']} warp/raw": (round(r["ratio_to_baseline"], 3)
                                                           if r.get("status") == "ok" else r.get("status"))
                            for r in rows})


def measure_peaks(ctx: StageContext) -> dict:
    """Peak contacts and constraint rows of kbot_walk under random actions; recommended nconmax/njmax."""
    from ktorch_sim.buffer_sizing import measure_buffer_peaks, recommend
    from ktorch_sim.config import resolve_task

    config = walk_config(ctx, ctx.sizes.peak_worlds, ctx.scratch / "peaks")
    env = resolve_task(config.task_name)[0](config.task).make_env()
    peaks = measure_buffer_peaks(env, ctx.sizes.peak_steps)
    configured = {"nconmax": config.task.nconmax, "njmax": config.task.njmax}
    fits = peaks.contacts_per_world <= configured["nconmax"] and peaks.constraint_rows_per_world <= configured["njmax"]
    return {"status": "ok", "peaks": peaks.as_dict(), "recommended": recommend(peaks, 1.5),
            "configured": configured, "configured_holds_peaks": fits}


# --- stage 4: training throughput ---------------------------------------------------------------


def stage_throughput(ctx: StageContext) -> None:
    """kbot_walk training throughput: capture_rollout off/on x sequence_method packed/loop; phases."""
    import torch

    bench_training = import_tool("bench_training")
    cuda = torch.device(ctx.sizes.device).type == "cuda"
    rows: list[dict] = []
    last_s: float | None = None
    for capture, method in THROUGHPUT_COMBOS:
        label = {"capture_rollout": capture, "sequence_method": method}
        if capture and not cuda:
            rows.append({**label, "status": "skipped", "reason": "ppo.capture_rollout needs CUDA and the Warp engine"})
        elif last_s is not None and last_s > ctx.seconds_left() - 10.0:
            rows.append({**label, "status": "skipped", "reason": "not enough of the stage's time left"})
        else:
            start = time.perf_counter()
            rows.append({**label, **train_row(ctx, bench_training, capture, method)})
            last_s = time.perf_counter() - start
        ctx.record("rows", rows)
    ctx.record("target", "kbot_walk end to end >= 100k env steps/s at 4096 worlds on an H100-class GPU")
    ctx.record("breakdown", ctx.check("breakdown", lambda: breakdown_row(ctx, bench_training)))
    ok = [r for r in rows if r.get("status") == "ok"]
    ctx.record("headline", {f"capture {'on' if r['capture_rollout'] else 'off'}/{r['sequence_method']} env steps/s":
                            f"{r['train_env_steps_per_s']:,.0f} (collect {r['collect_env_steps_per_s']:,.0f})"
                            for r in ok})


def train_row(ctx: StageContext, bench_training: Any, capture: bool, method: str) -> dict:
    """One ``measure_train`` run with the GPU memory peak; failures recorded, not raised."""
    watcher = MemoryWatcher(ctx.sizes.device)
    extra = [f"ppo.capture_rollout={str(capture).lower()}", f"model.sequence_method={method}",
             *ctx.sizes.model_overrides]
    try:
        # Captured: iteration 1 runs eager, iteration 2 records the graph; time the replays after them.
        row = bench_training.measure_train("kbot_walk", "warp", ctx.sizes.device, ctx.sizes.train_worlds,
                                           ctx.sizes.train_rollout_steps, ctx.sizes.train_iterations, extra,
                                           warmup=2 if capture else 1)
        row["status"] = "ok"
    except Exception:  # noqa: BLE001 - recorded; the next combination runs
        traceback.print_exc()
        row = {"status": "failed", "error": traceback.format_exc()}
        ctx.failed.append(f"throughput capture={capture} {method}")
    finally:
        memory = watcher.stop()
        release_cuda_memory()
    return {**row, **memory}


def breakdown_row(ctx: StageContext, bench_training: Any) -> dict:
    """Ms per control step by phase while collecting (eager collector, the profiler's hooks)."""
    row = bench_training.measure_breakdown("kbot_walk", "warp", ctx.sizes.device, ctx.sizes.train_worlds,
                                           ctx.sizes.breakdown_steps, [*ctx.sizes.model_overrides])
    release_cuda_memory()
    return {"status": "ok", **row}


def release_cuda_memory() -> None:
    """Free what the last trainer left in torch's cache, so the next run starts from the same place."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- stage 5: learning ----------------------------------------------------------------------------


def stage_learning(ctx: StageContext) -> None:
    """Train with the normal CLI until the deadline (or max_steps); pack its run into learning_run.tar."""
    run_parent = ctx.scratch / "runs"
    cmd = [sys.executable, "-u", "-m", "ktorch_sim.train", "--cfg", ctx.args.learn_cfg, "--no-progress"]
    for item in ("logging.wandb_mode=disabled", "logging.video_every_minutes=0", f"logging.run_dir={run_parent}",
                 "logging.run_name=learning_run", *ctx.sizes.learn_overrides, *ctx.args.learn_set):
        cmd += ["--set", item]
    print("$ " + " ".join(cmd), flush=True)
    ctx.record("command", cmd[2:])
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a stop from the orchestrator reaches the trainer; we pack
    stopped_by = wait_or_stop(proc, ctx.deadline - ctx.sizes.learn_stop_margin_s, ctx.sizes.learn_stop_margin_s)
    ctx.record("trainer", {"exit_code": proc.returncode, "ended": stopped_by, "wall_s": round(time.time() - start, 1)})
    run_dir = run_parent / "learning_run"
    ctx.record("run", summarize_metrics(run_dir / "metrics.jsonl"))
    ctx.record("packed", pack_run(run_dir, ctx.args.out / LEARNING_TAR))
    if proc.returncode != 0:
        ctx.failed.append(f"trainer exit code {proc.returncode}")
    run = ctx.figures["run"]
    ctx.record("headline", {"iterations": run.get("iterations"), "env steps": run.get("env_steps"),
                            "episode length first -> last": f"{run.get('first', {}).get('episode/length')} -> "
                                                            f"{run.get('last', {}).get('episode/length')}",
                            "ended": stopped_by})


def wait_or_stop(proc: subprocess.Popen, stop_at: float, grace_s: float) -> str:
    """Wait for the trainer; at ``stop_at`` send SIGINT (it saves and exits), again, then kill it."""
    try:
        proc.wait(timeout=max(stop_at - time.time(), 0.0))
        return "finished by itself (ppo.max_steps or an error)"
    except subprocess.TimeoutExpired:
        pass
    for sig, wait_s, what in ((signal.SIGINT, grace_s, "stopped at the deadline (SIGINT)"),
                              (signal.SIGINT, 10.0, "stopped by a second SIGINT"), (signal.SIGKILL, 10.0, "killed")):
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait_s)
            return what
        except subprocess.TimeoutExpired:
            continue
    return "did not stop"


def summarize_metrics(path: Path, points: int = 40) -> dict:
    """Summarize a run's metrics.jsonl: iterations, env steps, first/last/best lines, a thinned curve."""
    import json

    keys = ("iteration", "env_steps", "episode/length", "episode/return", "perf/env_steps_per_s",
            "perf/collect_steps_per_s", "time/collect_s", "time/update_s", "curriculum/level", "physics/bad_worlds")
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        return {"error": f"no metrics: {e}"}
    if not lines:
        return {"iterations": 0, "env_steps": 0}
    pick = [{k: row.get(k) for k in keys} for row in lines]
    step = max(1, len(pick) // points)
    best = max(pick, key=lambda r: r["episode/length"] if isinstance(r["episode/length"], (int, float)) else -1)
    return {"iterations": pick[-1]["iteration"], "env_steps": pick[-1]["env_steps"], "first": pick[0],
            "last": pick[-1], "best_episode_length": best, "curve": pick[::step]}


def pack_run(run_dir: Path, tar_path: Path) -> dict:
    """Tar config.toml, metrics.jsonl and the newest checkpoint as ``learning_run/`` (a loadable run).

    A checkpoint too large to come back from a remote run loses its optimizer state (evaluation,
    rendering and export do not read it; resuming from it is then not possible).
    """
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))
    members = [(p, p.relative_to(run_dir)) for p in (run_dir / "config.toml", run_dir / "metrics.jsonl")
               if p.is_file()]
    dropped = False
    if ckpts:
        slim = run_dir / "slim.pt"
        dropped = slim_checkpoint(ckpts[-1], slim, FILE_LIMIT_BYTES - sum(p.stat().st_size for p, _ in members))
        members.append((slim if dropped else ckpts[-1], ckpts[-1].relative_to(run_dir)))
    tmp = tar_path.with_name(f".{tar_path.name}.tmp")
    with tarfile.open(tmp, "w") as tar:
        for path, name in members:
            tar.add(path, arcname=f"learning_run/{name}")
    os.replace(tmp, tar_path)
    size = tar_path.stat().st_size
    return {"file": tar_path.name, "members": [f"learning_run/{name}" for _, name in members], "bytes": size,
            "checkpoint": ckpts[-1].name if ckpts else None, "optimizer_state_dropped": dropped,
            "fits_remote_file_limit": size <= FILE_LIMIT_BYTES + 2**20,
            "use": f"tar xf {tar_path.name} && python tools/play.py learning_run --engine mujoco --episodes 32"}


def slim_checkpoint(src: Path, dst: Path, limit_bytes: int) -> bool:
    """When ``src`` is over ``limit_bytes``, write it to ``dst`` without the optimizer state; True if it did."""
    if src.stat().st_size <= limit_bytes:
        return False
    from ktorch_sim.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(src, map_location="cpu")
    save_checkpoint(dst, {**state, "optimizer": {}})
    return True


STAGE_FUNCTIONS: dict[str, Callable[[StageContext], None]] = {
    "environment": stage_environment, "correctness": stage_correctness, "physics": stage_physics,
    "throughput": stage_throughput, "learning": stage_learning,
}
