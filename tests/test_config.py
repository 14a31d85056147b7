"""The training config: TOML + --set overrides -> typed, validated dataclasses; one-line errors; help; round trip."""

from __future__ import annotations

import dataclasses
import math
import textwrap
import typing
from pathlib import Path

import pytest
import torch

from ktorch_sim.config import (
    SECTIONS,
    ConfigError,
    ModelConfig,
    CPUConfig,
    PPOConfig,
    TrainConfig,
    config_help,
    default_config,
    load_config,
    resolve_task,
    save_config,
    to_dict,
    validate,
)
from ktorch_sim.tasks import TASKS, KbotStandConfig, KbotStandTask, KbotWalkConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
GPU = ["task.engine=warp"]  # engine that is not native MuJoCo: task.num_envs is never capped
CPU = ["task.engine=mujoco"]  # native MuJoCo on the CPU: task.num_envs capped at cpu.max_num_envs


def write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path: Path | None, overrides: list[str] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


# --- the shipped configs ------------------------------------------------------------------------------


def test_kbot_stand_cpu_config_lets_the_actor_see_its_drift_and_brake():
    # the notebook's actor reads no base velocity; the CPU config adds it and a braking penalty (docs/training_runs.md)
    c = load_config(CONFIGS / "kbot_stand_cpu.toml", [])
    assert (c.task.actor_base_velocity, c.task.planar_velocity_penalty, c.task.max_distance_from_origin) == (
        True, 0.05, 10.0)
    notebook = load_config(CONFIGS / "kbot_stand.toml", GPU)
    assert (notebook.task.actor_base_velocity, notebook.task.planar_velocity_penalty) == (False, 0.0)


def test_kbot_stand_config_has_the_notebook_launch_settings():
    c = load_config(CONFIGS / "kbot_stand.toml", GPU)
    assert c.task_name == "kbot_stand" and type(c.task) is KbotStandConfig
    assert (c.task.num_envs, c.task.dt, c.task.ctrl_dt, c.task.iterations, c.task.ls_iterations) == (
        2048, 0.002, 0.02, 8, 8)
    assert (c.ppo.batch_size, c.ppo.num_passes, c.ppo.rollout_length_seconds) == (256, 4, 8.0)
    assert (c.model.policy, c.model.hidden_size, c.model.depth, c.model.num_mixtures) == ("gru", 128, 5, 5)
    assert c.checkpoint.save_every_seconds == 60.0
    assert c.rollout_steps == 400 and c.num_minibatches == 8


def test_kbot_walk_config_loads_with_task_defaults():
    c = load_config(CONFIGS / "kbot_walk.toml", GPU)
    assert c.task_name == "kbot_walk" and type(c.task) is KbotWalkConfig
    assert c.task.num_envs == 4096 and c.task.num_envs % c.ppo.batch_size == 0
    # physics and sim2real come from KbotWalkConfig's defaults (not repeated in the file)
    assert c.task.dt == KbotWalkConfig().dt == 0.004
    assert c.task.action_latency_range == (0.003, 0.01)
    assert c.rollout_steps == 100


@pytest.mark.parametrize("name", ["kbot_stand.toml", "kbot_walk.toml"])
def test_shipped_configs_are_capped_on_the_cpu_engine(name):
    assert load_config(CONFIGS / name, CPU).task.num_envs == 32
    # a --set num_envs is what the user asked for: never capped
    assert load_config(CONFIGS / name, [*CPU, "task.num_envs=64"]).task.num_envs == 64
    assert load_config(CONFIGS / name, [*CPU, "cpu.max_num_envs=0"]).task.num_envs > 1000
    # batch_size larger than the capped num_envs: one minibatch of all of them, still valid
    c = load_config(CONFIGS / name, CPU)
    assert c.ppo.minibatch_transitions(c.task.num_envs, c.rollout_steps) == 32 * c.rollout_steps
    assert c.num_minibatches == 1


def test_cpu_caps_say_so_on_stderr_with_key_values_and_override(capsys):
    shipped = load_config(CONFIGS / "kbot_walk.toml", GPU)
    c = load_config(CONFIGS / "kbot_walk.toml", CPU)
    assert (c.task.num_envs, c.ppo.max_steps) == (32, 16000) and shipped.ppo.max_steps == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"note: task.num_envs {shipped.task.num_envs} -> 32, capped by cpu.max_num_envs because physics runs on "
        f"native MuJoCo on the CPU; override with --set task.num_envs={shipped.task.num_envs} or "
        "--set cpu.max_num_envs=0",
        "note: ppo.max_steps 0 (unlimited) -> 16000, capped by cpu.max_steps because physics runs on native "
        "MuJoCo on the CPU; override with --set ppo.max_steps=<steps> or --set cpu.max_steps=0 (run until stopped)",
    ]
    # nothing capped, nothing said: values given with --set, caps off, or not the CPU engine
    load_config(CONFIGS / "kbot_walk.toml", [*CPU, "task.num_envs=64", "ppo.max_steps=1000"])
    load_config(CONFIGS / "kbot_walk.toml", [*CPU, "cpu.max_num_envs=0", "cpu.max_steps=0"])
    load_config(CONFIGS / "kbot_walk.toml", GPU)
    assert capsys.readouterr().err == ""
    # a config that fails validation says only its error
    with pytest.raises(ConfigError, match="ppo.batch_size"):
        load_config(CONFIGS / "kbot_walk.toml", [*CPU, "ppo.batch_size=0"])
    assert capsys.readouterr().err == ""


def test_no_file_gives_the_default_task_defaults():
    c = load_config(None)
    # without a GPU the engine resolves to native MuJoCo: the run gets cpu.max_steps instead of "forever"
    on_cpu = not torch.cuda.is_available()
    assert c.ppo.max_steps == (CPUConfig().max_steps if on_cpu else 0)
    c = dataclasses.replace(c, ppo=dataclasses.replace(c.ppo, max_steps=0))
    assert c == default_config() == TrainConfig()
    assert c.task_name == "kbot_walk" and c.task == KbotWalkConfig()
    assert c.ppo == PPOConfig() and c.ppo.kl_coef == 0.0 and c.ppo.grad_clip == 0.5
    assert c.model.mlp_hidden == (64, 64) and c.model.activation == "tanh"
    assert (c.ppo.rollout_length_seconds, c.ppo.sequence_length, c.ppo.batch_size, c.ppo.minibatch_size) == (
        None, None, None, 0)


def test_automatic_batching_is_sb3s_layout_small_and_rsl_rls_rollout_large():
    """Unset rollout, minibatch and sequence lengths: 2048 transitions per rollout in 32 minibatches of at least
    64 (SB3), at least 24 steps per world (rsl_rl), and 16-step sequences or the largest divisor below."""
    p = PPOConfig()
    assert [p.rollout_steps(0.02, n) for n in (1, 8, 16, 100, 4096)] == [2048, 256, 128, 24, 24]
    assert p.minibatch_transitions(8, 256) == 64 and p.minibatch_transitions(4096, 24) == 4096 * 24 // 32
    assert p.minibatch_transitions(2, 24) == 64  # never below 64, even for a small rollout
    assert p.layout(8, 256, recurrent=False) == (1, 64) and p.layout(8, 256, recurrent=True) == (16, 4)
    assert p.num_minibatches(8, 256, recurrent=False) == 32 == p.num_minibatches(8, 256, recurrent=True)
    assert [p.sequence_steps(n) for n in (2048, 24, 100, 101, 7)] == [16, 12, 10, 1, 7]
    # what is set wins: seconds, transitions, ksim's worlds per minibatch, the whole rollout
    q = PPOConfig(rollout_length_seconds=1.0, batch_size=4, sequence_length=0)
    assert q.rollout_steps(0.02, 4096) == 50 and q.minibatch_transitions(16, 50) == 200 and q.sequence_steps(50) == 50
    assert dataclasses.replace(q, minibatch_size=100).minibatch_transitions(16, 50) == 100
    # the rollout follows the (CPU-capped) number of worlds; a set sequence length that does not divide it is refused
    assert load_config(None, [*GPU, "task.num_envs=64"]).rollout_steps == 32
    with pytest.raises(ConfigError, match="ppo.sequence_length.*must divide the rollout's 32 steps"):
        load_config(None, [*GPU, "task.num_envs=64", "ppo.sequence_length=24"])


def test_the_automatic_layout_is_printed_and_set_keys_silence_it():
    from ktorch_sim.config import layout_note

    note = layout_note(load_config(None, [*GPU, "task.num_envs=8"]))
    assert note == ("note: automatic ppo.rollout_length_seconds, ppo.minibatch_size, ppo.sequence_length, "
                    "ppo.target_kl: rollouts of 256 steps x 8 worlds, 32 minibatches of 64 transitions (4 sequences "
                    "of 16 steps) per pass, 10 passes; the actor's steps end at a minibatch KL above 1.5 x 0.03; set "
                    "the keys to choose")
    kl_only = layout_note(load_config(None, [*GPU, "task.num_envs=8", "ppo.rollout_length_seconds=5.12",
                                             "ppo.minibatch_size=64", "ppo.sequence_length=16",
                                             "ppo.target_kl_stops=update"]))
    assert kl_only == ("note: automatic ppo.target_kl: the update ends at a minibatch KL above 1.5 x 0.03; set the "
                       "keys to choose")
    mlp = layout_note(load_config(None, [*GPU, "task.num_envs=8", "model.policy=mlp", "ppo.minibatch_size=128"]))
    assert mlp.startswith("note: automatic ppo.rollout_length_seconds: rollouts of 256 steps x 8 worlds, "
                          "16 minibatches of 128 transitions per pass")
    assert layout_note(load_config(CONFIGS / "kbot_walk.toml", GPU)) is None


def test_automatic_input_normalization_is_on_for_the_gru_only():
    from ktorch_sim.ppo_task import normalizes_inputs
    from tests.cartpole import CartpoleTask

    class OwnInputs(CartpoleTask):  # feeds its networks itself: no place for the normalizers
        def actor_inputs(self, observations, commands):
            return super().actor_features(observations, commands)

    task, own = CartpoleTask.__new__(CartpoleTask), OwnInputs.__new__(OwnInputs)
    gru, mlp = ModelConfig(), ModelConfig(policy="mlp")
    assert normalizes_inputs(task, gru, None) and not normalizes_inputs(task, mlp, None)
    assert not normalizes_inputs(task, gru, False) and normalizes_inputs(task, mlp, True)
    assert not normalizes_inputs(own, gru, None) and not normalizes_inputs(own, gru, False)
    with pytest.raises(ConfigError, match="ppo.normalize_observations: is true, but OwnInputs overrides actor_inputs"):
        normalizes_inputs(own, mlp, True)


# --- overrides -------------------------------------------------------------------------------------------


def test_overrides_of_scalars_tuples_optionals_and_bools():
    c = load_config(None, [*GPU, "task.num_envs=64", "ppo.learning_rate=1e-3", "ppo.reward_clip=10",
                           "task.action_latency_range=[0, 0.01]", "task.actuator_update_dt=0.005",
                           "ppo.adaptive_kl=true", "ppo.kl_coef=1e-3", "ppo.batch_size=16", "model.mlp_hidden=[64, 32]",
                           "logging.wandb_mode=disabled", 'logging.wandb_project="proj x"', "logging.run_name=2024",
                           "task.device=cpu"])
    assert c.task.num_envs == 64 and c.ppo.learning_rate == 1e-3
    assert c.ppo.reward_clip == 10.0 and type(c.ppo.reward_clip) is float  # an int is accepted for a float
    assert c.task.action_latency_range == (0.0, 0.01) and type(c.task.action_latency_range) is tuple
    assert all(type(v) is float for v in c.task.action_latency_range)
    assert c.task.actuator_update_dt == 0.005 and c.ppo.adaptive_kl is True
    assert c.model.mlp_hidden == (64, 32)
    assert c.logging.wandb_mode == "disabled" and c.logging.wandb_project == "proj x"
    assert c.logging.run_name == "2024"  # a str field takes the raw text when the literal is another type
    assert c.task.device == "cpu"


@pytest.mark.parametrize("text", ["none", "None"])
def test_none_sets_an_optional_to_none(tmp_path, text):
    path = write(tmp_path, """
        [task]
        actuator_update_dt = 0.01
        [ppo]
        reward_clip = 5.0
    """)
    assert load_config(path).task.actuator_update_dt == 0.01
    c = load_config(path, [f"task.actuator_update_dt={text}", f"ppo.reward_clip={text}"])
    assert c.task.actuator_update_dt is None and c.ppo.reward_clip is None


def test_override_beats_file_and_later_override_wins(tmp_path):
    path = write(tmp_path, """
        [ppo]
        gamma = 0.9
        lam = 0.8
    """)
    c = load_config(path, ["ppo.gamma=0.97", "ppo.gamma=0.98"])
    assert (c.ppo.gamma, c.ppo.lam) == (0.98, 0.8)


def test_task_name_shorthands(tmp_path):
    assert type(load_config(write(tmp_path, 'task = "kbot_stand"')).task) is KbotStandConfig
    assert type(load_config(None, ["task=kbot_stand"]).task) is KbotStandConfig
    c = load_config(CONFIGS / "kbot_walk.toml", [*GPU, "task.name=kbot_stand"])
    assert c.task_name == "kbot_stand" and type(c.task) is KbotStandConfig and c.task.num_envs == 4096


def test_loads_are_fresh_and_never_mutate_defaults():
    a = load_config(None, ["model.mlp_hidden=[8]", "ppo.learning_rate=1e-2", "task.num_envs=8"])
    b = load_config(None)
    assert (a.model.mlp_hidden, a.ppo.learning_rate, a.task.num_envs) == ((8,), 1e-2, 8)
    assert (b.model.mlp_hidden, b.ppo.learning_rate, b.task.num_envs) == ((64, 64), 3e-4, 16)
    assert PPOConfig().learning_rate == 3e-4 and KbotWalkConfig().num_envs == 16
    assert ModelConfig().mlp_hidden == (64, 64)
    a.ppo.gamma = 0.5  # mutating one loaded config does not reach another
    assert b.ppo.gamma == 0.99 and load_config(None).ppo.gamma == 0.99
    assert a.task is not b.task and a.logging is not b.logging


# --- errors: one line with the source, the key, the problem and what is allowed ---------------------------------


@pytest.mark.parametrize(("overrides", "expected"), [
    (["ppo.learnig_rate=1e-3"], "--set ppo.learnig_rate: unknown key; did you mean ppo.learning_rate?"),
    (["task.num_env=8"], "--set task.num_env: unknown key; did you mean task.num_envs?"),
    (["ppo.num_envs=8"], "--set ppo.num_envs: unknown key; did you mean task.num_envs?"),
    (["pop.gamma=0.9"], "--set pop: unknown section; did you mean [ppo]?"),
    (["ppo.batch_size=abc"], '--set ppo.batch_size: expected int | None, got "abc"'),
    (["task.num_envs=2.5"], "--set task.num_envs: expected int, got 2.5"),
    (["ppo.adaptive_kl=1"], "--set ppo.adaptive_kl: expected bool (true or false), got 1"),
    (["ppo.learning_rate=fast"], '--set ppo.learning_rate: expected float, got "fast"'),
    (["task.action_latency_range=[0.01]"],
     "--set task.action_latency_range: expected tuple[float, float] (an array of 2), got [0.01]"),
    (["task.action_latency_range=0.01"],
     "--set task.action_latency_range: expected tuple[float, float] (a TOML array)"),
    (["model.mlp_hidden=[64, 1.5]"], "--set model.mlp_hidden: expected tuple[int, ...], got [64, 1.5]"),
    (["ppo.reward_clip=big"], '--set ppo.reward_clip: expected float | None, got "big"'),
    (["logging.wandb_mode=onlin"],
     '--set logging.wandb_mode: expected one of "auto", "online", "offline", "disabled", got "onlin"; '
     'did you mean "online"?'),
    (["ppo.lr_schedule=cosin"], 'did you mean "cosine"?'),
    (["ppo.normalizer_update=steps"], '--set ppo.normalizer_update: expected one of "auto", "rollout", "step", got "steps"'),
    (["ppo.grad_clip_scope=actor"],
     '--set ppo.grad_clip_scope: expected one of "auto", "global", "per_network", got "actor"'),
    (["task.engine=wrap"],
     '--set task.engine: expected one of "auto", "mujoco", "warp", got "wrap"; did you mean "warp"?'),
    (["task.integrator=rk5"], "--set task.integrator: expected one of"),
    (["task.device=gpu"], '--set task.device: expected auto, cpu or cuda[:k], got "gpu"'),
    (["task.name=kbot_wlak"], '--set task.name: unknown task "kbot_wlak"; did you mean kbot_walk? '
                              "registered tasks: g1_velocity, kbot_amp, kbot_stand, kbot_walk, kbot_walk_rough"),
    (["task.name=no_such_module_xyz:Task"], '--set task.name: cannot import module "no_such_module_xyz"'),
    (["task.name=ktorch_sim.tasks:TASKS"],
     '--set task.name: module ktorch_sim.tasks is not an RLTask subclass: "TASKS"'),
    (["task.name=ktorch_sim.tasks:Nope"], '--set task.name: module ktorch_sim.tasks has no attribute "Nope"'),
    (["task.num_envs=2048", "ppo.batch_size=300"],
     "--set ppo.batch_size: must divide task.num_envs (2048), got 300 (e.g. use 256)"),
    (["task.num_envs=48", "ppo.batch_size=20"],
     "--set ppo.batch_size: must divide task.num_envs (48), got 20 (e.g. use 16)"),
    (["task.num_envs=0"], "--set task.num_envs: must be >= 1, got 0"),
    (["ppo.batch_size=0"], "--set ppo.batch_size: must be >= 1 or none (ppo.minibatch_size decides), got 0"),
    (["task.ctrl_dt=0.021"], "--set task.ctrl_dt: must be a whole multiple of task.dt (0.004), got 0.021"),
    (["task.ctrl_dt=0.002"], "--set task.ctrl_dt: must be a whole multiple of task.dt"),
    (["ppo.gamma=0"], "--set ppo.gamma: must be in (0, 1], got 0.0"),
    (["ppo.lam=1.5"], "--set ppo.lam: must be in (0, 1], got 1.5"),
    (["ppo.clip_param=0"], "--set ppo.clip_param: must be > 0, got 0.0"),
    (["ppo.learning_rate=-1e-3"], "--set ppo.learning_rate: must be > 0, got -0.001"),
    (["ppo.rollout_length_seconds=0.01"], "--set ppo.rollout_length_seconds: must be >= task.ctrl_dt (0.02) or none (automatic), got 0.01"),
    (["ppo.lr_schedule=cosine"], '--set ppo.lr_schedule: "cosine" decays over ppo.max_steps, which must then be > 0'),
    (["ppo.lr_schedule=linear"], '--set ppo.lr_schedule: "linear" decays over ppo.max_steps, which must then be > 0'),
    (["ppo.advantage_normalization_scope=batch"], "ppo.advantage_normalization_scope"),
    (["model.init=xavier"], "model.init"),
    (["model.critic=gru"], "model.critic"),
    (["ppo.target_kl=-0.1"], "--set ppo.target_kl: must be >= 0 (0: never stop) or none (automatic), got -0.1"),
    (["ppo.max_seconds=-60"], "--set ppo.max_seconds: must be >= 0, got -60.0"),
    (["ppo.max_seconds=nan"], "--set ppo.max_seconds: must be a number, got nan"),
    (["cpu.update_threads=-1"], "--set cpu.update_threads: must be >= 0 (0: one per core), got -1"),
    (["ppo.target_kl_window=0"],
     "--set ppo.target_kl_window: must be >= 1 (the number of minibatch KLs averaged), got 0"),
    (["ppo.normalizer_steps=-5"],
     "--set ppo.normalizer_steps: must be >= 0 (0: never stop) or none (automatic), got -5"),
    (["model.history=0"], "--set model.history: must be >= 1, got 0"),
    (["model.history=4"], '--set model.history: is an input window for the mlp policy (a gru carries its own memory); '
                          'got 4 with model.policy = "gru": set model.history = 1 or model.policy = "mlp"'),
    (["ppo.adaptive_kl=true", "ppo.kl_coef=0"], "--set ppo.kl_coef: must be > 0 when ppo.adaptive_kl is true"),
    (["task.action_latency_range=[0.02, 0.01]"], "--set task.action_latency_range: must satisfy 0 <= min <= max"),
    (["task.drop_action_prob=1"], "--set task.drop_action_prob: must be in [0, 1), got 1.0"),
    (["model.min_std=0.5", "model.max_std=0.1"], "model.max_std: must be >= model.min_std (0.5), got 0.1"),
    (["model.mlp_hidden=[]"], "--set model.mlp_hidden: must be a non-empty array of sizes >= 1, got []"),
    (["logging.run_name=../escape"], '--set logging.run_name: must be a plain directory name'),
    (["checkpoint.keep_last=0"], "--set checkpoint.keep_last: must be >= 1, got 0"),
    (["ppo.learning_rate"], '--set: expected section.key=value (e.g. ppo.learning_rate=1e-3), got "ppo.learning_rate"'),
    (["ppo.a.b=1"], "--set ppo.a.b: expected section.key=value with one dot in the key"),
    (["gamma=0.9"], "--set gamma: expected section.key=value with one dot in the key; did you mean ppo.gamma?"),
    (["seed=1"], "--set seed: expected section.key=value with one dot in the key; did you mean task.seed?"),
])
def test_override_errors_name_key_and_what_is_allowed(overrides, expected):
    message = error_of(None, [*GPU, *overrides])
    assert expected in message, message


@pytest.mark.parametrize(("text", "expected"), [
    ("[ppo]\nlearnig_rate = 1e-3\n", "x.toml: ppo.learnig_rate: unknown key; did you mean ppo.learning_rate?"),
    ("[pop]\ngamma = 0.9\n", "x.toml: pop: unknown section; did you mean [ppo]?"),
    ("seed = 3\n", "x.toml: seed: unknown key; did you mean task.seed?"),
    ("ppo = 3\n", "x.toml: ppo: expected a table [ppo], got 3"),
    ("[task]\nname = 7\n", "x.toml: task.name: expected str, got 7"),
    ("[task]\nname = \"walker\"\n",
     'x.toml: task.name: unknown task "walker"; registered tasks: g1_velocity, kbot_amp, kbot_stand, kbot_walk, kbot_walk_rough'),
    ("[ppo]\nbatch_size = \"abc\"\n", 'x.toml: ppo.batch_size: expected int | None, got "abc"'),
    ("[ppo]\nnormalize_advantages = 0\n", "x.toml: ppo.normalize_advantages: expected bool (true or false), got 0"),
    ("[model]\nhead_hidden = [64, 0]\n", "x.toml: model.head_hidden: must be an array of sizes >= 1, got [64, 0]"),
    ("[task]\nnum_envs = 2048\nengine = \"warp\"\n[ppo]\nbatch_size = 300\n",
     "x.toml: ppo.batch_size: must divide task.num_envs (2048), got 300 (e.g. use 256)"),
    ("[ppo]\ngamma = 0.9\n[ppo]\nlam = 0.9\n", "x.toml: invalid TOML: Cannot declare ('ppo',) twice (at line 3"),
    ("[ppo\ngamma = 0.9\n", "x.toml: invalid TOML:"),
    ("[ppo]\ngamma = \n", "(at line 2, column"),
])
def test_file_errors_name_file_key_and_what_is_allowed(tmp_path, text, expected):
    message = error_of(write(tmp_path, text))
    assert expected in message, message


def test_missing_file_and_directory(tmp_path):
    assert error_of(tmp_path / "nope.toml") == (f"{tmp_path / 'nope.toml'}: no such file; expected a TOML config "
                                                "file (e.g. configs/kbot_walk.toml)")
    assert error_of(tmp_path).endswith(": is a directory, not a TOML file")


def test_error_names_the_source_of_the_bad_value(tmp_path):
    path = write(tmp_path, "[task]\nnum_envs = 2048\nengine = \"warp\"\n[ppo]\nbatch_size = 300\n")
    assert error_of(path, ["ppo.batch_size=abc"]).startswith("--set ppo.batch_size:")
    assert error_of(path, ["ppo.gamma=0.5"]).startswith(f"{path}: ppo.batch_size:")


def test_config_error_is_a_value_error_with_its_parts():
    with pytest.raises(ValueError) as info:
        load_config(None, ["ppo.gama=0.9"])
    e = info.value
    assert isinstance(e, ConfigError) and (e.source, e.key) == ("--set", "ppo.gama")
    assert e.problem == "unknown key; did you mean ppo.gamma?"


def test_validate_checks_configs_built_in_code():
    c = load_config(None, GPU)
    validate(c)
    bad = dataclasses.replace(c, ppo=dataclasses.replace(c.ppo, batch_size=3))
    with pytest.raises(ConfigError, match=r"^ppo.batch_size: must divide task.num_envs \(16\), got 3 \(e.g. use 2\)$"):
        validate(bad)
    with pytest.raises(ConfigError, match="task kbot_stand needs a KbotStandConfig, got KbotWalkConfig"):
        validate(dataclasses.replace(c, task_name="kbot_stand"))


# --- tasks from import paths -------------------------------------------------------------------------------


TASK_MODULE = '''
from dataclasses import dataclass
from ktorch_sim.config import config_field
from ktorch_sim.task import RLConfig, RLTask


@dataclass(kw_only=True)
class MyConfig(RLConfig):
    """My task's settings."""

    stride: float = config_field(0.3, "Stride length, m.")
    style: str = config_field("trot", "Gait style.", choices=("trot", "pace"))

    def __post_init__(self):
        if self.stride > 1.0:
            raise ValueError("stride must be <= 1 m")


class ByBase(RLTask[MyConfig]):
    pass


class ByAttribute(RLTask):
    config_class = MyConfig


class ByInit(RLTask):
    def __init__(self, config: MyConfig) -> None:
        super().__init__(config)


class NoConfig(RLTask):
    pass
'''


@pytest.fixture
def task_module(tmp_path, monkeypatch):
    (tmp_path / "my_tasks_for_config_test.py").write_text(TASK_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_tasks_for_config_test"


@pytest.mark.parametrize("cls", ["ByBase", "ByAttribute", "ByInit"])
def test_resolve_task_import_path_finds_the_config_class(task_module, cls):
    task_cls, config_cls = resolve_task(f"{task_module}:{cls}")
    assert task_cls.__name__ == cls and config_cls.__name__ == "MyConfig"


def test_import_path_task_config_is_typed_and_checked(task_module, tmp_path):
    path = write(tmp_path, f"""
        [task]
        name = "{task_module}:ByBase"
        stride = 0.5
        num_envs = 8
    """)
    c = load_config(path, ["task.style=pace"])
    assert type(c.task).__name__ == "MyConfig" and (c.task.stride, c.task.style, c.task.num_envs) == (0.5, "pace", 8)
    assert error_of(path, ["task.style=trt"]) == (
        '--set task.style: expected one of "trot", "pace", got "trt"; did you mean "trot"?')
    assert error_of(path, ["task.strid=0.2"]).endswith("unknown key; did you mean task.stride?")
    # the class's own __post_init__ check becomes a ConfigError on the section
    assert error_of(path, ["task.stride=2"]) == "--set task: stride must be <= 1 m"
    assert "cannot find the config class" in error_of(None, [f"task.name={task_module}:NoConfig"])
    assert "task.stride: float = 0.3" in config_help(f"{task_module}:ByBase")


def test_a_task_file_path_resolves_relative_to_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "helper_for_config_test.py").write_text("STRIDE = 0.4\n")
    script = TASK_MODULE.replace("from ktorch_sim", "from helper_for_config_test import STRIDE\nfrom ktorch_sim")
    script += '\nif __name__ == "__main__":\n    raise SystemExit("the launch block must not run")\n'
    (tmp_path / "scripts" / "train_it.py").write_text(script)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))  # the loader adds scripts/ for its neighbours
    task_cls, config_cls = resolve_task("scripts/train_it.py:ByAttribute")
    assert task_cls.__name__ == "ByAttribute" and config_cls.__name__ == "MyConfig"
    # the same file is loaded once: an absolute path gives the very same class
    assert resolve_task(f"{tmp_path}/scripts/train_it.py:ByAttribute")[0] is task_cls
    assert load_config(None, ["task.name=scripts/train_it.py:ByBase", "task.stride=0.5"]).task.stride == 0.5
    assert error_of(None, ["task.name=scripts/nowhere.py:ByBase"]).startswith(
        '--set task.name: task file "scripts/nowhere.py" of task "scripts/nowhere.py:ByBase" does not exist')


def test_a_task_module_is_found_from_the_current_directory(tmp_path, monkeypatch):
    # python tools/play.py puts tools/ on sys.path, not the directory it runs from
    (tmp_path / "cwd_tasks_for_config_test.py").write_text(TASK_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", str(tmp_path))])
    assert resolve_task("cwd_tasks_for_config_test:ByBase")[0].__name__ == "ByBase"


def test_importable_task_name_of_script_notebook_and_local_classes(tmp_path, monkeypatch):
    import sys
    import types

    from ktorch_sim.config import importable_task_name
    from ktorch_sim.training.launch import recorded_task_name as _recorded_task_name
    from tests.cartpole import CartpoleTask

    assert importable_task_name(CartpoleTask) == "tests.cartpole:CartpoleTask"
    in_main = type("MyTask", (CartpoleTask,), {"__module__": "__main__"})
    script = types.ModuleType("__main__")
    script.__file__ = str(tmp_path / "my_tasks" / "walk.py")
    monkeypatch.setitem(sys.modules, "__main__", script)
    monkeypatch.chdir(tmp_path)
    assert importable_task_name(in_main) == "my_tasks/walk.py:MyTask"  # python my_tasks/walk.py
    monkeypatch.chdir(tmp_path.parent)
    assert importable_task_name(in_main) == f"{tmp_path.name}/my_tasks/walk.py:MyTask"
    script.__spec__ = types.SimpleNamespace(name="my_tasks.walk")  # python -m my_tasks.walk
    assert importable_task_name(in_main) == "my_tasks.walk:MyTask"

    notebook = types.ModuleType("__main__")  # no __file__: a notebook or the REPL
    monkeypatch.setitem(sys.modules, "__main__", notebook)
    assert importable_task_name(in_main) is None
    with pytest.warns(UserWarning, match=r"records task.name='__main__:MyTask'; tools/play.py, tools/export.py "
                                         r"and tools/render.py will need --set task.name=path/to/file.py:MyTask"):
        assert _recorded_task_name(in_main) == "__main__:MyTask"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: the second launch in the same process is quiet
        assert _recorded_task_name(in_main) == "__main__:MyTask"

    def make_local():
        class Local(CartpoleTask):
            pass
        return Local

    assert importable_task_name(make_local()) is None


def test_registered_tasks_resolve_to_their_classes():
    for name, (task_cls, config_cls) in TASKS.items():
        assert resolve_task(name) == (task_cls, config_cls)
    assert resolve_task("kbot_stand") == (KbotStandTask, KbotStandConfig)


# --- help -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["kbot_walk", "kbot_stand"])
def test_help_lists_every_field_with_type_default_and_help(task):
    text = config_help(task)
    config = default_config(task)
    assert f'  task.name: str = "{task}"' in text and "Registered: g1_velocity, kbot_amp, kbot_stand, kbot_walk, kbot_walk_rough." in text
    for section in SECTIONS:
        obj = getattr(config, section)
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            line = next((ln for ln in text.splitlines() if ln.startswith(f"  {section}.{f.name}: ")), None)
            assert line is not None, f"{section}.{f.name} missing from help"
            default = getattr(obj, f.name)
            shown = "none" if default is None else str(default).lower() if isinstance(default, bool) else None
            if shown is None and isinstance(default, float):
                shown = repr(default)
            if shown is not None:
                assert line.endswith(f"= {shown}"), line
            if f.metadata.get("choices") is None:
                assert typing.get_origin(hints[f.name]) is not None or hints[f.name].__name__ in line, line
            help_line = text.splitlines()[text.splitlines().index(line) + 1]
            assert help_line.strip() == f.metadata["help"], (line, help_line)
    assert '  logging.wandb_mode: "auto" | "online" | "offline" | "disabled" = "auto"' in text
    assert "  task.action_latency_range: tuple[float, float] = [" in text
    assert "  ppo.reward_clip: float | None = none" in text


def test_help_of_a_loaded_config_shows_its_values():
    text = config_help(load_config(CONFIGS / "kbot_walk.toml", GPU))
    assert "  ppo.learning_rate: float = 0.0005" in text and "  task.num_envs: int = 4096" in text


# --- dict and TOML round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "overrides"), [
    ("kbot_stand.toml", [*GPU]),
    ("kbot_walk.toml", [*CPU, "task.actuator_update_dt=0.004", "ppo.reward_clip=none",
                        'logging.run_name="walk \\"quoted\\" \\u00e9"', "logging.wandb_entity=me",
                        "ppo.max_steps=1000000", "ppo.lr_schedule=cosine", "model.mlp_hidden=[64]",
                        "task.action_latency_range=[0.001, 0.0123456789]", "ppo.learning_rate=1e-5"]),
])
def test_save_then_load_gives_an_equal_config(tmp_path, name, overrides):
    c = load_config(CONFIGS / name, overrides)
    path = save_config(c, tmp_path / "run" / "config.toml")
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temp files left
    again = load_config(path)
    assert again == c and type(again.task) is type(c.task)
    assert save_config(again, tmp_path / "again.toml").read_text() == path.read_text()


def test_to_dict_is_plain_toml_shaped_data():
    c = load_config(None, [*GPU, "task.actuator_update_dt=0.01"])
    d = to_dict(c)
    assert list(d) == list(SECTIONS)
    assert d["task"]["name"] == "kbot_walk" and d["task"]["num_envs"] == 16
    assert d["task"]["action_latency_range"] == [0.003, 0.01] and d["model"]["mlp_hidden"] == [64, 64]
    assert d["ppo"]["reward_clip"] is None and d["task"]["actuator_update_dt"] == 0.01
    assert d["ppo"]["learning_rate"] == 3e-4 and math.isclose(d["task"]["zero_offset_mag"], math.radians(3))

