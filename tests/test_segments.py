"""The packed (cut-at-resets) GRU pass equals the cell-by-cell loop: outputs, final carry, gradients."""

from __future__ import annotations

import pytest
import torch

from ktorch_sim.policies.gru import GRUStack
from ktorch_sim.policies.segments import segment_layout


def test_segment_layout_by_hand():
    resets = torch.tensor([[False, False, True, False],
                           [True, False, False, False],
                           [False, True, True, False]])
    layout = segment_layout(resets)
    assert layout.segment.tolist() == [[0, 0, 1, 1], [2, 2, 2, 2], [3, 4, 5, 5]]
    assert layout.position.tolist() == [[0, 1, 0, 1], [0, 1, 2, 3], [0, 0, 0, 1]]
    assert layout.lengths.tolist() == [2, 2, 4, 1, 1, 2]
    assert layout.first.tolist() == [0, 2, 3] and layout.last.tolist() == [1, 2, 5]
    assert layout.from_carry.tolist() == [True, False, True]


def _resets(batch: int, steps: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    resets = torch.rand(batch, steps, generator=g) < 0.15
    resets[0] = False  # a row with no reset
    resets[1, 0] = True  # a row that resets at t = 0 (ignores its stored carry)
    resets[2, 3:5] = True  # back-to-back resets: a one-step segment
    resets[3, -1] = True  # a reset on the last step
    return resets


@pytest.mark.parametrize("depth", [1, 3])
def test_packed_equals_loop_with_gradients(depth):
    torch.manual_seed(0)
    batch, steps, inputs, hidden = 6, 17, 5, 8
    loop = GRUStack(inputs, hidden, depth, sequence_method="loop").double()
    packed = GRUStack(inputs, hidden, depth, sequence_method="packed").double()
    packed.load_state_dict(loop.state_dict())
    x = torch.randn(batch, steps, inputs, dtype=torch.float64)
    carry0 = torch.randn(batch, depth, hidden, dtype=torch.float64)
    resets = _resets(batch, steps, seed=depth)

    results = []
    for net in (loop, packed):
        xi, ci = x.clone().requires_grad_(), carry0.clone().requires_grad_()
        out, carry = net.sequence(xi, ci, resets)
        (out.sin().sum() + (carry ** 2).sum()).backward()
        grads = [p.grad.clone() for p in net.parameters()]
        results.append((out.detach(), carry.detach(), xi.grad, ci.grad, grads))

    (o1, c1, gx1, gc1, gp1), (o2, c2, gx2, gc2, gp2) = results
    torch.testing.assert_close(o2, o1, rtol=0, atol=1e-12)
    torch.testing.assert_close(c2, c1, rtol=0, atol=1e-12)
    torch.testing.assert_close(gx2, gx1, rtol=0, atol=1e-12)
    torch.testing.assert_close(gc2, gc1, rtol=0, atol=1e-12)
    assert gc1[1].abs().sum() == 0  # row 1 resets at t = 0: its stored carry gets no gradient
    for a, b in zip(gp1, gp2, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-11)


def test_packed_equals_step_by_step_in_float32():
    torch.manual_seed(1)
    net = GRUStack(4, 16, 2, sequence_method="packed")
    x, carry0 = torch.randn(3, 9, 4), torch.randn(3, 2, 16)
    resets = torch.zeros(3, 9, dtype=torch.bool)
    resets[0, 4] = resets[2, 0] = True
    out, final = net.sequence(x, carry0, resets)
    carry = carry0.clone()
    for t in range(9):
        carry = carry * (~resets[:, t]).float()[:, None, None]
        y, carry = net.step(x[:, t], carry)
        torch.testing.assert_close(out[:, t], y, rtol=0, atol=1e-6)
    torch.testing.assert_close(final, carry, rtol=0, atol=1e-6)


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="sequence_method must be one of"):
        GRUStack(3, 4, 1, sequence_method="cudnn")
