"""tools/bench_mjlab.py: rsl_rl log parsing and rates by hand, and a tiny CPU run of the ktorch_sim side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_g1_task import G1_XML, needs_g1

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import bench_mjlab  # noqa: E402

# Two iterations as rsl_rl 5 prints them (bold title escapes included), abridged.
RSL_RL_LOG = """\
################################################################################
\x1b[1m                             Learning iteration 0/2                             \x1b[0m

                            Total steps: 96
                       Steps per second: 33
                        Collection time: 2.810s
                          Learning time: 0.092s
                        Mean value loss: 0.9690
################################################################################
\x1b[1m                             Learning iteration 1/2                             \x1b[0m

                       Steps per second: 73
                        Collection time: 1.226s
                          Learning time: 0.082s
"""


def test_parse_rsl_rl_log_reads_every_iteration() -> None:
    assert bench_mjlab.parse_rsl_rl_log(RSL_RL_LOG) == [(2.810, 0.092), (1.226, 0.082)]


def test_rates_by_hand() -> None:
    # 4 envs x 24 steps x 2 iterations = 192 env steps; collection 1.5 s, update 0.5 s in all.
    r = bench_mjlab.rates([(1.0, 0.25), (0.5, 0.25)], num_envs=4)
    assert r["env_steps"] == 192
    assert r["collect_env_steps_per_s"] == pytest.approx(192 / 1.5)
    assert r["end_to_end_env_steps_per_s"] == pytest.approx(192 / 2.0)
    assert r["collect_s_per_iteration"] == pytest.approx(0.75)


def test_ratios_only_where_both_sides_ran() -> None:
    results = {"mjlab": {"collect_env_steps_per_s": 100.0, "end_to_end_env_steps_per_s": 50.0},
               "ktorch_mlp": {"collect_env_steps_per_s": 300.0, "end_to_end_env_steps_per_s": 100.0},
               "ktorch_gru": {"failed": "exit 1"}}
    assert bench_mjlab.ratios(results) == {"ktorch_mlp/collect": 3.0, "ktorch_mlp/end_to_end": 2.0}


def test_mjlab_skipped_without_its_python() -> None:
    assert "no --mjlab-python" in bench_mjlab.run_mjlab(None, "cpu", 4, 1, 0, 60)["skipped"]
    assert "no such file" in bench_mjlab.run_mjlab("/nonexistent/python", "cpu", 4, 1, 0, 60)["skipped"]


@needs_g1
def test_cpu_run_of_ktorch_side_prints_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "tools/bench_mjlab.py", "--device", "cpu", "--num-envs", "4",
                           "--iterations", "1", "--warmup", "0", "--g1-xml", G1_XML, "--only", "mjlab", "ktorch_mlp",
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert "no --mjlab-python" in result["mjlab"]["skipped"]
    mlp = result["ktorch_mlp"]
    assert mlp["policy"] == "mlp 512-256-128" and mlp["env_steps"] == 4 * 24
    assert mlp["end_to_end_env_steps_per_s"] < mlp["collect_env_steps_per_s"]
    assert result["ratios_ktorch_over_mjlab"] == {}
