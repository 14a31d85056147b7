"""Benchmarks for ktorch_sim, next to the raw engines they are built on.

Each benchmark kind is one ``measure_<kind>(...)`` function that returns a list of flat dicts
(one per configuration); :func:`main` parses the command line, runs the requested kind and
prints the dicts as JSON lines (``--json``) or as a table. ``env`` (env steps/s of a task next
to the physics-only rate) and ``train`` (PPO iterations) live in ``tools/bench_training.py``.

``physics`` measures ``engine.step(targets)`` of :class:`~ktorch_sim.engines.MujocoEngine`
and :class:`~ktorch_sim.engines.warp.WarpEngine` against the raw engine doing the same work
(the physical limit of our wrapper):

* MujocoEngine vs ``mujoco.rollout`` (native MuJoCo, one thread per core, open loop);
* WarpEngine vs a captured Warp graph of ``substeps`` x ``mujoco_warp.step`` on the same device.

Both sides use the same model (K-Bot with PD actuators), the same dt/ctrl_dt/solver settings,
the same start state (the ``home`` keyframe, zero velocity) and the same PD targets (home joint
angles plus a fixed small per-world offset, held constant). Held home targets keep K-Bot
standing for only ~1.3 s before it tips forward (then its torso, which has no collision geoms,
sinks through the floor), so a timed run is split into episodes of at most ``--episode-steps``
control steps (default 50 = 1 s) with an untimed restart at the home pose before each: the
workload stays a standing robot with its feet in contact. Compilation, graph capture and a
warm-up are excluded; the clock stops after a device synchronize; every number is the best of
``--repeats`` timed runs, baseline and engine interleaved so both see the same machine load.

    python tools/bench.py --engines mujoco,warp --devices cpu --num-envs 16,64,256 --steps 50
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import mujoco
import numpy as np
import torch

from ktorch_sim.engines import Engine, EngineConfig, make_engine
from ktorch_sim.engines.base import apply_physics_options
from ktorch_sim.robots import kbot_home_qpos, load_kbot_pd_model

REPO_ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("mujoco", "warp")
DEVICES = ("cpu", "cuda")
BASELINES = {"mujoco": "mujoco.rollout", "warp": "mujoco_warp graph"}
# PD gain and torque-limit scales of ksim's K-Bot example; the model every physics run uses.
KBOT_SCALES = {"kp_scale": 1.4, "kd_scale": 1.4, "torque_limit_scale": 1.5}
TARGET_NOISE = 0.02  # rad; fixed per-world offset of the PD targets from the home pose
MIN_SECONDS = 1.0  # timed runs shorter than this get a warning: too short to trust
ROLLOUT_OUTPUT_BYTES = 256 * 2**20  # cap on rollout's state/sensor output buffers per call


@dataclasses.dataclass(frozen=True)
class PhysicsSettings:
    """Everything a ``physics`` run holds fixed across engines, devices and world counts.

    Attributes:
        dt: physics timestep (s).
        ctrl_dt: control period (s); ``ctrl_dt / dt`` physics substeps per control step.
        iterations: constraint solver iterations.
        ls_iterations: solver line-search iterations.
        control_steps: timed control steps per run.
        episode_steps: most control steps between two (untimed) restarts at the start state.
        repeats: timed runs per measurement; the fastest counts.
        warmup_steps: untimed control steps before timing (Warp compile and capture happen here).
        threads: native MuJoCo worker threads (engine and rollout); 0 = one per CPU core.
        nconmax: Warp contacts per world (pooled).
        njmax: Warp constraint rows per world.
        seed: seed of the fixed target offsets.

    """

    dt: float = 0.002
    ctrl_dt: float = 0.02
    iterations: int = 8
    ls_iterations: int = 8
    control_steps: int = 50
    episode_steps: int = 50
    repeats: int = 3
    warmup_steps: int = 2
    threads: int = 0
    nconmax: int = 16
    njmax: int = 128
    seed: int = 0

    def engine_config(self, num_envs: int, device: str) -> EngineConfig:
        """Build the engine config of one measurement (validates dt, ctrl_dt and the solver settings)."""
        return EngineConfig(num_envs=num_envs, dt=self.dt, ctrl_dt=self.ctrl_dt, iterations=self.iterations,
                            ls_iterations=self.ls_iterations, device=device, nconmax=self.nconmax,
                            njmax=self.njmax, num_threads=self.threads)

    @property
    def substeps(self) -> int:
        """Physics substeps per control step."""
        return EngineConfig(dt=self.dt, ctrl_dt=self.ctrl_dt).substeps

    @property
    def episodes(self) -> list[int]:
        """Control steps of each episode of a timed run: ``control_steps`` cut into ``episode_steps``."""
        full, rest = divmod(self.control_steps, self.episode_steps)
        return [self.episode_steps] * full + ([rest] if rest else [])

    @property
    def native_threads(self) -> int:
        """Thread count of native MuJoCo: ``threads``, or one per CPU core when 0."""
        return self.threads or os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class Workload:
    """Start state and PD targets of N worlds, as float32 numpy arrays (shared by all runners)."""

    qpos: np.ndarray  # (N, nq) home pose
    qvel: np.ndarray  # (N, nv) zeros
    targets: np.ndarray  # (N, nu) home joint angles + fixed offset

    @property
    def num_envs(self) -> int:
        """Number of worlds."""
        return self.qpos.shape[0]


# --- model and workload ---------------------------------------------------------------------


def bench_model() -> mujoco.MjModel:
    """K-Bot on the floor with PD actuators at ksim's K-Bot example scales (kp, kd x1.4; torque x1.5)."""
    return load_kbot_pd_model(**KBOT_SCALES)


def configured_model(model: mujoco.MjModel, settings: PhysicsSettings) -> mujoco.MjModel:
    """Copy ``model`` and set the run's timestep and solver options, as the engines do."""
    model = copy.copy(model)
    apply_physics_options(model, settings.engine_config(1, "cpu"))
    return model


def make_workload(model: mujoco.MjModel, num_envs: int, seed: int = 0) -> Workload:
    """N worlds at the home pose, each with targets = home joint angles + a fixed small offset."""
    home = kbot_home_qpos(model)
    joint_qpos = home[model.jnt_qposadr[model.actuator_trnid[:, 0]]]
    rng = np.random.default_rng(seed)
    targets = joint_qpos + TARGET_NOISE * rng.standard_normal((num_envs, model.nu))
    # Engines take float32: round once so every runner starts from the same numbers.
    return Workload(qpos=np.tile(home, (num_envs, 1)).astype(np.float32),
                    qvel=np.zeros((num_envs, model.nv), dtype=np.float32),
                    targets=targets.astype(np.float32))


# --- timing helpers -------------------------------------------------------------------------


class Runner(Protocol):
    """What the timing loop needs from a baseline or an engine."""

    name: str

    def restart(self) -> None:
        """Put every world back at the start state (untimed)."""

    def run(self, control_steps: int) -> None:
        """Advance every world ``control_steps`` control steps (timed)."""

    def base_z_mean(self) -> float:
        """Mean floating-base height now (m): a sanity figure, ~0.7 while K-Bot stands."""

    def close(self) -> None:
        """Release threads and buffers."""


def synchronizer(device: str) -> Callable[[], None]:
    """Return a function that waits until all queued torch and Warp work on ``device`` has finished."""
    if torch.device(device).type != "cuda":
        return lambda: None
    import warp as wp

    def sync() -> None:
        torch.cuda.synchronize(device)
        wp.synchronize_device(device)

    return sync


@dataclasses.dataclass(frozen=True)
class RunTime:
    """Wall and process CPU seconds of one timed run (summed over its episodes)."""

    wall: float
    cpu: float

    @property
    def cpu_per_wall(self) -> float:
        """Busy cores of this process during the run; well below the thread count means contention."""
        return self.cpu / self.wall

    def __add__(self, other: RunTime) -> RunTime:
        return RunTime(self.wall + other.wall, self.cpu + other.cpu)


def timed_run(runner: Runner, episodes: Sequence[int], sync: Callable[[], None]) -> RunTime:
    """Time ``runner`` over ``episodes`` (control steps each), restarting untimed before each one."""
    total = RunTime(0.0, 0.0)
    for steps in episodes:
        runner.restart()
        sync()
        cpu, start = time.process_time(), time.perf_counter()
        runner.run(steps)
        sync()
        total = total + RunTime(wall=time.perf_counter() - start, cpu=time.process_time() - cpu)
    return total


def best_of(repeats: int, runners: Sequence[Runner], episodes: Sequence[int],
            sync: Callable[[], None]) -> list[RunTime]:
    """Fastest timed run of each runner over ``repeats`` rounds.

    The runners are interleaved and their order alternates from round to round, so a burst of
    load from other processes hits the baseline and the engine alike.
    """
    best: list[RunTime | None] = [None] * len(runners)
    for r in range(repeats):
        order = range(len(runners)) if r % 2 == 0 else reversed(range(len(runners)))
        for i in order:
            t = timed_run(runners[i], episodes, sync)
            if best[i] is None or t.wall < best[i].wall:
                best[i] = t
    return best


# --- raw baselines --------------------------------------------------------------------------


class RolloutBaseline:
    """Native MuJoCo through ``mujoco.rollout``: one call rolls every world out for a whole episode.

    The persistent thread pool, per-thread MjData, start states and, per episode length, the
    control sequence and output buffers are built once, outside the clock. Worlds are split into
    several calls only when the state/sensor outputs would exceed :data:`ROLLOUT_OUTPUT_BYTES`;
    inside a call rollout picks its own chunk size.
    """

    name = BASELINES["mujoco"]

    def __init__(self, model: mujoco.MjModel, settings: PhysicsSettings, work: Workload) -> None:
        """Prepare start states, threads and the buffers of every episode length of ``settings``."""
        from mujoco import rollout

        self.model = configured_model(model, settings)
        self.substeps = settings.substeps
        self._targets = work.targets.astype(np.float64)
        m, n = self.model, work.num_envs
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self._nstate = mujoco.mj_stateSize(m, spec)
        self._init = np.zeros((n, self._nstate))
        data = mujoco.MjData(m)
        for i in range(n):
            mujoco.mj_resetData(m, data)
            data.qpos[:], data.qvel[:] = work.qpos[i], work.qvel[i]
            mujoco.mj_forward(m, data)
            mujoco.mj_getState(m, data, self._init[i], spec)
        self._warmstart = np.zeros((n, m.nv))
        self._datas = [mujoco.MjData(m) for _ in range(settings.native_threads)]
        self._pool = rollout.Rollout(nthread=settings.native_threads)
        self._buffers = {steps: self._episode_buffers(steps) for steps in set(settings.episodes)}
        self._final_z = np.zeros(n)

    def _episode_buffers(self, control_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
        """Control input, state and sensor outputs, and world batches for one episode length."""
        m, n, nstep = self.model, len(self._init), control_steps * self.substeps
        control = np.repeat(self._targets[:, None, :], nstep, axis=1)
        batch = max(1, min(n, ROLLOUT_OUTPUT_BYTES // (nstep * (self._nstate + m.nsensordata) * 8)))
        batches = [(a, min(a + batch, n)) for a in range(0, n, batch)]
        return control, np.zeros((batch, nstep, self._nstate)), np.zeros((batch, nstep, m.nsensordata)), batches

    def restart(self) -> None:
        """Nothing to do: every rollout call starts from the stored start states."""

    def run(self, control_steps: int) -> None:
        """Roll out every world from its start state for ``control_steps * substeps`` physics steps."""
        control, state, sensordata, batches = self._buffers[control_steps]
        for a, b in batches:
            k = b - a
            self._pool.rollout(self.model, self._datas, self._init[a:b], control[a:b],
                               initial_warmstart=self._warmstart[a:b], state=state[:k], sensordata=sensordata[:k])
            self._final_z[a:b] = state[:k, -1, 1 + 2]  # FULLPHYSICS state: time, then qpos

    def base_z_mean(self) -> float:
        """Mean base height at the end of the last episode."""
        return float(self._final_z.mean())

    def close(self) -> None:
        """Stop rollout's thread pool."""
        self._pool.close()


class WarpGraphBaseline:
    """Raw MuJoCo Warp: ``put_model``/``put_data`` and a captured graph of ``substeps`` x ``step``.

    The targets are written into ``ctrl`` once; an episode replays the graph once per control
    step, exactly the physics work of ``WarpEngine.step`` without the engine around it.
    """

    name = BASELINES["warp"]

    def __init__(self, model: mujoco.MjModel, settings: PhysicsSettings, work: Workload, device: str) -> None:
        """Upload N worlds at the start state, compile and capture the control-step graph."""
        from ktorch_sim.engines.warp import init_warp

        init_warp(cpu_only=torch.device(device).type == "cpu")  # the engine's kernel cache, compiled once
        import mujoco_warp as mjw
        import warp as wp

        self._wp, self._mjw = wp, mjw
        self.device = "cpu" if torch.device(device).type == "cpu" else f"cuda:{torch.device(device).index or 0}"
        self.substeps = settings.substeps
        mjm = configured_model(model, settings)
        host = mujoco.MjData(mjm)
        host.qpos[:], host.qvel[:] = work.qpos[0], work.qvel[0]
        mujoco.mj_forward(mjm, host)
        with wp.ScopedDevice(self.device):
            self.m = mjw.put_model(mjm)
            self.m.opt.warn_overflow = 0
            self.d = mjw.put_data(mjm, host, nworld=work.num_envs, nconmax=settings.nconmax, njmax=settings.njmax)
        d = self.d
        self._views = {name: wp.to_torch(getattr(d, name)) for name in ("qpos", "qvel", "time", "qacc_warmstart")}
        self._start = {name: view.clone() for name, view in self._views.items()}
        self._start["qpos"].copy_(torch.from_numpy(work.qpos))
        self._start["qvel"].copy_(torch.from_numpy(work.qvel))
        wp.to_torch(d.ctrl).copy_(torch.from_numpy(work.targets))
        with wp.ScopedDevice(self.device):
            self._control_step()  # eager: compiles (or loads) every kernel
            with wp.ScopedCapture() as capture:
                self._control_step()
        self.graph = capture.graph

    def _control_step(self) -> None:
        for _ in range(self.substeps):
            self._mjw.step(self.m, self.d)

    def restart(self) -> None:
        """Put every world back at its start state (qpos, qvel, time, solver warm start)."""
        for name, view in self._views.items():
            view.copy_(self._start[name])

    def run(self, control_steps: int) -> None:
        """Replay the captured control step ``control_steps`` times."""
        with self._wp.ScopedDevice(self.device):
            for _ in range(control_steps):
                self._wp.capture_launch(self.graph)

    def base_z_mean(self) -> float:
        """Mean base height now."""
        return float(self._views["qpos"][:, 2].mean())

    def close(self) -> None:
        """Nothing to release (Warp frees arrays with the object)."""


# --- our engines ----------------------------------------------------------------------------


class EngineRunner:
    """``engine.step(targets)`` in a loop; restart = ``engine.reset`` of every world to the start state."""

    def __init__(self, kind: str, model: mujoco.MjModel, settings: PhysicsSettings, work: Workload,
                 device: str) -> None:
        """Build the engine and run the warm-up (Warp compiles and captures its graphs here)."""
        self.engine: Engine = make_engine(kind, model, settings.engine_config(work.num_envs, device))
        self.name = type(self.engine).__name__
        self._mask = torch.ones(work.num_envs, dtype=torch.bool, device=device)
        self._qpos = torch.from_numpy(work.qpos).to(device)
        self._qvel = torch.from_numpy(work.qvel).to(device)
        self._targets = torch.from_numpy(work.targets).to(device)
        self.restart()
        self.run(settings.warmup_steps)
        self.restart()

    def restart(self) -> None:
        """Reset every world to the start state."""
        self.engine.reset(self._mask, self._qpos, self._qvel)

    def run(self, control_steps: int) -> None:
        """Step ``control_steps`` control steps with the fixed targets."""
        step, targets = self.engine.step, self._targets
        for _ in range(control_steps):
            step(targets)

    def base_z_mean(self) -> float:
        """Mean base height now."""
        return float(self.engine.state.qpos[:, 2].mean())

    def bad_worlds(self) -> int:
        """Worlds with a non-finite state or overflowed buffers."""
        return int(self.engine.bad_worlds().sum())

    def close(self) -> None:
        """Stop the engine's worker threads, if it has any."""
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()


# --- the physics benchmark ------------------------------------------------------------------


def make_baseline(engine: str, model: mujoco.MjModel, settings: PhysicsSettings, work: Workload,
                  device: str) -> RolloutBaseline | WarpGraphBaseline:
    """Prepare the raw engine that ``engine`` wraps for the same workload."""
    if engine == "mujoco":
        return RolloutBaseline(model, settings, work)
    return WarpGraphBaseline(model, settings, work, device)


def measure_physics_one(engine: str, device: str, num_envs: int, settings: PhysicsSettings,
                        model: mujoco.MjModel | None = None) -> dict:
    """Control and physics steps/s of one engine on one device with N worlds, and its baseline's."""
    model = bench_model() if model is None else model
    work = make_workload(model, num_envs, settings.seed)
    sync = synchronizer(device)
    baseline = make_baseline(engine, model, settings, work, device)
    try:
        runner = EngineRunner(engine, model, settings, work, device)
    except BaseException:
        baseline.close()
        raise
    try:
        base_t, eng_t = best_of(settings.repeats, [baseline, runner], settings.episodes, sync)
        base_z, bad, baseline_z = runner.base_z_mean(), runner.bad_worlds(), baseline.base_z_mean()
    finally:
        runner.close()
        baseline.close()
    substeps, steps = settings.substeps, settings.control_steps
    control_rate = num_envs * steps / eng_t.wall
    baseline_rate = num_envs * steps * substeps / base_t.wall
    if min(eng_t.wall, base_t.wall) < MIN_SECONDS:
        print(f"bench: warning: {engine}/{device}/N={num_envs}: a timed run took "
              f"{min(eng_t.wall, base_t.wall):.2f} s (< {MIN_SECONDS} s); raise --steps for a trustworthy number",
              file=sys.stderr)
    return {
        "kind": "physics", "engine": engine, "device": device, "num_envs": num_envs, "substeps": substeps,
        "control_steps": steps, "control_steps_per_s": control_rate,
        "physics_steps_per_s": control_rate * substeps, "baseline": baseline.name,
        "baseline_physics_steps_per_s": baseline_rate, "ratio_to_baseline": control_rate * substeps / baseline_rate,
        "seconds": eng_t.wall, "baseline_seconds": base_t.wall, "base_z_mean": base_z,
        "baseline_base_z_mean": baseline_z, "cpu_per_wall": eng_t.cpu_per_wall,
        "baseline_cpu_per_wall": base_t.cpu_per_wall,
        "loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "bad_worlds": bad, **dataclasses.asdict(settings), "native_threads": settings.native_threads,
    }


def measure_physics(engines: Sequence[str], devices: Sequence[str], num_envs: Sequence[int],
                    settings: PhysicsSettings, model: mujoco.MjModel | None = None,
                    on_result: Callable[[dict], None] | None = None,
                    steps: Sequence[int] | None = None) -> list[dict]:
    """One :func:`measure_physics_one` dict per (engine, device, N); MujocoEngine is CPU-only.

    ``steps`` optionally gives the timed control steps per entry of ``num_envs`` (so that
    small and large N do similar work); otherwise ``settings.control_steps`` is used for all.
    ``on_result`` is called with each dict as soon as it is measured (for streaming output).
    """
    model = bench_model() if model is None else model
    steps = [settings.control_steps] * len(num_envs) if steps is None else list(steps)
    if len(steps) != len(num_envs):
        raise ValueError(f"steps has {len(steps)} entries but num_envs has {len(num_envs)}; give one or the same count")
    env = environment_info(devices)
    results = []
    for device in devices:
        for engine in engines:
            if engine == "mujoco" and device != "cpu":
                print(f"bench: skipping mujoco on {device}: MujocoEngine runs on the CPU only", file=sys.stderr)
                continue
            for n, n_steps in zip(num_envs, steps, strict=True):
                n_settings = dataclasses.replace(settings, control_steps=n_steps)
                row = {**measure_physics_one(engine, device, n, n_settings, model), **env}
                results.append(row)
                if on_result is not None:
                    on_result(row)
    return results


# --- machine and versions -------------------------------------------------------------------


def git_commit() -> str:
    """Short hash of HEAD (with ``+dirty`` if tracked files changed), or "unknown"."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()

        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_name() -> str:
    """CPU model from /proc/cpuinfo, falling back to :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment_info(devices: Sequence[str]) -> dict:
    """Commit, machine and library versions recorded with every result."""
    import importlib.metadata as md

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "not installed"

    cuda = any(torch.device(d).type == "cuda" for d in devices) and torch.cuda.is_available()
    return {
        "commit": git_commit(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name() if cuda else None, "torch": torch.__version__,
        "mujoco": mujoco.__version__, "mujoco_warp": version("mujoco-warp"), "warp": version("warp-lang"),
        "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
    }


# --- output ---------------------------------------------------------------------------------

TABLE_COLUMNS = (  # (header, key, format)
    ("engine", "engine", "{}"), ("device", "device", "{}"), ("N", "num_envs", "{}"),
    ("substeps", "substeps", "{}"), ("steps", "control_steps", "{}"),
    ("ctrl steps/s", "control_steps_per_s", "{:,.0f}"),
    ("phys steps/s", "physics_steps_per_s", "{:,.0f}"), ("baseline", "baseline", "{}"),
    ("baseline phys/s", "baseline_physics_steps_per_s", "{:,.0f}"), ("ratio", "ratio_to_baseline", "{:.2f}"),
    ("cores", "cpu_per_wall", "{:.2f}"), ("base cores", "baseline_cpu_per_wall", "{:.2f}"),
    ("load", "loadavg_1min", "{:.1f}"), ("base z", "base_z_mean", "{:.2f}"), ("bad", "bad_worlds", "{}"),
)


def format_table(rows: Sequence[dict]) -> str:
    """Format physics results as a plain-text table, one line per configuration."""
    cells = [[h for h, _, _ in TABLE_COLUMNS]] + [[f.format(r[k]) for _, k, f in TABLE_COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------


def _choices(allowed: Sequence[str], what: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"unknown {what} {bad or text!r}; allowed: {','.join(allowed)}")
        return items
    return parse


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"every value must be a positive integer, got {text!r}")
    return values


def _positive(kind: type) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value
    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the ``tools/bench.py`` argument parser."""
    p = argparse.ArgumentParser(prog="tools/bench.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--kind", choices=sorted(KINDS), default="physics", help="what to measure")
    p.add_argument("--engines", type=_choices(ENGINES, "engine"), default=",".join(ENGINES),
                   help="comma-separated engines")
    p.add_argument("--devices", type=_choices(DEVICES, "device"), default="cpu", help="comma-separated devices")
    p.add_argument("--num-envs", type=_positive_ints, default="16,64,256", help="comma-separated world counts")
    p.add_argument("--steps", type=_positive_ints, default="50",
                   help="timed control steps per run: one value, or one per --num-envs entry")
    p.add_argument("--episode-steps", type=_positive(int), default=50,
                   help="most control steps between untimed restarts at the home pose (K-Bot tips over after ~1.3 s)")
    p.add_argument("--dt", type=_positive(float), default=0.002, help="physics timestep (s)")
    p.add_argument("--ctrl-dt", type=_positive(float), default=0.02, help="control period (s)")
    p.add_argument("--iterations", type=_positive(int), default=8, help="solver iterations")
    p.add_argument("--ls-iterations", type=_positive(int), default=8, help="solver line-search iterations")
    p.add_argument("--threads", type=_non_negative_int, default=0, help="native MuJoCo threads; 0 = one per core")
    p.add_argument("--repeats", type=_positive(int), default=3, help="timed runs; the best counts")
    p.add_argument("--warmup", type=_non_negative_int, default=2, help="untimed control steps before timing")
    p.add_argument("--nconmax", type=_positive(int), default=16, help="Warp contacts per world")
    p.add_argument("--njmax", type=_positive(int), default=128, help="Warp constraint rows per world")
    p.add_argument("--tasks", type=lambda t: t.split(","), default=["kbot_walk"],
                   help="env/train kinds: comma-separated tasks (kbot_walk, kbot_stand); --steps is the timed "
                        "env steps (env) or the rollout length (train), --repeats the timed runs or iterations")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="train/breakdown kinds: a config override as for ktorch_sim.train (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object per configuration per line")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line; bad values exit with status 2 and one message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.steps) not in (1, len(args.num_envs)):
        parser.error(f"--steps: give one value or one per --num-envs entry ({len(args.num_envs)}), "
                     f"got {len(args.steps)}")
    if len(args.steps) == 1:
        args.steps = args.steps * len(args.num_envs)
    if "cuda" in args.devices and not torch.cuda.is_available():
        parser.error("--devices cuda: no CUDA GPU is available to torch on this machine")
    try:
        args.settings = PhysicsSettings(dt=args.dt, ctrl_dt=args.ctrl_dt, iterations=args.iterations,
                                        ls_iterations=args.ls_iterations, control_steps=args.steps[0],
                                        episode_steps=args.episode_steps, repeats=args.repeats,
                                        warmup_steps=args.warmup, threads=args.threads, nconmax=args.nconmax,
                                        njmax=args.njmax)
        args.settings.engine_config(1, "cpu")
    except ValueError as err:
        parser.error(str(err))
    return args


def run_physics(args: argparse.Namespace) -> list[dict]:
    """Run the ``physics`` kind: measure and print each configuration as it finishes."""
    def emit(row: dict) -> None:
        if args.json:
            print(json.dumps(row), flush=True)

    rows = measure_physics(args.engines, args.devices, args.num_envs, args.settings, on_result=emit,
                           steps=args.steps)
    if not args.json:
        first = rows[0] if rows else {}
        print(f"commit {first.get('commit')}  cpu {first.get('cpu')} x{first.get('cpu_count')}  "
              f"gpu {first.get('gpu')}  torch {first.get('torch')}  mujoco {first.get('mujoco')}  "
              f"warp {first.get('warp')}  mujoco_warp {first.get('mujoco_warp')}")
        print(f"dt {args.dt}  ctrl_dt {args.ctrl_dt}  iterations {args.iterations}/{args.ls_iterations}  "
              f"steps {','.join(map(str, args.steps))} in episodes of <= {args.episode_steps}  "
              f"repeats {args.repeats} (best)  "
              f"native threads {args.settings.native_threads}")
        print(format_table(rows))
    return rows


def _run_task_kind(kind: str, args: argparse.Namespace) -> list[dict]:
    """Run the ``env`` or ``train`` kind (tools/bench_training.py) on the tasks in ``--tasks``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_training import run_kind

    rows = run_kind(kind, args.tasks, args.engines, args.devices, args.num_envs, args.steps[0], args.repeats,
                    args.overrides)
    info = environment_info(args.devices)
    for row in rows:
        row.update(info)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        for row in rows:
            print("  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                            if k not in info))
    return rows


# Benchmark kinds: name -> runner(args) -> rows.
KINDS: dict[str, Callable[[argparse.Namespace], list[dict]]] = {
    "physics": run_physics,
    "env": lambda args: _run_task_kind("env", args),  # env steps/s next to physics-only, per task
    "train": lambda args: _run_task_kind("train", args),  # PPO iterations: collection + update
    "breakdown": lambda args: _run_task_kind("breakdown", args),  # ms per control step by phase
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv``, run the chosen benchmark kind, print results; returns 0."""
    args = parse_args(argv)
    KINDS[args.kind](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
