"""Issue 15, 'Waiting and noise': progress inside long phases, a prompt Ctrl-C, Warp's compile line and
no CUDA-driver warning on a CPU run, tool outputs in the run directory, the end-of-training lines,
and a fallen K-Bot that stays on top of the floor. No test asserts a time tightly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from ktorch_sim.utils.phase_progress import IterationGuard, IterationInterrupted, PhaseProgress, reporting, tick
from ktorch_sim.utils.run_paths import default_output, next_steps, run_dir_of

REPO = Path(__file__).resolve().parents[1]
STOP_BOUND_S = 30.0  # generous: the stop itself takes well under a second


# --- progress inside long phases ------------------------------------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_every_interval_and_stop_raises() -> None:
    clock, lines, stop = _Clock(), [], [False]
    progress = PhaseProgress(lambda: stop[0], lines.append, every_s=10.0, clock=clock)
    progress.begin_iteration(3)
    with reporting(progress):
        for t in range(1, 101):
            clock.now += 0.25  # 25 s of collection in steps of 0.25 s
            tick("collect", t, 100)
        assert lines == ["iteration 3: collect 40 % (40/100 steps), 10 s",
                         "iteration 3: collect 80 % (80/100 steps), 20 s"]
        stop[0] = True
        with pytest.raises(IterationInterrupted):
            tick("update", 1, 8, "minibatches")
    tick("collect", 1, 2)  # no reporter active: nothing happens, even with a stop request


def test_short_phases_print_nothing() -> None:
    clock, lines = _Clock(), []
    progress = PhaseProgress(write=lines.append, every_s=10.0, clock=clock)
    with reporting(progress):
        for t in range(1, 65):
            clock.now += 0.01
            tick("collect", t, 64)
    assert lines == []


class _FakeTrainer:
    """Counts iterations; ``iterate`` changes the weights, then is interrupted midway when told to."""

    def __init__(self, tmp: Path) -> None:
        from ktorch_sim.checkpoint import CheckpointManager

        self.iteration, self.weight = 0, torch.zeros(3)
        self.checkpoints = CheckpointManager(tmp)
        self.interrupt = False

    def iterate(self) -> dict[str, float]:
        self.weight += 1.0  # part of the update happened...
        if self.interrupt:
            raise IterationInterrupted("update stopped at 1/4 minibatches")
        self.iteration += 1
        return {"loss": 0.0}

    def state_dict(self) -> dict[str, Any]:
        return {"model": {"w": self.weight}, "optimizer": {}, "normalizer": None, "curriculum": {}, "ppo": {},
                "counters": {"iteration": self.iteration}, "config": {}, "rng": {}}

    def save(self) -> Path:
        return self.checkpoints.save(self.state_dict(), self.iteration)


def test_an_interrupted_iteration_is_dropped_and_the_last_finished_one_saved(tmp_path: Path) -> None:
    from ktorch_sim.checkpoint import load_checkpoint

    trainer = _FakeTrainer(tmp_path)
    guard = IterationGuard(trainer)
    assert guard.iterate() == {"loss": 0.0} and guard.iterate() == {"loss": 0.0}
    trainer.interrupt = True
    assert guard.iterate() is None and guard.interrupted
    state = load_checkpoint(guard.save())
    assert state["counters"]["iteration"] == 2
    torch.testing.assert_close(state["model"]["w"], torch.full((3,), 2.0))  # not the half-updated 3.0


def test_ctrl_c_inside_a_long_iteration_stops_within_seconds(tmp_path: Path) -> None:
    """SIGINT during the rollout of an iteration that would run for minutes: exit 0 well within the bound,
    with a loadable checkpoint of the last finished iteration (here the start, iteration 0)."""
    from ktorch_sim.checkpoint import CheckpointManager, load_checkpoint

    args = ["--set", "task.name=tests.cartpole:CartpoleTask", "--set", "task.num_envs=4",
            "--set", "ppo.rollout_length_seconds=400", "--set", "model.hidden_size=16", "--set", "model.depth=1",
            "--set", "logging.wandb_mode=disabled", "--set", f"logging.run_dir={tmp_path}",
            "--set", "logging.run_name=run"]
    log = tmp_path / "train.log"
    env = {**os.environ, "KTORCH_SIM_PROGRESS_S": "0.5"}
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ktorch_sim.train", *args], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=err, text=True)
    deadline = time.monotonic() + 180
    while "iteration 1: collect" not in log.read_text():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no progress line:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"training did not stop after SIGINT:\n{log.read_text()[-3000:]}")
    latency = time.monotonic() - start
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert latency < STOP_BOUND_S, f"stopping took {latency:.1f} s"
    assert "stopping (signal 2)" in out and "checkpoint of iteration 0" in out
    run_dir = tmp_path / "run"
    state = load_checkpoint(CheckpointManager(run_dir).latest())
    assert state["counters"]["iteration"] == 0  # the interrupted rollout is not in it
    lines = out.strip().splitlines()
    assert lines[-1] == f"run directory: {run_dir}"
    assert "next steps for this run:" in lines
    assert any(line.strip().startswith(f"python tools/render.py {run_dir}") for line in lines)


# --- end-of-training lines and tool outputs ----------------------------------------------------------

def _fake_run(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "20261204-120000-kbot_walk"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt_00000007.pt").write_bytes(b"x")
    (run / "checkpoints" / "latest").write_text("ckpt_00000007.pt\n")
    return run


def test_end_of_training_lines_name_the_files_and_the_next_commands(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    lines = next_steps(run).splitlines()
    assert lines[0] == f"checkpoint:    {run / 'checkpoints' / 'ckpt_00000007.pt'}"
    assert lines[1] == f"metrics:       {run / 'metrics.jsonl'}"
    assert lines[-1] == f"run directory: {run}"
    commands = [line.split("#")[0].strip() for line in lines if line.startswith("  python")]
    assert commands == [f"python tools/play.py {run} --episodes 32", f"python tools/render.py {run} --seconds 10",
                        f"python tools/export.py {run} --check", f"python tools/plot.py {run}",
                        f"python -m ktorch_sim.train --resume {run}"]
    assert f"-> {run / 'render.mp4'}" in next_steps(run) and f"-> {run / 'policy.onnx'}" in next_steps(run)


def test_tool_outputs_default_into_the_run_directory(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    ckpt = run / "checkpoints" / "ckpt_00000007.pt"
    assert run_dir_of(run) == run and run_dir_of(ckpt) == run
    assert default_output(run, "render.mp4") == run / "render.mp4"
    assert default_output(ckpt, "render.mp4") == run / "render_ckpt_00000007.mp4"
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import export as export_tool
        import render as render_tool
    finally:
        sys.path.remove(str(REPO / "tools"))
    assert render_tool.parse_args([str(run)]).out == run / "render.mp4"
    assert render_tool.parse_args([str(run), "--out", "x.gif"]).out == Path("x.gif")
    assert export_tool.parse_args([str(ckpt), "--check"]).out == run / "policy_ckpt_00000007.onnx"
    assert export_tool.parse_args([str(run)]).out == run / "policy.onnx"


def test_gitignore_covers_runs_and_tool_outputs() -> None:
    ignored = (REPO / ".gitignore").read_text().splitlines()
    for pattern in ("runs/", "*.mp4", "*.gif", "*.onnx", "curves.png"):
        assert pattern in ignored, pattern


# --- Warp: the compile line and no CUDA-driver warning on a CPU run -----------------------------

WARP_CPU_RUN = """
import torch
from ktorch_sim.engines import EngineConfig, make_engine
from ktorch_sim.robots import load_kbot_pd_model
engine = make_engine("warp", load_kbot_pd_model(), EngineConfig(num_envs=2, device="cpu"))
engine.step(torch.zeros(2, engine.model.nu))
print("stepped")
"""


def test_cpu_warp_run_prints_the_compile_lines_and_no_cuda_warning() -> None:
    pytest.importorskip("mujoco_warp")
    env = {**os.environ, "KTORCH_SIM_WARP_NOTICE_S": "0"}  # announce even a warm (cached) first call
    proc = subprocess.run([sys.executable, "-c", WARP_CPU_RUN], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stepped" in proc.stdout
    assert "Could not find or load the NVIDIA CUDA driver" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    for body in ("forward", "step"):
        assert any(line.startswith(f"Warp: compiling the {body} kernels for cpu") for line in lines), proc.stderr
        assert any(line.startswith(f"Warp: {body} kernels ready in ") for line in lines), proc.stderr


def test_filtered_stderr_drops_only_the_named_line(capfd: pytest.CaptureFixture[str]) -> None:
    from ktorch_sim.engines.warp_notice import filtered_stderr

    with filtered_stderr("NVIDIA CUDA driver"):
        os.write(2, b"Warp CUDA warning: Could not find or load the NVIDIA CUDA driver. GPU off.\n")
        os.write(2, b"another native line\n")
    assert capfd.readouterr().err == "another native line\n"


def test_compile_notice_is_quiet_when_fast_and_timed_when_slow() -> None:
    from ktorch_sim.engines.warp_notice import compile_notice

    lines: list[str] = []
    with compile_notice("step", "cpu", None, threshold=30.0, write=lines.append):
        pass
    assert lines == []
    with compile_notice("step", "cpu", "/cache", threshold=0.05, write=lines.append):
        time.sleep(0.5)
    assert lines[0] == ("Warp: compiling the step kernels for cpu (the first run on a machine only; "
                        "cached in /cache) ...")
    assert lines[1].startswith("Warp: step kernels ready in ") and len(lines) == 2


# --- a fallen K-Bot stays on top of the floor --------------------------------------------------

def test_fallen_kbot_does_not_sink_through_the_floor(kbot_model: Any) -> None:
    """The demo's scene (ksim gains, no policy): every robot falls; the base and every body stay above z = 0."""
    from ktorch_sim.engines import EngineConfig, make_engine
    from ktorch_sim.robots import kbot_home_qpos

    n = 8
    engine = make_engine("mujoco", kbot_model, EngineConfig(num_envs=n, dt=0.004, ctrl_dt=0.02))
    home = torch.tensor(kbot_home_qpos(kbot_model), dtype=torch.float32)
    engine.reset(torch.ones(n, dtype=torch.bool), home.expand(n, -1).clone(), torch.zeros(n, kbot_model.nv))
    gen = torch.Generator().manual_seed(0)
    lowest_base = lowest_body = float("inf")
    for _ in range(150):  # 3 s
        engine.step(home[7:] + 0.02 * torch.randn(n, kbot_model.nu, generator=gen))
        lowest_base = min(lowest_base, float(engine.state.qpos[:, 2].min()))
        lowest_body = min(lowest_body, float(engine.state.xpos[:, 1:, 2].min()))
    assert float(engine.state.qpos[:, 2].max()) < 0.5, "the robots were expected to fall"
    assert lowest_base > 0.05 and lowest_body > 0.0, (lowest_base, lowest_body)


def test_a_stop_during_the_update_keeps_the_previous_iteration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop request at the first minibatch of iteration 2: training ends, the checkpoint is iteration 1's."""
    import ktorch_sim.utils.phase_progress as phase_progress
    from ktorch_sim.checkpoint import CheckpointManager, load_checkpoint
    from ktorch_sim.config import load_config
    from ktorch_sim.training.logging import read_metrics
    from ktorch_sim.training.trainer import Trainer

    config = load_config(None, ["task.name=tests.cartpole:CartpoleTask", "task.num_envs=4", "ppo.batch_size=2",
                                "ppo.rollout_length_seconds=0.2", "model.hidden_size=16", "model.depth=1",
                                "logging.wandb_mode=disabled", f"logging.run_dir={tmp_path}", "logging.run_name=run"])
    trainer = Trainer(config)
    original = phase_progress.PhaseProgress.tick
    seen: list[tuple[str, int]] = []

    def tick(self: PhaseProgress, phase: str, done: int, total: int, unit: str = "steps") -> None:
        seen.append((phase, trainer.iteration))
        if phase == "update" and trainer.iteration == 1:
            trainer._stop = True  # what the Ctrl-C handler does
        original(self, phase, done, total, unit)

    monkeypatch.setattr(phase_progress.PhaseProgress, "tick", tick)
    after_first: dict[str, torch.Tensor] = {}
    real_iterate = trainer.iterate

    def iterate() -> dict[str, float]:
        metrics = real_iterate()
        after_first.update({k: v.clone() for k, v in trainer.model.state_dict().items()})
        return metrics

    monkeypatch.setattr(trainer, "iterate", iterate)
    run_dir = trainer.train(progress=False)
    assert ("collect", 0) in seen and ("update", 0) in seen and ("update", 1) in seen
    state = load_checkpoint(CheckpointManager(run_dir).latest())
    assert state["counters"]["iteration"] == 1
    for key, value in after_first.items():  # iteration 1's weights, not the half-updated ones
        torch.testing.assert_close(state["model"][key], value)
    assert [row["iteration"] for row in read_metrics(run_dir)] == [1]
