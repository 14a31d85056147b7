"""``tools/plot.py``: a valid PNG with one panel per metric group, from a synthetic file and a real run."""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from ktorch_sim.training.logging import RunLogger, read_metrics
from ktorch_sim.training.plotting import draw_curves, latest_branch

REPO = Path(__file__).resolve().parent.parent
PLOT = REPO / "tools" / "plot.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def plot_tool():
    spec = importlib.util.spec_from_file_location("ktorch_plot_tool", PLOT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (after checking the signature)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture()
def synthetic_run(tmp_path: Path) -> Path:
    """A run directory whose metrics.jsonl has 9 plottable metrics and some that are not plotted."""
    run = tmp_path / "run"
    with RunLogger(run, {}, mode="disabled") as logger:
        for i in range(5):
            logger.log({"episode/return": 1.0 + i, "episode/length": 10.0 * i, "reward/stay_alive": 0.1,
                        "reward/upright": 0.4 - 0.01 * i, "reward/total": 0.5, "loss/loss_critic": 1.0 / (i + 1),
                        "loss/kl": 0.01, "perf/env_steps_per_s": 500.0, "train/learning_rate": 3e-4,
                        "time/collect_s": 0.2, "curriculum/level": 0.0, "reward/never_finite": float("nan")},
                       iteration=i + 1, env_steps=100 * (i + 1))
    return run


EXPECTED_TITLES = ["episode return", "episode length (steps)", "reward/stay_alive", "reward/upright", "reward/total",
                   "loss/kl", "loss/loss_critic", "throughput (env steps/s)", "learning rate"]


def test_synthetic_metrics_give_one_panel_per_group_in_a_valid_png(plot_tool, synthetic_run, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert plot_tool.main([str(synthetic_run), "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"out": str(out), "panels": 9, "rows": 5}
    # 9 panels: a grid of 4 columns x 3 rows at 4 x 2.6 inches each (+0.4 in title), 100 dpi.
    assert png_size(out) == (1600, 820)
    assert out.stat().st_size > 20_000
    assert not list(tmp_path.glob(".*.tmp"))

    figure = draw_curves(read_metrics(synthetic_run))
    assert [ax.get_title() for ax in figure.axes] == EXPECTED_TITLES
    line = figure.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [100, 200, 300, 400, 500] and list(line.get_ydata()) == [1, 2, 3, 4, 5]


def test_tiny_training_run_plots_every_group_it_logged(tiny_kbot_walk_run, tmp_path):
    out = tmp_path / "tiny.png"
    proc = subprocess.run([sys.executable, str(PLOT), str(tiny_kbot_walk_run), "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (row,) = read_metrics(tiny_kbot_walk_run)
    groups = sum(k.startswith(("reward/", "loss/")) for k in row)
    groups += sum(k in row for k in ("episode/return", "episode/length", "perf/env_steps_per_s", "train/learning_rate"))
    assert json.loads(proc.stdout)["panels"] == groups
    width, height = png_size(out)
    assert width == 1600 and height == round(100 * (2.6 * -(-groups // 4) + 0.4))
    assert out.stat().st_size > 20_000


def test_a_resumed_run_keeps_the_history_that_led_to_its_last_row():
    rows = [{"env_steps": s, "v": v} for s, v in [(10, 1), (20, 2), (30, 3), (20, 20), (30, 30), (40, 40)]]
    assert [(r["env_steps"], r["v"]) for r in latest_branch(rows)] == [(10, 1), (20, 20), (30, 30), (40, 40)]


def test_bad_run_dir_empty_metrics_and_bad_out_are_one_error_line(plot_tool, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.jsonl").write_text("")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "metrics.jsonl").write_text('{"iteration": 1, "env\n{"iteration": 2, "env_steps": 2}\n')
    cases = [([str(tmp_path / "missing")], "does not exist"), ([str(empty)], "has no metrics yet"),
             ([str(corrupt)], "cannot read"), ([str(empty), "--out", str(tmp_path / "no" / "x.png")],
                                               "does not exist")]
    for argv, message in cases:
        assert plot_tool.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert not (empty / "curves.png").exists()


def test_missing_matplotlib_names_the_extra_to_install(plot_tool, synthetic_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert plot_tool.main([str(synthetic_run)]) == 2
    assert 'pip install -e ".[tools]"' in capsys.readouterr().err
    assert not (synthetic_run / "curves.png").exists()
