"""``tools/gpu_check.py``: the smoke run reports every stage; failures, overruns and the budget lose nothing.

The smoke run is the GPU script at toy sizes on the CPU (Warp on CPU), so the script cannot rot
between the rare runs on a GPU. Faults are injected through ``GPU_CHECK_FAULT``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOL = REPO / "tools" / "gpu_check.py"
STAGES = ["environment", "correctness", "physics", "throughput", "learning"]
MAX_FILES = 8  # what one remote run brings back from its output folder


def run_check(out: Path, *args: str, fault: str | None = None, timeout: float = 900) -> tuple[int, str, dict]:
    """Run the tool into ``out``; return its exit code, its console output and the parsed report."""
    env = {k: v for k, v in os.environ.items() if k != "GPU_CHECK_FAULT"}
    if fault is not None:
        env["GPU_CHECK_FAULT"] = fault
    proc = subprocess.run([sys.executable, str(TOOL), "--out", str(out), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    report = json.loads((out / "gpu_check.json").read_text())
    return proc.returncode, proc.stdout + proc.stderr, report


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str, dict]:
    """One full smoke run shared by the tests that read it."""
    out = tmp_path_factory.mktemp("smoke")
    return (out, *run_check(out, "--smoke"))


@pytest.mark.slow
def test_smoke_run_passes_every_stage_and_fits_a_remote_run(smoke):
    out, rc, console, report = smoke
    assert rc == 0, console
    assert report["mode"] == "smoke" and report["finished"] and report["commit"]
    assert list(report["stages"]) == STAGES and report["summary"] == {s: "ok" for s in STAGES}, console
    for name, entry in report["stages"].items():
        assert entry["figures"].get("headline"), name
        assert (out / entry["log"]).is_file() and entry["seconds"] > 0, name
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= MAX_FILES and not any(p.name.endswith(".tmp") for p in files), files


@pytest.mark.slow
def test_smoke_figures_of_each_stage(smoke):
    _, _, _, report = smoke
    stages = {name: entry["figures"] for name, entry in report["stages"].items()}
    env = stages["environment"]
    for package in ("torch", "warp", "mujoco", "mujoco_warp", "tensordict", "torchrl"):
        assert env["versions"][package] and "FAILED" not in env["versions"][package], package
    assert env["device"]["cuda_available"] is False and env["warp"]["cpu_kernels_available"]
    assert env["first_kbot_step"]["first_step_total_s"] > 0

    checks = stages["correctness"]["checks"]
    assert checks["parity"]["status"] == "ok" and checks["parity"]["passed"] >= 2
    assert any("warp-cpu" in case["name"] for case in checks["parity"]["cases"])
    assert checks["nan_injection"]["status"] == "ok" and checks["nan_injection"]["passed"] >= 1
    assert checks["captured_vs_eager"]["status"] == "skipped" and checks["captured_vs_eager"]["tests"] == 1
    for name in ("sync_free_collection", "sync_free_captured_collection"):
        assert checks[name]["status"] == "skipped" and "CUDA" in checks[name]["reason"]

    rows = stages["physics"]["rows"]
    assert rows and all(r["status"] == "ok" and r["ratio_to_baseline"] > 0 for r in rows)
    assert set(stages["physics"]["buffer_peaks"]["recommended"]) == {"nconmax", "njmax"}

    train = {(r["capture_rollout"], r["sequence_method"]): r for r in stages["throughput"]["rows"]}
    for method in ("packed", "loop"):
        assert train[(False, method)]["status"] == "ok" and train[(False, method)]["train_env_steps_per_s"] > 0
        assert train[(True, method)]["status"] == "skipped"
    assert stages["throughput"]["breakdown"]["ms/total"] > 0

    learning = stages["learning"]
    assert learning["trainer"]["exit_code"] == 0 and learning["run"]["iterations"] >= 1


@pytest.mark.slow
def test_smoke_learning_run_is_packed_as_a_loadable_run(smoke, tmp_path):
    out, _, _, report = smoke
    with tarfile.open(out / report["stages"]["learning"]["figures"]["packed"]["file"]) as tar:
        tar.extractall(tmp_path, filter="data")
    run = tmp_path / "learning_run"
    assert (run / "config.toml").is_file() and (run / "metrics.jsonl").read_text().strip()
    from ktorch_sim.checkpoint import load_checkpoint

    (ckpt,) = (run / "checkpoints").glob("ckpt_*.pt")
    assert load_checkpoint(ckpt, map_location="cpu")["counters"]["iteration"] >= 1


@pytest.mark.slow
def test_a_checkpoint_too_large_to_return_loses_only_its_optimizer_state(smoke, tmp_path, monkeypatch):
    """The GPU run's GRU checkpoint (19 MiB with AdamW's moments) exceeds a remote run's 16 MiB per file."""
    import ktorch_sim as ks

    out, _, _, report = smoke
    with tarfile.open(out / report["stages"]["learning"]["figures"]["packed"]["file"]) as tar:
        tar.extractall(tmp_path / "full", filter="data")
    sys.path.insert(0, str(REPO / "tools"))
    import gpu_check_stages

    monkeypatch.setattr(gpu_check_stages, "FILE_LIMIT_BYTES", 10_000)
    packed = gpu_check_stages.pack_run(tmp_path / "full" / "learning_run", tmp_path / "slim.tar")
    assert packed["optimizer_state_dropped"]
    with tarfile.open(tmp_path / "slim.tar") as tar:
        tar.extractall(tmp_path / "slim", filter="data")
    run = tmp_path / "slim" / "learning_run"
    (ckpt,) = (run / "checkpoints").glob("ckpt_*.pt")
    assert ks.load_checkpoint(ckpt)["optimizer"] == {}
    assert ks.load_trained_policy(run, ["task.engine=mujoco"]) is not None  # what play/render/export load


def test_failed_and_overrunning_stages_keep_the_others(tmp_path):
    rc, console, report = run_check(tmp_path, "--smoke", "--stages", "environment,correctness,physics,throughput",
                                    "--allowance", "physics=2",
                                    fault="correctness=raise,physics=hang,throughput=raise")
    assert rc == 1, console
    stages = report["stages"]
    assert stages["environment"]["status"] == "ok" and stages["environment"]["figures"]["versions"]["torch"]
    assert stages["correctness"]["status"] == "failed"
    assert "injected failure in stage correctness" in stages["correctness"]["error"]
    assert stages["physics"]["status"] == "timeout" and "allowance" in stages["physics"]["reason"]
    assert stages["throughput"]["status"] == "failed", "the stage after a timeout must still run"
    assert report["not_selected"] == ["learning"] and report["finished"]


def test_too_small_budget_records_skipped_stages(tmp_path):
    rc, console, report = run_check(tmp_path, "--smoke", "--minutes", "0.05")
    assert rc == 0, console
    for name in STAGES:
        entry = report["stages"][name]
        assert entry["status"] == "skipped" and "time budget" in entry["reason"], (name, entry)


def test_gpu_mode_without_a_gpu_stops_after_the_environment_stage(tmp_path):
    """Without CUDA the GPU run records the device and why every later stage was skipped."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    rc, console, report = run_check(tmp_path, "--stages", "environment,physics")
    assert rc == 1, console
    env = report["stages"]["environment"]
    assert env["status"] == "failed" and env["figures"]["device"]["cuda_available"] is False
    assert report["stages"]["physics"] == {"status": "skipped", "reason": report["stages"]["physics"]["reason"]}
    assert "no CUDA device" in report["stages"]["physics"]["reason"]


def test_stage_allowance_rules():
    sys.path.insert(0, str(REPO / "tools"))
    from gpu_check import StageBudget, stage_allowance

    budget = StageBudget(nominal_s=80, min_s=30)
    assert stage_allowance("physics", budget, 500, last=False) == 80
    assert stage_allowance("physics", budget, 50, last=False) == 50
    assert stage_allowance("physics", budget, 20, last=False) is None
    assert stage_allowance("learning", StageBudget(0, 60), 300, last=True) == 300
    assert stage_allowance("learning", StageBudget(0, 60), 59, last=True) is None
