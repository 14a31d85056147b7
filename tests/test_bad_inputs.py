"""The bad-input catalogue (docs/bad_inputs.md): every case gives one clear line and writes nothing.

Training-CLI cases run ``python -m ktorch_sim.train`` for real, all at once in a few parallel
subprocesses (one module fixture), and check: the exit code, that stderr is exactly one
``error: ...`` line (no traceback) naming the problem and what would be right, and that no run
directory, checkpoint or partial file appeared (resume cases: the run directory is unchanged).
Motion-file cases call :func:`ktorch_sim.motion.load_motion` (no CLI reads motions yet).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.checkpoint import CheckpointManager
from ktorch_sim.config import load_config, save_config, to_dict
from ktorch_sim.training.logging import read_metrics
from ktorch_sim.motion import MotionClip, MotionError, load_motion, save_motion
from ktorch_sim.robots import KBOT_JOINTS_TOML, kbot_home_qpos, load_kbot_model

REPO = Path(__file__).resolve().parents[1]
TINY = ["task.name=tests.cartpole:CartpoleTask", "task.num_envs=8", "ppo.batch_size=4",
        "ppo.rollout_length_seconds=0.2", "model.hidden_size=16", "model.depth=1", "logging.wandb_mode=disabled",
        "ppo.max_steps=16"]
BROKEN_XML = "<mujoco><worldbody><body></mujoco>"


def _sets(*overrides: str) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


# --- files the cases read -------------------------------------------------------------------------------


def _joint_tables() -> tuple[str, dict[str, str]]:
    """The shipped joints.toml split into its header and one text block per ``[joints.X]`` table."""
    text = KBOT_JOINTS_TOML.read_text()
    head, *rest = text.split("\n[joints.")
    return head, {block.split("]", 1)[0]: "[joints." + block.rstrip("\n") for block in rest}


def _metadata_without_last_joint(tmp: Path) -> Path:
    """joints.toml without the joint whose nn_id is the last index (so the nn_ids stay a permutation)."""
    head, tables = _joint_tables()
    joints = tomllib.loads(KBOT_JOINTS_TOML.read_text())["joints"]
    last = max(joints, key=lambda name: joints[name]["nn_id"])
    path = tmp / "joints_missing.toml"
    path.write_text(head + "\n" + "\n\n".join(t for name, t in tables.items() if name != last) + "\n")
    return path


def _metadata_with_extra_joint(tmp: Path) -> Path:
    """joints.toml plus a joint ``dof_tail_00`` that the model does not have."""
    head, tables = _joint_tables()
    joints = tomllib.loads(KBOT_JOINTS_TOML.read_text())["joints"]
    first = next(iter(tables))
    extra = (tables[first].replace(f"[joints.{first}]", "[joints.dof_tail_00]")
             .replace(f"nn_id = {joints[first]['nn_id']}\n", f"nn_id = {len(joints)}\n")
             .replace(f"can_id = {joints[first]['can_id']}\n", "can_id = 250\n"))
    path = tmp / "joints_extra.toml"
    path.write_text(head + "\n" + "\n\n".join([*tables.values(), extra]) + "\n")
    return path


def _write(tmp: Path, name: str, text: str | bytes) -> Path:
    path = tmp / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _run_with_checkpoint(tmp: Path, *, model_config: list[str] | None = None, model_state: dict | None = None,
                         damage: str | None = None) -> Path:
    """A run directory with the TINY config and one checkpoint built by ktorch_sim.checkpoint (no training).

    ``model_config`` overrides change the config stored *in the checkpoint*; ``damage`` is "garbage",
    "truncate" or "foreign" (a torch file that is not a ktorch_sim checkpoint).
    """
    run_dir = tmp / "run"
    config = load_config(None, TINY)
    save_config(config, run_dir / "config.toml")
    state = {"model": model_state or {}, "optimizer": {}, "normalizer": None, "curriculum": {}, "ppo": {}, "rng": {},
             "counters": {"iteration": 1, "env_steps": 80, "elapsed_seconds": 1.0},
             "config": to_dict(load_config(None, TINY + (model_config or [])))}
    path = CheckpointManager(run_dir).save(state, 1)
    if damage == "garbage":
        path.write_bytes(b"this is not a checkpoint")
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    return run_dir


def _empty_run(tmp: Path) -> Path:
    run_dir = tmp / "run"
    save_config(load_config(None, TINY), run_dir / "config.toml")
    return run_dir


RAISING = "X = 1\nY = 1 / 0\n"
ENV_ONLY = ("from ktorch_sim.task import RLTask\nfrom tests.cartpole import CartpoleConfig\n\n\n"
            "class EnvOnly(RLTask):\n    config_class = CartpoleConfig\n")


def _module(tmp: Path, name: str, text: str) -> str:
    """Write ``tmp/<name>.py`` (the case puts ``tmp`` on PYTHONPATH) and return the module name."""
    _write(tmp, f"{name}.py", text)
    return name


def _checkpoints_file_run(tmp: Path) -> Path:
    """A run directory whose ``checkpoints`` is a regular file."""
    run_dir = _empty_run(tmp)
    (run_dir / "checkpoints").write_text("not a directory\n")
    return run_dir


def _fake_wandb(tmp: Path) -> Path:
    """A ``wandb`` package whose init fails as an unreachable server would; put first on PYTHONPATH."""
    package = tmp / "fake_wandb" / "wandb"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "class Settings:\n"
        "    def __init__(self, **kwargs):\n"
        "        pass\n\n\n"
        "def init(**kwargs):\n"
        "    raise ConnectionError('simulated: cannot reach api.wandb.ai')\n")
    return package.parent


# --- the CLI catalogue -----------------------------------------------------------------------------------


@dataclass
class CliCase:
    """One bad input: ``args(tmp)`` builds the files and returns the CLI arguments (after the run_dir override)."""

    args: Callable[[Path], list[str]]
    expect: tuple[str, ...]  # substrings of the one stderr line
    code: int = 2
    watch_run: bool = False  # the case resumes tmp/run: it must be left exactly as it was
    env: Callable[[Path], dict[str, str]] = field(default=lambda tmp: {})


CLI_CASES: dict[str, CliCase] = {
    "unknown_key_set": CliCase(lambda t: _sets("ppo.learnig_rate=1e-3"),
                               ("--set ppo.learnig_rate", "unknown key", "did you mean ppo.learning_rate?")),
    "unknown_key_file": CliCase(lambda t: ["--cfg", str(_write(t, "c.toml", "[task]\nnum_env = 8\n"))],
                                ("c.toml: task.num_env", "unknown key", "did you mean task.num_envs?")),
    "unknown_section": CliCase(lambda t: ["--cfg", str(_write(t, "c.toml", "[pp]\nbatch_size = 8\n"))],
                               ("c.toml: pp", "unknown section", "did you mean [ppo]?")),
    "wrong_type_set": CliCase(lambda t: _sets("task.num_envs=abc"), ("--set task.num_envs", 'expected int, got "abc"')),
    "wrong_type_file": CliCase(lambda t: ["--cfg", str(_write(t, "c.toml", "[ppo]\nlearning_rate = \"fast\"\n"))],
                               ("c.toml: ppo.learning_rate", 'expected float, got "fast"')),
    "negative_num_envs": CliCase(lambda t: _sets("task.num_envs=-4"), ("task.num_envs", "must be >= 1, got -4")),
    "ctrl_dt_not_multiple": CliCase(lambda t: _sets("task.dt=0.004", "task.ctrl_dt=0.01"),
                                    ("task.ctrl_dt", "must be a whole multiple of task.dt (0.004)", "2.5 x dt")),
    "batch_not_dividing": CliCase(lambda t: _sets("task.num_envs=12", "ppo.batch_size=8"),
                                  ("ppo.batch_size", "must divide task.num_envs (12), got 8", "e.g. use 6")),
    "missing_toml": CliCase(lambda t: ["--cfg", str(t / "nope.toml")],
                            ("nope.toml: no such file", "expected a TOML config file")),
    "malformed_toml": CliCase(lambda t: ["--cfg", str(_write(t, "c.toml", "[ppo\nbatch_size = 8\n"))],
                              ("c.toml", "invalid TOML", "line 1")),
    "toml_not_utf8": CliCase(lambda t: ["--cfg", str(_write(t, "c.toml", b"[ppo]\n# \xff\xfe\n"))],
                             ("c.toml", "invalid TOML", "not UTF-8")),
    "unknown_task": CliCase(lambda t: _sets("task.name=kbot_wlak"),
                            ('unknown task "kbot_wlak"', "did you mean kbot_walk?", "kbot_amp, kbot_stand, kbot_walk")),
    "task_import_fails": CliCase(lambda t: _sets("task.name=no_such_pkg.tasks:MyTask"),
                                 ("task.name", 'cannot import module "no_such_pkg.tasks"', "PYTHONPATH")),
    "model_xml_missing": CliCase(lambda t: _sets("task.name=kbot_stand", f"task.model_path={t / 'robot.xml'}"),
                                 ("--set task.model_path", "robot.xml: no such file", "expected a MuJoCo MJCF")),
    "model_xml_invalid": CliCase(lambda t: _sets("task.name=kbot_stand",
                                                 f"task.model_path={_write(t, 'robot.xml', BROKEN_XML)}"),
                                 ("task.model_path", "robot.xml: invalid MuJoCo model: XML parse error 14; Error=",
                                  "MISMATCHED_ELEMENT",
                                  "Line number=1", "expected a valid MJCF file")),
    "metadata_missing": CliCase(lambda t: _sets("task.name=kbot_walk", f"task.metadata_path={t / 'j.toml'}"),
                                ("task.metadata_path", "j.toml: no such file", "joint-metadata TOML")),
    "metadata_malformed": CliCase(lambda t: _sets("task.name=kbot_walk",
                                                  f"task.metadata_path={_write(t, 'j.toml', 'robot = ')}"),
                                  ("task.metadata_path", "j.toml: invalid TOML")),
    "metadata_lacks_model_joint": CliCase(
        lambda t: _sets("task.name=kbot_stand", f"task.metadata_path={_metadata_without_last_joint(t)}"),
        ("task.metadata_path", "the model has joint 'dof_", "but the metadata does not", "add a [joints.dof_")),
    "metadata_joint_not_in_model": CliCase(
        lambda t: _sets("task.name=kbot_stand", f"task.metadata_path={_metadata_with_extra_joint(t)}"),
        ("task.metadata_path", "joint 'dof_tail_00' is not a hinge or slide joint of the model",
         "remove [joints.dof_tail_00]")),
    "resume_missing_dir": CliCase(lambda t: ["--resume", str(t / "gone")], ("--resume", "gone: no such run directory")),
    "resume_no_checkpoint": CliCase(lambda t: [*_sets(*TINY), "--resume", str(_empty_run(t))],
                                    ("no checkpoint to resume", "start a new run without --resume"), watch_run=True),
    "checkpoint_corrupt": CliCase(lambda t: ["--resume", str(_run_with_checkpoint(t, damage="garbage"))],
                                  ("truncated or corrupt checkpoint", "ckpt_00000001.pt", "UnpicklingError",
                                   "start a new run without --resume"), watch_run=True),
    "checkpoint_truncated": CliCase(lambda t: ["--resume", str(_run_with_checkpoint(t, damage="truncate"))],
                                    ("truncated or corrupt checkpoint", "ckpt_00000001.pt",
                                     "start a new run without --resume"), watch_run=True),
    "checkpoint_foreign": CliCase(lambda t: ["--resume", str(_run_with_checkpoint(t, damage="foreign"))],
                                  ("is not a ktorch_sim checkpoint (missing keys: format_version",), watch_run=True),
    "checkpoint_other_config": CliCase(
        lambda t: ["--resume", str(_run_with_checkpoint(t, model_config=["model.hidden_size=32"]))],
        ("was trained with model.hidden_size=32, this config has 16", "use the checkpoint's value"), watch_run=True),
    "checkpoint_other_weights": CliCase(
        lambda t: ["--resume", str(_run_with_checkpoint(t, model_state={"actor.w": torch.zeros(2)}))],
        ("ckpt_00000001.pt does not fit this model", "Missing key(s)", "resume with that config or start a new run"),
        watch_run=True),
    "non_finite_set": CliCase(lambda t: _sets("ppo.learning_rate=inf"),
                              ("--set ppo.learning_rate: must be a finite number, got inf",)),
    "non_finite_overflow": CliCase(lambda t: _sets("ppo.learning_rate=1e400"),
                                   ("--set ppo.learning_rate: must be a finite number, got 1e400 (read as inf)",)),
    "non_finite_file": CliCase(lambda t: ["--cfg", str(_write(t, "c.toml", "[ppo]\nvalue_loss_coef = inf\n"))],
                               ("c.toml: ppo.value_loss_coef: must be a finite number, got inf",)),
    "rollout_length_inf": CliCase(lambda t: _sets("ppo.rollout_length_seconds=inf"),
                                  ("--set ppo.rollout_length_seconds: must be a finite number, got inf",)),
    "episode_length_zero": CliCase(lambda t: _sets("task.episode_length_seconds=0"),
                                   ("--set task.episode_length_seconds: must be > 0 seconds, got 0.0",)),
    "seed_too_big": CliCase(lambda t: _sets(f"task.seed={2**64}"),
                            ("--set task.seed: must fit in a 64-bit integer", str(2**64))),
    "seed_negative": CliCase(lambda t: _sets("task.seed=-1"), ("--set task.seed: must be in [0, 2**63 - 1], got -1",)),
    "task_name_malformed": CliCase(lambda t: _sets("task.name=:"),
                                   ('--set task.name: malformed task name ":"', '"package.module:ClassName"')),
    "task_module_raises": CliCase(lambda t: _sets(f"task.name={_module(t, 'raising_tasks', RAISING)}:MyTask"),
                                  ('task module "raising_tasks" of task "raising_tasks:MyTask" failed to import',
                                   "raising_tasks.py, line 2: ZeroDivisionError: division by zero"),
                                  env=lambda t: {"PYTHONPATH": str(t)}),
    "task_file_syntax_error": CliCase(lambda t: _sets(f"task.name={_write(t, 'bad.py', 'def f(:')}:MyTask"),
                                      ("cannot load task file", "bad.py, line 1: SyntaxError:")),
    "task_not_ppo_task": CliCase(
        lambda t: _sets(f"task.name={_module(t, 'env_only_tasks', ENV_ONLY)}:EnvOnly"),
        ("--set task.name: EnvOnly (subclass of RLTask) is not a PPOTask", "subclass ks.PPOTask"),
        env=lambda t: {"PYTHONPATH": os.pathsep.join([str(t), str(REPO)])}),
    "num_envs_too_big": CliCase(lambda t: _sets(*TINY, "task.num_envs=1000000000", "ppo.batch_size=1"),
                                ("--set task.num_envs: 1000000000 worlds need at least", "TiB",
                                 "of MuJoCo data per world", "available host memory", "worlds fit")),
    "checkpoints_is_a_file": CliCase(lambda t: ["--resume", str(_checkpoints_file_run(t))],
                                     ("checkpoints is a regular file, not the directory that holds the ckpt_*.pt",),
                                     watch_run=True),
    "run_dir_unwritable": CliCase(lambda t: _sets(*TINY, f"logging.run_dir={_write(t, 'a_file', 'x') / 'runs'}"),
                                  ("cannot create run directory", "a_file/runs", "choose another logging.run_dir")),
    "symmetry_recurrent_actor": CliCase(lambda t: _sets(*TINY, "ppo.symmetry=augment"),
                                        ("--set ppo.symmetry", '"augment" needs a feed-forward actor')),
    "symmetry_without_mirror": CliCase(lambda t: _sets(*TINY, "model.policy=mlp", "ppo.symmetry=augment"),
                                       ("--set ppo.symmetry", "the actor's observation", "has no mirror",
                                        "override PPOTask.get_policy_mirrors")),
    "mirror_loss_without_symmetry": CliCase(lambda t: _sets("ppo.mirror_loss_coef=0.5"),
                                            ("--set ppo.mirror_loss_coef", 'ppo.symmetry is "none"',
                                             'needs ppo.symmetry = "augment"')),
}


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with (size, mtime_ns): to see that nothing was written."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


def _run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "ktorch_sim.train", "--no-progress", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess, dict]]:
    """Run every CLI case once, three at a time; returns id -> (its tmp dir, the process, run-dir tree before)."""
    prepared = {}
    for case_id, case in CLI_CASES.items():
        tmp = tmp_path_factory.mktemp(case_id)
        args = [*_sets(f"logging.run_dir={tmp / 'runs'}"), *case.args(tmp)]
        before = _tree(tmp / "run") if case.watch_run else {}
        prepared[case_id] = (tmp, args, case.env(tmp), before)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {cid: pool.submit(_run_cli, args, env) for cid, (_, args, env, _) in prepared.items()}
    return {cid: (prepared[cid][0], futures[cid].result(), prepared[cid][3]) for cid in prepared}


@pytest.mark.slow  # the fixture's 43 CLI starts: config errors ~0.3 s each (no torch yet), the others ~3 s
@pytest.mark.parametrize("case_id", list(CLI_CASES))
def test_cli_bad_input_gives_one_line_and_writes_nothing(case_id: str, cli_results: dict) -> None:
    case = CLI_CASES[case_id]
    tmp, proc, before = cli_results[case_id]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == case.code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for text in case.expect:
        assert text in lines[0], (text, lines[0])
    assert proc.stdout == ""
    runs = tmp / "runs"
    assert not runs.exists() or not any(runs.iterdir()), f"{case_id} wrote {list(runs.iterdir())}"
    if case.watch_run:
        assert _tree(tmp / "run") == before, "a failed resume changed the run directory"
    leftovers = [p for p in tmp.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_wandb_failure_keeps_training_offline_with_one_warning(tmp_path: Path) -> None:
    """wandb.init raising (as with no network) costs one warning line; training finishes, metrics.jsonl is kept."""
    shim = _fake_wandb(tmp_path)
    proc = _run_cli([*_sets(*TINY, "logging.wandb_mode=online", f"logging.run_dir={tmp_path / 'runs'}")],
                    env={"PYTHONPATH": os.pathsep.join([str(shim), str(REPO)])})
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("note: automatic")]
    assert lines == ["wandb failed (ConnectionError: simulated: cannot reach api.wandb.ai); "
                     "continuing with metrics.jsonl only (offline)"], proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("run directory: "))
    rows = read_metrics(run_dir)
    assert [r["iteration"] for r in rows] == [1] and rows[0]["env_steps"] == 80
    assert (run_dir / "checkpoints" / "ckpt_00000001.pt").is_file()


@pytest.mark.slow
def test_real_wandb_unreachable_server_falls_back_offline(tmp_path: Path) -> None:
    """The real wandb, online with a key but a closed port as server: one warning, then an offline wandb run."""
    env = {"WANDB_API_KEY": "0" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    proc = _run_cli([*_sets(*TINY, "logging.wandb_mode=online", f"logging.run_dir={tmp_path / 'runs'}")], env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("note: automatic")]
    assert len(lines) == 1 and lines[0].startswith("wandb failed (") and "continuing offline" in lines[0], lines
    run_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("run directory: "))
    assert [r["iteration"] for r in read_metrics(run_dir)] == [1]
    assert list((run_dir / "wandb").glob("offline-run-*")), "no offline wandb run to sync later"


# --- motion files ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kbot() -> mujoco.MjModel:
    return load_kbot_model()


def _kbot_clip(model: mujoco.MjModel, frames: int = 4) -> dict[str, np.ndarray]:
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(1, model.njnt)]
    qpos = np.tile(kbot_home_qpos(model), (frames, 1))
    return {"fps": np.array(50.0), "joint_names": np.array(names), "qpos": qpos, "qvel": np.zeros((frames, model.nv))}


def _npz(tmp: Path, arrays: dict[str, np.ndarray]) -> Path:
    path = tmp / "clip.npz"
    np.savez(path, **arrays)
    return path


def _changed(**changes: object) -> Callable[[Path, mujoco.MjModel], Path]:
    """A case writing the good K-Bot clip with ``changes`` (a value of None drops the key)."""
    def make(tmp: Path, model: mujoco.MjModel) -> Path:
        arrays = _kbot_clip(model)
        for key, value in changes.items():
            if value is None:
                arrays.pop(key)
            else:
                arrays[key] = value(arrays) if callable(value) else value
        return _npz(tmp, arrays)
    return make


def _nan_frame(arrays: dict[str, np.ndarray]) -> np.ndarray:
    qpos = arrays["qpos"].copy()
    qpos[2, 10] = np.nan
    return qpos


def _swap_joints(arrays: dict[str, np.ndarray]) -> np.ndarray:
    names = arrays["joint_names"].copy()
    names[[0, 1]] = names[[1, 0]]
    return names


MOTION_CASES: dict[str, tuple[Callable[[Path, mujoco.MjModel], Path], bool, tuple[str, ...]]] = {
    # id: (make the file, check against K-Bot?, substrings of the one-line MotionError)
    "missing_file": (lambda t, m: t / "none.npz", False, ("none.npz: no such motion file", "fps, joint_names, qpos")),
    "not_npz": (lambda t, m: _write(t, "clip.npz", "frame,qpos\n0,1\n"), False,
                ("clip.npz: not a complete .npz (zip) archive", "numpy.savez")),
    "truncated_npz": (lambda t, m: _write(t, "clip.npz", _changed()(t, m).read_bytes()[:300]), False,
                      ("clip.npz: not a complete .npz (zip) archive (another format, or truncated)",)),
    "pickled_names": (_changed(joint_names=lambda a: np.array(list(a["joint_names"]), dtype=object)), False,
                      ("cannot read the archive", "no pickled objects")),
    "missing_key": (_changed(qpos=None), False, ("missing key 'qpos'", "expected keys fps, joint_names, qpos")),
    "unknown_key": (_changed(root_pos=np.zeros(3)), False, ("unknown key 'root_pos'",)),
    "qpos_ndim": (_changed(qpos=lambda a: a["qpos"][0]), False, ("qpos has shape [27]", "expected [frames, 27]")),
    "qpos_width": (_changed(qpos=lambda a: a["qpos"][:, :20]), False,
                   ("qpos has shape [4, 20]", "expected [frames, 27] (7 free-base values + 20 joints)")),
    "qvel_width": (_changed(qvel=lambda a: a["qvel"][:, :25]), False, ("qvel has shape [4, 25]", "[frames, 26]")),
    "qvel_frames": (_changed(qvel=lambda a: a["qvel"][:3]), False, ("qvel has 3 frames but qpos has 4",)),
    "qpos_strings": (_changed(qpos=lambda a: a["qpos"].astype(str)), False, ("qpos has dtype <U", "real numbers")),
    "non_finite": (_changed(qpos=_nan_frame), False, ("qpos has a non-finite value", "frame 2")),
    "fps_zero": (_changed(fps=np.array(0.0)), False, ("fps is 0.0", "> 0")),
    "fps_array": (_changed(fps=np.array([50.0, 50.0])), False, ("fps has shape [2]", "expected one number")),
    "one_frame": (_changed(qpos=lambda a: a["qpos"][:1], qvel=lambda a: a["qvel"][:1]), False,
                  ("qpos has 1 frame(s); expected at least 2",)),
    "bad_quaternion": (_changed(qpos=lambda a: a["qpos"] * np.r_[1, 1, 1, 2, 2, 2, 2, np.ones(20)]), False,
                       ("base quaternion qpos[:, 3:7] has norm 2", "unit quaternions")),
    "duplicate_joint": (_changed(joint_names=lambda a: np.r_[a["joint_names"][:-1], a["joint_names"][:1]]), False,
                        ("lists 'dof_left_hip_pitch_04' twice",)),
    "joint_order": (_changed(joint_names=_swap_joints), True,
                    ("joint_names[0] is 'dof_left_hip_roll_03' but the model's joint 0 is 'dof_left_hip_pitch_04'",
                     "in model order")),
    "joint_not_in_model": (_changed(joint_names=lambda a: np.r_[a["joint_names"][:-1], ["dof_tail_00"]]), True,
                           ("lacks the model's joint 'dof_left_wrist_00'",)),
}


@pytest.mark.parametrize("case_id", list(MOTION_CASES))
def test_bad_motion_file_is_one_line_naming_the_file(case_id: str, tmp_path: Path, kbot: mujoco.MjModel) -> None:
    make, with_model, expect = MOTION_CASES[case_id]
    path = make(tmp_path, kbot)
    with pytest.raises(MotionError) as info:
        load_motion(path, kbot if with_model else None)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    for text in expect:
        assert text in message, (text, message)


def test_motion_of_another_model_width(tmp_path: Path, kbot: mujoco.MjModel) -> None:
    """A well-formed clip whose joints match but whose model has no free base: the width check names nq."""
    spec = mujoco.MjSpec()
    body = spec.worldbody.add_body(name="arm")
    body.add_geom(size=[0.1, 0, 0])
    body.add_joint(name="j0")
    model = spec.compile()
    clip = MotionClip(fps=30.0, joint_names=("j0",), qpos=torch.tensor([[0, 0, 0, 1, 0, 0, 0, 0.1]] * 2))
    path = save_motion(tmp_path / "arm.npz", clip)
    with pytest.raises(MotionError, match=r"arm\.npz: qpos has width 8 but the model has nq = 1; expected a free-base"):
        load_motion(path, model)


def test_save_motion_refuses_a_bad_clip_and_keeps_the_old_file(tmp_path: Path, kbot: mujoco.MjModel) -> None:
    arrays = _kbot_clip(kbot)
    good = MotionClip(fps=50.0, joint_names=tuple(arrays["joint_names"]), qpos=torch.from_numpy(arrays["qpos"]))
    path = save_motion(tmp_path / "clip.npz", good)
    content = path.read_bytes()
    with pytest.raises(MotionError, match="fps is -1"):
        MotionClip(fps=-1, joint_names=good.joint_names, qpos=good.qpos)
    bad = MotionClip(fps=50.0, joint_names=good.joint_names, qpos=good.qpos)
    object.__setattr__(bad, "qpos", good.qpos[:1])  # bypass the constructor's check, as a buggy caller might
    with pytest.raises(MotionError, match="clip.npz: qpos has 1 frame"):
        save_motion(path, bad)
    assert path.read_bytes() == content and [p.name for p in tmp_path.iterdir()] == ["clip.npz"]
    with pytest.raises(MotionError, match="cannot write the motion file"):
        save_motion(_write(tmp_path, "a_file", "x") / "clip.npz", good)


# --- the good counterpart: user model and metadata files are really used ----------------------------------


def test_task_reads_the_model_and_metadata_files_the_config_names(tmp_path: Path) -> None:
    from ktorch_sim.robots import KBOT_DIR
    from ktorch_sim.tasks import KbotStandTask

    for name in ("kbot.xml", "scene.xml"):
        _write(tmp_path, name, (KBOT_DIR / name).read_text())
    scene = tmp_path / "scene.xml"
    scene.write_text(scene.read_text().replace('<geom name="floor" type="plane" size="0 0 0.05"',
                                               '<geom name="floor" type="plane" size="0 0 0.07"'))
    joints = _write(tmp_path, "joints.toml", KBOT_JOINTS_TOML.read_text().replace("kp = 100.0", "kp = 123.0", 1))
    config = load_config(None, ["task.name=kbot_stand", f"task.model_path={scene}", f"task.metadata_path={joints}"])
    task = KbotStandTask(config.task)
    model = task.get_mujoco_model()
    floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    assert model.geom_size[floor, 2] == pytest.approx(0.07) and model.nq == load_kbot_model().nq
    changed = [j for j in task.robot_metadata() if j.kp == 123.0]
    assert len(changed) == 1, "the first kp = 100.0 of the copied metadata was edited"
