"""tools/memory_check.py: its arithmetic, that it catches a leak, and that a K-Bot walking run stays flat."""

from __future__ import annotations

import json
import mmap
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import memory_check  # noqa: E402

TINY_CARTPOLE = """
[task]
name = "tests.cartpole:CartpoleTask"
[ppo]
batch_size = 4
[model]
hidden_size = 16
depth = 1
"""


def test_summary_by_hand():
    samples = [100.0, 110.0, 120.0, 120.0, 121.0, 122.0, 123.0]
    report = memory_check.summarize(samples, before=90.0, warmup=3, bound_mb=3.0)
    assert report["rss_after_warmup_mb"] == 120.0 and report["rss_end_mb"] == 123.0 and report["rss_max_mb"] == 123.0
    assert report["growth_mb"] == 3.0
    assert report["growth_per_100_iterations_mb"] == 75.0  # 3 MiB over the 4 iterations after warm-up
    # slope of [120, 120, 121, 122, 123] against 0..4: covariance 8 / variance 10 = 0.8 per iteration
    assert report["slope_per_100_iterations_mb"] == 80.0
    assert report["ok"] is True
    assert memory_check.summarize(samples, 90.0, 3, bound_mb=2.5)["ok"] is False


def test_bad_arguments_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        memory_check.main(["--iterations", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--iterations" in err
    assert memory_check.main(["--iterations", "5", "--warmup", "5"]) == 2
    assert "--warmup" in capsys.readouterr().err


@pytest.mark.slow
def test_a_leak_fails_the_check(tmp_path, monkeypatch, capsys):
    """4 MiB kept alive per iteration: 15 iterations after warm-up grow RSS by ~60 MiB > the 24 MiB bound."""
    from ktorch_sim.training.trainer import Trainer

    cfg = tmp_path / "cartpole.toml"
    cfg.write_text(TINY_CARTPOLE)
    kept: list[mmap.mmap] = []
    real_iterate = Trainer.iterate

    def leaky_iterate(self):
        # Fresh anonymous pages, written so they are resident (heap bytes could reuse pages freed by earlier tests).
        block = mmap.mmap(-1, 4 * 2**20)
        block.write(b"x" * len(block))
        kept.append(block)
        return real_iterate(self)

    monkeypatch.setattr(Trainer, "iterate", leaky_iterate)
    args = ["--cfg", str(cfg), "--iterations", "20", "--warmup", "5", "--num-envs", "8", "--rollout-seconds", "0.2",
            "--bound-mb", "24", "--run-dir", str(tmp_path)]
    assert memory_check.main(args) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["iterations"] == 20 and report["growth_mb"] >= 50 and report["ok"] is False


@pytest.mark.slow
def test_kbot_walk_cpu_run_stays_flat():
    """30 iterations of kbot_walk (4 worlds, 10-step rollouts, the config's 2 x 256 GRU), growth after 10.

    Bound 16 MiB: it fails for a leak of >= 0.8 MiB per iteration (20 iterations after warm-up), e.g. a copy
    of the model (6.5 MiB here) or of the AdamW state (13 MiB) kept per iteration. Measured growth over such
    runs is ~0.2 MiB; smaller, slower leaks are what the long run in docs/memory.md looks for.
    """
    out = subprocess.run([sys.executable, "tools/memory_check.py", "--iterations", "30", "--warmup", "10",
                          "--num-envs", "4", "--rollout-seconds", "0.2", "--bound-mb", "16"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["task"] == "kbot_walk" and report["iterations"] == 30 and report["ok"] is True
