"""The table-driven bad-input catalogue (docs/bad_inputs.md), run in-process through ``ktorch_sim.train.main``.

Generated, not listed: for every field of every config section (the dataclass fields of PPOConfig,
ModelConfig, LoggingConfig, CheckpointConfig, CPUConfig and of the config class of every registered
task and of a user task), bad values of the wrong type, non-finite ones (floats) and out-of-range
ones (negative; 2**64 for ints) must each give exactly one ``error: ...`` line on stderr naming the
key, exit status 2, and write nothing. A field added later is covered without editing this file;
a field that legitimately takes such a value goes into ``ACCEPTED`` with the reason.

Then the cases that are not one field: config errors come before the heavy imports (a subprocess
checks that torch, MuJoCo, tensordict and Warp were not imported), malformed task names, user task
modules that fail to import, a task that is not a PPOTask, memory bounds, and resume messages
(``checkpoints`` that is a file, a deleted ``config.toml``, a run that already reached max_steps).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

import ktorch_sim.train as train
from ktorch_sim import config as C

REPO = Path(__file__).resolve().parents[1]
USER_TASK = "tests.cartpole:CartpoleTask"
TASKS = ("kbot_walk", "kbot_stand", "kbot_amp", "kbot_walk_rough", "g1_velocity", USER_TASK)
TINY = ["task.name=tests.cartpole:CartpoleTask", "task.num_envs=8", "ppo.batch_size=4",
        "ppo.rollout_length_seconds=0.2", "model.hidden_size=16", "model.depth=1", "logging.wandb_mode=disabled",
        "ppo.max_steps=16"]
INT_TOO_BIG = str(2**64)

# (task, dotted key, value) that are accepted on purpose, with the reason.
ACCEPTED: dict[tuple[str, str, str], str] = {
    # A user task's own fields have only the generic checks (type, finiteness, 64-bit ints); their
    # ranges are the task's RLConfig.check_values hook, which the test task does not define.
    (USER_TASK, "task.episode_length_seconds", "-1.0"): "user field without check_values",
    (USER_TASK, "task.episode_length_seconds", "-1"): "user field without check_values",
}


def _sets(*overrides: str) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def _kind(tp: Any) -> str:
    """"int", "float", "bool", "str", "float?" (float | None), "floats" (tuple of floats), "ints"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        inner = [a for a in args if a is not type(None)]
        return _kind(inner[0]) + "?" if len(inner) == 1 else "other"
    if origin is tuple:
        return "ints" if args and args[0] is int else "floats"
    return getattr(tp, "__name__", "other")


def _bad_values(kind: str, choices: tuple | None) -> list[tuple[str, str]]:
    """(how, TOML value) pairs that a field of ``kind`` must refuse; "file:" values go through a TOML file."""
    base = kind.rstrip("?")
    if base == "int":
        return [("type", '"abc"'), ("type", "1.5"), ("type", "true"), ("type", "[1]"), ("range", "-1"),
                ("range", INT_TOO_BIG)]
    if base == "float":
        return [("type", '"abc"'), ("type", "true"), ("type", "[1.0]"), ("nonfinite", "inf"), ("nonfinite", "-inf"),
                ("nonfinite", "nan"), ("nonfinite", "1e400"), ("range", "-1.0"), ("range", "-1")]
    if base == "bool":
        return [("type", "1"), ("type", '"abc"'), ("type", "[true]")]
    if base == "str":
        bad = [("type", "file:1"), ("type", "file:[1, 2]"), ("type", "file:true")]
        return bad + ([("choice", "bogus_choice")] if choices else [])
    if base == "floats":
        return [("type", '"abc"'), ("type", "[1.0]"), ("type", '["a", "b"]'), ("nonfinite", "[0.0, nan]"),
                ("nonfinite", "[1e400, 0.0]"), ("range", "[-1.0, 0.0]")]
    if base == "ints":
        return [("type", '"abc"'), ("type", "[1.5]"), ("range", "[-1]"), ("range", f"[{INT_TOO_BIG}]")]
    raise AssertionError(f"no bad values for a field of kind {kind}: add them here")


def _field_cases() -> list[Any]:
    """Every (task, key, how, value) of the table: each field of each section, for each task's config class."""
    cases = []
    sections = [("task", C.resolve_task_config(t), t) for t in TASKS]
    sections += [(name, cls, "kbot_walk") for name, cls in C.loader._FIXED_SECTIONS.items()]
    for section, cls, task in sections:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            key = f"{section}.{f.name}"
            for how, value in _bad_values(_kind(hints[f.name]), f.metadata.get("choices")):
                if (task, key, value) not in ACCEPTED:
                    cases.append(pytest.param(task, key, how, value, id=f"{task.split(':')[-1]}-{key}-{how}-{value}"))
    return cases


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """A config that passes every check would start training: fail the test instead."""
    import ktorch_sim.training.trainer

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the config was accepted")

    monkeypatch.setattr(ktorch_sim.training.trainer, "Trainer", refuse)


def _main(args: list[str], capsys: pytest.CaptureFixture, tmp: Path, run_dir: bool = True
          ) -> tuple[int, list[str], str]:
    code = train.main(["--no-progress", *(_sets(f"logging.run_dir={tmp / 'runs'}") if run_dir else []), *args])
    out, err = capsys.readouterr()
    return code, err.strip().splitlines(), out


@pytest.mark.parametrize(("task", "key", "how", "value"), _field_cases())
def test_every_field_refuses_bad_values_in_one_line(task: str, key: str, how: str, value: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture, no_training: None) -> None:
    section, name = key.split(".")
    if value.startswith("file:"):  # a str field takes any --set text as a string: wrong types come from TOML
        toml = tmp_path / "c.toml"
        toml.write_text(f'[task]\nname = "{task}"\n\n' + (f"[{section}]\n" if section != "task" else "")
                        + f"{name} = {value.removeprefix('file:')}\n")
        args = ["--cfg", str(toml)]
    else:
        args = _sets(f"task.name={task}", f"{key}={value}")
    code, lines, out = _main(args, capsys, tmp_path, run_dir=key != "logging.run_dir")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert key in lines[0], lines[0]
    assert out == "" and not (tmp_path / "runs").exists()


def test_the_table_covers_every_section_and_kind() -> None:
    """The generated table is not empty for any section, and includes each check kind."""
    cases = [p.values for p in _field_cases()]
    assert {key.split(".")[0] for _, key, _, _ in cases} == set(C.SECTIONS)
    assert {how for _, _, how, _ in cases} == {"type", "nonfinite", "range", "choice"}
    assert len(cases) > 800


def test_inf_is_allowed_only_where_the_field_says_what_it_means() -> None:
    """allow_inf metadata or a default that holds inf (a range (0.7, inf)); nan never."""
    @dataclasses.dataclass
    class Fields:
        plain: float = C.config_field(1.0, "A plain float.")
        unbounded: float = C.config_field(1.0, "Upper limit (inf: none).", allow_inf=True)
        z_range: tuple[float, float] = C.config_field((0.7, float("inf")), "Healthy height range.")

    plain, unbounded, z_range = dataclasses.fields(Fields)
    assert C.convert._number_problem(float("inf"), plain) == "must be a finite number, got inf"
    assert C.convert._number_problem(float("inf"), unbounded) is None
    assert C.convert._number_problem((0.5, float("inf")), z_range) is None
    assert C.convert._number_problem(float("nan"), unbounded) == "must be a number, got nan"


# --- cases that are not one field ----------------------------------------------------------------------

FAST_CASES = [
    ["--set", "ppo.learnig_rate=1"],
    ["--set", "ppo.learning_rate=inf"],
    ["--set", "ppo.learning_rate=1e400"],
    ["--set", "ppo.value_loss_coef=inf"],
    ["--set", "ppo.rollout_length_seconds=inf"],
    ["--set", "task.episode_length_seconds=0"],
    ["--set", f"task.seed={2**64}"],
    ["--set", "task.seed=-1"],
    ["--set", "task.num_envs=abc"],
    ["--set", "task.name=:"],
    ["--set", "task.name=kbot_wlak"],
    ["--set", "task.dt=0.004", "--set", "task.ctrl_dt=0.01"],
    ["--set", "model.mlp_hidden=[-1]"],
    ["--bogus"],
]


def test_config_errors_come_before_torch_mujoco_tensordict_and_warp_are_imported() -> None:
    """Every config or CLI error is reported with none of the heavy packages imported (about a second)."""
    code = ("import sys, ktorch_sim.train as t\n"
            "codes = []\n"
            f"for args in {FAST_CASES!r}:\n"
            "    try:\n"
            "        codes.append(t.main(args))\n"
            "    except SystemExit as e:\n"
            "        codes.append(e.code)\n"
            "print(codes)\n"
            "print(sorted(m for m in ('torch', 'mujoco', 'tensordict', 'warp', 'numpy') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    codes, heavy = proc.stdout.strip().splitlines()
    assert codes == str([2] * len(FAST_CASES)), proc.stderr
    assert heavy == "[]", f"imported before the error: {heavy}"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ") or "error:" in line]
    assert len(errors) == len(FAST_CASES), proc.stderr


@pytest.mark.parametrize(("args", "expect"), [
    (["task.name=:"], ('--set task.name: malformed task name ":" (bad module or file)',
                      '"package.module:ClassName"')),
    (["task.name=a:"], ('malformed task name "a:" (bad class name)',)),
    (["task.name=:B"], ('malformed task name ":B" (bad module or file)',)),
    (["task.name=tests.cartpole:"], ('malformed task name "tests.cartpole:"',)),
    (["ppo.rollout_length_seconds=inf"], ("--set ppo.rollout_length_seconds: must be a finite number, got inf",)),
    (["ppo.rollout_length_seconds=1e300"], ("ppo.rollout_length_seconds: must be at most 2147483647 control steps",)),
    (["task.episode_length_seconds=0"], ("--set task.episode_length_seconds: must be > 0 seconds, got 0.0",)),
    (["task.name=kbot_stand", "task.episode_length_seconds=0"], ("task.episode_length_seconds: must be > 0",)),
    ([f"task.seed={2**64}"], ("--set task.seed: must fit in a 64-bit integer", str(2**64))),
    (["task.seed=-1"], ("--set task.seed: must be in [0, 2**63 - 1], got -1",)),
    (["ppo.learning_rate=1e400"], ("--set ppo.learning_rate: must be a finite number, got 1e400 (read as inf)",)),
    (["ppo.value_loss_coef=inf"], ("--set ppo.value_loss_coef: must be a finite number, got inf",)),
    ([f"ppo.learning_rate={10**400}"], ("--set ppo.learning_rate: must be a finite number",)),
    (["task.dt=5e-324"], ("--set task.dt: must give at most 2147483647 physics steps per task.ctrl_dt",)),
])
def test_one_line_instead_of_a_traceback(args: list[str], expect: tuple[str, ...], tmp_path: Path,
                                         capsys: pytest.CaptureFixture, no_training: None) -> None:
    code, lines, _ = _main(_sets(*args), capsys, tmp_path)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    for text in expect:
        assert text in lines[0], (text, lines[0])


USER_MODULES = {
    "raises": ("import math\n\nSCALE = math.pi\nBROKEN = 1 / 0\n", "line 4: ZeroDivisionError: division by zero"),
    "syntax": ("class MyTask:\n    def f(:\n        pass\n", "line 2: SyntaxError: "),
    "missing_dependency": ("import not_installed_dependency_xyz\n",
                           "line 1: ModuleNotFoundError: No module named 'not_installed_dependency_xyz'"),
}


@pytest.mark.parametrize("form", ["module", "file"])
@pytest.mark.parametrize("case", list(USER_MODULES))
def test_user_task_module_that_fails_names_its_file_and_line(case: str, form: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture, no_training: None) -> None:
    text, expect = USER_MODULES[case]
    module = f"user_tasks_{case}_{form}"
    (tmp_path / f"{module}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"{module}:MyTask" if form == "module" else f"{tmp_path / module}.py:MyTask"
    code, lines, _ = _main(_sets(f"task.name={name}"), capsys, tmp_path)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --set task.name: "), lines
    assert f"{module}.py, {expect}" in lines[0], lines[0]


def test_a_task_that_is_not_a_ppo_task_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture, no_training: None) -> None:
    (tmp_path / "env_only_tasks.py").write_text(
        "from ktorch_sim.task import RLTask\nfrom tests.cartpole import CartpoleConfig\n\n\n"
        "class EnvOnly(RLTask):\n    config_class = CartpoleConfig\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, lines, _ = _main(_sets("task.name=env_only_tasks:EnvOnly"), capsys, tmp_path)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: --set task.name: EnvOnly (subclass of RLTask) is not a PPOTask"), lines
    assert "subclass ks.PPOTask" in lines[0]


# --- memory bounds ----------------------------------------------------------------------------------------


def test_num_envs_that_cannot_fit_is_refused_before_allocating(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """10**9 cart-pole worlds: MuJoCo's data alone is terabytes; refused before any world exists."""
    code, lines, _ = _main(_sets(*TINY, "task.num_envs=1000000000", "ppo.batch_size=1"), capsys, tmp_path)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: --set task.num_envs: 1000000000 worlds need at least "), lines[0]
    for text in ("TiB", "of MuJoCo data per world (MjData buffer + arena used)", "but there is",
                 "available host memory", "at most", "worlds fit"):
        assert text in lines[0], (text, lines[0])
    assert not (tmp_path / "runs").exists()


def test_rollout_buffer_that_cannot_fit_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With 64 MiB available, 8 worlds x 5,000,000 rollout steps cannot fit; the line says so."""
    import ktorch_sim.utils.resources

    monkeypatch.setattr(ktorch_sim.utils.resources, "available_memory", lambda device: (64 << 20, "test budget"))
    code, lines, _ = _main(_sets(*TINY, "ppo.rollout_length_seconds=100000"), capsys, tmp_path)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: --set task.num_envs: 8 worlds need at least "), lines[0]
    assert "a rollout buffer of 5000000 steps" in lines[0] and "there is 64.0 MiB (test budget)" in lines[0]
    assert "or a shorter ppo.rollout_length_seconds: not even one world fits" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_memory_figures() -> None:
    from ktorch_sim.utils.resources import available_memory, format_bytes, mujoco_world_bytes
    from ktorch_sim.robots import load_kbot_model

    assert format_bytes(512) == "512 B" and format_bytes(3 << 30) == "3.0 GiB"
    per_world = mujoco_world_bytes(load_kbot_model())
    assert 40_000 < per_world < 10_000_000  # K-Bot: ~87 KiB (buffer 44 KB + arena and stack of one forward)
    free, where = available_memory("cpu")
    assert free > 0 and where


# --- resume messages -------------------------------------------------------------------------------------


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cart-pole run that trained its ppo.max_steps (one iteration of 80 steps)."""
    runs = tmp_path_factory.mktemp("runs")
    assert train.main(["--no-progress", *_sets(*TINY, f"logging.run_dir={runs}", "logging.run_name=run")]) == 0
    return runs / "run"


def _copy(run: Path, tmp: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, tmp / "run"))


def test_resume_of_a_finished_run_says_so_and_how_to_extend_it(finished_run: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    run = _copy(finished_run, tmp_path)
    before = _tree(run)
    code, lines, out = _main(["--resume", str(run)], capsys, tmp_path)
    assert code == 0 and out == "" and len(lines) == 1, lines
    assert lines[0] == (f"run {run} already reached ppo.max_steps (16; its checkpoint ckpt_00000001.pt has 80 env "
                        f"steps): nothing to train. To train it further, raise the limit: python -m ktorch_sim.train "
                        f"--resume {run} --set ppo.max_steps=96")
    assert _tree(run) == before, "a finished run must be left as it was"


def test_resume_without_config_toml_uses_the_checkpoint_config(finished_run: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    run = _copy(finished_run, tmp_path)
    (run / "config.toml").unlink()
    code, lines, out = _main(["--resume", str(run), *_sets("ppo.max_steps=160")], capsys, tmp_path)
    assert code == 0, lines
    lines = [line for line in lines if not line.startswith("note: automatic")]  # the layout note: test_train.py
    assert lines == [f"note: {run / 'config.toml'} is missing; resuming with the config stored in the checkpoint "
                     f"{run / 'checkpoints' / 'ckpt_00000001.pt'}"]
    assert (run / "checkpoints" / "ckpt_00000002.pt").is_file() and (run / "config.toml").is_file()
    assert 'name = "tests.cartpole:CartpoleTask"' in (run / "config.toml").read_text()  # not kbot_walk's defaults


def test_resume_when_checkpoints_is_a_regular_file(finished_run: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    run = _copy(finished_run, tmp_path)
    import shutil

    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").write_text("not a directory")
    before = _tree(run)
    code, lines, _ = _main(["--resume", str(run)], capsys, tmp_path)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0] == (f"error: cannot resume {run}: {run / 'checkpoints'} is a regular file, not the directory "
                        "that holds the ckpt_*.pt checkpoints; move it away (or put the checkpoints in a "
                        "checkpoints/ directory), or start a new run without --resume")
    assert _tree(run) == before


def test_light_engine_names_equal_the_engines() -> None:
    """task_config's copies of the engine, integrator, solver and cone names (checked without importing the engines)."""
    from ktorch_sim.engines import ENGINE_KINDS
    from ktorch_sim.engines.base import CONES, INTEGRATORS, SOLVERS
    from ktorch_sim.task_config import CONE_NAMES, INTEGRATOR_NAMES, SOLVER_NAMES
    from ktorch_sim.task_config import ENGINE_KINDS as LIGHT_KINDS

    assert LIGHT_KINDS == ENGINE_KINDS and set(INTEGRATOR_NAMES) == set(INTEGRATORS)
    assert set(SOLVER_NAMES) == set(SOLVERS) and set(CONE_NAMES) == set(CONES)
