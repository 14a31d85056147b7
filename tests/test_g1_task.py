"""The ``g1_velocity`` task: gains worked out by hand, mjlab's physics settings, both engines, bad input.

mjlab is not a dependency: tests that need its G1 MJCF look for it in $KTORCH_G1_XML, the current
Python's mjlab, or a venv at /tmp/mjlab_venv (docs/mjlab_comparison.md), and skip with the reason
when none has it. The gain and missing-model tests always run.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.config import ConfigError, load_config
from ktorch_sim.robots.g1 import G1_ENV_VAR, build_g1_model, find_g1_xml, g1_gains
from ktorch_sim.tasks import TASKS
from ktorch_sim.tasks.g1_velocity import G1VelocityConfig, G1VelocityTask

REPO = Path(__file__).resolve().parent.parent
_RELATIVE = "mjlab/asset_zoo/robots/unitree_g1/xmls/g1.xml"

# Reflected inertia of a two-stage planetary gearbox, I0 (r1 r2)^2 + I1 r2^2 + I2, then
# kp = I w^2 and kd = 2 * 2 * I w with w = 20 pi rad/s (10 Hz, damping ratio 2), by hand:
# knee (7520-22 motor; rotors 0.489e-4, 0.109e-4, 0.738e-4 kg m^2; stages 4.5 and 5):
#   I = 0.489e-4 * 22.5^2 + 0.109e-4 * 25 + 0.738e-4 = 247.55625e-4 + 2.725e-4 + 0.738e-4 = 0.025101925
#   kp = 0.025101925 * 3947.8418 = 99.0984,  kd = 4 * 0.025101925 * 62.831853 = 6.30876
# ankle pitch (two 5020 motors; rotors 0.139e-4, 0.017e-4, 0.169e-4; stages 64/18 and 4.5):
#   one motor I = 0.139e-4 * 16^2 + 0.017e-4 * 20.25 + 0.169e-4 = 0.003609725; two: 0.00721945
#   kp = 0.00721945 * 3947.8418 = 28.5012,  kd = 4 * 0.00721945 * 62.831853 = 1.81445; torque 2 x 25 N m
KNEE = {"kp": 99.0984, "kd": 6.30876, "effort": 139.0, "armature": 0.025101925}
ANKLE = {"kp": 28.5012, "kd": 1.81445, "effort": 50.0, "armature": 0.00721945}


def _g1_xml() -> str | None:
    """mjlab's G1 MJCF if this machine has one (env var, this Python's mjlab, /tmp/mjlab_venv)."""
    if os.environ.get(G1_ENV_VAR) and Path(os.environ[G1_ENV_VAR]).is_file():
        return os.environ[G1_ENV_VAR]
    spec = importlib.util.find_spec("mjlab")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))).parent / _RELATIVE
        if path.is_file():
            return str(path)
    found = sorted(glob.glob(f"/tmp/mjlab_venv/lib/python3*/site-packages/{_RELATIVE}"))
    return found[0] if found else None


G1_XML = _g1_xml()
needs_g1 = pytest.mark.skipif(G1_XML is None, reason=f"mjlab's G1 MJCF not found (set ${G1_ENV_VAR} or pip install "
                                                     "mjlab; see docs/mjlab_comparison.md)")


# --- always run ------------------------------------------------------------------------------------

def test_gains_equal_hand_computed_values() -> None:
    kp, kd, effort, armature = g1_gains(["left_knee_joint", "right_ankle_pitch_joint"])
    np.testing.assert_allclose(kp, [KNEE["kp"], ANKLE["kp"]], rtol=1e-5)
    np.testing.assert_allclose(kd, [KNEE["kd"], ANKLE["kd"]], rtol=1e-5)
    np.testing.assert_allclose(effort, [KNEE["effort"], ANKLE["effort"]])
    np.testing.assert_allclose(armature, [KNEE["armature"], ANKLE["armature"]], rtol=1e-9)


def test_unknown_joint_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="'left_tail_joint' matches no motor pattern"):
        g1_gains(["left_tail_joint"])


def test_task_is_registered() -> None:
    assert TASKS["g1_velocity"] == (G1VelocityTask, G1VelocityConfig)


def test_missing_model_file_is_one_config_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "no_g1.xml"
    with pytest.raises(ConfigError) as err:
        G1VelocityConfig(model_path=str(missing)).check_inputs()
    line = str(err.value)
    assert "\n" not in line and line.startswith("task.model_path: ") and str(missing) in line and "no such file" in line
    with pytest.raises(ConfigError) as err:
        load_config(str(REPO / "configs/g1_velocity.toml"), [f"task.model_path={missing}"])
    assert "\n" not in str(err.value) and str(err.value).startswith("--set task.model_path: ")


def test_no_mjlab_says_to_install_it_or_pass_model_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(G1_ENV_VAR, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ConfigError) as err:
        find_g1_xml(None)
    line = str(err.value)
    assert "\n" not in line and "pip install mjlab" in line and "task.model_path=" in line


def test_invalid_model_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "g1.xml"
    bad.write_text("<mujoco><worldbody><body></mujoco>")
    with pytest.raises(ConfigError) as err:
        build_g1_model(find_g1_xml(str(bad)))
    assert "\n" not in str(err.value) and "invalid MuJoCo model" in str(err.value)


def test_cli_missing_model_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    args = ["--cfg", "configs/g1_velocity.toml", "--set", f"task.model_path={tmp_path / 'none.xml'}",
            "--set", f"logging.run_dir={tmp_path}"]
    proc = subprocess.run([sys.executable, "-m", "ktorch_sim.train", "--no-progress", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "task.model_path" in lines[0] and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written for a bad config"


# --- with mjlab's G1 MJCF ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def g1_model() -> mujoco.MjModel:
    return G1VelocityTask(G1VelocityConfig(model_path=G1_XML)).get_mujoco_model()


@needs_g1
def test_scene_matches_mjlab_flat_g1(g1_model: mujoco.MjModel) -> None:
    m = g1_model
    assert (m.nq, m.nv, m.nu) == (36, 35, 29)
    opt = m.opt
    assert opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL and opt.ccd_iterations == 50
    foot, shin = m.geom("left_foot3_collision"), m.geom("left_shin_collision")
    assert (foot.condim[0], foot.priority[0], foot.friction[0]) == (3, 1, pytest.approx(0.6))
    assert (shin.condim[0], shin.contype[0], shin.conaffinity[0]) == (1, 1, 1)
    assert m.geom("floor").type[0] == mujoco.mjtGeom.mjGEOM_PLANE


@needs_g1
def test_physics_settings_equal_mjlab(engine_spec: tuple[str, str]) -> None:
    kind, device = engine_spec
    env = G1VelocityTask(G1VelocityConfig(model_path=G1_XML, num_envs=2, engine=kind, device=device)).make_env()
    m, cfg = env.model, env.engine.config
    # mjlab flat G1: timestep 0.005, decimation 4, Newton, pyramidal, implicitfast, 10 / 20 iterations,
    # njmax 300, nconmax left to MuJoCo Warp's default for this model (48).
    assert m.opt.timestep == 0.005 and cfg.substeps == 4
    assert (m.opt.iterations, m.opt.ls_iterations) == (10, 20)
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert m.opt.solver == mujoco.mjtSolver.mjSOL_NEWTON and m.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
    assert (cfg.nconmax, cfg.njmax) == (48, 300)


@needs_g1
def test_pd_law_in_model_has_hand_computed_gains(g1_model: mujoco.MjModel) -> None:
    env = G1VelocityTask(G1VelocityConfig(model_path=G1_XML, num_envs=1, engine="mujoco")).make_env()
    m = env.model
    for joint, want in (("left_knee_joint", KNEE), ("right_ankle_pitch_joint", ANKLE)):
        a = m.actuator(f"{joint}_ctrl")
        assert a.gainprm[0] == pytest.approx(want["kp"], rel=1e-5)
        assert -a.biasprm[1] == pytest.approx(want["kp"], rel=1e-5)
        assert -a.biasprm[2] == pytest.approx(want["kd"], rel=1e-5)
        np.testing.assert_allclose(a.forcerange, [-want["effort"], want["effort"]])
        assert m.dof_armature[m.joint(joint).dofadr[0]] == pytest.approx(want["armature"], rel=1e-9)


@needs_g1
def test_env_steps_and_stands_on_both_engines(engine_spec: tuple[str, str]) -> None:
    kind, device = engine_spec
    env = G1VelocityTask(G1VelocityConfig(model_path=G1_XML, num_envs=3, engine=kind, device=device)).make_env()
    td = env.reset()
    hold = env._initial_qpos[7:].expand(3, -1).clone()
    for _ in range(10):
        td = env.step(hold)
    obs = td["next", "observation"] if ("next", "observation") in td.keys(True) else td["observation"]
    assert env.num_actions == 29 and obs["joint_position_observation"].shape == (3, 29)
    assert all(torch.isfinite(v).all() for v in obs.values())
    z = env.engine.state.qpos[:, 2]
    assert bool((z > 0.65).all()), f"G1 holding its start pose fell within 0.2 s: base z {z.tolist()}"
    gravity = obs["projected_gravity_observation"]
    assert torch.allclose(gravity[:, 2], torch.full((3,), -1.0, device=gravity.device), atol=0.05)  # unit vector
