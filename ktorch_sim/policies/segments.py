"""Exact recurrent passes with mid-sequence resets on a fused RNN kernel, by splitting at the resets.

A rollout row of T steps with resets holds several episode segments. Zeroing the carry inside a
fused ``nn.GRU`` call is impossible, so the rows are cut at every reset into independent
sequences: the first segment of a row starts from the row's stored carry (or zeros if the row
resets at t=0), every later one from zeros. The segments are packed (``pack_padded_sequence``)
and run in ONE multi-layer GRU call, which on CUDA is a single cuDNN kernel over all layers and
steps instead of T x depth small GRUCell launches; the outputs are scattered back to [B, T].
The result equals stepping cell by cell and zeroing on resets (tests/test_segments.py checks
outputs, final carries and gradients against the loop).

Cost: one host transfer of the [B, T] reset mask per call (the packed lengths must be on the
CPU), which is fine in the PPO update and is why this is not used in the rollout's step loop.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["SegmentLayout", "packed_gru_sequence", "segment_layout"]


@dataclass(frozen=True)
class SegmentLayout:
    """Where each (row, step) of a [B, T] batch lands when the rows are cut at resets.

    Attributes:
        segment: segment index of every (b, t), [B, T] (segments are numbered row by row).
        position: step index inside its segment, [B, T].
        lengths: steps per segment, [S] on the CPU (what ``pack_padded_sequence`` needs).
        first: the segment that starts each row, [B].
        last: the segment that ends each row, [B].
        from_carry: [B] bool, True where the row's first segment continues the stored carry.

    """

    segment: torch.Tensor
    position: torch.Tensor
    lengths: torch.Tensor
    first: torch.Tensor
    last: torch.Tensor
    from_carry: torch.Tensor


def segment_layout(resets: torch.Tensor) -> SegmentLayout:
    """Cut the rows of ``resets`` [B, T] (True: the carry is zeroed before step t) into segments."""
    batch, steps = resets.shape
    starts = resets.clone()
    starts[:, 0] = True  # every row opens a segment at t = 0
    segment = (starts.reshape(-1).long().cumsum(0) - 1).reshape(batch, steps)
    time = torch.arange(steps, device=resets.device).expand(batch, steps)
    start_time = torch.where(starts, time, torch.zeros_like(time)).cummax(dim=1).values
    counts = starts.sum(dim=1)
    last = counts.cumsum(0) - 1
    lengths = torch.bincount(segment.reshape(-1).cpu(), minlength=int(counts.sum()))
    return SegmentLayout(segment=segment, position=time - start_time, lengths=lengths,
                         first=last - counts + 1, last=last, from_carry=~resets[:, 0])


def _gru_weights(cells: nn.ModuleList) -> dict[str, torch.Tensor]:
    """``nn.GRU`` parameter names -> the stacked ``GRUCell``s' tensors (same gate layout r, z, n)."""
    weights = {}
    for layer, cell in enumerate(cells):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            weights[f"{name}_l{layer}"] = getattr(cell, name)
    return weights


def packed_gru_sequence(template: nn.GRU, cells: nn.ModuleList, z: torch.Tensor, carry0: torch.Tensor,
                        resets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run stacked GRU ``cells`` over ``z`` [B, T, H] from ``carry0`` [B, depth, H], zeroing at ``resets``.

    ``template`` is an ``nn.GRU(H, H, num_layers=depth, batch_first=True)`` whose own parameters
    are never used: the cells' tensors are swapped in, so gradients reach the cells. Returns
    (outputs [B, T, H], carry after the last step [B, depth, H]).
    """
    batch, steps, hidden = z.shape
    layout = segment_layout(resets)
    num_segments = layout.lengths.numel()
    padded = z.new_zeros(num_segments, int(layout.lengths.max()), hidden)
    padded = padded.index_put((layout.segment, layout.position), z)
    h0 = carry0.new_zeros(num_segments, carry0.shape[1], hidden)
    h0 = h0.index_put((layout.first,), carry0 * layout.from_carry[:, None, None].to(carry0.dtype))
    packed = pack_padded_sequence(padded, layout.lengths, batch_first=True, enforce_sorted=False)
    with warnings.catch_warnings():  # the swapped-in weights are not one flat cuDNN buffer; that only costs a copy
        warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
        out, h_n = functional_call(template, _gru_weights(cells), (packed, h0.transpose(0, 1).contiguous()))
    out, _ = pad_packed_sequence(out, batch_first=True)
    return out[layout.segment, layout.position], h_n.transpose(0, 1)[layout.last]
