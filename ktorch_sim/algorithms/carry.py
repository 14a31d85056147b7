"""Recurrent carries as nested tuples of [N, ...] tensors: reset, index, stack, inspect.

A policy's carry is whatever its ``initial_carry`` returns: a tensor, or a tuple/list of them
(the actor-critic's ``(actor_carry, critic_carry)``). Feed-forward policies carry empty
``[N, 0]`` tensors so the same code handles both. These helpers are pure and import nothing of
the training code, so evaluation and playback can use them too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["index_carry", "is_recurrent", "map_carry", "reset_carry", "stack_carries"]


def map_carry(carry: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Apply ``fn`` to every tensor of ``carry``, keeping its tuple/list structure (None stays None)."""
    if isinstance(carry, (tuple, list)):
        return type(carry)(map_carry(c, fn) for c in carry)
    return None if carry is None else fn(carry)


def reset_carry(carry: Any, done: torch.Tensor) -> Any:
    """Zero every carry tensor's rows where ``done`` [N] (recursively through tuples).

    A masked fill, not a multiplication by 0: a NaN carry (from a NaN observation) must not
    survive the reset of its world.
    """
    def reset(c: torch.Tensor) -> torch.Tensor:
        if c.numel() == 0:
            return c
        return c.masked_fill(done.view(-1, *([1] * (c.dim() - 1))), 0.0)

    return map_carry(carry, reset)


def index_carry(carry: Any, index: torch.Tensor) -> Any:
    """Rows ``index`` of every carry tensor."""
    return map_carry(carry, lambda c: c[index])


def is_recurrent(carry: Any) -> bool:
    """True when any carry tensor holds state (feed-forward policies carry only empty tensors)."""
    if isinstance(carry, (tuple, list)):
        return any(is_recurrent(c) for c in carry)
    return carry is not None and carry.numel() > 0


def stack_carries(carries: list[Any]) -> Any:
    """Carries of C chunks, each [N, ...], as one carry of [N * C, ...] rows ordered (world, chunk).

    Row ``n * C + c`` is chunk c of world n: the order of an [N, T] buffer reshaped to
    [N * C, T / C].
    """
    first = carries[0]
    if isinstance(first, (tuple, list)):
        return type(first)(stack_carries([c[i] for c in carries]) for i in range(len(first)))
    if first is None:
        return None
    return torch.stack(carries, dim=1).flatten(0, 1)
