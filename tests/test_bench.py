"""``tools/bench.py`` works: tiny runs print well-formed JSON lines, bad flags get a clear error.

These tests check the tool, never a speed: rates only have to be positive and finite.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH_PATH = Path(__file__).resolve().parent.parent / "tools" / "bench.py"

REQUIRED_FIELDS = {
    "kind", "engine", "device", "num_envs", "substeps", "control_steps", "control_steps_per_s",
    "physics_steps_per_s", "baseline", "baseline_physics_steps_per_s", "ratio_to_baseline", "seconds",
    "commit", "cpu", "gpu", "torch", "mujoco", "warp", "mujoco_warp", "dt", "ctrl_dt", "iterations",
    "ls_iterations", "repeats", "bad_worlds", "cpu_per_wall", "baseline_cpu_per_wall", "loadavg_1min",
}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ktorch_bench_tool", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_main_prints_one_json_line_per_configuration(bench, capsys):
    argv = ["--engines", "mujoco,warp", "--devices", "cpu", "--num-envs", "2", "--steps", "2",
            "--repeats", "1", "--warmup", "1", "--episode-steps", "1", "--dt", "0.004", "--ctrl-dt", "0.02",
            "--json"]
    assert bench.main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    rows = [json.loads(line) for line in lines]
    assert [(r["engine"], r["device"], r["num_envs"]) for r in rows] == [("mujoco", "cpu", 2), ("warp", "cpu", 2)]
    for row in rows:
        assert REQUIRED_FIELDS <= row.keys(), REQUIRED_FIELDS - row.keys()
        assert row["kind"] == "physics"
        assert row["substeps"] == 5 and row["control_steps"] == 2 and row["repeats"] == 1
        assert row["episode_steps"] == 1
        for key in ("control_steps_per_s", "physics_steps_per_s", "baseline_physics_steps_per_s",
                    "ratio_to_baseline", "seconds"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row[key])
        assert row["physics_steps_per_s"] == pytest.approx(5 * row["control_steps_per_s"])
        assert row["ratio_to_baseline"] == pytest.approx(row["physics_steps_per_s"]
                                                         / row["baseline_physics_steps_per_s"])
        assert row["bad_worlds"] == 0
        # Same start state and targets on both sides: after an episode of 5 physics steps the base heights agree.
        assert row["base_z_mean"] == pytest.approx(row["baseline_base_z_mean"], abs=1e-3)
        assert row["torch"] == torch.__version__ and row["commit"]
    assert rows[0]["baseline"] == "mujoco.rollout" and rows[1]["baseline"] == "mujoco_warp graph"


def test_timed_runs_are_cut_into_episodes(bench):
    assert bench.PhysicsSettings(control_steps=120, episode_steps=50).episodes == [50, 50, 20]
    assert bench.PhysicsSettings(control_steps=40, episode_steps=50).episodes == [40]


def test_table_output_and_steps_per_world_count(bench):
    rows = bench.measure_physics(["mujoco"], ["cpu"], [1, 2], bench.PhysicsSettings(repeats=1, warmup_steps=0),
                                 steps=[2, 1])
    assert [(r["num_envs"], r["control_steps"]) for r in rows] == [(1, 2), (2, 1)]
    table = bench.format_table(rows)
    assert "ctrl steps/s" in table and "mujoco.rollout" in table
    assert len(table.splitlines()) == 4  # header, rule, two rows


@pytest.mark.parametrize("argv, message", [
    (["--engines", "mujoco,bullet"], "unknown engine"),
    (["--devices", "tpu"], "unknown device"),
    (["--num-envs", "16,0"], "positive integer"),
    (["--steps", "0"], "positive integer"),
    (["--dt", "0.003"], "whole multiple"),
    (["--num-envs", "4,8", "--steps", "1,2,3"], "one per --num-envs entry"),
])
def test_bad_flags_exit_2_with_a_message(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_clear_error(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(["--devices", "cpu,cuda"])
    assert exc.value.code == 2
    assert "no CUDA GPU" in capsys.readouterr().err
