"""AMP (issue 16): the discriminator's pieces by hand, what it learns to tell apart, and kbot_amp trained and resumed.

Bounds stated in each test; the measured values they were set from are in docs/amp.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import pytest
import torch

from ktorch_sim.algorithms.amp import (
    AMPDiscriminatorTrainer,
    Discriminator,
    TransitionReplay,
    gradient_penalty,
    lsgan_losses,
    style_reward,
)
from ktorch_sim.algorithms.amp_config import AMPConfig
from ktorch_sim.checkpoint import load_checkpoint
from ktorch_sim.config import load_config
from ktorch_sim.motion.amp_features import AMP_OBSERVATION, clip_features, transitions
from ktorch_sim.motion.clip import MotionClip
from ktorch_sim.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]

# Each accepted only if the discriminator, after 300 CPU steps, tells held-out reference transitions
# from held-out random-action ones this well (measured: 1.00).
SEPARATION_ACCURACY = 0.9
# Mean style reward of held-out reference transitions must beat random-action ones by this much
# (measured: about 0.93 against 0.03).
STYLE_MARGIN = 0.5


# --- the pieces by hand ------------------------------------------------------------------------------------

def test_gradient_penalty_equals_a_hand_computation_on_a_tiny_network() -> None:
    """D(x) = w2 . relu(W1 x + b1) + b2, so dD/dx = W1^T (w2 * [W1 x + b1 > 0]); penalty (10 / 2) mean ||dD/dx||^2."""
    net = Discriminator(2, (3,))
    with torch.no_grad():
        net.trunk[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 1.0], [-1.0, 0.0]]))
        net.trunk[0].bias.copy_(torch.tensor([0.0, -1.0, 0.5]))
        net.head.weight.copy_(torch.tensor([[2.0, -1.0, 3.0]]))
        net.head.bias.fill_(0.25)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # x1 = (1, 0): pre-activations (1, -0.5, -0.5) -> only unit 0 active: grad = 2 * (1, -2) = (2, -4), |g|^2 = 20.
    # x2 = (0, 1): pre-activations (-2, 0, 0.5)   -> only unit 2 active (relu'(0) = 0): grad = 3 * (-1, 0), |g|^2 = 9.
    expected = 0.5 * 10.0 * (20.0 + 9.0) / 2
    assert gradient_penalty(net, x, 10.0).item() == pytest.approx(expected, rel=1e-6)
    # It is differentiable (create_graph): the penalty trains the weights.
    gradient_penalty(net, x, 10.0).backward()
    assert net.trunk[0].weight.grad is not None and net.trunk[0].weight.grad.abs().sum() > 0


def test_least_squares_targets_and_the_style_reward() -> None:
    """+1 for reference, -1 for policy, means over the batch; style reward max(0, 1 - (d - 1)^2 / 4)."""
    ref, pol = lsgan_losses(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 1.0]))
    assert ref.item() == pytest.approx(0.5 * (0 + 4) / 2) and pol.item() == pytest.approx(0.5 * (0 + 4) / 2)
    torch.testing.assert_close(style_reward(torch.tensor([1.0, 0.0, -1.0, 3.0, 5.0])),
                               torch.tensor([1.0, 0.75, 0.0, 0.0, 0.0]))


def test_replay_buffer_keeps_the_newest_and_round_trips() -> None:
    replay = TransitionReplay(4, 1, "cpu")
    replay.add(torch.arange(3.0)[:, None])
    replay.add(torch.arange(3.0, 6.0)[:, None])
    assert replay.size == 4 and sorted(replay.data[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    other = TransitionReplay(4, 1, "cpu")
    other.load_state_dict(replay.state_dict())
    assert torch.equal(other.data, replay.data) and other.pointer == replay.pointer


def test_amp_config_checks_its_ranges() -> None:
    from ktorch_sim.errors import ConfigError

    for bad in ({"style_weight": 1.5}, {"batch_size": 0}, {"hidden_sizes": ()}, {"learning_rate": 0.0}):
        with pytest.raises(ConfigError, match="amp."):
            AMPConfig(**bad).check()


# --- features, reference transitions, and what the discriminator learns -----------------------------------

@functools.cache
def _kbot_amp_task(reference_state_init: float = 1.0, command_conditioned: bool = True) -> object:
    from ktorch_sim.tasks import task_class, task_config_class

    config = task_config_class("kbot_amp")(num_envs=16, reference_state_init=reference_state_init, device="cpu",
                                           engine="mujoco", seed=3, command_conditioned=command_conditioned)
    return task_class("kbot_amp")(config)


def test_the_engine_and_the_clips_give_the_same_features() -> None:
    """Worlds reset to clip frames (reference-state init, random heading) observe features that are a clip frame's.

    One function computes both: the engine's observation (qpos, qvel, site_xpos of the simulated
    worlds) and the clips' table (MuJoCo kinematics of each frame), so each world's features equal
    some frame's to float32 precision, whatever heading the reset turned it to.
    """
    task = _kbot_amp_task()
    model = task.get_mujoco_model()
    table = torch.cat([clip_features(c, model, task.get_amp_foot_sites(model)) for c in task.reference_motions()])
    env = task.make_env()
    observed = env.reset()["observation", AMP_OBSERVATION]
    distance = torch.cdist(observed.double(), table.double()).min(dim=1).values
    print(f"largest distance to a clip frame {distance.max().item():.2e}")
    assert distance.max().item() < 1e-3, distance
    # And not trivially: the home pose is far from every frame of a walking clip.
    clip = task.reference_motions()[0]
    still = MotionClip(fps=50.0, joint_names=clip.joint_names, qpos=env._initial_qpos[None].repeat(2, 1).cpu())
    home = clip_features(still, model, task.get_amp_foot_sites(model))
    assert torch.cdist(home.double(), table.double()).min().item() > 1e-2


def test_reference_state_init_writes_only_the_chosen_worlds() -> None:
    """Probability 0 changes nothing; probability 1 gives every masked world a clip frame's joints and speeds,
    turned to some heading (same height and tilt), and leaves the other worlds alone."""
    from ktorch_sim.motion.reference_reset import ReferenceStateReset
    from ktorch_sim.utils.rotations import quat_yaw

    task = _kbot_amp_task()
    env = task.make_env()
    home = env._initial_qpos.expand(env.num_envs, -1).clone()
    qvel = torch.zeros(env.num_envs, env.model.nv)
    mask = torch.arange(env.num_envs) % 2 == 0
    never = ReferenceStateReset.from_clips(task.reference_motions(), 0.0)
    qpos = home.clone()
    never.apply(qpos, qvel, mask, env.ctx)
    assert torch.equal(qpos, home) and not qvel.any()
    always = ReferenceStateReset.from_clips(task.reference_motions(), 1.0)
    always.apply(qpos, qvel, mask, env.ctx)
    assert torch.equal(qpos[~mask], home[~mask]) and not qvel[~mask].any()
    ours = torch.cat([qpos[mask, 7:], qvel[mask, 6:]], -1).double()
    frames = torch.cat([always.qpos[:, 7:], always.qvel[:, 6:]], -1).double()
    joints = torch.cdist(ours, frames, compute_mode="donot_use_mm_for_euclid_dist")
    assert joints.min(dim=1).values.max() < 1e-5
    frame = joints.argmin(dim=1)
    torch.testing.assert_close(qpos[mask, 2], always.qpos[frame, 2])
    speed = torch.linalg.vector_norm(qvel[mask, :3], dim=-1)
    torch.testing.assert_close(speed, torch.linalg.vector_norm(always.qvel[frame, :3], dim=-1))
    assert quat_yaw(qpos[mask, 3:7]).std() > 0.1  # random headings


def test_cyclic_clip_transitions_wrap_and_open_ones_do_not() -> None:
    features = torch.arange(6.0).view(3, 2)
    assert transitions(features, cyclic=True).shape == (3, 4)
    assert transitions(features, cyclic=True)[-1].tolist() == [4.0, 5.0, 0.0, 1.0]
    assert transitions(features, cyclic=False).tolist() == [[0.0, 1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0]]


def _random_action_transitions(steps: int = 40) -> torch.Tensor:
    """(s, s') AMP transitions of K-Bot under random actions (home pose + N(0, 0.3 rad) per joint, per step)."""
    task = _kbot_amp_task(0.0, command_conditioned=False)
    env = task.make_env()
    generator = torch.Generator().manual_seed(0)
    current = env.reset()["observation", AMP_OBSERVATION]
    home = env._initial_qpos[7:]
    pairs = []
    for _ in range(steps):
        action = home + 0.3 * torch.randn(env.num_envs, env.num_actions, generator=generator)
        out = env.step(action)
        nxt = out["next", "observation", AMP_OBSERVATION]
        keep = ~out["next", "done"][:, 0]
        pairs.append(torch.cat([current, nxt], dim=-1)[keep])
        current = nxt
    return torch.cat(pairs)


def test_the_discriminator_separates_reference_from_random_action_transitions() -> None:
    """After 300 CPU steps it scores held-out reference transitions > 0 and random-action ones < 0
    (accuracy >= SEPARATION_ACCURACY), and their style rewards differ by STYLE_MARGIN."""
    torch.manual_seed(0)
    reference = _kbot_amp_task(command_conditioned=False).amp_reference_transitions()
    random_pairs = _random_action_transitions()
    split = torch.randperm(reference.shape[0], generator=torch.Generator().manual_seed(1))
    ref_train, ref_test = reference[split[: len(split) // 2]], reference[split[len(split) // 2:]]
    half = random_pairs.shape[0] // 2
    pol_train, pol_test = random_pairs[:half], random_pairs[half:]
    config = AMPConfig(hidden_sizes=(128, 128), learning_rate=1e-3, batch_size=256)
    trainer = AMPDiscriminatorTrainer(ref_train, config, torch.Generator().manual_seed(2), "cpu")
    trainer.add_policy_transitions(pol_train)
    before = trainer.logits(ref_test).mean() - trainer.logits(pol_test).mean()
    for _ in range(300):
        metrics = trainer.step()
    d_ref, d_pol = trainer.logits(ref_test), trainer.logits(pol_test)
    accuracy = 0.5 * ((d_ref > 0).float().mean() + (d_pol < 0).float().mean()).item()
    print(f"accuracy {accuracy:.3f}, style reward reference {style_reward(d_ref).mean():.3f} random "
          f"{style_reward(d_pol).mean():.3f}, logit gap before {before.item():.3f}")
    assert accuracy >= SEPARATION_ACCURACY, (accuracy, before.item())
    assert style_reward(d_ref).mean() - style_reward(d_pol).mean() >= STYLE_MARGIN
    assert metrics["amp_logit_reference"] > metrics["amp_logit_policy"]
    assert torch.isfinite(metrics["amp_grad_penalty"])


def test_the_command_selects_the_style() -> None:
    """kbot_amp conditions the discriminator on the velocity command: each reference transition carries its clip's
    command, commands are drawn from the clips' commands, and a discriminator trained against the same reference
    transitions paired with another clip's command learns to reject the mismatch (held-out accuracy >= 0.8;
    measured in docs/amp.md)."""
    task = _kbot_amp_task()
    assert task.amp_command == "velocity_command"
    reference = task.amp_reference_transitions()
    clip_commands = {tuple(round(v, 6) for v in c.metadata["command"]) for c in task.reference_motions()}
    assert {tuple(round(v, 6) for v in row) for row in reference[:, -3:].tolist()} == clip_commands
    env = task.make_env()
    drawn = env.reset()["command", "velocity_command"]
    assert {tuple(round(v, 6) for v in row) for row in drawn.tolist()} <= clip_commands

    generator = torch.Generator().manual_seed(4)
    order = torch.randperm(reference.shape[0], generator=generator)
    table = torch.tensor(sorted(clip_commands))
    mismatched = reference[order].clone()  # each transition with a random clip command; kept where it is not its own
    mismatched[:, -3:] = table[torch.randint(len(table), (len(order),), generator=generator)]
    keep = ~(mismatched[:, -3:] == reference[order][:, -3:]).all(-1)
    half = len(order) // 2
    trainer = AMPDiscriminatorTrainer(reference[order[:half]], AMPConfig(hidden_sizes=(128, 128), learning_rate=1e-3,
                                                                         batch_size=256), generator, "cpu")
    trainer.add_policy_transitions(mismatched[:half][keep[:half]])
    for _ in range(400):
        trainer.step()
    d_ref, d_bad = trainer.logits(reference[order[half:]]), trainer.logits(mismatched[half:][keep[half:]])
    accuracy = 0.5 * ((d_ref > 0).float().mean() + (d_bad < 0).float().mean()).item()
    print(f"command-mismatch accuracy {accuracy:.3f}")
    assert accuracy >= 0.8, accuracy


# --- kbot_amp trained, checkpointed, resumed -----------------------------------------------------------------

SMOKE = ["task.num_envs=4", "ppo.batch_size=2", "ppo.rollout_length_seconds=0.2", "model.hidden_size=16",
         "model.depth=1", "amp.hidden_sizes=[32]", "amp.batch_size=64", "logging.wandb_mode=disabled",
         "logging.video_every_minutes=0", "checkpoint.save_every_seconds=1e9", "task.device=cpu",
         "task.engine=mujoco"]


def _smoke_config(run_dir: Path, max_steps: int) -> object:
    return load_config(REPO / "configs" / "kbot_amp.toml",
                       [*SMOKE, f"logging.run_dir={run_dir}", f"ppo.max_steps={max_steps}"], note_caps=False)


def test_kbot_amp_trains_two_iterations_checkpoints_the_discriminator_and_resumes_exactly(tmp_path: Path) -> None:
    """Two iterations on the CPU; the checkpoint holds the discriminator, its optimizer, normalizer and replay;
    a resume restores them bit for bit, and two resumes from it train the same next iteration."""
    trainer = Trainer(_smoke_config(tmp_path, 80))
    run_dir = trainer.train(progress=False)
    metrics = trainer.last_metrics
    for key in ("amp_loss_reference", "amp_loss_policy", "amp_grad_penalty", "amp_logit_reference",
                "amp_logit_policy", "amp_style_reward"):
        assert torch.isfinite(torch.tensor(metrics[f"loss/{key}"])), key
    state = load_checkpoint(trainer.checkpoints.resume_path())
    amp = state["amp"]
    assert set(amp) >= {"discriminator", "optimizer", "normalizer", "replay"}
    assert 0 < amp["replay"]["size"] <= 80  # every transition but those that ended an episode
    assert all(torch.equal(v, amp["discriminator"][k]) for k, v in trainer.ppo.amp.discriminator.state_dict().items())

    resumed = [Trainer(_smoke_config(tmp_path, 120), resume=run_dir) for _ in range(2)]
    for other in resumed:
        assert other.iteration == 2
        for key, value in trainer.ppo.amp.discriminator.state_dict().items():
            assert torch.equal(value, other.ppo.amp.discriminator.state_dict()[key]), key
        assert torch.equal(trainer.ppo.amp.normalizer.mean, other.ppo.amp.normalizer.mean)
        assert torch.equal(trainer.ppo.amp.replay.data, other.ppo.amp.replay.data)
        other.iterate()
    a, b = (r.ppo.amp.discriminator.state_dict() for r in resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    pairs = zip(resumed[0].model.parameters(), resumed[1].model.parameters(), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)
    for r in resumed:
        r.logger.close()

    # A plain PPO checkpoint (no "amp" entry) still loads: the discriminator stays fresh.
    plain = {k: v for k, v in trainer.state_dict().items() if k != "amp"}
    resumed[0].ppo.load_state_dict(plain)


def test_target_kl_ends_the_amp_update_with_no_discriminator_step_for_the_stopped_minibatch(tmp_path: Path) -> None:
    """With ``ppo.target_kl`` tiny (stopping the whole update) the update stops after its first minibatch: the discriminator steps only after
    the minibatches PPO applied (``amp.steps_per_minibatch`` each), never after the one that ended the update."""
    config = load_config(REPO / "configs" / "kbot_amp.toml",
                         [*SMOKE, f"logging.run_dir={tmp_path}", "ppo.max_steps=80", "ppo.target_kl=1e-9",
                          "ppo.target_kl_stops=update"],
                         note_caps=False)
    trainer = Trainer(config)
    counts = {"ppo": 0, "amp": 0}

    def counted(name: str, step: object) -> object:
        def wrapper(*args: object, **kwargs: object) -> object:
            counts[name] += 1
            return step(*args, **kwargs)
        return wrapper

    trainer.ppo.optimizer.step = counted("ppo", trainer.ppo.optimizer.step)
    trainer.ppo.amp.step = counted("amp", trainer.ppo.amp.step)
    trainer.iterate()
    trainer.iterate()  # the replay holds policy transitions from the first iteration on
    minibatches = config.ppo.num_passes * config.num_minibatches
    assert 2 <= counts["ppo"] < 2 * minibatches
    assert counts["amp"] == config.amp.steps_per_minibatch * counts["ppo"]
    trainer.logger.close()


def test_no_discriminator_step_after_a_ppo_step_skipped_as_not_finite(tmp_path: Path, monkeypatch) -> None:
    """A PPO minibatch whose loss is not finite is skipped (``PPO.skipped_updates``); the discriminator takes
    no step after it either, so it steps ``amp.steps_per_minibatch`` times per PPO step, never more."""
    config = load_config(REPO / "configs" / "kbot_amp.toml",
                         [*SMOKE, f"logging.run_dir={tmp_path}", "ppo.max_steps=80"], note_caps=False)
    trainer = Trainer(config)
    trainer.iterate()  # the replay holds policy transitions from here on, so the discriminator would step
    steps = {"amp": 0}
    amp_step = trainer.ppo.amp.step

    def counted() -> object:
        steps["amp"] += 1
        return amp_step()

    monkeypatch.setattr(trainer.ppo.amp, "step", counted)
    original = trainer.task.get_ppo_variables

    def nan_values(model: object, trajectory: object, carry: object) -> object:
        variables, carry = original(model, trajectory, carry)
        return dataclasses.replace(variables, values=variables.values * math.nan), carry

    monkeypatch.setattr(trainer.task, "get_ppo_variables", nan_values)
    before = trainer.ppo.skipped_updates
    trainer.iterate()
    minibatches = config.ppo.num_passes * config.num_minibatches
    assert trainer.ppo.skipped_updates - before == minibatches and steps["amp"] == 0
    monkeypatch.setattr(trainer.task, "get_ppo_variables", original)
    trainer.iterate()
    assert steps["amp"] == config.amp.steps_per_minibatch * minibatches > 0
    trainer.logger.close()


# --- learning from the style reward alone (benchmarks/amp_arm.py; docs/training_runs.md) ---------------------

# Any arm held still is at least 0.3 from the reference swing (the swing's slowest state moves at 0.3 rad of
# (speed / omega)); the untrained policy scores about 0.8. Measured over seeds 0, 1, 2 at 100 iterations:
# 0.21, 0.17, 0.21 (mean of iterations 91-100); with the discriminator frozen at its random start: 2.56.
STILL_ARM_DISTANCE = 0.3


@pytest.mark.slow
def test_the_style_reward_alone_teaches_the_arm_the_reference_swing(tmp_path: Path) -> None:
    """100 iterations (about 40 s on an idle 2-core CPU) with a zero task reward: the swing distance falls from about
    0.8 to below what any still arm can reach, so the policy moves the arm along the reference."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("amp_learning_check", REPO / "tools" / "amp_learning_check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    records = check.run(100, tmp_path)
    distances = [r["swing_distance"] for r in records]
    first, last = sum(distances[:5]) / 5, sum(distances[-10:]) / 10
    assert first > 0.6, f"the untrained arm should be far from the swing: {first:.3f}"
    assert last < STILL_ARM_DISTANCE, f"no swing learned: {first:.3f} -> {last:.3f}"
