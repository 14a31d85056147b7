"""ONNX export (ktorch_sim.deploy.export, tools/export.py): onnxruntime reproduces the torch actor step by step.

Ground truth: the torch policy's own actions over recorded multi-episode rollouts (carry zeroed at
resets), and K-Bot's joints.toml read directly for the metadata.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from ktorch_sim.deploy.export import ExportError, export_paths, export_policy, policy_interface, read_metadata
from ktorch_sim.deploy.check import DEFAULT_TOLERANCE, check_export, record_rollout, replay_onnx
from ktorch_sim.playback.trained import load_trained_policy
from tests.conftest import train_tiny_run

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

REPO = Path(__file__).resolve().parent.parent
JOINTS_TOML = REPO / "ktorch_sim" / "assets" / "kbot" / "joints.toml"
# Episodes of 0.3 s = 15 control steps, so a 40-step rollout crosses at least two resets per world.
CHECK_OVERRIDES = ["task.num_envs=2", "task.engine=mujoco", "task.device=cpu", "task.episode_length_seconds=0.3"]
CHECK_STEPS = 40
ACTOR_OBSERVATIONS = [("joint_position_observation", 20), ("joint_velocity_observation", 20),
                      ("projected_gravity_observation", 3), ("sensor_observation_imu_gyro", 3)]
COMMANDS = [("sinusoidal_gait_command", 2), ("velocity_command", 3)]


def _load_cli() -> object:
    spec = importlib.util.spec_from_file_location("export_cli", REPO / "tools" / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gru_export(tiny_kbot_walk_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """(policy with 0.3 s episodes, export paths) of the tiny GRU mixture-of-Gaussians run."""
    policy = load_trained_policy(tiny_kbot_walk_run, overrides=CHECK_OVERRIDES)
    return policy, export_policy(policy, tmp_path_factory.mktemp("gru") / "policy.onnx")


@pytest.fixture(scope="module")
def mlp_export(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """(policy, export paths) of a tiny MLP run with input normalization on."""
    run = train_tiny_run(tmp_path_factory.mktemp("mlp_runs"),
                         extra=("model.policy=mlp", "model.mlp_hidden=[32,32]", "ppo.normalize_observations=true"))
    policy = load_trained_policy(run, overrides=CHECK_OVERRIDES)
    return policy, export_policy(policy, tmp_path_factory.mktemp("mlp") / "policy.onnx")


def test_gru_round_trip_over_episodes_with_resets(gru_export: tuple) -> None:
    policy, paths = gru_export
    interface = policy_interface(policy)
    recording = record_rollout(policy, CHECK_STEPS)
    assert recording.resets[1:].sum() >= 2 * 2  # every world restarted mid-rollout at least twice
    actions = replay_onnx(paths, interface, recording)
    assert np.abs(actions - recording.actions).max() < 1e-5
    # The resets matter: replaying without zeroing the carry diverges right after the first reset.
    no_resets = type(recording)(inputs=recording.inputs, resets=np.zeros_like(recording.resets),
                                actions=recording.actions)
    no_resets.resets[0] = True
    assert np.abs(replay_onnx(paths, interface, no_resets) - recording.actions).max() > DEFAULT_TOLERANCE
    result = check_export(policy, paths, steps=CHECK_STEPS)
    assert result.passed and result.max_abs_diff < 1e-5 and result.episodes_started >= 6


def test_gru_graphs_interface(gru_export: tuple) -> None:
    policy, paths = gru_export
    step = ort.InferenceSession(str(paths.step))
    names = [i.name for i in step.get_inputs()]
    assert names == [n for n, _ in ACTOR_OBSERVATIONS + COMMANDS] + ["carry"]
    assert [o.name for o in step.get_outputs()] == ["action", "next_carry"]
    (zero,) = ort.InferenceSession(str(paths.init)).run(None, {})
    assert zero.shape == (1, 1, 16) and not zero.any()  # model.depth=1, hidden_size=16
    # Batch 1 and batch 3 (dynamic batch) both match the torch actor from a random carry.
    gen = torch.Generator().manual_seed(0)
    for batch in (1, 3):
        obs = {n: torch.randn(batch, s, generator=gen) for n, s in ACTOR_OBSERVATIONS}
        cmd = {n: torch.randn(batch, s, generator=gen) for n, s in COMMANDS}
        carry = torch.randn(batch, 1, 16, generator=gen)
        with torch.no_grad():
            dist, next_carry = policy.model.actor(policy.task.actor_inputs(obs, cmd), carry)
        feeds = {n: x.numpy() for n, x in {**obs, **cmd}.items()} | {"carry": carry.numpy()}
        action, onnx_carry = step.run(None, feeds)
        np.testing.assert_allclose(action, dist.deterministic().numpy(), atol=1e-5)
        np.testing.assert_allclose(onnx_carry, next_carry.numpy(), atol=1e-5)


def test_mlp_with_normalization_round_trip(mlp_export: tuple) -> None:
    policy, paths = mlp_export
    normalizer = policy.task.normalizers["actor"]
    assert normalizer.mean.abs().max() > 1e-3  # real statistics, so a graph without them would differ
    step = ort.InferenceSession(str(paths.step))
    assert [i.name for i in step.get_inputs()] == [n for n, _ in ACTOR_OBSERVATIONS + COMMANDS]
    assert [o.name for o in step.get_outputs()] == ["action"]
    assert not paths.init.exists()
    meta = json.loads(paths.metadata.read_text())
    assert meta["carry_shape"] is None and meta["normalization_in_graph"] is True
    result = check_export(policy, paths, steps=CHECK_STEPS)
    assert result.passed and result.max_abs_diff < 1e-5 and result.episodes_started >= 6


def test_metadata_equals_the_task(gru_export: tuple) -> None:
    policy, paths = gru_export
    meta = read_metadata(paths.step)
    assert meta == json.loads(paths.metadata.read_text())
    assert read_metadata(paths.init) == meta
    joints = sorted(tomllib.loads(JOINTS_TOML.read_text())["joints"].items(), key=lambda kv: kv[1]["nn_id"])
    assert meta["joint_names"] == [name for name, _ in joints]
    assert meta["joint_names"][0] == "dof_right_shoulder_pitch_03" and meta["joint_names"][-1] == "dof_left_ankle_02"
    # kbot_walk trains with ksim's K-Bot scales: kp, kd x1.4, torque limit x1.5.
    np.testing.assert_allclose(meta["kp"], [1.4 * j["kp"] for _, j in joints], rtol=1e-12)
    np.testing.assert_allclose(meta["kd"], [1.4 * j["kd"] for _, j in joints], rtol=1e-12)
    np.testing.assert_allclose(meta["torque_limits"], [1.5 * j["soft_torque_limit"] for _, j in joints], rtol=1e-12)
    np.testing.assert_allclose(meta["home_pose"], [math.radians(j["home_deg"]) for _, j in joints], atol=1e-6)
    assert meta["ctrl_dt"] == 0.02 and meta["action_scale"] == 1.0
    assert [(o["name"], o["size"]) for o in meta["observations"]] == ACTOR_OBSERVATIONS
    assert [(c["name"], c["size"]) for c in meta["commands"]] == COMMANDS
    assert meta["carry_shape"] == [1, 16] and meta["inputs"][-1] == "carry"
    gait = meta["command_definitions"]["sinusoidal_gait_command"]  # what the robot needs to run the gait clock
    assert gait["class"] == "SinusoidalGaitCommand" and gait["gait_period"] == 0.8 and gait["max_height"] == 0.08
    assert meta["task"] == "kbot_walk" and meta["iteration"] == 1 and meta["opset"] == 18
    assert Path(meta["checkpoint"]) == policy.checkpoint.resolve()
    # Joint observations are in qpos order: the left leg first in K-Bot's MJCF.
    assert meta["observation_joint_names"][0] == "dof_left_hip_pitch_04" and len(meta["observation_joint_names"]) == 20


def test_cli_exports_and_checks(tiny_kbot_walk_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "policy.onnx"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "export.py"), str(tiny_kbot_walk_run), "--out",
                           str(out), "--check", "--steps", "20", "--set", "task.episode_length_seconds=0.2"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["check"]["passed"] and summary["check"]["max_abs_diff"] < 1e-5
    assert summary["check"]["episodes_started"] >= 4  # 10-step episodes in 20 steps, 2 worlds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.init.onnx", "policy.json", "policy.onnx"]


def test_cli_check_fails_on_corrupted_weights(gru_export: tuple, tiny_kbot_walk_run: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    import onnx
    from onnx import numpy_helper

    _, paths = gru_export
    model = onnx.load(str(paths.step))
    weights = [t for t in model.graph.initializer if len(t.dims) == 2]  # the Linear/GRU matrices
    assert weights
    for tensor in weights:
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 1.05, tensor.name))
    bad = export_paths(tmp_path / "policy.onnx")
    onnx.save(model, bad.step)
    bad.init.write_bytes(paths.init.read_bytes())
    cli = _load_cli()
    argv = [str(tiny_kbot_walk_run), "--out", str(bad.step), "--check-only", "--steps", "10"]
    assert cli.main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    err = [line for line in lines if not line.startswith("export: ")]  # the progress lines aside
    assert len(err) == 1 and "max |a_onnx - a_torch|" in err[0] and "at step" in err[0]
    assert any(line.startswith("export: checking") for line in lines)
    # The untouched export passes the same check.
    assert cli.main([str(tiny_kbot_walk_run), "--out", str(paths.step), "--check-only", "--steps", "10"]) == 0


def test_cli_bad_input_one_line_exit_2(tiny_kbot_walk_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cli = _load_cli()
    cases = [
        ([str(tmp_path / "missing_run"), "--out", str(tmp_path / "p.onnx")], "does not exist"),
        ([str(tiny_kbot_walk_run), "--out", str(tmp_path / "no_dir" / "p.onnx")], "does not exist"),
        ([str(tiny_kbot_walk_run), "--out", str(tmp_path / "p.onnx"), "--opset", "11"], "--opset 11"),
        ([str(tiny_kbot_walk_run), "--out", str(tmp_path / "p.onnx"), "--check-only"], "export it first"),
    ]
    for argv, needle in cases:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    assert cli.main([str(tiny_kbot_walk_run), "--out", str(tmp_path / "p.onnx"), "--check"]) == 2
    assert 'pip install -e ".[tools]"' in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written by any of them


def test_failed_write_leaves_nothing(gru_export: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    import ktorch_sim.deploy.export as export_module

    policy, paths = gru_export
    traced = onnx.load(str(paths.step))
    monkeypatch.setattr(export_module, "_step_model", lambda *args: traced)  # skip re-tracing: this tests writing
    real_save = onnx.save

    def save_then_fail(model: object, path: object) -> None:
        real_save(model, path)
        if str(path).endswith(".tmp") and "policy.onnx" in str(path):  # the step graph, written last
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx, "save", save_then_fail)
    with pytest.raises(ExportError, match="No space left"):
        export_policy(policy, tmp_path / "policy.onnx")
    assert list(tmp_path.iterdir()) == []


def test_mlp_with_input_history_round_trip(tmp_path: Path) -> None:
    """``model.history = 3``: the MLP's window of past inputs is its carry, exported like a GRU state
    ([B, 2, inputs], zeroed at resets), and onnxruntime reproduces the actions across resets."""
    run = train_tiny_run(tmp_path / "runs", extra=("model.policy=mlp", "model.mlp_hidden=[32]", "model.history=3"))
    policy = load_trained_policy(run, overrides=CHECK_OVERRIDES)
    paths = export_policy(policy, tmp_path / "policy.onnx")
    num_inputs = sum(s for _, s in ACTOR_OBSERVATIONS + COMMANDS)
    (zero,) = ort.InferenceSession(str(paths.init)).run(None, {})
    assert zero.shape == (1, 2, num_inputs) and not zero.any()
    result = check_export(policy, paths, steps=CHECK_STEPS)
    assert result.passed and result.max_abs_diff < 1e-5 and result.episodes_started >= 6
