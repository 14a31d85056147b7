"""The env and train benchmark kinds run and report positive rates (they never assert a speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bench(*args: str) -> list[dict]:
    out = subprocess.run([sys.executable, "tools/bench.py", *args, "--json"], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_env_kind_reports_env_and_physics_rates():
    rows = _bench("--kind", "env", "--engines", "mujoco", "--num-envs", "2", "--steps", "3", "--repeats", "1")
    assert len(rows) == 1
    row = rows[0]
    assert row["kind"] == "env" and row["num_envs"] == 2 and row["task"] == "kbot_walk"
    assert row["env_steps_per_s"] > 0 and row["physics_only_env_steps_per_s"] > row["env_steps_per_s"] * 0.5
    assert "commit" in row


def test_train_kind_reports_phase_times():
    rows = _bench("--kind", "train", "--tasks", "kbot_stand", "--engines", "mujoco", "--num-envs", "2", "--steps", "3",
                  "--repeats", "1")
    row = rows[0]
    assert row["kind"] == "train" and row["rollout_steps"] == 3
    assert row["train_env_steps_per_s"] > 0 and row["update_s_per_iteration"] > 0
