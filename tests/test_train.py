"""``python -m ktorch_sim.train``: trains, writes metrics and checkpoints, resumes exactly, rejects bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ktorch_sim.training.trainer import Trainer
from tests.test_learning import cartpole_config

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "task.name=tests.cartpole:CartpoleTask", "--set", "task.num_envs=8", "--set", "ppo.batch_size=4",
        "--set", "ppo.rollout_length_seconds=0.2", "--set", "model.hidden_size=16", "--set", "model.depth=1",
        "--set", "logging.wandb_mode=disabled", "--no-progress"]


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ktorch_sim.train", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_cli_trains_then_resumes(tmp_path):
    first = _train(*TINY, "--set", f"logging.run_dir={tmp_path}", "--set", "ppo.max_steps=160")
    assert first.returncode == 0, first.stderr
    run_dir = Path(first.stdout.strip().splitlines()[-1].removeprefix("run directory: "))
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2] and lines[-1]["env_steps"] == 160
    assert (run_dir / "config.toml").is_file() and (run_dir / "checkpoints" / "latest").is_file()

    again = _train(*TINY, "--set", f"logging.run_dir={tmp_path}", "--set", "ppo.max_steps=320", "--resume", str(run_dir))
    assert again.returncode == 0, again.stderr
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2, 3, 4] and lines[-1]["env_steps"] == 320


def test_cli_bad_key_is_one_clear_error(tmp_path):
    out = _train(*TINY, "--set", f"logging.run_dir={tmp_path}", "--set", "ppo.learnig_rate=1e-3")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "ppo.learnig_rate" in out.stderr and "ppo.learning_rate" in out.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written for a bad config"


def test_cli_help_lists_config_fields():
    out = _train("--help")
    assert out.returncode == 0
    for key in ("ppo.learning_rate", "model.hidden_size", "task.num_envs", "logging.wandb_mode"):
        assert key in out.stdout, key


def test_resume_restores_counters_model_optimizer_and_curriculum(tmp_path):
    config = cartpole_config(str(tmp_path))
    first = Trainer(config)
    for _ in range(2):
        first.iterate()
    first.save()
    first.logger.close()
    resumed = Trainer(config, resume=first.run_dir)
    assert (resumed.iteration, resumed.env_steps) == (2, first.env_steps)
    for a, b in zip(first.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    opt_a, opt_b = first.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    torch.testing.assert_close(opt_a[0]["exp_avg"], opt_b[0]["exp_avg"], atol=0, rtol=0)
    assert resumed.curriculum_state["level"].item() == first.curriculum_state["level"].item()
    assert torch.equal(resumed.generator.get_state(), first.generator.get_state())
    resumed.logger.close()


def test_max_seconds_ends_training_and_a_resume_counts_the_time_already_spent(tmp_path):
    """``ppo.max_seconds`` bounds the summed training time (the checkpoints' ``elapsed_seconds``): a run with
    no time left trains nothing, one with a sliver left finishes its iteration, and a resume starts from the
    time its checkpoint counted: refused (with how to extend it) once the limit is reached, on when raised."""
    import dataclasses
    import math

    from ktorch_sim.errors import RunFinished

    config = cartpole_config(str(tmp_path))
    config = dataclasses.replace(config, ppo=dataclasses.replace(config.ppo, max_seconds=30.0))
    spent = Trainer(config)
    spent.elapsed = 30.0
    spent.train(progress=False)
    assert spent.iteration == 0
    trainer = Trainer(config)
    trainer.elapsed = 30.0 - 1e-9  # any iteration takes longer than this
    trainer.train(progress=False)
    assert trainer.iteration == 1 and trainer.elapsed > 30.0
    with pytest.raises(RunFinished) as info:
        Trainer(config, resume=trainer.run_dir, refuse_finished=True)
    assert str(info.value) == (f"run {trainer.run_dir} already trained for ppo.max_seconds (30 s; its checkpoint "
                               f"ckpt_00000001.pt has {trainer.elapsed:.0f} s): nothing to train. To train it "
                               f"further, raise the limit: python -m ktorch_sim.train --resume {trainer.run_dir} "
                               f"--set ppo.max_seconds={math.ceil(trainer.elapsed + 30)}")
    longer = dataclasses.replace(config, ppo=dataclasses.replace(config.ppo, max_seconds=trainer.elapsed + 1e-9))
    resumed = Trainer(longer, resume=trainer.run_dir, refuse_finished=True)
    assert resumed.elapsed == trainer.elapsed
    resumed.train(progress=False)
    assert resumed.iteration == 2


def test_a_time_limit_keeps_the_cpu_step_cap_off():
    """An unlimited run on the CPU engine gets ``cpu.max_steps``; one with ``ppo.max_seconds`` is bounded already."""
    from ktorch_sim.config import load_config

    cpu = ["task.engine=mujoco", "task.name=tests.cartpole:CartpoleTask", "cpu.max_steps=16"]
    assert load_config(None, cpu, note_caps=False).ppo.max_steps == 16
    timed = load_config(None, [*cpu, "ppo.max_seconds=60"], note_caps=False)
    assert timed.ppo.max_steps == 0 and timed.ppo.max_seconds == 60.0


def test_the_update_runs_on_cpu_update_threads_and_collection_on_one(tmp_path, monkeypatch):
    """On the CPU, torch runs on one thread next to the native engine's workers, and on ``cpu.update_threads``
    during the PPO update; the setting is restored after it."""
    import dataclasses

    config = cartpole_config(str(tmp_path))
    config = dataclasses.replace(config, cpu=dataclasses.replace(config.cpu, update_threads=2))
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    trainer = Trainer(config)
    seen = {}
    update = trainer.ppo.update
    collect = trainer.collector.collect

    def counting_update(*args):
        seen["update"] = torch.get_num_threads()
        return update(*args)

    def counting_collect(*args):
        seen["collect"] = torch.get_num_threads()
        return collect(*args)

    monkeypatch.setattr(trainer.ppo, "update", counting_update)
    monkeypatch.setattr(trainer.collector, "collect", counting_collect)
    try:
        trainer.iterate()
        assert seen == {"collect": 1, "update": 2} and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "ktorch_sim.train", *TINY, "--set", f"logging.run_dir={tmp_path}",
                             "--set", "ppo.max_steps=100000000"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(tmp_path.glob("*/metrics.jsonl")):
        time.sleep(0.5)
    metrics = list(tmp_path.glob("*/metrics.jsonl"))
    assert metrics, "training never logged an iteration"
    while time.monotonic() < deadline and not metrics[0].read_text().strip():
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    run_dir = metrics[0].parent
    iterations = [json.loads(x)["iteration"] for x in metrics[0].read_text().splitlines()]
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    assert latest == f"ckpt_{iterations[-1]:08d}.pt", (latest, iterations)


def test_running_normalizer_merges_batches_exactly():
    from ktorch_sim.algorithms.normalizer import RunningNormalizer

    gen = torch.Generator().manual_seed(0)
    data = 3.0 + 2.0 * torch.randn(1000, 4, generator=gen)
    norm = RunningNormalizer(4)
    for chunk in data.split(137):
        norm.update(chunk)
    torch.testing.assert_close(norm.mean, data.mean(0), atol=1e-4, rtol=0)
    torch.testing.assert_close(norm.var, data.var(0, unbiased=False), atol=1e-3, rtol=1e-3)
    out = norm(data)
    torch.testing.assert_close(out.mean(0), torch.zeros(4), atol=1e-3, rtol=0)



def test_running_normalizer_stops_moving_at_its_limit():
    """With ``until`` the batch that reaches the limit is merged whole (the statistics equal the pooled moments
    of every row so far) and later batches leave mean, var and count as they are; a negative limit is refused."""
    from ktorch_sim.algorithms.normalizer import RunningNormalizer

    gen = torch.Generator().manual_seed(1)
    first, second, later = (5.0 * torch.randn(n, 3, generator=gen) + 2.0 for n in (6, 6, 50))
    norm = RunningNormalizer(3, until=10)
    norm.update(first)
    assert float(norm.count) < 10
    norm.update(second)  # 12 rows: crosses the limit, merged whole
    seen = torch.cat([first, second])
    torch.testing.assert_close(norm.mean, seen.mean(0), atol=1e-4, rtol=0)
    torch.testing.assert_close(norm.var, seen.var(0, unbiased=False), atol=1e-3, rtol=1e-4)
    frozen = {k: v.clone() for k, v in norm.state_dict().items()}
    norm.update(later)  # on the CPU: returns at once
    norm._merge(later, None)  # the device path (CUDA, captured graphs): computes the merge and keeps the old values
    norm._merge(later, torch.ones(50, dtype=torch.bool))
    for key, value in norm.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    unlimited = RunningNormalizer(3)
    for batch in (first, second, later):
        unlimited.update(batch)
    assert not torch.equal(unlimited.mean, norm.mean)  # without a limit the last batch moves them
    with pytest.raises(ValueError, match="until must be >= 0"):
        RunningNormalizer(3, until=-1)

LAUNCH_SCRIPT = '''
"""A task defined in the script that launches it: its class lives in module __main__."""
from dataclasses import dataclass

import ktorch_sim as ks
from tests.cartpole import CartpoleConfig, CartpoleTask


@dataclass(kw_only=True)
class ScriptConfig(CartpoleConfig):
    """The cart-pole's settings, defined in the script too."""


class ScriptCartpole(CartpoleTask):
    config_class = ScriptConfig


if __name__ == "__main__":
    run = ScriptCartpole.launch(
        ScriptConfig(num_envs=2, num_threads=1),
        ppo=ks.PPOConfig(batch_size=2, rollout_length_seconds=0.1, max_steps=10),
        model=ks.ModelConfig(hidden_size=16, depth=1, num_mixtures=2),
        logging=ks.LoggingConfig(run_dir="runs", wandb_mode="disabled"), progress=False)
    print(run)
'''


def test_a_task_launched_from_a_script_records_a_name_the_tools_can_load(tmp_path, monkeypatch):
    from ktorch_sim.checkpoint import load_checkpoint
    from ktorch_sim.playback.trained import load_trained_policy

    (tmp_path / "my_tasks").mkdir()
    (tmp_path / "my_tasks" / "walk.py").write_text(LAUNCH_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "my_tasks/walk.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr
    run = Path(tmp_path, proc.stdout.strip().splitlines()[-1])
    name = "my_tasks/walk.py:ScriptCartpole"  # not __main__:ScriptCartpole
    ckpt = load_checkpoint(sorted((run / "checkpoints").glob("ckpt_*.pt"))[-1], map_location="cpu")
    assert ckpt["config"]["task"]["name"] == name
    assert f'name = "{name}"' in (run / "config.toml").read_text()

    # what tools/play.py and tools/export.py do: rebuild the task from the run, from where it ran
    monkeypatch.chdir(tmp_path)
    policy = load_trained_policy(run, ["task.num_envs=1"])
    assert type(policy.task).__name__ == "ScriptCartpole" and type(policy.config.task).__name__ == "ScriptConfig"
    assert policy.iteration == 1


def test_cli_prints_the_cpu_cap_notes_once_training_starts_and_never_with_an_error(tmp_path, capsys):
    from ktorch_sim.train import main

    cfg = tmp_path / "c.toml"
    cfg.write_text('[task]\nname = "tests.cartpole:CartpoleTask"\nnum_envs = 64\nengine = "mujoco"\nnum_threads = 1\n')
    tiny = ["--set", "ppo.batch_size=4", "--set", "ppo.rollout_length_seconds=0.2", "--set", "model.hidden_size=16",
            "--set", "model.depth=1", "--set", "logging.wandb_mode=disabled", "--set", "cpu.max_num_envs=8",
            "--set", "cpu.max_steps=16", "--no-progress"]
    # a bad input after the caps applied: the error is still the only line
    (tmp_path / "a_file").write_text("x")
    assert main(["--cfg", str(cfg), *tiny, "--set", f"logging.run_dir={tmp_path / 'a_file' / 'runs'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot create run directory"), err

    assert main(["--cfg", str(cfg), *tiny, "--set", f"logging.run_dir={tmp_path / 'runs'}"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "note: task.num_envs 64 -> 8, capped by cpu.max_num_envs because physics runs on native MuJoCo on the CPU; "
        "override with --set task.num_envs=64 or --set cpu.max_num_envs=0",
        "note: ppo.max_steps 0 (unlimited) -> 16, capped by cpu.max_steps because physics runs on native MuJoCo on "
        "the CPU; override with --set ppo.max_steps=<steps> or --set cpu.max_steps=0 (run until stopped)",
        "note: automatic ppo.sequence_length, ppo.target_kl, ppo.normalize_observations, ppo.normalizer_steps: "
        "rollouts of 10 steps x 8 worlds, 2 minibatches of 40 transitions (4 sequences of 10 steps) per pass, "
        "10 passes; the actor's steps end at a minibatch KL above 1.5 x 0.03; inputs normalized by running "
        "statistics that move all run; set the keys to choose",
    ]


@pytest.mark.parametrize(("sets", "expected"), [
    ([], "ppo.normalize_observations, ppo.normalizer_steps: inputs normalized by running statistics held after "
         "2,000 env steps"),
    (["ppo.normalize_observations=true"], "ppo.normalizer_steps: inputs normalized by running statistics held "
                                          "after 2,000 env steps"),
    (["ppo.max_steps=0", "cpu.max_steps=0"], "ppo.normalize_observations: raw policy inputs"),  # no budget
    (["ppo.normalizer_steps=500"], "ppo.normalize_observations: inputs normalized by running statistics held "
                                   "after 500 env steps"),
    (["ppo.normalize_observations=false"], None),
])
def test_the_automatic_note_says_what_the_mlp_reads(tmp_path, sets, expected):
    """The note names the input-normalization keys left automatic and what the trainer made of them; keys that
    are set are not named, and a run with nothing automatic prints no note."""
    from ktorch_sim.config import load_config, layout_note

    cfg = tmp_path / "c.toml"
    cfg.write_text('[task]\nname = "tests.cartpole:CartpoleTask"\nnum_envs = 4\n[model]\npolicy = "mlp"\n'
                   '[ppo]\nrollout_length_seconds = 0.2\nminibatch_size = 20\nmax_steps = 20_000\n'
                   f'[logging]\nwandb_mode = "disabled"\nrun_dir = "{tmp_path / "runs"}"\n')
    config = load_config(cfg, sets, note_caps=False)
    trainer = Trainer(config)
    trainer.logger.close()
    note = layout_note(config, trainer.config)
    if expected is None:
        assert note is None
    else:
        assert note == f"note: automatic {expected}; set the keys to choose"


def test_the_summary_says_when_max_seconds_ended_the_run_short_of_max_steps(tmp_path):
    """A run that ``ppo.max_seconds`` stops before ``ppo.max_steps`` says so in its summary, with the resume that
    trains the rest; one that reaches its steps (or has no step budget) does not."""
    import dataclasses

    config = cartpole_config(str(tmp_path))
    short = dataclasses.replace(config, ppo=dataclasses.replace(config.ppo, max_seconds=30.0, max_steps=10**9))
    trainer = Trainer(short)
    trainer.elapsed = 30.0 - 1e-9  # one iteration, then out of time
    trainer.train(progress=False)
    last = trainer.summary().splitlines()[-1]
    assert last == (f"stopped by ppo.max_seconds (30 s of training) at {trainer.env_steps:,} of ppo.max_steps "
                    f"1,000,000,000 env steps; to train the rest: python -m ktorch_sim.train --resume "
                    f"{trainer.run_dir} --set ppo.max_seconds=0")
    for steps in (trainer.env_steps, 0):  # the step budget reached in the same iteration; no step budget
        done = Trainer(dataclasses.replace(config, ppo=dataclasses.replace(config.ppo, max_seconds=30.0,
                                                                           max_steps=steps)))
        done.elapsed = 30.0 - 1e-9
        done.train(progress=False)
        assert len(done.summary().splitlines()) == 2 and "max_seconds" not in done.summary()
