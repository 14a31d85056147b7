"""The training loop: rollout, PPO update, curriculum, metrics, checkpoints. One iteration reads
top to bottom in :meth:`Trainer.iterate`; everything it needs is built in ``__init__``.

Metrics are reduced on the device and copied to the host once per iteration. A checkpoint is
written atomically every ``checkpoint.save_every_seconds`` and when training stops (end of
``ppo.max_steps`` or ``ppo.max_seconds``, Ctrl-C or SIGTERM); ``resume`` continues from the latest
one with the same iteration counter, curriculum level, learning rate and random streams. A stop request cuts the
iteration in flight short and saves the state of the last finished one
(:mod:`ktorch_sim.utils.phase_progress`, which also prints progress inside long iterations).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ktorch_sim.algorithms.carry import is_recurrent
from ktorch_sim.algorithms.graphed_rollout import GraphedRolloutCollector
from ktorch_sim.algorithms.ppo import PPO, invalid_transitions, require_feed_forward_actor
from ktorch_sim.algorithms.rollout import RolloutCollector
from ktorch_sim.checkpoint import (
    CheckpointError,
    CheckpointManager,
    capture_rng_state,
    check_compatible,
    load_checkpoint,
    resolved_config,
    restore_rng_state,
)
from ktorch_sim.config import TrainConfig, resolve_task, save_config, to_dict
from ktorch_sim.errors import ConfigError, RunFinished
from ktorch_sim.ppo_task import PPOTask, build_policy, normalizes_inputs
from ktorch_sim.training import distributed
from ktorch_sim.training.logging import RunLogger, make_run_dir, rewind_metrics
from ktorch_sim.training.videos import TrainingVideos
from ktorch_sim.utils.phase_progress import IterationGuard, PhaseProgress, progress_line
from ktorch_sim.utils.resources import check_rollout_fits

# Config keys a checkpoint must agree on to be resumed (the network's shape and the task).
COMPATIBLE_KEYS = ("task.name", "model.policy", "model.hidden_size", "model.depth", "model.num_mixtures",
                   "model.mlp_hidden", "ppo.normalize_observations")

# Env counters of world resets forced by broken physics or non-finite actions -> logged as ``physics/<name>``.
HEALTH_METRICS = {"bad_physics": "bad_worlds", "overflow": "overflow_worlds", "bad_action": "bad_actions"}


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads (0: leave the setting as it is), then restore it."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _limit_input_statistics(task: PPOTask, steps: int) -> None:
    """Stop ``task``'s input statistics after ``steps`` env steps (``ppo.normalizer_steps``; 0: never); a limit
    on inputs that are not normalized is a config error rather than a setting that silently does nothing."""
    if steps and task.normalizers is None:
        raise ConfigError(f"is {steps}, but this policy's inputs are not normalized (ppo.normalize_observations "
                          "is false or resolved to false): set ppo.normalize_observations = true, or leave "
                          "ppo.normalizer_steps at 0", key="ppo.normalizer_steps")
    for normalizer in (task.normalizers or {}).values():
        normalizer.until = float(steps)


def resolve_input_normalization(task: PPOTask, config: TrainConfig,
                                resumed: dict[str, Any] | None = None) -> TrainConfig:
    """``config`` with ``ppo.normalize_observations`` and ``ppo.normalizer_steps`` resolved for ``task``: what
    was left automatic (none) takes the resumed checkpoint's values (``resumed``: its
    :func:`~ktorch_sim.checkpoint.resolved_config`), else the library's rule
    (:meth:`~ktorch_sim.algorithms.ppo_config.PPOConfig.normalizes_inputs_by_default`,
    :meth:`~ktorch_sim.algorithms.ppo_config.PPOConfig.input_statistics_steps`). The trainer saves the result,
    so a checkpoint names the inputs its policy was trained on whatever the defaults become."""
    ppo, trained = config.ppo, (resumed or {}).get("ppo", {})
    normalized = ppo.normalize_observations
    if normalized is None and resumed is not None:
        normalized = trained["normalize_observations"]
    normalized = normalizes_inputs(task, config.model, normalized, ppo.normalizes_inputs_by_default(config.model))
    steps = ppo.normalizer_steps
    if steps is None:
        steps = trained["normalizer_steps"] if resumed is not None else (
            ppo.input_statistics_steps(config.model) if normalized else 0)
    return dataclasses.replace(config, ppo=dataclasses.replace(ppo, normalize_observations=normalized,
                                                                normalizer_steps=steps))


class Trainer:
    """Builds the task, environment, model and optimizer from a config, then trains."""

    def __init__(self, config: TrainConfig, resume: str | Path | None = None, task: PPOTask | None = None, *,
                 refuse_finished: bool = False) -> None:
        """Set everything up; with ``resume``, load the run directory's latest checkpoint.

        ``refuse_finished`` (the training CLI): resuming a run whose checkpoint already reached
        ``ppo.max_steps`` or ``ppo.max_seconds`` raises :class:`~ktorch_sim.errors.RunFinished`, before
        the run directory is touched, with a line that says how to extend it. Without it such a trainer
        trains nothing.
        """
        self._refuse_finished = refuse_finished
        self.config = config
        distributed.init_from_env()  # under torchrun: join the job (docs/distributed.md); else one process
        self.dist = distributed.Distributed.current()
        seed = distributed.rank_seed(config.task.seed, self.dist.rank)  # the run seed itself in one process
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        if task is None:
            task_cls, _ = resolve_task(config.task_name)
            task = task_cls(self.dist.task_config(config.task))
        if not isinstance(task, PPOTask):
            raise TypeError(f"{type(task).__name__} must subclass ks.PPOTask to be trained with PPO")
        self.task = task

        self.env = task.make_env()
        if self.dist.active:
            self.env.generator.manual_seed(seed)  # this rank's worlds draw their own stream
        self.device = self.env.device
        # Torch's threads in the update (cpu.update_threads), where the engine's workers are idle.
        self._update_threads = 0
        if self.device.type == "cpu":
            self._update_threads = config.cpu.update_threads or torch.get_num_threads()
            # The native engine's threads already use every core; torch's OpenMP workers spinning
            # next to them made small policy ops ~20x slower (measured: GRUCell 2.3 ms -> 54 ms).
            torch.set_num_threads(1)
        first = self.env.reset()
        if config.ppo.desynchronize_episodes:
            self.env.desynchronize_episodes(torch.Generator().manual_seed(seed + 2))
        resume_path, resume_state, resumed = None, None, None
        if resume is not None:  # loaded before the policy is built: an automatic setting takes the checkpoint's
            self.run_dir = Path(resume)
            self.checkpoints = CheckpointManager(self.run_dir, config.checkpoint.keep_last,
                                                 config.checkpoint.save_every_seconds)
            resume_path = self.checkpoints.resume_path()
            resume_state = load_checkpoint(resume_path, map_location=self.device)
            resumed = resolved_config(resume_state)
        config = self.config = resolve_input_normalization(task, config, resumed)
        self.model, spec = build_policy(task, self.env, first, config.model, config.ppo.normalize_observations)
        _limit_input_statistics(task, config.ppo.normalizer_steps)
        self.carry = task.get_initial_model_carry(self.model, self.env.num_envs)
        # Inputs are normalized and their statistics move every step: the rollout stores the normalized inputs.
        step_statistics = spec.normalize_inputs and config.ppo.updates_statistics_each_step(is_recurrent(self.carry))
        stored_inputs = spec.num_actor_inputs + spec.num_critic_inputs if step_statistics else 0
        # One ConfigError line if the rollout cannot fit.
        check_rollout_fits(first, self.env.num_envs, self.env.num_actions, len(self.env.spec.rewards),
                           config.rollout_steps, str(self.device), stored_inputs)
        self.curriculum = task.get_curriculum(self.env.model)
        self.curriculum_state = self.curriculum.init_curriculum(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        algorithm = getattr(task, "algorithm_class", PPO)  # PPO, or the task's subclass of it (ks.AMPTask: AMPPPO)
        self.ppo = algorithm.from_train_config(task, self.model, config, self.generator, num_envs=self.env.num_envs)
        if config.ppo.symmetry == "augment":
            require_feed_forward_actor(is_recurrent(self.carry))  # before any mirror is looked for
            self.ppo.set_mirrors(task.get_policy_mirrors(self.env, first))
        if self.dist.active:
            self.ppo.average_gradients, self.ppo.average_kl = self.dist.average_gradients, self.dist.mean
            distributed.attach_normalizers([task.normalizers, self.ppo.reward_scaler,
                                            *self.ppo.synchronized_modules()], self.dist)
        if config.ppo.capture_rollout:
            self.collector = GraphedRolloutCollector(self.env, task, config.rollout_steps, self.generator,
                                                     mode="cuda_graph", step_statistics=step_statistics)
        else:
            self.collector = RolloutCollector(self.env, task, config.rollout_steps, self.generator, step_statistics)
        self.collector.current = first
        self.iteration = 0
        self.env_steps = 0
        self.elapsed = 0.0
        self._stop = False
        self.first_metrics: dict[str, float] | None = None  # this process's first and latest iterations,
        self.last_metrics: dict[str, float] | None = None  # for the end-of-run summary

        if resume_state is not None:
            self._restore(resume_path, resume_state)
        else:
            task_label = config.task_name.rsplit(":", 1)[-1]  # "pkg.module:MyTask" -> "MyTask"
            self.run_dir = self.dist.broadcast_object(  # rank 0 names (and creates) the run directory
                make_run_dir(config.logging.run_dir, config.logging.run_name, task=task_label)
                if self.dist.is_main else None)
            self.checkpoints = CheckpointManager(self.run_dir, config.checkpoint.keep_last,
                                                 config.checkpoint.save_every_seconds)
        # Every rank starts from rank 0's weights and input statistics (fresh ranks were seeded apart).
        self.dist.broadcast_module(self.model)
        self.dist.broadcast_module(task.normalizers)
        for module in self.ppo.synchronized_modules():  # e.g. AMP's discriminator and its feature normalizer
            self.dist.broadcast_module(module)
        if not self.dist.is_main:  # only rank 0 writes: config, metrics, wandb, videos, checkpoints
            self.checkpoints = self.logger = self.videos = distributed.NOT_RANK_ZERO
            return
        save_config(config, self.run_dir / "config.toml")
        log = config.logging
        self.logger = RunLogger(self.run_dir, to_dict(config), mode=log.wandb_mode, project=log.wandb_project,
                                entity=log.wandb_entity, name=self.run_dir.name)
        self.videos = TrainingVideos(config, self.run_dir, self.logger)

    # --- one iteration ------------------------------------------------------------------------

    def iterate(self) -> dict[str, float]:
        """Collect a rollout, update the policy, step the curriculum; return host metrics."""
        cfg = self.config.ppo
        self.ppo.start_iteration(self.iteration, self._total_iterations())
        self.env.set_curriculum_level(self.curriculum_state["level"])

        start = time.perf_counter()
        self.model.eval()
        buffer, start_carry, self.carry, _ = self.collector.collect(self.model, self.carry)
        _sync(self.device)
        collected = time.perf_counter()
        self.model.train()
        skipped_before = self.ppo.skipped_updates
        with torch_threads(self._update_threads):
            losses = self.ppo.update(buffer, start_carry)
        if not self.collector.step_statistics:
            # Only now may the input statistics move: the update above needed the rollout's own.
            self.task.update_normalizer_statistics(buffer["observation"], buffer["command"],
                                                   ~invalid_transitions(buffer["next"]))
        _sync(self.device)
        updated = time.perf_counter()

        episodes = self.dist.sum_dict(self.env.pop_metrics())  # every rank's episodes: one curriculum decision
        metrics = self._device_metrics(buffer, losses, episodes)
        self.curriculum.step(self.curriculum_state, self._curriculum_inputs(episodes))
        host = {k: float(v) for k, v in zip(metrics, torch.stack(list(metrics.values())).cpu().tolist())}

        steps = buffer.batch_size[0] * buffer.batch_size[1] * self.dist.world_size
        self.iteration += 1
        self.env_steps += steps
        self.elapsed += updated - start
        host.update({
            "time/collect_s": collected - start, "time/update_s": updated - collected,
            "perf/env_steps_per_s": steps / (updated - start), "perf/collect_steps_per_s": steps / (collected - start),
            "perf/samples_per_s": steps * cfg.num_passes / max(updated - collected, 1e-9),
            "train/learning_rate": self.ppo.learning_rate, "train/kl_coef": self.ppo.kl.kl_coef,
            "train/skipped_updates": float(self.ppo.skipped_updates - skipped_before),
        })
        return host

    def _device_metrics(self, buffer: Any, losses: dict[str, torch.Tensor], episodes: dict[str, torch.Tensor]
                        ) -> dict[str, torch.Tensor]:
        """Every per-iteration metric as a device scalar (read together, in one transfer)."""
        nxt = buffer["next"]
        out = {f"reward/{k}": v.mean() for k, v in nxt["reward_terms"].items()}
        out["reward/total"] = nxt["reward"].mean()
        zero = torch.zeros((), device=self.device)
        count = episodes.get("episodes", zero).clamp_min(1.0)
        for key in ("episode_return", "episode_length"):
            out[f"episode/{key.removeprefix('episode_')}"] = episodes.get(key, zero) / count
        out["episode/count"] = episodes.get("episodes", zero)
        out["episode/failures"] = episodes.get("failures", zero)
        # Per-iteration counts of world resets forced by broken physics (of which: buffer overflow) and of
        # non-finite actions kept out of the physics; those transitions are masked out of the update.
        for key, name in HEALTH_METRICS.items():
            out[f"physics/{name}"] = episodes.get(key, zero)
        for key, value in episodes.items():
            if key.startswith("termination/"):
                out[key] = value / count
        out.update({f"loss/{k}": v for k, v in losses.items()})
        # This rank's means over its (equally many) worlds -> the mean over every rank's; the episode
        # entries above are already global (sums over ranks).
        out.update(self.dist.mean_dict({k: v for k, v in out.items() if k.startswith(("reward/", "loss/"))}))
        out.update({f"curriculum/{k}": v for k, v in self.curriculum.metrics(self.curriculum_state).items()})
        return {k: v.float().reshape(()) for k, v in out.items()}

    def _curriculum_inputs(self, episodes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        zero = torch.zeros((), device=self.device)
        n = episodes.get("episodes", zero)
        nan = torch.full((), float("nan"), device=self.device)
        length = torch.where(n > 0, episodes.get("episode_length", zero) / n.clamp_min(1), nan)
        distance = torch.where(n > 0, episodes.get("distance_from_origin", zero) / n.clamp_min(1), nan)
        return {"episode_length": length, "episode_length_seconds": length * self.env.ctrl_dt,
                "distance_from_origin": distance,
                "deaths_per_episode": torch.where(n > 0, episodes.get("failures", zero) / n.clamp_min(1), nan),
                "num_steps": torch.tensor(float(self.iteration + 1), device=self.device)}

    # --- the loop -----------------------------------------------------------------------------

    def train(self, progress: bool = True) -> Path:
        """Iterate until ``ppo.max_steps`` env steps, ``ppo.max_seconds`` of training or Ctrl-C/SIGTERM;
        checkpoint on the way out."""
        from tqdm import tqdm

        progress = progress and self.dist.is_main
        bar = tqdm(total=self.config.ppo.max_steps or None, initial=self.env_steps, unit="step", disable=not progress,
                   dynamic_ncols=True)
        previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        # A stop request ends the iteration in flight within a step; the last finished one is saved.
        # Several ranks agree on stopping between iterations instead (one may be inside a collective).
        stop_inside = (lambda: False) if self.dist.active else (lambda: self._stop)
        guard = IterationGuard(self, PhaseProgress(stop_inside, progress_line(bar) if progress else None))
        try:
            # Ranks' clocks differ: any rank out of time stops them all, between iterations.
            while not self.dist.any(self._stop or self._out_of_time()) and not self._out_of_steps():
                metrics = guard.iterate()
                if metrics is None:
                    break
                self.first_metrics = self.first_metrics or {**metrics, "iteration": self.iteration}
                self.last_metrics = {**metrics, "iteration": self.iteration}
                if self.iteration % self.config.logging.log_every_iterations == 0:
                    self.logger.log(metrics, iteration=self.iteration, env_steps=self.env_steps)
                bar.update(self.env_steps - bar.n)
                bar.set_postfix(it=self.iteration, ret=f"{metrics['episode/return']:.2f}",
                                len=f"{metrics['episode/length']:.0f}",
                                sps=f"{metrics['perf/env_steps_per_s']:.0f}")
                self.videos.maybe_record(self.task, self.model, self.iteration)
                if self.checkpoints.due():
                    self.save()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            bar.close()
            guard.save()
            self.logger.close()
        return self.run_dir

    def summary(self) -> str:
        """Episode length and return of the first and the last iteration this process trained (one line each), and
        a line saying so when ``ppo.max_seconds`` ended the run short of ``ppo.max_steps``: a slower machine gets
        fewer steps in the same time, and the user should know the run is not the one the step budget describes."""
        if self.first_metrics is None or self.last_metrics is None:
            return "no iteration was trained"
        lines = []
        for label, m in (("first", self.first_metrics), ("last", self.last_metrics)):
            lines.append(f"{label} iteration {m['iteration']:>5.0f}: episode length {m['episode/length']:7.1f} steps "
                         f"({m['episode/length'] * self.env.ctrl_dt:.2f} s), return {m['episode/return']:9.3f} "
                         f"over {m['episode/count']:.0f} episodes")
        ppo = self.config.ppo
        if self._out_of_time() and ppo.max_steps and not self._out_of_steps():
            lines.append(f"stopped by ppo.max_seconds ({ppo.max_seconds:g} s of training) at {self.env_steps:,} of "
                         f"ppo.max_steps {ppo.max_steps:,} env steps; to train the rest: python -m ktorch_sim.train "
                         f"--resume {self.run_dir} --set ppo.max_seconds=0")
        return "\n".join(lines)

    def _request_stop(self, signum: int, frame: object) -> None:
        if self.dist.active:  # torchrun relays a Ctrl-C that each rank also got itself: one request, no escalation
            if not self._stop and self.dist.is_main:
                print(f"\nstopping (signal {signum}): every rank finishes iteration {self.iteration + 1}, then its "
                      "checkpoint is saved", flush=True)
            self._stop = True
            return
        if self._stop:  # a second Ctrl-C stops at once (the checkpoint is still written in `finally`)
            raise KeyboardInterrupt
        self._stop = True
        print(f"\nstopping (signal {signum}): the iteration in flight is dropped; the checkpoint of iteration "
              f"{self.iteration} will be saved", flush=True)

    # --- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly where it stopped."""
        return {
            "model": self.model.state_dict(),
            "normalizer": None if self.task.normalizers is None else self.task.normalizers.state_dict(),
            **self.ppo.state_dict(),  # optimizer, reward_scaler, ppo (adaptive KL, skipped updates)
            "curriculum": {k: v.detach().cpu() for k, v in self.curriculum_state.items()},
            "rng": capture_rng_state({"env": self.env.generator, "ppo": self.generator}),
            "counters": {"iteration": self.iteration, "env_steps": self.env_steps, "elapsed_seconds": self.elapsed},
            "config": to_dict(self.config),
            "format_version": 1,
            **({"distributed": {"world_size": self.dist.world_size}} if self.dist.active else {}),
        }

    def save(self) -> Path:
        """Write a checkpoint now."""
        return self.checkpoints.save(self.state_dict(), self.iteration)

    def _restore(self, path: Path, state: dict[str, Any]) -> None:
        """Continue from checkpoint ``state`` (loaded from ``path``): weights, statistics, optimizer, RNG, counters."""
        check_compatible(resolved_config(state), to_dict(self.config), COMPATIBLE_KEYS, path=path)
        try:
            self.model.load_state_dict(state["model"])
            if self.task.normalizers is not None and state.get("normalizer") is not None:
                self.task.normalizers.load_state_dict(state["normalizer"])
            self.ppo.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError) as e:  # shapes or keys that differ: another model or task
            text = " ".join(str(e).split()) or type(e).__name__
            reason = text if len(text) <= 160 else text[:157] + "..."
            raise CheckpointError(f"checkpoint {path} does not fit this model ({reason}); it was "
                                  "written for another task or model config: resume with that config or start "
                                  "a new run") from None
        for k, v in state["curriculum"].items():
            self.curriculum_state[k].copy_(v.to(self.device))
        restore_rng_state(state["rng"], {"env": self.env.generator, "ppo": self.generator})
        counters = state["counters"]
        self.iteration, self.env_steps = int(counters["iteration"]), int(counters["env_steps"])
        if not self.dist.is_main:  # rank 0 continues the checkpoint's streams; the others re-derive theirs
            self._reseed(distributed.rank_seed(self.config.task.seed, self.dist.rank, self.iteration))
        self.elapsed = float(counters["elapsed_seconds"])
        ppo = self.config.ppo
        if self._refuse_finished and self._out_of_steps():
            self._refuse(f"already reached ppo.max_steps ({ppo.max_steps}; its checkpoint {path.name} has "
                         f"{self.env_steps} env steps)", f"ppo.max_steps={self.env_steps + ppo.max_steps}")
        if self._refuse_finished and self._out_of_time():
            self._refuse(f"already trained for ppo.max_seconds ({ppo.max_seconds:g} s; its checkpoint {path.name} "
                         f"has {self.elapsed:.0f} s)", f"ppo.max_seconds={math.ceil(self.elapsed + ppo.max_seconds)}")
        if self.dist.is_main:
            rewind_metrics(self.run_dir, self.iteration)  # lines a crash left after this checkpoint are re-trained

    # --- helpers ------------------------------------------------------------------------------

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer, owned by the algorithm (:attr:`ktorch_sim.algorithms.ppo.PPO.optimizer`)."""
        return self.ppo.optimizer

    @property
    def reward_scaler(self) -> Any:
        """The return scaler of ``ppo.normalize_rewards`` (None when off), owned by the algorithm."""
        return self.ppo.reward_scaler

    def _refuse(self, reached: str, extended: str) -> None:
        """Raise the one-line :class:`RunFinished` for a resumed run whose budget is spent: what it ``reached``
        and the ``--set`` (``extended``) that gives it more."""
        raise RunFinished(f"run {self.run_dir} {reached}: nothing to train. To train it further, raise the limit: "
                          f"python -m ktorch_sim.train --resume {self.run_dir} --set {extended}")

    def _out_of_steps(self) -> bool:
        """Whether this run has trained for ``ppo.max_steps`` env steps (0: never)."""
        return 0 < self.config.ppo.max_steps <= self.env_steps

    def _out_of_time(self) -> bool:
        """Whether this run has trained for ``ppo.max_seconds`` (0: never)."""
        max_seconds = self.config.ppo.max_seconds
        return 0 < max_seconds <= self.elapsed

    def _reseed(self, seed: int) -> None:
        """Seed every random stream of this process from ``seed`` (a non-zero rank's resume)."""
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        self.env.generator.manual_seed(seed)
        self.generator.manual_seed(seed + 1)

    def _total_iterations(self) -> int:
        max_steps = self.config.ppo.max_steps
        per_iteration = self.env.num_envs * self.config.rollout_steps * self.dist.world_size
        return max(1, -(-max_steps // per_iteration)) if max_steps > 0 else 0


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work so phase timings are honest (once per phase, not per step)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
