"""Every shipped task builds and steps on every engine: finite observations and rewards, correct
shapes, episodes that end and restart (a smoke test per task, as Playground does)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ktorch_sim as ks
from ktorch_sim.config import ConfigError, load_config
from ktorch_sim.tasks import TASKS, KbotStandConfig, KbotStandTask
from tests.conftest import ENGINE_IDS, ENGINE_SPECS
from tests.test_g1_task import G1_XML

N, STEPS = 4, 30


@pytest.mark.parametrize("task_name", sorted(TASKS))
@pytest.mark.parametrize("spec", ENGINE_SPECS, ids=ENGINE_IDS)
def test_task_steps_on_engine(task_name, spec):
    task_cls, config_cls = TASKS[task_name]
    extra = {}
    if task_name == "g1_velocity":  # its model comes from an installed mjlab, which CI does not have
        if G1_XML is None:
            pytest.skip("mjlab's G1 MJCF not found (set $KTORCH_G1_XML or pip install mjlab)")
        extra["model_path"] = G1_XML
    env = task_cls(config_cls(num_envs=N, engine=spec[0], device=spec[1], seed=0, **extra)).make_env()
    env.set_curriculum_level(1.0)  # full noise, pushes and randomization
    td = env.reset()
    gen = torch.Generator(device=env.device).manual_seed(0)
    home = env._initial_qpos[7:]
    for _ in range(STEPS):
        action = home + 0.1 * torch.randn(N, env.num_actions, generator=gen, device=env.device)
        out = env.step(action)
        for key, value in out["next", "observation"].items():
            assert value.shape[0] == N and torch.isfinite(value).all(), key
        assert torch.isfinite(out["next", "reward"]).all()
    assert set(td["observation"].keys()) == set(out["next", "observation"].keys())
    terms = out["next", "reward_terms"]
    torch.testing.assert_close(sum(terms[k] for k in terms.keys()), out["next", "reward"][:, 0])


def test_kbot_stand_has_the_benchmark_components():
    task = KbotStandTask(KbotStandConfig(num_envs=1))
    model = task.get_mujoco_model()
    spec = task.get_env_spec(model)
    assert [o.name for o in spec.observations] == [
        "timestep_observation", "joint_position_observation", "joint_velocity_observation",
        "actuator_force_observation", "center_of_mass_inertia_observation", "center_of_mass_velocity_observation",
        "base_position_observation", "base_orientation_observation", "base_linear_velocity_observation",
        "base_angular_velocity_observation", "base_linear_acceleration_observation",
        "base_angular_acceleration_observation", "actuator_acceleration_observation", "projected_gravity_observation",
        "sensor_observation_imu_acc", "sensor_observation_imu_gyro"]
    assert {type(r) for r in spec.randomizers} == {ks.StaticFrictionRandomizer, ks.ArmatureRandomizer,
                                                   ks.AllBodiesMassMultiplicationRandomizer, ks.JointDampingRandomizer,
                                                   ks.JointZeroPositionRandomizer}
    assert {type(t) for t in spec.terminations} >= {ks.BadZTermination, ks.NotUprightTermination,
                                                    ks.HighVelocityTermination, ks.FarFromOriginTermination,
                                                    ks.EpisodeLengthTermination}
    assert isinstance(task.get_curriculum(model), ks.LinearCurriculum)
    # actions follow the deployed policy's joint order (nn_id), not the MJCF order
    assert spec.actuators.joint_names[0] == "dof_right_shoulder_pitch_03"


def test_kbot_stand_actor_reads_the_base_frame_velocity_when_asked():
    # Base turned 90 degrees about z and moving +x in the world: in the base frame that is -y.
    plain = KbotStandTask(KbotStandConfig(num_envs=1))
    task = KbotStandTask(KbotStandConfig(num_envs=1, actor_base_velocity=True))
    env = task.make_env()
    env.set_curriculum_level(1.0)  # observation noise grows with the curriculum
    env.reset()
    qpos, qvel = env._initial_qpos[None].clone(), torch.zeros(1, env.model.nv)
    qpos[0, 3:7] = torch.tensor([0.5 ** 0.5, 0.0, 0.0, 0.5 ** 0.5])
    qvel[0, :3] = torch.tensor([1.0, 0.0, 0.0])
    env.engine.reset(torch.ones(1, dtype=torch.bool), qpos, qvel)
    observations = env._observe()["observation"]
    torch.testing.assert_close(observations["base_linear_velocity_observation"][0], torch.tensor([0.0, -1.0, 0.0]),
                               atol=1e-6, rtol=0)
    names = list(observations.keys())
    assert task.get_actor_observation_names(names) == [
        *plain.get_actor_observation_names(names), "base_linear_velocity_observation"]
    # the actor reads the noisy reading (0.1 m/s per step), the critic the clean one
    features = task.actor_features(observations, env.reset()["command"])
    noisy = observations["noisy_base_linear_velocity_observation"][0]
    torch.testing.assert_close(features[0, -3:], noisy)
    assert 0 < float((noisy - observations["base_linear_velocity_observation"][0]).abs().max()) < 1.0


@pytest.mark.parametrize("limit", [0.0, 3.0])
def test_kbot_stand_distance_limit_is_configurable(limit):
    task = KbotStandTask(KbotStandConfig(num_envs=1, max_distance_from_origin=limit))
    far = [t for t in task.get_terminations(task.get_mujoco_model()) if isinstance(t, ks.FarFromOriginTermination)]
    assert [t.max_dist for t in far] == ([limit] if limit else [])


def test_kbot_stand_refuses_a_negative_distance_limit():
    stand = Path(__file__).resolve().parents[1] / "configs" / "kbot_stand_cpu.toml"
    with pytest.raises(ConfigError, match=r"--set task.max_distance_from_origin: must be >= 0 m \(0: no limit\), "
                                          r"got -1"):
        load_config(stand, ["task.max_distance_from_origin=-1"])
