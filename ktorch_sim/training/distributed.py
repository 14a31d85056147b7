"""Multi-process training on ``torch.distributed``: one process ("rank") per GPU, or several on a CPU.

``torchrun --nproc-per-node K -m ktorch_sim.train --cfg ...`` starts K processes with the
environment variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_from_env` joins them into one process group (NCCL on CUDA, Gloo on the CPU). Without
those variables (or with ``WORLD_SIZE=1``) nothing is initialized and every helper of
:class:`Distributed` is a no-op, so a single process trains exactly as before.

What is synchronized, and where (the trainer wires it; see docs/distributed.md):

- parameters and input-normalizer statistics: broadcast from rank 0 once, after building or resuming;
- gradients: one all-reduce over the flattened gradients per minibatch, averaged, before clipping
  (:meth:`Distributed.average_gradients`, set on :class:`~ktorch_sim.algorithms.ppo.PPO` as a hook);
- the adaptive-KL / adaptive-LR decision: the minibatch KL averaged over ranks first (:meth:`Distributed.mean`);
- running input and return statistics: batch counts, sums and squared deviations summed over ranks
  (:meth:`Distributed.sum_`, set on every :class:`~ktorch_sim.algorithms.normalizer.RunningNormalizer`);
- episode statistics: summed over ranks before the metrics and the curriculum read them, so every
  rank computes the same curriculum level; per-rank means (losses, rewards) averaged;
- stopping: a Ctrl-C/SIGTERM is agreed on at iteration boundaries (:meth:`Distributed.any`).

A collective that fails (a rank died: Gloo sees the connection close, NCCL's watchdog or the
process group's ``timeout`` fires) raises :class:`DistributedError` with one line saying so; the
timeout is ``KTORCH_SIM_DIST_TIMEOUT_S`` seconds (default :data:`DEFAULT_TIMEOUT_S`).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ktorch_sim.algorithms.normalizer import RunningNormalizer

DEFAULT_TIMEOUT_S = 600.0  # longer than a first Warp kernel compile or a rank-0 video next to the others' wait
TIMEOUT_ENV = "KTORCH_SIM_DIST_TIMEOUT_S"
SEED_MASK = 2**63 - 1


class DistributedError(RuntimeError):
    """A collective failed: another rank died, hung past the timeout, or the group broke."""


def timeout_seconds() -> float:
    """The collective timeout: ``$KTORCH_SIM_DIST_TIMEOUT_S`` or :data:`DEFAULT_TIMEOUT_S`."""
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise DistributedError(f"{TIMEOUT_ENV}={text!r}: expected a number of seconds") from None
    if value <= 0:
        raise DistributedError(f"{TIMEOUT_ENV}={text!r}: must be > 0")
    return value


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment; True if one is (now) active.

    Does nothing (False) without ``WORLD_SIZE`` or with ``WORLD_SIZE=1``, and nothing more if a group
    is already initialized (a test, or a caller that set one up). The backend is NCCL when CUDA is
    available and ``LOCAL_RANK`` names a device, else Gloo; each CUDA rank uses ``cuda:LOCAL_RANK``.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_nccl = torch.cuda.is_available() and local_rank < torch.cuda.device_count()
    if use_nccl:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_nccl else "gloo",
                            timeout=datetime.timedelta(seconds=timeout_seconds()))
    return True


def shutdown() -> None:
    """Leave the process group if one is initialized (end of a torchrun job)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int, iteration: int = 0) -> int:
    """The seed of ``rank``'s random streams: the run seed itself for rank 0 of a fresh run (so a
    single process is unchanged), else a hash of (run seed, rank, iteration) in [0, 2**63).

    ``iteration`` is the checkpoint's iteration on a resume, so resumed ranks never replay the
    streams of the run's first iterations.
    """
    if rank == 0 and iteration == 0:
        return seed
    words = np.random.SeedSequence([seed, rank, iteration]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 32 | int(words[1])) & SEED_MASK


@dataclasses.dataclass(frozen=True)
class Distributed:
    """This process's place in the job and the collectives the trainer uses (no-ops for one process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def current(cls) -> Distributed:
        """The initialized process group's rank and size, or a single process when there is none."""
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(),
                   local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())))

    @property
    def active(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0

    def task_config(self, task_config: Any) -> Any:
        """``task_config`` for this rank: on CUDA with several ranks, device ``cuda:LOCAL_RANK`` unless
        the config names a device index itself (``cuda:k``); otherwise unchanged."""
        device = getattr(task_config, "device", None)
        if not self.active or device not in ("auto", "cuda") or not torch.cuda.is_available():
            return task_config
        return dataclasses.replace(task_config, device=f"cuda:{self.local_rank}")

    # --- collectives (each a no-op for one process) -------------------------------------------

    def _call(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, dist.DistBackendError) as e:  # DistBackendError subclasses RuntimeError
            reason = " ".join(str(e).split())[:200] or type(e).__name__
            raise DistributedError(
                f"rank {self.rank}/{self.world_size}: {name} failed ({reason}); another rank died or did not "
                f"answer within {timeout_seconds():.0f} s ({TIMEOUT_ENV}). The job stops; continue it with "
                "--resume RUN_DIR from the last checkpoint") from None

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks, in place; returns it."""
        if self.active:
            self._call("all_reduce", dist.all_reduce, tensor)
        return tensor

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of ``tensor`` over ranks (a new tensor; the same tensor for one process)."""
        if not self.active:
            return tensor
        return self.sum_(tensor.detach().clone()) / self.world_size

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any."""
        if not self.active:
            return flag
        return bool(self.sum_(torch.tensor([float(flag)], device=self._device())).item() > 0)

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter], extras: torch.Tensor) -> torch.Tensor:
        """Average the gradients of ``parameters`` over ranks with one all-reduce; sum ``extras``.

        The gradients are flattened into one buffer with ``extras`` (a small 1-D tensor: the PPO
        update passes its loss and valid-step count, so every rank takes the same skip decision),
        all-reduced, and copied back divided by the world size. A parameter without a gradient
        contributes zeros and gets the average. For one process: returns ``extras`` untouched.
        """
        if not self.active:
            return extras
        params = [p for p in parameters if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [extras.detach().reshape(-1).to(grads[0].dtype)])
        self.sum_(flat)
        offset = 0
        for p, g in zip(params, grads, strict=True):
            averaged = flat[offset:offset + g.numel()].view_as(g) / self.world_size
            if p.grad is None:
                p.grad = averaged.clone()
            else:
                p.grad.copy_(averaged)
            offset += g.numel()
        return flat[offset:].to(extras.dtype)

    def sum_dict(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sum scalar tensors over ranks, over the union of every rank's keys (a key a rank lacks counts 0)."""
        if not self.active:
            return dict(values)
        keys = self._union_keys(values)
        device = self._device()
        stacked = torch.stack([values[k].reshape(()).float().to(device) if k in values
                               else torch.zeros((), device=device) for k in keys]) if keys else None
        if stacked is None:
            return {}
        self.sum_(stacked)
        return dict(zip(keys, stacked.unbind(0), strict=True))

    def mean_dict(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The mean over ranks of each scalar tensor (every rank must hold the same keys)."""
        if not self.active or not values:
            return dict(values)
        keys = list(values)
        stacked = self.sum_(torch.stack([values[k].reshape(()).float() for k in keys])) / self.world_size
        return dict(zip(keys, stacked.unbind(0), strict=True))

    def broadcast_module(self, module: torch.nn.Module | None) -> None:
        """Copy rank 0's parameters and buffers into every rank's ``module`` (in place)."""
        if not self.active or module is None:
            return
        for tensor in module.state_dict().values():
            if isinstance(tensor, torch.Tensor):
                self._call("broadcast", dist.broadcast, tensor, 0)

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` (a picklable object) on every rank."""
        if not self.active:
            return value
        box = [value]
        self._call("broadcast_object_list", dist.broadcast_object_list, box, 0)
        return box[0]

    def _union_keys(self, values: Mapping[str, Any]) -> list[str]:
        gathered: list[Any] = [None] * self.world_size
        self._call("all_gather_object", dist.all_gather_object, gathered, sorted(values))
        return sorted(set().union(*gathered))

    def _device(self) -> torch.device:
        """The device collectives use: this rank's GPU under NCCL, else the CPU."""
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def attach_normalizers(modules: Iterable[torch.nn.Module | None], sync: Distributed) -> None:
    """Have every running normalizer inside ``modules`` sum its batch moments over ranks."""
    if not sync.active:
        return
    for module in modules:
        if module is None:
            continue
        for sub in module.modules():
            if isinstance(sub, RunningNormalizer):
                sub.reduce = sync.sum_


class _NotRankZero:
    """Stands in for a writer (checkpoints, run logger, videos) on ranks other than 0: every method
    call does nothing and returns None (so ``due()`` is false and ``save()`` writes nothing)."""

    def __getattr__(self, name: str) -> Any:
        return _do_nothing

    def __repr__(self) -> str:
        return "NOT_RANK_ZERO"


def _do_nothing(*args: Any, **kwargs: Any) -> None:
    """What every writer method does on a rank other than 0."""


NOT_RANK_ZERO: Any = _NotRankZero()
