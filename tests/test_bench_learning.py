"""tools/bench_learning.py: the table from run JSONs (hand-computed), job claiming, curve binning."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("bench_learning", ROOT / "tools" / "bench_learning.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(folder: Path, lib: str, env: str, seed: int, final: float) -> None:
    data = {"lib": lib, "env": env, "seed": seed, "steps": 2048, "final": {"mean": final, "std": 0.0},
            "curve": [[1024, final / 2], [2048, final]]}
    (folder / f"{lib}__{env}__{seed}.json").write_text(json.dumps(data))


def test_table_means_stds_and_ratio_by_hand(tmp_path):
    tool = _tool()
    for seed, final in enumerate((100.0, 200.0, 300.0)):
        _write(tmp_path, "sb3", "Hopper-v5", seed, final)
    for seed, final in enumerate((300.0, 500.0)):
        _write(tmp_path, "ktorch-mlp", "Hopper-v5", seed, final)
    table = tool.markdown_table(tool.load_results(tmp_path))
    # sb3: mean 200, population std sqrt(((100)^2 + 0 + 100^2) / 3) = 81.6; ktorch: 400 +- 100, ratio 2.00.
    # The training return is the curve's last point (the only one in the last 15 % of 2,048 steps): the final score.
    sb3, mlp = (_row(table, "Hopper-v5", lib) for lib in ("sb3", "ktorch-mlp"))
    assert sb3[2:5] == ["200 +- 82", "100, 200, 300", "2048"] and sb3[5] == "" and sb3[7] == "200"
    assert mlp[2:5] == ["400 +- 100", "300, 500", "2048"] and mlp[6] == "" and mlp[7] == "400"
    # Ratios 0.50 and 2.00 with bootstrap intervals inside the extremes of a resample: 100/500 .. 300/300.
    for cell, ratio, extremes in ((sb3[6], 0.5, (0.2, 1.0)), (sb3[9], 0.5, (0.2, 1.0)), (mlp[5], 2.0, (1.0, 5.0)),
                                  (mlp[8], 2.0, (1.0, 5.0))):
        point, low, high = _ratio(cell)
        assert point == ratio and extremes[0] <= low < ratio < high <= extremes[1]


def _row(table: str, env: str, lib: str) -> list[str]:
    """The cells of the table's row for (env, lib)."""
    [line] = [line for line in table.splitlines() if line.startswith(f"| {env} | {lib} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def _ratio(cell: str) -> tuple[float, float, float]:
    """``"0.50 [0.25, 1.00]"`` -> (0.5, 0.25, 1.0)."""
    point, interval = cell.split(" [")
    low, high = interval.rstrip("]").split(", ")
    return float(point), float(low), float(high)


def test_ratio_interval_by_hand():
    """Resampling [1, 3] gives means 1, 2, 3 with chances 1/4, 1/2, 1/4, so the 95 % interval of its ratio to [1] is
    [1, 3]; equal seeds give a point; the interval is reproducible."""
    tool = _tool()
    assert tool.ratio_interval([1.0, 3.0], [1.0]) == (1.0, 3.0)
    assert tool.ratio_interval([2.0, 2.0], [1.0, 1.0]) == (2.0, 2.0)
    assert tool.ratio_interval([5.0, 9.0, 4.0], [3.0, 6.0]) == tool.ratio_interval([5.0, 9.0, 4.0], [3.0, 6.0])
    assert tool._ratio_cell([1.0], [0.0]) == "" and tool._ratio_cell([], [1.0]) == ""
    assert tool._ratio_cell([3.0], [-1.0, 3.0]) == "3.00"  # a resample of [-1, -1] would divide by -1: no interval
    assert tool.ratio_interval([3.0], [-1.0, 3.0]) is None
    low, high = tool.ratio_interval([3.0], [-1.0] + [3.0] * 30)  # no resample of 31 seeds reaches a mean <= 0
    assert 0.9 < low < high < 1.3


def test_training_return_averages_the_last_fifteen_percent_of_the_curve(tmp_path):
    """Bins ending above 85 % of the steps count (1,800 and 2,000 of 2,000: (30 + 50) / 2 = 40); a run without
    such a bin has none, and the table leaves its cells empty and its seeds out of the mean."""
    tool = _tool()
    run = {"steps": 2000, "curve": [[1000, 10.0], [1700, 20.0], [1800, 30.0], [2000, 50.0]]}
    assert tool.training_return(run) == pytest.approx(40.0)
    assert tool.training_return({"steps": 2000, "curve": [[1000, 10.0]]}) is None
    _write(tmp_path, "sb3", "Ant-v5", 0, 100.0)  # training return 100
    _write(tmp_path, "ktorch-mlp", "Ant-v5", 0, 300.0)
    path = tmp_path / "ktorch-mlp__Ant-v5__0.json"
    data = json.loads(path.read_text())
    data["curve"] = [[1024, 60.0]]  # nothing in the window
    path.write_text(json.dumps(data))
    table = tool.markdown_table(tool.load_results(tmp_path))
    assert "| Ant-v5 | ktorch-mlp | 300 +- 0 | 300 | 2048 | 3.00 [3.00, 3.00] |  |  |  |  |" in table
    assert "| Ant-v5 | sb3 | 100 +- 0 | 100 | 2048 |  | 0.33 [0.33, 0.33] | 100 |  |  |" in table


def test_gru_against_the_mlp_and_the_rules_table_by_hand(tmp_path):
    tool = _tool()
    _write(tmp_path, "ktorch-mlp", "Ant-v5", 0, 400.0)
    for seed, (final, heaviest, sample) in enumerate(((300.0, 100.0, 500.0), (500.0, 300.0, 700.0))):
        _write(tmp_path, "ktorch-gru", "Ant-v5", seed, final)
        path = tmp_path / f"ktorch-gru__Ant-v5__{seed}.json"
        data = json.loads(path.read_text())
        data["final_by_rule"] = {"heaviest": heaviest, "sample": sample}
        path.write_text(json.dumps(data))
    results = tool.load_results(tmp_path)
    gru = _row(tool.markdown_table(results), "Ant-v5", "ktorch-gru")
    assert gru[2:6] == ["400 +- 100", "300, 500", "2048", ""] and gru[7] == "400"
    assert gru[6] == gru[9] == "1.00 [0.75, 1.25]"  # resamples of [300, 500] over 400: 300, 400 or 500
    rules = tool.rules_table(results)
    assert "| task | library | seeds | deterministic | heaviest | sample |" in rules
    assert "| Ant-v5 | ktorch-gru | 0, 1 | 400 | 200 | 600 |" in rules
    assert "ktorch-mlp" not in rules  # it recorded one rule only


def test_result_collects_the_sources_relabelled_with_the_gru_read_by_its_rule(tmp_path):
    spec = importlib.util.spec_from_file_location("learning_result", ROOT / "tools" / "learning_result.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    runs, out = tmp_path / "runs", tmp_path / "out"
    (runs / "main").mkdir(parents=True)
    (runs / "gru_head_mlp").mkdir()
    _write(runs / "main", "ktorch-mlp", "Hopper-v5", 0, 400.0)
    _write(runs / "main", "some-variant", "Hopper-v5", 0, 1.0)  # not a source: left out
    gru = {"lib": "ktorch-gru", "env": "Hopper-v5", "seed": 0, "steps": 2048, "final": {"mean": 900.0},
           "final_by_rule": {"density_mode": 900.0, tool.GRU_RULE: 300.0}, "curve": [[2048, 250.0]]}
    (runs / "gru_head_mlp" / "hh2__Hopper-v5__0.json").write_text(json.dumps(gru))
    assert tool.collect(out, runs) == 2
    assert sorted(p.name for p in out.iterdir()) == ["ktorch-gru__Hopper-v5__0.json", "ktorch-mlp__Hopper-v5__0.json"]
    table = _tool().markdown_table(_tool().load_results(out))
    assert "| Hopper-v5 | ktorch-gru | 300 +- 0 | 300 | 2048 |  | 0.75 [0.75, 0.75] |" in table  # 300/400, by the rule
    # A rerun after a change of default replaces every earlier run of its label and task (here seed 1 alone).
    (runs / "desynchronized").mkdir()
    _write(runs / "main", "ktorch-mlp", "Walker2d-v5", 0, 50.0)
    _write(runs / "desynchronized", "ktorch-mlp", "Hopper-v5", 1, 800.0)
    assert tool.collect(out, runs) == 3
    table = _tool().markdown_table(_tool().load_results(out))
    assert "| Hopper-v5 | ktorch-mlp | 800 +- 0 | 800 | 2048 |" in table
    assert "| Walker2d-v5 | ktorch-mlp | 50 +- 0 | 50 | 2048 |" in table
    # A run given by two sources would be dropped silently by the table: refused, naming the file.
    (runs / "mlp_normalized_inputs").mkdir()
    _write(runs / "mlp_normalized_inputs", "x", "Hopper-v5", 0, 1.0)
    _write(runs / "mlp_normalized_inputs", "y", "Hopper-v5", 0, 2.0)
    with pytest.raises(ValueError, match="repeats ktorch-mlp-norm Hopper-v5 seed 0"):
        tool.collect(out, runs)


def test_claim_is_exclusive_and_takes_over_dead_claims(tmp_path):
    tool = _tool()
    path = tmp_path / "job.json"
    assert tool._claim(path)
    assert not tool._claim(path)  # our own live PID holds it
    path.with_suffix(".running").write_text("999999999")  # a process that does not exist
    assert tool._claim(path) and path.with_suffix(".running").read_text() == str(os.getpid())


def test_curve_bins_weight_by_episode_counts():
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks.learning import CURVE_POINTS, _bin_curve

    steps = CURVE_POINTS * 100  # windows of 100 steps
    curve = _bin_curve([(50, 10.0, 1), (100, 40.0, 3), (150, float("nan"), 2), (250, 5.0, 0)], steps)
    assert curve == [[100, 32.5]]  # (10 * 1 + 40 * 3) / 4; NaN and empty windows are left out


@pytest.mark.parametrize("lib", ["ktorch-mlp", "ktorch-gru"])
def test_the_benchmark_presets_are_the_library_defaults(lib, tmp_path):
    """What the learning benchmark measures is what a user gets: each preset resolves to the library's default
    settings for its policy (the presets spell them out so the benchmark does not drift with a default), except
    the mlp preset's raw inputs (the reference row): the mlp's default normalizes them and holds the statistics
    after a tenth of the budget, as the `ktorch-mlp-norm-frozen` rows (20,480 of 204,800 steps)."""
    from benchmarks.gym_tasks import task_name
    from benchmarks.learning import ktorch_config
    from ktorch_sim.config import config_from_dict

    preset = ktorch_config(lib, "Hopper-v5", 0, 204_800, [], str(tmp_path))
    policy = "mlp" if lib == "ktorch-mlp" else "gru"
    defaults = config_from_dict({"task": {"name": task_name("Hopper-v5"), "num_envs": 8, "seed": 0},
                                 "ppo": {"max_steps": 204_800}, "model": {"policy": policy},
                                 "logging": {"wandb_mode": "disabled", "run_dir": str(tmp_path),
                                             "video_every_minutes": 0.0},
                                 "checkpoint": {"save_every_seconds": 1e9}}, [], source="defaults")
    assert preset.rollout_steps == defaults.rollout_steps == 256
    assert preset.num_minibatches == defaults.num_minibatches == 32
    assert preset.model == defaults.model
    assert preset.ppo.desynchronize_episodes == defaults.ppo.desynchronize_episodes is True
    for key in ("minibatch_size", "num_passes", "learning_rate", "gamma", "lam", "clip_param", "entropy_coef",
                "kl_coef", "value_loss_coef", "grad_clip", "adam_eps"):
        assert getattr(preset.ppo, key) in (getattr(defaults.ppo, key), 64), key
    recurrent = policy == "gru"
    assert preset.ppo.layout(8, 256, recurrent) == defaults.ppo.layout(8, 256, recurrent)
    assert bool(preset.ppo.normalize_observations) == recurrent and defaults.ppo.normalize_observations is None
    assert defaults.ppo.normalizes_inputs_by_default(defaults.model)
    assert defaults.ppo.input_statistics_steps(defaults.model) == (0 if recurrent else 20_480)
    assert preset.ppo.kl_target(recurrent) == defaults.ppo.kl_target(recurrent) == (0.03 if recurrent else None)
    assert preset.ppo.target_kl_stops == defaults.ppo.target_kl_stops == "actor"
    assert (preset.ppo.scales_returns(recurrent, inputs_normalized=recurrent)
            == defaults.ppo.scales_returns(recurrent, inputs_normalized=recurrent) == recurrent)


def test_sb3_norm_trains_and_evaluates_on_normalized_observations():
    """``sb3-norm`` is SB3 with ``VecNormalize(norm_reward=False)``: its policy sees other inputs than plain SB3's
    (so a same-seed run differs), and its evaluation reads the training statistics."""
    pytest.importorskip("stable_baselines3")
    from benchmarks.learning import run_sb3

    plain = run_sb3("Hopper-v5", 0, 64)
    normalized = run_sb3("Hopper-v5", 0, 64, normalize_observations=True)
    assert normalized["config"]["normalize_observations"] and not plain["config"]["normalize_observations"]
    assert len(normalized["final"]["returns"]) == 10
    assert normalized["final"]["returns"] != plain["final"]["returns"]


def test_sb3_norm_frozen_stops_the_statistics_after_its_steps():
    """``sb3-norm-frozen``: VecNormalize's statistics take in the first ``normalizer_steps`` steps and then stay as
    they are; without the limit they keep moving to the end of training."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common import vec_env

    from benchmarks.learning import run_sb3

    counts = {}
    original = vec_env.VecNormalize.__init__

    def recording_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        counts.setdefault("envs", []).append(self)

    vec_env.VecNormalize.__init__ = recording_init
    try:
        frozen = run_sb3("Hopper-v5", 0, 128, normalize_observations=True, normalizer_steps=40)
        training_env = counts["envs"][0]
        counts.clear()
        moving = run_sb3("Hopper-v5", 0, 128, normalize_observations=True)
    finally:
        vec_env.VecNormalize.__init__ = original
    assert frozen["config"]["normalizer_steps"] == 40 and moving["config"]["normalizer_steps"] == 0
    assert training_env.obs_rms.count == pytest.approx(1e-4 + 1 + 40)  # the reset observation and 40 steps
    # SB3 collects whole rollouts: the moving statistics took in every step of its first (n_steps) one.
    assert counts["envs"][0].obs_rms.count == pytest.approx(1e-4 + 1 + moving["config"]["n_steps"])

def test_sb3_unclipped_passes_the_raw_action_to_the_env():
    """``sb3-unclipped``: the env SB3 trains declares bounds no Gaussian sample reaches, so SB3's clip to the action
    space lets its samples (std 1 at the start) through beyond +-1, where plain SB3 clips them to [-1, 1]."""
    pytest.importorskip("stable_baselines3")
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from benchmarks.learning import _unbounded_actions, run_sb3

    class Recorder(gym.Wrapper):
        largest = 0.0

        def step(self, action):
            Recorder.largest = max(Recorder.largest, float(np.abs(action).max()))
            return self.env.step(action)

    largest = {}
    for name, wrap in (("plain", lambda e: e), ("unclipped", _unbounded_actions)):
        Recorder.largest = 0.0
        env = DummyVecEnv([lambda: wrap(Recorder(gym.make("HalfCheetah-v5")))])
        PPO("MlpPolicy", env, seed=0, device="cpu", n_steps=64, batch_size=64, n_epochs=1).learn(64)
        largest[name] = Recorder.largest
    assert largest["plain"] <= 1.0 < largest["unclipped"]
    assert _unbounded_actions(gym.make("HalfCheetah-v5")).action_space.high.min() >= 1e6
    assert run_sb3("HalfCheetah-v5", 0, 64, clip_actions=False)["config"]["clip_actions"] is False


def test_sb3_with_deferred_statistics_acts_on_raw_inputs_first_and_restores_sb3():
    """The probe of ktorch_sim's normalizer timing: the first rollout passes unnormalized (statistics 0 and 1, merged
    after the update), so the same seed trains differently from ``sb3-norm``; SB3 is left unpatched afterwards."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common import vec_env

    from benchmarks.learning import run_sb3
    from benchmarks.sb3_deferred_normalizer import run_deferred

    deferred = run_deferred("Hopper-v5", 0, 64)
    assert deferred["config"]["statistics"].startswith("merged once per rollout")
    assert deferred["final"]["returns"] != run_sb3("Hopper-v5", 0, 64, normalize_observations=True)["final"]["returns"]
    assert vec_env.VecNormalize.__name__ == "VecNormalize"


def test_a_ktorch_run_records_its_curve_final_score_and_update_diagnostics():
    """A short ktorch_sim run writes what docs/learning.md reads: the binned curve, 10 deterministic episodes and,
    every DIAGNOSTICS_EVERY iterations, the update's KL, clip fraction, entropy and explained variance."""
    from benchmarks.learning import DIAGNOSTICS_EVERY, run_ktorch

    steps = 2048 * DIAGNOSTICS_EVERY  # 8 worlds x 256 steps per iteration
    result = run_ktorch("ktorch-mlp", "Hopper-v5", 0, steps, [])
    assert len(result["final"]["returns"]) == len(result["final"]["lengths"]) == 10
    assert [entry[0] for entry in result["diagnostics"]] == [steps]
    recorded = result["diagnostics"][0][1]
    for key in ("loss/kl", "loss/clip_fraction", "loss/entropy", "loss/explained_variance", "episode/length"):
        assert math.isfinite(recorded[key]), key
    assert recorded["loss/kl"] >= 0.0 and 0.0 <= recorded["loss/clip_fraction"] <= 1.0
    assert "loss/minibatches_applied" not in recorded  # a feed-forward policy has no KL stop


def test_runs_are_listed_in_seed_order(tmp_path):
    """Seed 10's file sorts before seed 2's by name; the table lists the seeds by number."""
    tool = _tool()
    for seed, final in ((10, 10.0), (2, 2.0), (0, 0.5)):
        _write(tmp_path, "sb3", "Hopper-v5", seed, final)
    results = tool.load_results(tmp_path)
    assert [run["seed"] for run in results[("sb3", "Hopper-v5")]] == [0, 2, 10]
    assert "| 0, 2, 10 |" in tool.markdown_table(results)  # the per-seed finals, 0.5 printed as 0


def test_curves_wrap_into_rows_of_four_panels(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    tool = _tool()
    envs = [f"Task{i}-v5" for i in range(5)]
    for env in envs:
        _write(tmp_path, "sb3", env, 0, 100.0)
    path = tmp_path / "curves.png"
    tool.plot_curves(tool.load_results(tmp_path), path)
    height, width = imread(path).shape[:2]
    # 5 panels: 4 in the first row, 1 in the second; each panel 5 x 3.6 inches at 110 dpi.
    assert (width, height) == (4 * 5 * 110, 2 * round(3.6 * 110))


def test_an_empty_results_folder_is_one_clear_error(tmp_path, capsys):
    tool = _tool()
    assert tool.main(["--out", str(tmp_path), "--no-run", "--plot", str(tmp_path / "curves.png")]) == 1
    assert "no run JSONs in" in capsys.readouterr().err
    assert not (tmp_path / "curves.png").exists()


def test_fixed_input_statistics_probe_records_then_holds_the_statistics():
    """``benchmarks.fixed_input_statistics``: ``record`` returns the pooled mean/var of every rollout's raw inputs;
    ``fixed`` trains with exactly those statistics and never moves them; a mode without its stats is refused."""
    pytest.importorskip("gymnasium")
    import torch

    from benchmarks import fixed_input_statistics as probe

    recorded = probe.run("record", "Hopper-v5", 0, 2048)
    assert len(recorded["mean"]) == len(recorded["var"]) == 11 and recorded["inputs"] == []
    assert 1.0 < recorded["mean"][0] < 1.4  # the torso's height, near its start of 1.25 m
    fixed = probe.run("fixed", "Hopper-v5", 0, 4096, stats=recorded)
    assert "statistics_at_end" not in recorded
    for key in ("mean", "var"):  # loaded before the first step, held through two iterations
        torch.testing.assert_close(torch.tensor(fixed["statistics_at_end"][key]), torch.tensor(recorded[key]))
    assert fixed["inputs"] == []  # two iterations: nothing recorded before the tenth
    with pytest.raises(ValueError, match="mode must be"):
        probe.run("fixed", "Hopper-v5", 0, 2048)
