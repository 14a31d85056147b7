"""A model's own ``<option>`` is kept unless the config names another value; Warp refuses what it lacks.

EngineConfig's integrator, solver and cone default to "model": the engine runs what the MJCF
declares (RK4 and PGS included, on the native engine), and MuJoCo Warp refuses, with one
ValueError naming what it supports, the options it does not implement (4.0: the PGS solver).
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.engines import EngineConfig, make_engine
from ktorch_sim.engines.base import check_warp_options, option_name
from ktorch_sim.task_config import RLConfig

# A pendulum on a free-falling box that lands: hinge, free joint and one contact, written with
# the options Gymnasium's Humanoid declares (RK4, PGS, elliptic would be the non-defaults).
XML = """
<mujoco>
  <option timestep="0.005" integrator="RK4" solver="PGS" cone="elliptic" iterations="50"/>
  <worldbody>
    <geom type="plane" size="2 2 0.1"/>
    <body pos="0 0 0.3">
      <freejoint/>
      <geom type="box" size="0.1 0.1 0.05" mass="1"/>
      <body pos="0 0 0.1">
        <joint name="hinge" type="hinge" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0.2 0 0.1" size="0.02" mass="0.2"/>
      </body>
    </body>
  </worldbody>
  <actuator><motor joint="hinge" ctrlrange="-1 1"/></actuator>
</mujoco>
"""


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(XML)


def _rollout_matches_mj_step(engine, model: mujoco.MjModel, steps: int = 10) -> None:
    """The engine's qpos after ``steps`` control steps equals plain mj_step with the engine's options."""
    n = engine.num_envs
    qpos0 = torch.tensor(model.qpos0, dtype=torch.float32).expand(n, -1).clone()
    engine.reset(torch.ones(n, dtype=torch.bool), qpos0, torch.zeros(n, model.nv))
    data = mujoco.MjData(engine.model)
    data.qpos[:] = qpos0[0].numpy()
    mujoco.mj_forward(engine.model, data)
    for t in range(steps):
        ctrl = 0.5 * np.sin(t)
        engine.step(torch.full((n, 1), ctrl, dtype=torch.float32))
        data.ctrl[:] = np.float32(ctrl)
        mujoco.mj_step(engine.model, data, engine.substeps)
    np.testing.assert_array_equal(engine.state.qpos[0].numpy(), data.qpos.astype(np.float32))


def test_native_engine_keeps_and_runs_the_models_rk4_pgs_elliptic(model):
    engine = make_engine("mujoco", model, EngineConfig(num_envs=2, dt=0.005, ctrl_dt=0.02, num_threads=1))
    opt = engine.model.opt
    assert (opt.integrator, opt.solver, opt.cone) == (mujoco.mjtIntegrator.mjINT_RK4, mujoco.mjtSolver.mjSOL_PGS,
                                                      mujoco.mjtCone.mjCONE_ELLIPTIC)
    assert [option_name(engine.model, k) for k in ("integrator", "solver", "cone")] == ["rk4", "pgs", "elliptic"]
    _rollout_matches_mj_step(engine, model)


def test_config_values_override_the_model(model):
    config = EngineConfig(num_envs=1, integrator="implicitfast", solver="newton", cone="pyramidal")
    opt = make_engine("mujoco", model, config).model.opt
    assert (opt.integrator, opt.solver, opt.cone) == (mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
                                                      mujoco.mjtSolver.mjSOL_NEWTON, mujoco.mjtCone.mjCONE_PYRAMIDAL)


def test_native_engine_runs_pgs_asked_for_by_the_config(model):
    config = EngineConfig(num_envs=1, dt=0.005, ctrl_dt=0.02, integrator="euler", solver="pgs", num_threads=1)
    engine = make_engine("mujoco", model, config)
    assert engine.model.opt.solver == mujoco.mjtSolver.mjSOL_PGS
    _rollout_matches_mj_step(engine, model)


def test_warp_refuses_the_models_pgs_in_one_line_naming_what_it_supports(model):
    with pytest.raises(ValueError) as caught:
        make_engine("warp", model, EngineConfig(num_envs=1))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("MuJoCo Warp cannot run solver 'pgs' (from the model's <option solver>); "
                              "it supports solver cg, newton.")
    assert 'engine "mujoco"' in message


def test_warp_refuses_pgs_asked_for_by_the_config(model):
    with pytest.raises(ValueError, match=r"solver 'pgs' \(from EngineConfig.solver\); it supports solver cg, newton"):
        make_engine("warp", model, EngineConfig(num_envs=1, solver="pgs"))


def test_warp_refusal_comes_from_the_effective_options(model):
    """The model says PGS; a config that asks for Newton passes the check (and keeps the model's RK4)."""
    import copy

    from ktorch_sim.engines.base import apply_physics_options

    config = EngineConfig(num_envs=1, solver="newton")
    effective = copy.copy(model)
    apply_physics_options(effective, config)
    check_warp_options(effective, config)  # no error
    assert effective.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4


def test_warp_runs_the_models_rk4_and_elliptic_cone(model):
    """RK4 and the elliptic cone from the model, Newton from the config, on MuJoCo Warp (CPU)."""
    pytest.importorskip("mujoco_warp")
    config = EngineConfig(num_envs=1, dt=0.005, ctrl_dt=0.02, solver="newton", iterations=50, ls_iterations=50)
    engine = make_engine("warp", model, config)
    assert engine.model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    assert engine.model.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC
    native = make_engine("mujoco", model, config.replace(num_threads=1))
    for e in (engine, native):
        e.reset(torch.ones(1, dtype=torch.bool), torch.tensor(model.qpos0, dtype=torch.float32)[None],
                torch.zeros(1, model.nv))
        for t in range(10):
            e.step(torch.full((1, 1), 0.5 * np.sin(t)))
    np.testing.assert_allclose(engine.state.qpos.numpy(), native.state.qpos.numpy(), atol=1e-4)


def test_kbot_declares_implicitfast_so_the_default_config_keeps_it():
    from ktorch_sim.robots import load_kbot_pd_model

    kbot = load_kbot_pd_model()
    opt = make_engine("mujoco", kbot, EngineConfig(num_envs=1)).model.opt
    assert (opt.integrator, opt.solver, opt.cone) == (mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
                                                      mujoco.mjtSolver.mjSOL_NEWTON, mujoco.mjtCone.mjCONE_PYRAMIDAL)


def test_task_config_passes_model_or_chosen_options():
    """A user's task keeps its MJCF's own <option> by default; the shipped K-Bot tasks pin ksim's implicitfast."""
    from ktorch_sim.tasks.configs import KbotWalkConfig

    config = RLConfig(device="cpu").engine_config()
    assert (config.integrator, config.solver, config.cone) == ("model", "model", "model")
    config = RLConfig(device="cpu", integrator="rk4", solver="pgs", cone="elliptic").engine_config()
    assert (config.integrator, config.solver, config.cone) == ("rk4", "pgs", "elliptic")
    assert KbotWalkConfig(device="cpu").engine_config().integrator == "implicitfast"


def test_task_config_refuses_unknown_solver_and_cone_names():
    from ktorch_sim.config import ConfigError, load_config

    for key, value in (("task.solver", "jacobi"), ("task.cone", "round")):
        with pytest.raises(ConfigError, match=key.split(".")[1]):
            load_config(None, ["task.name=kbot_walk", f"{key}={value}"])


def test_warp_engine_built_directly_refuses_pgs_too(model):
    from ktorch_sim.engines.warp import WarpEngine

    with pytest.raises(ValueError, match="MuJoCo Warp cannot run solver 'pgs'"):
        WarpEngine(model, EngineConfig(num_envs=1))
