"""``ktorch_sim.playback.evaluate`` and ``tools/play.py``: metrics checked against a replay of the same env.

Scripted policies (not a trained network) hold K-Bot at its home pose, or drive every joint
far from it so it falls. A second env with the same seed is stepped by hand with the same
actions; the tracking errors, episode lengths, returns and per-termination falls that the
evaluation reports must match what that replay measures (velocities taken through MuJoCo's
own quaternion-to-matrix routine, not the torch code under test).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from ktorch_sim.components.base import Termination
from ktorch_sim.playback.evaluate import EpisodeTallies, EvalError, evaluate
from ktorch_sim.playback.policy_rollout import pin_velocity_command
from ktorch_sim.robots import kbot_metadata
from ktorch_sim.tasks.kbot_walk import KbotWalkConfig, KbotWalkTask

REPO = Path(__file__).resolve().parent.parent
PLAY = REPO / "tools" / "play.py"
HOME = torch.tensor(kbot_metadata().in_policy_order().home, dtype=torch.float32)
COMMAND = torch.tensor([0.5, 0.0, 0.0])
SUMMARY_KEYS = {
    "episodes", "survival_rate", "falls", "early_truncations", "bad_physics", "falls_by_termination",
    "truncations_by_termination", "episode_length_mean",
    "episode_length_std", "episode_seconds_mean", "episode_seconds_std", "return_mean", "return_std",
    "linear_velocity_error_rms", "yaw_rate_error_rms", "foot_air_time_mean", "foot_touchdowns", "samples",
    "unfinished_worlds", "engine", "device", "num_envs", "task", "checkpoint", "iteration", "command",
    "deterministic", "seed", "curriculum_level", "ctrl_dt", "max_episode_seconds",
}


def make_env(num_envs: int, seconds: float):
    config = KbotWalkConfig(num_envs=num_envs, engine="mujoco", device="cpu", episode_length_seconds=seconds, seed=7)
    return KbotWalkTask(config).make_env()


def constant_policy(targets: torch.Tensor, seen_commands: list | None = None):
    """A scripted policy: the same joint targets every step (records the commands it is given)."""
    def policy(observations, commands, carry):
        if seen_commands is not None:
            seen_commands.append(commands["velocity_command"].clone())
        return targets.expand(observations.batch_size[0], -1), carry
    return policy


def replay(env, targets: torch.Tensor, steps: int, command: torch.Tensor | None = None) -> list[dict]:
    """Step ``env`` by hand: per step the state acted from and what the step returned (numpy)."""
    current = env.reset()
    records = []
    for _ in range(steps):
        if command is not None:
            pin_velocity_command(env, command, current)
        state = env.engine.state
        record = {"qpos": state.qpos.double().numpy().copy(), "qvel": state.qvel.double().numpy().copy()}
        nxt = env.step(targets.expand(env.num_envs, -1))["next"]
        record.update(reward=nxt["reward"][:, 0].double().numpy(), done=nxt["done"][:, 0].numpy(),
                      terminated=nxt["terminated"][:, 0].numpy(),
                      verdicts={k: v.numpy() for k, v in nxt["terminations"].items()})
        records.append(record)
        current = nxt.select("observation", "command")
    return records


def heading_velocity(qpos: np.ndarray, qvel: np.ndarray) -> tuple[np.ndarray, float]:
    """Planar base velocity in the heading frame and world yaw rate, via mju_quat2Mat."""
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, qpos[3:7] / np.linalg.norm(qpos[3:7]))
    rot = rot.reshape(3, 3)
    yaw = math.atan2(rot[1, 0], rot[0, 0])
    c, s = math.cos(yaw), math.sin(yaw)
    vx, vy = qvel[0], qvel[1]
    return np.array([c * vx + s * vy, -s * vx + c * vy]), float((rot @ qvel[3:6])[2])


def test_standing_robot_with_pinned_command_tracks_with_error_of_the_command():
    seen: list[torch.Tensor] = []
    summary = evaluate(make_env(4, 0.5), constant_policy(HOME, seen), 4, command=COMMAND)
    records = replay(make_env(4, 0.5), HOME, 25, command=COMMAND)

    # The policy saw the pinned command every step; every episode ran to the 0.5 s time limit.
    assert all(torch.equal(c, COMMAND.expand(4, 3)) for c in seen)
    assert summary["episodes"] == 4 and summary["survival_rate"] == 1.0 and summary["falls"] == 0
    assert summary["episode_length_mean"] == 25 and summary["episode_length_std"] == 0
    assert summary["episode_seconds_mean"] == pytest.approx(0.5)
    assert summary["samples"] == 100 and not any(r["done"].any() for r in records[:-1]) and records[-1]["done"].all()

    velocities = [heading_velocity(r["qpos"][i], r["qvel"][i]) for r in records for i in range(4)]
    v_xy = np.array([v for v, _ in velocities])
    w_z = np.array([w for _, w in velocities])
    expected_linear = math.sqrt(np.mean((0.5 - v_xy[:, 0]) ** 2 + v_xy[:, 1] ** 2))
    assert summary["linear_velocity_error_rms"] == pytest.approx(expected_linear, rel=1e-5)
    assert summary["yaw_rate_error_rms"] == pytest.approx(math.sqrt(np.mean(w_z**2)), rel=1e-5, abs=1e-7)
    # Standing still: the error is the command's 0.5 m/s, off by at most the RMS speed (Minkowski).
    rms_speed = math.sqrt(np.mean(np.sum(v_xy**2, axis=1)))
    assert rms_speed < 0.2
    assert abs(summary["linear_velocity_error_rms"] - 0.5) <= rms_speed + 1e-6
    returns = np.sum([r["reward"] for r in records], axis=0)
    assert summary["return_mean"] == pytest.approx(returns.mean(), rel=1e-5)
    assert summary["return_std"] == pytest.approx(returns.std(), rel=1e-3, abs=1e-4)


def test_falling_robot_counts_falls_at_the_termination_step():
    extreme = HOME + 1.0  # every joint 1 rad past home: K-Bot folds and tips over
    summary = evaluate(make_env(4, 3.0), constant_policy(extreme), 4)
    records = replay(make_env(4, 3.0), extreme, 150)

    done = np.array([r["done"] for r in records])  # [T, N]
    assert done.any(0).all(), "every world falls within the 3 s limit"
    end = done.argmax(0)  # the step index that ended each world's first episode
    lengths = end + 1
    assert all(records[t]["terminated"][i] for i, t in enumerate(end))
    assert summary["episodes"] == 4 and summary["falls"] == 4 and summary["survival_rate"] == 0.0
    assert summary["episode_length_mean"] == pytest.approx(lengths.mean())
    assert summary["episode_length_std"] == pytest.approx(lengths.std(), abs=1e-6)
    assert summary["episode_seconds_mean"] == pytest.approx(lengths.mean() * 0.02)
    for name, count in summary["falls_by_termination"].items():
        assert count == sum(records[t]["verdicts"][name][i] < 0 for i, t in enumerate(end)), name
    assert sum(summary["falls_by_termination"].values()) >= 4
    returns = [sum(records[t]["reward"][i] for t in range(end[i] + 1)) for i in range(4)]
    assert summary["return_mean"] == pytest.approx(np.mean(returns), rel=1e-5)
    assert summary["samples"] == lengths.sum()


def test_episodes_are_split_over_worlds_and_each_world_counts_its_share():
    # 5 episodes on 3 worlds: shares 2, 2, 1; every episode lasts the 0.2 s limit (10 steps).
    summary = evaluate(make_env(3, 0.2), constant_policy(HOME), 5)
    assert summary["episodes"] == 5 and summary["samples"] == 50 and summary["unfinished_worlds"] == 0
    assert summary["episode_length_mean"] == 10 and summary["survival_rate"] == 1.0
    with pytest.raises(EvalError, match="at least 3 episodes"):
        evaluate(make_env(3, 0.2), constant_policy(HOME), 2)


@dataclass(frozen=True, kw_only=True)
class OddWorldsLeaveTheMap(Termination):
    """A scripted truncation (+1, as ksim's FarFromOriginTermination): odd worlds end at their 3rd step."""

    def check(self, ctx) -> torch.Tensor:
        odd = torch.arange(ctx.episode_steps.shape[0]) % 2 == 1
        return ((ctx.episode_steps >= 3) & odd).to(torch.int8)


class LeavingWalkTask(KbotWalkTask):
    """kbot_walk with :class:`OddWorldsLeaveTheMap` beside its own terminations."""

    def get_terminations(self, model):
        return (*super().get_terminations(model), OddWorldsLeaveTheMap())


def test_an_episode_truncated_before_the_time_limit_is_not_survived():
    # 4 worlds standing at home for a 0.2 s (10-step) limit; worlds 1 and 3 are truncated at step 3.
    config = KbotWalkConfig(num_envs=4, engine="mujoco", device="cpu", episode_length_seconds=0.2, seed=7)
    summary = evaluate(LeavingWalkTask(config).make_env(), constant_policy(HOME), 4)
    assert summary["episodes"] == 4 and summary["falls"] == 0
    assert summary["survival_rate"] == 0.5 and summary["early_truncations"] == 2
    assert summary["episode_length_mean"] == (10 + 3 + 10 + 3) / 4
    assert summary["truncations_by_termination"]["odd_worlds_leave_the_map"] == 2
    assert summary["truncations_by_termination"]["episode_length_termination"] == 2


def test_foot_air_time_counts_swings_that_start_after_a_contact_and_end_at_touchdown():
    tallies = EpisodeTallies.create(1, 2, ["fall"], torch.device("cpu"))
    zero = torch.zeros(1, 2)

    def sample(left: int, right: int) -> None:
        tallies.sample_state(zero, zero[:, 0], torch.tensor([[left, right]], dtype=torch.bool))

    # Left starts in the air (not a swing: no contact seen yet), lands, lifts for 2 states, lands;
    # right lifts for 3 states and lands. Swings: 2 and 3 states.
    for left, right in [(0, 1), (1, 1), (0, 1), (0, 0), (1, 0), (1, 0), (1, 1), (0, 1)]:
        sample(left, right)
    assert tallies.sums["touchdowns"].item() == 2 and tallies.sums["air_time"].item() == 5

    # The episode ends: the left foot's open swing is dropped, and counters start over.
    yes, no = torch.ones(1, 1, dtype=torch.bool), torch.zeros(1, 1, dtype=torch.bool)
    nxt = TensorDict({"done": yes, "truncated": yes, "terminated": no, "bad_physics": no[:, 0],
                      "terminations": TensorDict({"fall": torch.zeros(1, dtype=torch.int8)}, batch_size=[1])},
                     batch_size=[1])
    tallies.end_step(torch.zeros(1), nxt)
    for left, right in [(0, 0), (1, 1), (0, 1), (1, 1)]:
        sample(left, right)
    assert tallies.sums["touchdowns"].item() == 3 and tallies.sums["air_time"].item() == 6

    # Both episodes of the world's share are done: nothing more counts.
    tallies.end_step(torch.zeros(1), nxt)
    for left, right in [(0, 1), (1, 1)]:
        sample(left, right)
    assert tallies.sums["touchdowns"].item() == 3 and tallies.sums["episodes"].item() == 2


def test_pinning_a_command_on_a_task_without_one_is_one_clear_error():
    from ktorch_sim.tasks.kbot_stand import KbotStandConfig, KbotStandTask

    env = KbotStandTask(KbotStandConfig(num_envs=1, engine="mujoco", device="cpu")).make_env()
    with pytest.raises(ValueError, match="needs a velocity command"):
        pin_velocity_command(env, COMMAND)


# --- the command line -------------------------------------------------------------------------


def _play(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PLAY), *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.mark.parametrize("engine, extra", [("mujoco", ("--command", "0.3,0,0")), ("warp", ("--stochastic",))])
def test_play_cli_prints_one_sane_json_summary(tiny_kbot_walk_run, tmp_path, engine, extra):
    out = tmp_path / "summary.json"
    proc = _play(str(tiny_kbot_walk_run), "--engine", engine, "--episodes", "3", "--num-envs", "2",
                 "--max-seconds", "0.2", "--seed", "3", "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert json.loads(out.read_text()) == summary
    assert set(summary) == SUMMARY_KEYS
    assert summary["engine"] == engine and summary["device"] == "cpu" and summary["num_envs"] == 2
    assert summary["iteration"] == 1 and summary["checkpoint"].endswith("ckpt_00000001.pt")
    assert summary["episodes"] == 3 and summary["unfinished_worlds"] == 0 and summary["seed"] == 3
    assert summary["max_episode_seconds"] == pytest.approx(0.2)
    assert 0.0 <= summary["survival_rate"] <= 1.0
    assert summary["falls"] == round(3 * (1 - summary["survival_rate"]))
    assert 1 <= summary["episode_length_mean"] <= 10
    assert summary["episode_seconds_mean"] == pytest.approx(summary["episode_length_mean"] * 0.02)
    assert summary["samples"] == pytest.approx(3 * summary["episode_length_mean"])
    assert 0.0 <= summary["linear_velocity_error_rms"] < 5.0 and 0.0 <= summary["yaw_rate_error_rms"] < 10.0
    assert summary["deterministic"] is ("--stochastic" not in extra)
    assert summary["command"] == ([0.3, 0.0, 0.0] if "--command" in extra else "sampled")


LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="headless = no DISPLAY only on Linux")


@LINUX_ONLY
def test_viewer_on_a_headless_machine_is_one_error_line(tiny_kbot_walk_run):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = _play(str(tiny_kbot_walk_run), "--viewer", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --viewer needs a display")
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


@pytest.fixture(scope="module")
def play_tool():
    spec = importlib.util.spec_from_file_location("ktorch_play_tool", PLAY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@LINUX_ONLY
def test_viewer_with_a_display_that_cannot_open_is_one_error_line(play_tool, tiny_kbot_walk_run, monkeypatch,
                                                                  capsys):
    # MuJoCo's viewer would end the process on a GLFW failure; the probe must catch it first.
    monkeypatch.setenv("DISPLAY", ":987")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert play_tool.main([str(tiny_kbot_walk_run), "--viewer"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --viewer needs a display (GLFW cannot start") and len(err.splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--command", "1,2"], "--command takes three numbers"),
    (["--episodes", "2", "--num-envs", "3"], "--num-envs must be between 1 and --episodes (2)"),
    (["--curriculum-level", "2"], "--curriculum-level must be in [0, 1]"),
    (["--engine", "physx"], "invalid choice"),
    (["--set", "task.episode_length_secs=1"], "did you mean task.episode_length_seconds"),
    (["--max-seconds", "-1"], "--max-seconds must be > 0"),
    (["--device", "cuda"], "CUDA"),
    (["--out", "."], "is a directory"),
])
def test_bad_input_is_one_error_line_and_exit_2(play_tool, tiny_kbot_walk_run, capsys, args, message):
    try:
        status = play_tool.main([str(tiny_kbot_walk_run), *args])
    except SystemExit as e:  # argparse's usage errors
        status = e.code
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_missing_checkpoint_is_one_error_line(play_tool, tmp_path, capsys):
    assert play_tool.main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: checkpoint") and "does not exist" in err


def test_viewer_loop_steers_the_command_from_keys(tiny_kbot_walk_run, monkeypatch):
    """The viewer loop without a window: a stand-in viewer presses Up twice and Left once."""
    import contextlib

    import mujoco.viewer

    from ktorch_sim.playback.play import PlayOptions, load_for_play
    from ktorch_sim.playback.viewer import run_viewer

    policy = load_for_play(tiny_kbot_walk_run, PlayOptions(engine="mujoco", device="cpu"), num_envs=1)
    seen = []
    act = policy.act
    monkeypatch.setattr(policy, "act", lambda obs, cmd, carry: (seen.append(cmd["velocity_command"].clone()),
                                                                act(obs, cmd, carry))[1])

    class StandInViewer:
        def __init__(self, model, data, key_callback):
            self.key_callback, self.data, self.syncs = key_callback, data, 0

        def is_running(self):
            return self.syncs < 4

        def lock(self):
            return contextlib.nullcontext()

        def sync(self):
            self.syncs += 1
            if self.syncs == 1:
                for key in (265, 265, 263):  # Up, Up, Left
                    self.key_callback(key)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    viewers = []
    monkeypatch.setattr(mujoco.viewer, "launch_passive",
                        lambda model, data, key_callback: viewers.append(StandInViewer(model, data, key_callback))
                        or viewers[-1])
    run_viewer(policy)
    assert len(seen) == 4
    torch.testing.assert_close(seen[0], torch.zeros(1, 3))
    torch.testing.assert_close(seen[1], torch.tensor([[0.2, 0.0, 0.1]]))
    np.testing.assert_allclose(viewers[0].data.qpos, policy.env.engine.state.qpos[0].numpy(), atol=1e-6)


# --- a model without a free joint -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_planar_walker_run(tmp_path_factory):
    """Run directory of a one-iteration training of the planar walker (tests/planar_walker.py)."""
    from tests.conftest import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("planar_runs"), task="tests.planar_walker:PlanarWalkerTask")


def test_measured_velocity_of_a_planar_walker_is_its_torso_velocity():
    from ktorch_sim.playback.evaluate import measured_velocity
    from tests.planar_walker import PlanarWalkerConfig, PlanarWalkerTask

    env = PlanarWalkerTask(PlanarWalkerConfig(num_envs=2)).make_env()
    rng = np.random.default_rng(1)
    qpos = rng.uniform(-0.3, 0.3, (2, env.model.nq)).astype(np.float32)
    qvel = rng.normal(0.0, 1.0, (2, env.model.nv)).astype(np.float32)
    env.engine.reset(torch.ones(2, dtype=torch.bool), torch.tensor(qpos), torch.tensor(qvel))
    v_xy, w_z = measured_velocity(env)
    for i in range(2):
        d = mujoco.MjData(env.model)
        d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
        mujoco.mj_forward(env.model, d)
        velocity = np.zeros(6)
        mujoco.mj_objectVelocity(env.model, d, mujoco.mjtObj.mjOBJ_BODY, 1, velocity, 0)
        # pitching in the x-z plane leaves the heading at 0: the heading frame is the world's
        np.testing.assert_allclose(v_xy[i].numpy(), velocity[3:5], atol=1e-4)
        assert float(w_z[i]) == pytest.approx(velocity[2], abs=1e-5)


def test_play_evaluates_a_trained_planar_walker(tiny_planar_walker_run, play_tool, capsys):
    from ktorch_sim.playback.play import PlayOptions, evaluate_checkpoint

    summary = evaluate_checkpoint(tiny_planar_walker_run, PlayOptions(episodes=2, num_envs=2, max_seconds=0.2))
    assert summary["episodes"] == 2 and summary["unfinished_worlds"] == 0
    assert summary["task"] == "tests.planar_walker:PlanarWalkerTask"
    assert math.isfinite(summary["linear_velocity_error_rms"]) and math.isfinite(summary["yaw_rate_error_rms"])
    assert 1 <= summary["episode_length_mean"] <= 10
    # HealthyReward(scale=1): the return is the number of steps that did not fail
    assert summary["return_mean"] == pytest.approx(summary["episode_length_mean"] - summary["falls"] / 2)
    # the command line: one JSON line, no traceback
    assert play_tool.main([str(tiny_planar_walker_run), "--episodes", "2", "--num-envs", "2",
                           "--max-seconds", "0.2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and json.loads(out[0])["episodes"] == 2
