"""Rollout videos during training: every ``logging.video_every_minutes`` minutes of wall-clock time.

When a video is due (checked after each iteration), the current policy's weights (and
observation normalizer) are copied into a separate single-world environment on native MuJoCo on
the CPU, built once from the run's task config, and a deterministic rollout of
``logging.video_seconds`` seconds is rendered (:mod:`ktorch_sim.playback.render`, :data:`FPS` frames per
second, :data:`WIDTH` x :data:`HEIGHT`) to ``run_dir/videos/iter_<iteration>.mp4`` and logged to
wandb as ``video/rollout`` when wandb runs. The first video comes ``video_every_minutes`` after
training starts; the time spent rendering does not count toward the next one.

The training environment, the model and every random stream of training are left as they were:
the video env has its own generator (seeded with the task seed), and the global torch and numpy
random states are saved and restored around each video. A video that fails (no OpenGL backend,
a full disk) prints one warning and training goes on; without an OpenGL backend no more videos
are tried.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ktorch_sim.config import TrainConfig
from ktorch_sim.playback.trained import TrainedPolicy
from ktorch_sim.ppo_task import build_policy
from ktorch_sim.playback.offscreen import GLBackendError

__all__ = ["FPS", "HEIGHT", "WIDTH", "TrainingVideos"]

FPS = 25
WIDTH, HEIGHT = 480, 360  # software OpenGL (no GPU) renders this in ~0.1-0.3 s per frame
VIDEO_KEY = "video/rollout"


@contextlib.contextmanager
def _isolated_rng() -> Iterator[None]:
    """Restore the global torch (CPU) and numpy random states after the block."""
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    np.random.set_state(numpy_state)


class TrainingVideos:
    """Decides when a training video is due and renders it; see the module docstring.

    Args:
        config: the run's config (``logging.video_every_minutes``, ``logging.video_seconds``, the task).
        run_dir: the run directory; videos go to ``run_dir/videos``.
        logger: a :class:`~ktorch_sim.training.logging.RunLogger` (its ``log_video`` sends the file to wandb).
        clock: seconds, monotonic (tests pass a fake one).

    """

    def __init__(self, config: TrainConfig, run_dir: Path, logger: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.every_seconds = 60.0 * config.logging.video_every_minutes
        self.seconds = config.logging.video_seconds
        self.directory = Path(run_dir) / "videos"
        self.logger = logger
        self.clock = clock
        self.enabled = self.every_seconds > 0
        self._last = clock()
        self._warned = False
        self._policy: Any = None  # a TrainedPolicy on the single-world video env, built on first use

    def due(self) -> bool:
        """Whether a video should be made now."""
        return self.enabled and self.clock() - self._last >= self.every_seconds

    def maybe_record(self, task: Any, model: torch.nn.Module, iteration: int) -> Path | None:
        """Render and log a video of ``model`` if one is due; return its path (None if none was made)."""
        if not self.due():
            return None
        try:
            path = self.record(task, model, iteration)
        except GLBackendError as e:
            self.enabled = False
            self._warn(f"{e}; no more training videos in this run")
            path = None
        except Exception as e:  # noqa: BLE001 - a video must never stop training
            self._warn(f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}; "
                       "training goes on (later videos are still tried, without more warnings)")
            path = None
        self._last = self.clock()
        return path

    def record(self, task: Any, model: torch.nn.Module, iteration: int) -> Path:
        """Render ``model``'s deterministic rollout to ``videos/iter_<iteration>.mp4`` and log it."""
        from ktorch_sim.playback.policy_rollout import record_rollout
        from ktorch_sim.playback.render import render_rollout, steps_for, write_video

        with _isolated_rng():
            policy = self._video_policy(task, model, iteration)
            rollout = record_rollout(policy, steps_for(self.seconds, FPS, policy.env.ctrl_dt))
            frames = render_rollout(policy.env.model, rollout, self.seconds, FPS, WIDTH, HEIGHT)
        path = write_video(self.directory / f"iter_{iteration}.mp4", frames, FPS)
        self.logger.log_video(path, VIDEO_KEY, iteration)
        return path

    def _video_policy(self, task: Any, model: torch.nn.Module, iteration: int) -> TrainedPolicy:
        """Return the video env's policy with the current weights (the env and CPU model are built once,
        with :func:`~ktorch_sim.ppo_task.build_policy`, the recipe training and playback use)."""
        if self._policy is None:
            task_config = dataclasses.replace(self.config.task, num_envs=1, engine="mujoco", device="cpu")
            video_task = type(task)(task_config)
            env = video_task.make_env()
            first = env.reset()
            video_model, spec = build_policy(video_task, env, first, self.config.model,
                                             self.config.ppo.normalize_observations)
            self._policy = TrainedPolicy(config=self.config, task=video_task, model=video_model.eval(), spec=spec,
                                         env=env, first=first, checkpoint=self.directory, iteration=iteration)
        policy = self._policy
        policy.model.load_state_dict(model.state_dict())
        if task.normalizers is not None:
            policy.task.normalizers.load_state_dict(task.normalizers.state_dict())
        policy.iteration = iteration
        return policy

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            print(f"training video failed: {message}", file=sys.stderr, flush=True)
