"""Left-right symmetry (``ppo.symmetry = "augment"``): the mirror maps against MuJoCo's own kinematics.

The ground truth: put one world in a random state and a second world in that state's mirror image
(base position and velocity reflected, joints swapped left/right with their signs); what MuJoCo then
computes in the second world must be what the mirror map predicts from the first, for every actor
observation of kbot_stand that depends on positions and velocities only.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch

from ktorch_sim.algorithms.ppo import PPOLossConfig, ppo_losses
from ktorch_sim.config import load_config
from ktorch_sim.errors import ConfigError
from ktorch_sim.ppo_task import build_policy
from ktorch_sim.robots.kbot import load_kbot_robot
from ktorch_sim.symmetry import Mirror, ModelMirror, SymmetryError
from ktorch_sim.components.commands import (
    AngularVelocityCommand,
    LinearVelocityCommand,
    SinusoidalGaitCommand,
    VelocityCommand,
)
from ktorch_sim.playback.evaluate import measured_velocity
from ktorch_sim.tasks import KbotStandConfig, KbotStandTask, KbotWalkConfig, KbotWalkTask

KINEMATIC = ("joint_position_observation", "joint_velocity_observation", "projected_gravity_observation",
             "sensor_observation_imu_gyro", "timestep_observation")


def _two_leg_model(right_hip_y: float = -0.1, site_euler: str = "0 0 90") -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(f"""
<mujoco>
  <worldbody>
    <body name="base" pos="0 0 1">
      <freejoint/>
      <geom type="box" size="0.1 0.15 0.1" mass="5"/>
      <site name="imu" pos="0 0 0.05" euler="{site_euler}"/>
      <site name="side" pos="0 0.1 0"/>
      <body name="left" pos="0 0.1 -0.1">
        <joint name="left_hip" axis="0 1 0"/>
        <joint name="left_roll" axis="1 0 0"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.5" size="0.03" mass="1"/>
      </body>
      <body name="right" pos="0 {right_hip_y} -0.1">
        <joint name="right_hip" axis="0 1 0"/>
        <joint name="right_roll" axis="1 0 0"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.5" size="0.03" mass="1"/>
      </body>
      <body name="head" pos="0 0 0.2">
        <joint name="slide_z" type="slide" axis="0 0 1"/>
        <geom type="sphere" size="0.05" mass="0.5"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="m_right_hip" joint="right_hip" gear="2"/>
    <motor name="m_left_hip" joint="left_hip" gear="-2"/>
  </actuator>
  <sensor>
    <gyro name="gyro" site="imu"/>
    <accelerometer name="acc" site="imu"/>
    <velocimeter name="side_vel" site="side"/>
    <magnetometer name="mag" site="imu"/>
  </sensor>
</mujoco>""")


def test_kbot_joints_pair_left_with_right_and_the_home_pose_is_its_own_mirror():
    model, meta = load_kbot_robot(None, None)
    mirror = ModelMirror(model)
    for j in range(1, model.njnt):
        partner, sign = mirror.partner(j)
        name = model.joint(j).name
        other = name.replace("left", "@").replace("right", "left").replace("@", "right")
        assert model.joint(partner).name == other
        assert sign == -1.0  # K-Bot's left and right axes point the same way in the mirror: q -> -q
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in meta.joint_names]
    home = torch.tensor(meta.home, dtype=torch.float32)
    torch.testing.assert_close(mirror.joints(ids).apply(home), home)


def _put_mirror_pair(env, seed: int = 0) -> None:
    """Put world 0 of ``env`` in a random state and world 1 in that state's mirror image."""
    model = env.model
    joints = ModelMirror(model).joints([j for j in range(model.njnt) if model.jnt_type[j] != 0])
    gen = torch.Generator().manual_seed(seed)
    qpos = env._initial_qpos.expand(2, -1).clone()
    qvel = torch.zeros(2, model.nv)
    qpos[0, :3] = torch.tensor([0.1, 0.2, 1.0])
    quat = torch.randn(4, generator=gen)
    qpos[0, 3:7] = quat / quat.norm()
    qpos[0, 7:] += 0.3 * torch.randn(model.nq - 7, generator=gen)
    qvel[0] = torch.randn(model.nv, generator=gen)
    flip_y = torch.tensor([1.0, -1.0, 1.0])
    qpos[1, :3] = qpos[0, :3] * flip_y
    qpos[1, 3:7] = qpos[0, 3:7] * torch.tensor([1.0, -1.0, 1.0, -1.0])  # S R S as a quaternion
    qpos[1, 7:] = joints.apply(qpos[0, 7:])
    qvel[1, :3] = qvel[0, :3] * flip_y  # world-frame linear velocity: a polar vector
    qvel[1, 3:6] = -qvel[0, 3:6] * flip_y  # base-frame angular velocity: an axial one
    qvel[1, 6:] = joints.apply(qvel[0, 6:])
    env.engine.reset(torch.ones(2, dtype=torch.bool), qpos, qvel)


@pytest.mark.parametrize("actor_base_velocity", [False, True])
def test_mirrored_state_gives_the_mirrored_observations(actor_base_velocity):
    task = KbotStandTask(KbotStandConfig(num_envs=2, actor_base_velocity=actor_base_velocity))
    env = task.make_env()
    first = env.reset()
    mirrors = task.get_policy_mirrors(env, first)
    _put_mirror_pair(env)
    env.ctx.extras.pop("joint_zero_offset", None)  # per-episode encoder offsets are not part of the mirror
    for obs in env.spec.observations:  # the gravity filter's next reading unlagged
        state = env._states.get(id(obs))
        if state is not None and "fresh" in state:
            state["fresh"][:] = True
    observations = env._observe()["observation"]
    names = task.get_actor_observation_names(list(observations.keys()))
    kinematic = (*KINEMATIC, "base_linear_velocity_observation") if actor_base_velocity else KINEMATIC
    assert set(kinematic) <= set(names)
    clean = torch.cat([observations[n] for n in names], dim=-1)
    predicted = mirrors.actor_features.apply(clean[:1])[0]
    offset = 0
    for name in names:
        width = observations[name].shape[-1]
        if name in kinematic:
            torch.testing.assert_close(predicted[offset:offset + width], clean[1, offset:offset + width],
                                       atol=2e-4, rtol=1e-4, msg=name)
        offset += width
    assert math.isclose(float(mirrors.actor_features.apply(mirrors.actor_features.apply(clean))[1, -1]),
                        float(clean[1, -1]))


def test_the_velocity_commands_mirror_as_the_velocity_they_ask_for():
    # World 1 is world 0's mirror image: a command that world 0 tracks exactly, mirrored, is what world 1 does.
    env = KbotWalkTask(KbotWalkConfig(num_envs=2)).make_env()
    env.reset()
    _put_mirror_pair(env, seed=3)
    v_xy, w_z = measured_velocity(env)
    measured = torch.cat([v_xy, w_z[:, None]], dim=-1)
    model_mirror = ModelMirror(env.model)
    torch.testing.assert_close(VelocityCommand().mirror(model_mirror).apply(measured[:1])[0], measured[1],
                               atol=1e-5, rtol=1e-5)
    speed, direction = torch.linalg.vector_norm(v_xy, dim=-1), torch.atan2(v_xy[:, 1], v_xy[:, 0])
    ramped = torch.stack([v_xy[:, 0], v_xy[:, 1], speed, direction, speed, direction], dim=-1)
    torch.testing.assert_close(LinearVelocityCommand().mirror(model_mirror).apply(ramped[:1])[0], ramped[1],
                               atol=1e-5, rtol=1e-5)
    yaw = torch.stack([w_z, w_z], dim=-1)
    torch.testing.assert_close(AngularVelocityCommand().mirror(model_mirror).apply(yaw[:1])[0], yaw[1],
                               atol=1e-5, rtol=1e-5)


def test_the_gait_clock_mirrors_to_the_clock_half_a_period_on():
    gait = SinusoidalGaitCommand(max_height=0.1, height_offset=0.05)
    phase = torch.linspace(0.0, 0.99, 23)
    mirror = gait.mirror(ModelMirror(load_kbot_robot(None, None)[0]))
    torch.testing.assert_close(mirror.apply(gait.foot_heights(phase)), gait.foot_heights((phase + 0.5) % 1.0))
    assert SinusoidalGaitCommand(num_feet=3).mirror(None) is None


def test_kbot_walk_trains_with_symmetry_and_its_mirror_is_an_involution():
    task = KbotWalkTask(KbotWalkConfig(num_envs=3))
    env = task.make_env()
    first = env.reset()
    mirrors = task.get_policy_mirrors(env, first)
    features = task.actor_features(first["observation"], first["command"])
    assert len(mirrors.actor_features) == features.shape[-1]
    torch.testing.assert_close(mirrors.actor_features.apply(mirrors.actor_features.apply(features)), features)
    command = first["command"]["velocity_command"]
    offset = features.shape[-1] - sum(first["command"][n].shape[-1] for n in first["command"].keys())
    for name in sorted(first["command"].keys()):
        width = first["command"][name].shape[-1]
        if name == "velocity_command":
            mirrored = mirrors.actor_features.apply(features)[:, offset:offset + width]
            torch.testing.assert_close(mirrored, command * torch.tensor([1.0, -1.0, -1.0]))
        offset += width


def test_sensor_and_actuator_mirrors_in_a_small_model():
    model = _two_leg_model()
    mirror = ModelMirror(model)
    sensor = {name: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, name) for name in ("gyro", "acc")}
    # The imu frame is turned 90 degrees about z: its x axis is the base's y (flips), its y axis the base's -x.
    assert mirror.sensor(sensor["acc"]) == Mirror((0, 1, 2), (-1.0, 1.0, 1.0))
    assert mirror.sensor(sensor["gyro"]) == Mirror((0, 1, 2), (1.0, -1.0, -1.0))
    hip = {n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ("left_hip", "right_hip", "slide_z")}
    assert mirror.partner(hip["left_hip"]) == (hip["right_hip"], 1.0)  # both axes +y: a swing forward is one on either side
    assert mirror.partner(hip["slide_z"]) == (hip["slide_z"], 1.0)  # on the plane, a polar axis: itself
    # Actuators: the partner's, with the joint's sign times the gears' signs (2 and -2).
    assert mirror.actuators((0, 1)) == Mirror((1, 0), (-1.0, -1.0))


@pytest.mark.parametrize("what, build, message", [
    ("joint", lambda: ModelMirror(_two_leg_model(right_hip_y=-0.2)).partner(1), "'left_hip' has no mirror image"),
    ("frame", lambda: ModelMirror(_two_leg_model(site_euler="0 0 30")).sensor(0), "site 'imu''s axes"),
    ("off the plane", lambda: ModelMirror(_two_leg_model()).sensor(2), "site 'side' is not on the mirror plane"),
    ("sensor type", lambda: ModelMirror(_two_leg_model()).sensor(3), "'mag' (mjSENS_MAGNETOMETER)"),
    ("mirror", lambda: Mirror((0, 0), (1.0, 1.0)), "not a permutation"),
])
def test_what_has_no_mirror_image_is_named(what, build, message):
    with pytest.raises(SymmetryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


def test_mirrored_loss_halves_the_objective_over_both_halves():
    """Hand-worked: advantages (1, -1), ratios exp(0.1) and exp(-0.5) on the mirrored half, clip 0.2."""
    config = PPOLossConfig(clip_param=0.2, normalize_advantages=False)
    zeros = torch.zeros(1, 2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    advantages = torch.tensor([[1.0, -1.0]])
    mirrored = torch.tensor([[0.1, -0.5]])
    plain = ppo_losses(zeros, zeros, zeros, zeros, advantages, zeros, zeros, mask, config)
    both = ppo_losses(zeros, zeros, zeros, zeros, advantages, zeros, zeros, mask, config, mirrored_log_probs=mirrored)
    # Mirrored half: min(1.105 * 1, clip(1.105) * 1) = 1.105; min(0.607 * -1, 0.8 * -1) = -0.8. Mean 0.1526.
    mirrored_objective = -(math.exp(0.1) - 0.8) / 2
    assert float(plain["loss_objective"]) == pytest.approx(0.0)
    assert float(both["loss_objective"]) == pytest.approx(0.5 * (0.0 + mirrored_objective))
    assert float(both["mirror_clip_fraction"]) == pytest.approx(0.5)
    assert float(both["kl"]) == float(plain["kl"])  # the KL stays the collected half's


def test_mirroring_a_trajectory_twice_gives_back_its_log_probs(tmp_path):
    config = load_config("configs/kbot_stand_cpu.toml", ["task.num_envs=2", "ppo.symmetry=augment",
                                                        f"logging.run_dir={tmp_path}"])
    task = KbotStandTask(config.task)
    env = task.make_env()
    first = env.reset()
    model, _ = build_policy(task, env, first, config.model, normalize_inputs=True)
    task.normalizers["actor"].update(torch.randn(64, task.normalizers["actor"].mean.shape[-1]) * 3 + 1)
    mirrors = task.get_policy_mirrors(env, first)
    steps = [first]
    for _ in range(3):
        steps.append(env.step(torch.randn(2, env.num_actions) * 0.1 + model.actor.mean_bias)["next"])
    traj = torch.stack([s.select("observation", "command") for s in steps], dim=1)
    traj.set("action", torch.randn(2, 4, env.num_actions))
    traj.set(("next", "done"), torch.zeros(2, 4, 1, dtype=torch.bool))
    carry = task.get_initial_model_carry(model, 2)
    with torch.no_grad():
        direct = task.get_ppo_variables(model, traj, carry)[0].log_probs
        # Observations whose actor features are the mirror image: mirroring them back must replay `traj`.
        features = task.actor_features(traj["observation"], traj["command"])
        image = mirrors.actor_features.apply(features)
        assert not torch.allclose(image, features)
        torch.testing.assert_close(mirrors.actor_features.apply(image), features)
        mirrored = traj.clone()
        mirrored.set("action", mirrors.actions.apply(traj["action"]))
        task.actor_features = lambda observations, commands: image  # the mirrored trajectory's raw inputs
        twice = task.get_mirrored_variables(model, mirrored, carry, mirrors)
        # PPO hands over the mean its own replay computed: the same gap, without a second actor pass.
        given = task.get_ppo_variables(model, mirrored, carry)[0].action_mean
        handed = task.get_mirrored_variables(model, mirrored, carry, mirrors, action_mean=given)
        # The mirror gap by hand: the actor's mean at the features against the mirror of its mean at their image.
        normalize = task.normalizers["actor"]
        at_features = model.actor(normalize(features), None)[0]
        at_image = model.actor(normalize(image), None)[0]
        gap = 0.5 * ((at_features.mean - mirrors.actions.apply(at_image.mean)) / at_features.stddev).square().sum(-1)
    torch.testing.assert_close(twice.log_probs, direct)
    torch.testing.assert_close(twice.mean_gap, gap)
    torch.testing.assert_close(handed.mean_gap, gap)
    torch.testing.assert_close(handed.log_probs, twice.log_probs)
    assert float(gap.mean()) > 0  # an untrained actor is not its own mirror image
    # The mirror loss's gradient: through the mirrored branch only, the unmirrored mean held as the target.
    params = list(model.actor.parameters())
    got = torch.autograd.grad(task.get_mirrored_variables(model, mirrored, carry, mirrors).mean_gap.mean(), params,
                              allow_unused=True)
    at_features = model.actor(normalize(features), None)[0]
    target = mirrors.actions.apply(model.actor(normalize(image), None)[0].mean).detach()
    by_hand = (0.5 * ((at_features.mean - target) / at_features.stddev).square().sum(-1)).mean()
    want = torch.autograd.grad(by_hand, params, allow_unused=True)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in got)


def test_symmetry_is_refused_where_it_cannot_apply(tmp_path):
    from ktorch_sim.training.trainer import Trainer

    gru = load_config("configs/kbot_stand.toml", ["task.num_envs=2", "ppo.symmetry=augment",
                                                  f"logging.run_dir={tmp_path}", "logging.wandb_mode=disabled"])
    with pytest.raises(ConfigError, match=r"ppo\.symmetry.*feed-forward actor"):
        Trainer(gru)
    cartpole = load_config(None, ["task.name=tests.cartpole:CartpoleTask", "task.num_envs=2", "model.policy=mlp",
                                  "ppo.symmetry=augment", f"logging.run_dir={tmp_path}",
                                  "logging.wandb_mode=disabled"])
    with pytest.raises(ConfigError, match=r"ppo\.symmetry.*observation '\w+' \(\w+\) has no mirror"):
        Trainer(cartpole)
    assert not list(tmp_path.rglob("*.pt"))  # refused before anything is written


def test_the_mirror_of_a_vector_is_applied_on_its_last_axis():
    mirror = Mirror.concat([Mirror.identity(1), Mirror((1, 0), (-1.0, 1.0))])
    x = torch.tensor([[1.0, 2.0, 3.0]])
    torch.testing.assert_close(mirror.apply(x), torch.tensor([[1.0, -3.0, 2.0]]))
    with pytest.raises(SymmetryError, match="size 3 applied to a tensor of shape"):
        mirror.apply(torch.zeros(2))
    assert np.array_equal(mirror.apply(mirror.apply(x)), torch.tensor([[1.0, -2.0, -3.0]]))
