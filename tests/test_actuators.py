"""The PD actuator law MuJoCo evaluates must be ksim's MIT law, tau = clip(kp (q* - q) - kd qd, +-limit)."""

from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.actuators import actuator_ids, configure_pd_actuators, pd_torque
from ktorch_sim.robots import kbot_home_qpos, kbot_metadata, load_kbot_model

KP_SCALE, KD_SCALE, TORQUE_SCALE = 1.4, 1.4, 1.5


def _gains() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    meta = kbot_metadata()
    limit = np.minimum(meta.soft_torque_limit * TORQUE_SCALE, meta.peak_torque)
    return meta.kp * KP_SCALE, meta.kd * KD_SCALE, limit


def _pd_model() -> mujoco.MjModel:
    model = load_kbot_model()
    ids = actuator_ids(model, [f"{n}_ctrl" for n in kbot_metadata().joint_names])
    configure_pd_actuators(model, ids, *_gains())
    return model


def test_actuator_force_is_the_mit_law_including_clipping():
    model = _pd_model()
    rng = np.random.default_rng(0)
    d = mujoco.MjData(model)
    d.qpos[:] = kbot_home_qpos(model)
    d.qpos[7:] += rng.uniform(-0.3, 0.3, 20)
    d.qvel[6:] = rng.normal(0, 3.0, 20)
    d.ctrl[:] = kbot_home_qpos(model)[7:] + rng.uniform(-1.0, 1.0, 20)
    mujoco.mj_forward(model, d)
    kp, kd, limit = (torch.tensor(v) for v in _gains())
    want = pd_torque(torch.tensor(d.ctrl), torch.tensor(d.qpos[7:]), torch.tensor(d.qvel[6:]), kp, kd, limit)
    np.testing.assert_allclose(d.actuator_force, want.numpy(), rtol=1e-12, atol=1e-9)
    assert np.any(np.abs(want.numpy()) == limit.numpy()), "the sample should exercise the torque clip"


def test_native_pd_equals_torque_computed_every_substep():
    """With explicit Euler integration, MuJoCo's PD actuators and a motor driven by the law
    computed in Python before every substep give the same trajectory (to float64 round-off)."""
    native = _pd_model()
    motor = load_kbot_model()
    for m in (native, motor):
        m.opt.integrator = mujoco.mjtIntegrator.mjINT_EULER
        m.opt.timestep = 0.002
    kp, kd, limit = _gains()
    rng = np.random.default_rng(1)
    dn, dm = mujoco.MjData(native), mujoco.MjData(motor)
    for d, m in ((dn, native), (dm, motor)):
        d.qpos[:] = kbot_home_qpos(m)
        d.qpos[2] += 0.3
    for _ in range(25):  # 25 control steps of 10 substeps
        target = kbot_home_qpos(native)[7:] + rng.uniform(-0.3, 0.3, 20)
        dn.ctrl[:] = target
        for _ in range(10):
            dm.ctrl[:] = np.clip(kp * (target - dm.qpos[7:]) - kd * dm.qvel[6:], -limit, limit)
            mujoco.mj_step(native, dn)
            mujoco.mj_step(motor, dm)
    np.testing.assert_allclose(dn.qpos, dm.qpos, atol=1e-9)
    np.testing.assert_allclose(dn.qvel, dm.qvel, atol=1e-7)


def test_pd_requires_joint_transmission_with_unit_gear():
    model = load_kbot_model()
    model = copy.copy(model)
    model.actuator_gear[0, 0] = 2.0
    with pytest.raises(ValueError, match="gear 1"):
        configure_pd_actuators(model, [0], [1.0], [0.1], [1.0])


def test_unknown_actuator_name_is_a_clear_error():
    with pytest.raises(ValueError, match="dof_nose_ctrl"):
        actuator_ids(load_kbot_model(), ["dof_nose_ctrl"])


def test_position_actuators_configure_scaled_gains_and_explicit_action_order():
    from ktorch_sim.actuators import PositionActuators

    model = load_kbot_model()
    meta = kbot_metadata()
    policy_order = [j.name for j in meta.in_policy_order()]
    act = PositionActuators.create(model, meta, joint_names=policy_order, kp_scale=1.4, kd_scale=1.4,
                                   torque_limit_scale=1.5)
    act.configure(model)
    first = policy_order[0]  # dof_right_shoulder_pitch_03 (nn_id 0)
    idx = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{first}_ctrl")
    assert model.actuator_gainprm[idx, 0] == pytest.approx(100.0 * 1.4)
    assert model.actuator_biasprm[idx, 2] == pytest.approx(-8.284 * 1.4)
    assert model.actuator_forcerange[idx, 1] == pytest.approx(42.0 * 1.5)
    action = torch.arange(20, dtype=torch.float32)[None, :]  # action i for policy joint i
    ctrl = act.ctrl(action, act.init_state(1, torch.device("cpu")), torch.Generator())
    for i, name in enumerate(policy_order):
        assert ctrl[0, mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{name}_ctrl")] == i


def test_torque_actuators_pass_actions_through():
    from ktorch_sim.actuators import TorqueActuators

    act = TorqueActuators.create(load_kbot_model())
    action = torch.randn(3, 20)
    torch.testing.assert_close(act.ctrl(action, {}, torch.Generator()), action)


UNNAMED_ACTUATORS_XML = """
<mujoco>
  <worldbody>
    <body name="upper">
      <joint name="shoulder" type="hinge" axis="0 1 0"/>
      <geom type="capsule" fromto="0 0 0 0 0 -0.5" size="0.05" mass="1"/>
      <body pos="0 0 -0.5">
        <joint type="hinge" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.5" size="0.05" mass="1"/>
        <site name="tip" pos="0 0 -0.5"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="shoulder" gear="2"/>
    <motor site="tip" gear="1 0 0 0 0 0"/>
    <motor name="shoulder_boost" joint="shoulder"/>
  </actuator>
</mujoco>
"""


def _unnamed_model() -> mujoco.MjModel:
    """Three motors: unnamed on a named joint, unnamed on a site, and a named second one on the joint."""
    return mujoco.MjModel.from_xml_string(UNNAMED_ACTUATORS_XML)


def test_torque_actuators_work_on_models_with_unnamed_actuators():
    from ktorch_sim.actuators import TorqueActuators, actuator_labels

    model = _unnamed_model()
    assert actuator_labels(model) == ["shoulder", "actuator_1", "shoulder_boost"]
    act = TorqueActuators.create(model)
    assert act.actuator_ids == (0, 1, 2)
    action = torch.randn(2, 3)
    torch.testing.assert_close(act.ctrl(action, {}, torch.Generator()), action)
    # a subset by label (joint name or actuator_<i>) or by name, in action order
    assert TorqueActuators.create(model, ["actuator_1", "shoulder_boost"]).actuator_ids == (1, 2)
    with pytest.raises(ValueError, match=r"actuator 'nose' is not in the model; actuators are \['shoulder'"):
        TorqueActuators.create(model, ["nose"])


def _kbot_without_actuator_names() -> mujoco.MjModel:
    from ktorch_sim.robots.kbot import KBOT_SCENE_XML

    spec = mujoco.MjSpec.from_file(str(KBOT_SCENE_XML))
    for actuator in spec.actuators:
        actuator.name = ""
    return spec.compile()


def test_position_actuators_find_unnamed_actuators_by_their_joint():
    from ktorch_sim.actuators import PositionActuators, actuator_labels
    from ktorch_sim.model_files import check_joint_sets
    from ktorch_sim.robot_metadata import check_against_model

    named, unnamed = load_kbot_model(), _kbot_without_actuator_names()
    meta = kbot_metadata()
    assert all(not unnamed.actuator(i).name for i in range(unnamed.nu))
    check_against_model(meta, unnamed)
    check_joint_sets(meta, unnamed, "joints.toml", "task.metadata_path")
    order = [j.name for j in meta.in_policy_order()]
    expected = PositionActuators.create(named, meta, joint_names=order)
    got = PositionActuators.create(unnamed, meta, joint_names=order)
    assert got.actuator_ids == expected.actuator_ids
    assert actuator_labels(unnamed) == [n.removesuffix("_ctrl") for n in actuator_labels(named)]
    got.configure(unnamed)
    expected.configure(named)
    np.testing.assert_array_equal(unnamed.actuator_gainprm, named.actuator_gainprm)
    np.testing.assert_array_equal(unnamed.actuator_biasprm, named.actuator_biasprm)


def test_a_joint_with_two_unnamed_actuators_is_one_clear_error():
    from ktorch_sim.actuators import joint_actuator_ids

    model = _unnamed_model()
    with pytest.raises(ValueError, match=r"joint 'shoulder' is driven by 2 actuators \['shoulder', 'shoulder_boost'\]"):
        joint_actuator_ids(model, ["shoulder"])
    with pytest.raises(ValueError, match="joint 'knee' has no actuator"):
        joint_actuator_ids(model, ["knee"])
