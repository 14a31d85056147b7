"""Actor and critic networks: the K-Scale humanoid benchmark's GRU mixture-of-Gaussians pair, and MLPs.

Every network has the same call surface, so PPO code treats recurrent and feed-forward policies alike:

    initial_carry(batch_size, device) -> carry                    (zeros; [B, 0] for MLPs)
    forward(obs [B, in], carry) -> (output, next_carry)           one control step
    forward_sequence(obs [B, T, in], carry0, resets [B, T]) -> (output over [B, T], carry_T)

An actor's output is a distribution (``MixtureOfGaussians`` or ``DiagGaussian``, both per action dimension);
a critic's is the state value ``[..., 1]``. ``resets[:, t]`` marks the first step of a new episode: the
carry is zeroed before that step (MLPs ignore it).

For TorchRL users each class names the TensorDict keys it reads and writes (``in_keys``, ``out_keys``) and
``as_tensordict_module()`` wraps its tensor-valued step in a ``tensordict.nn.TensorDictModule``.

Initialisation follows common PPO practice: orthogonal Linear weights with gain sqrt(2) for hidden layers,
0.01 for the actor's output (so the initial policy is centred on the home pose with near-uniform mixture
weights) and 1.0 for the critic's, all biases zero. GRU cells keep PyTorch's default initialisation.
``init="torch"`` keeps PyTorch's default for every layer instead (rsl_rl's MLPs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ktorch_sim.policies.distributions import DiagGaussian, MixtureOfGaussians
from ktorch_sim.policies.gru import GRUStack, init_linear
from ktorch_sim.policies.history import history_sequence, history_step

if TYPE_CHECKING:
    from tensordict.nn import TensorDictModule

__all__ = ["ActorCritic", "GRUActor", "GRUCritic", "MLPActor", "MLPCritic"]

_HIDDEN_GAIN = math.sqrt(2.0)
_ACTOR_OUT_GAIN = 0.01
_CRITIC_OUT_GAIN = 1.0


def _mean_bias_buffer(mean_bias: Sequence[float] | torch.Tensor | None, num_outputs: int) -> torch.Tensor:
    """Return the action-mean offset as a float tensor ``[num_outputs]`` (zeros when None)."""
    if mean_bias is None:
        return torch.zeros(num_outputs)
    bias = torch.as_tensor(mean_bias, dtype=torch.float32).detach().clone().reshape(-1)
    if bias.numel() != num_outputs:
        raise ValueError(f"mean_bias has {bias.numel()} entries; the actor has num_outputs={num_outputs}")
    return bias


def _check_init_std(init_std: float) -> None:
    """Raise unless ``init_std`` (the initial std of a learned, state-independent log std) is positive."""
    if init_std <= 0.0:
        raise ValueError(f"init_std must be > 0, got {init_std}")


ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": nn.ELU, "tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU}


def _hidden_layers(num_inputs: int, hidden_sizes: Sequence[int], activation: str = "elu",
                   init: str = "orthogonal") -> tuple[nn.Sequential, int]:
    """Linear + ``activation`` pairs of ``hidden_sizes``, initialised per ``init`` (:func:`init_linear`),
    and the width they end with (``num_inputs`` when there are none: an empty Sequential passes through)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    width = num_inputs
    for size in hidden_sizes:
        layers += [init_linear(nn.Linear(width, size), _HIDDEN_GAIN, init), ACTIVATIONS[activation]()]
        width = size
    return nn.Sequential(*layers), width


def _mlp(num_inputs: int, hidden_sizes: Sequence[int], num_outputs: int, out_gain: float,
         activation: str = "elu", init: str = "orthogonal") -> nn.Sequential:
    """:func:`_hidden_layers` and a Linear output, initialised per ``init`` (:func:`init_linear`)."""
    hidden, width = _hidden_layers(num_inputs, hidden_sizes, activation, init)
    return nn.Sequential(*hidden, init_linear(nn.Linear(width, num_outputs), out_gain, init))


class _TensorStep(nn.Module):
    """``forward(obs, carry)`` = the wrapped network's ``forward_tensors``; shares its parameters."""

    def __init__(self, net: _PolicyNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, obs: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Tensor outputs of one step, in the order of ``net.out_keys``."""
        return self.net.forward_tensors(obs, carry)


class _PolicyNet(nn.Module):
    """Shared TorchRL plumbing: ``in_keys``/``out_keys`` and ``as_tensordict_module``."""

    in_keys: ClassVar[tuple[str, ...]] = ()
    out_keys: ClassVar[tuple[str, ...]] = ()

    def forward_tensors(self, obs: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step as plain tensors, in the order of ``out_keys``."""
        raise NotImplementedError

    def as_tensordict_module(
        self, in_keys: Sequence[str] | None = None, out_keys: Sequence[str] | None = None
    ) -> TensorDictModule:
        """Wrap one step in a ``TensorDictModule`` reading ``in_keys``, writing ``out_keys`` (default: the class's)."""
        from tensordict.nn import TensorDictModule

        return TensorDictModule(
            _TensorStep(self),
            in_keys=list(in_keys or self.in_keys),
            out_keys=list(out_keys or self.out_keys),
        )


class GRUActor(_PolicyNet):
    """Recurrent actor with a per-joint mixture-of-Gaussians head (the K-Scale humanoid benchmark's).

    ``GRUStack``, optionally an MLP of ``head_hidden`` layers (rsl_rl's recurrent actor: memory, then an
    MLP), then ``Linear(width, num_outputs * 3 * num_mixtures)``, split into means, raw stds and logits,
    each ``[..., A, K]``. Means are offset by ``mean_bias`` per joint (the home pose, so the
    untrained policy stands near it); std = min((softplus(s) + min_std) * var_scale, max_std).
    With ``state_dependent_std=False`` the head outputs only means and logits and each component's std
    is a learned parameter ``exp(log_std[a, k])``, independent of the input (the MLP's, SB3's and
    rsl_rl's choice), starting at ``init_std``.

    Args:
        num_inputs: Observation features.
        num_outputs: Action dimensions A (joints).
        hidden_size: GRU width.
        depth: Stacked GRU cells.
        num_mixtures: Gaussians per action dimension K.
        min_std: Floor added to softplus before scaling.
        max_std: Ceiling on each component's std.
        var_scale: Multiplier on the std.
        mean_bias: Per-joint offset of the means ``[A]`` (a buffer, saved in the state dict); zeros if None.
        sequence_method: How training passes run the GRU over time (see :class:`GRUStack`).
        init: Initialization of the Linear layers (module docstring).
        state_dependent_std: Stds from the network (ksim) or learned parameters (see above).
        init_std: Initial std of the parameter stds (``state_dependent_std=False`` only).
        head_hidden: Hidden layer sizes between the GRU and the output layer; empty: none (ksim's).
        activation: Activation of those layers (:data:`ACTIVATIONS`).

    TensorDict keys: reads ``actor_obs`` [B, in], ``actor_carry`` [B, depth, hidden]; writes ``loc``,
    ``scale``, ``logits`` (each [B, A, K]) and ``next_actor_carry``.

    """

    in_keys: ClassVar[tuple[str, ...]] = ("actor_obs", "actor_carry")
    out_keys: ClassVar[tuple[str, ...]] = ("loc", "scale", "logits", "next_actor_carry")

    def __init__(
        self,
        num_inputs: int,
        num_outputs: int,
        hidden_size: int = 128,
        depth: int = 5,
        num_mixtures: int = 5,
        min_std: float = 0.01,
        max_std: float = 1.0,
        var_scale: float = 1.0,
        mean_bias: Sequence[float] | torch.Tensor | None = None,
        sequence_method: str = "auto",
        init: str = "orthogonal",
        state_dependent_std: bool = True,
        init_std: float = 1.0,
        head_hidden: Sequence[int] = (),
        activation: str = "elu",
    ) -> None:
        super().__init__()
        _check_init_std(init_std)
        self.num_outputs = num_outputs
        self.num_mixtures = num_mixtures
        self.state_dependent_std = state_dependent_std
        self.min_std = min_std
        self.max_std = max_std
        self.var_scale = var_scale
        self.gru = GRUStack(num_inputs, hidden_size, depth, sequence_method, init)
        self.head_mlp, width = _hidden_layers(hidden_size, head_hidden, activation, init)
        heads = 3 if state_dependent_std else 2  # means, (stds,) logits
        self.output_proj = init_linear(nn.Linear(width, num_outputs * heads * num_mixtures), _ACTOR_OUT_GAIN, init)
        if not state_dependent_std:
            self.log_std = nn.Parameter(torch.full((num_outputs, num_mixtures), math.log(init_std)))
        self.mean_bias: torch.Tensor
        self.register_buffer("mean_bias", _mean_bias_buffer(mean_bias, num_outputs))

    def initial_carry(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Zero carry ``[batch_size, depth, hidden]``."""
        return self.gru.initial_carry(batch_size, device)

    def _head(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """GRU output ``[..., hidden]`` -> (means, stds, logits), each ``[..., A, K]``."""
        shape = h.shape[:-1] + (self.num_outputs, self.num_mixtures)
        h = self.head_mlp(h)
        if self.state_dependent_std:
            mean_raw, std_raw, logits = self.output_proj(h).chunk(3, dim=-1)
            stds = ((F.softplus(std_raw.reshape(shape)) + self.min_std) * self.var_scale).clamp(max=self.max_std)
        else:
            mean_raw, logits = self.output_proj(h).chunk(2, dim=-1)
            stds = self.log_std.exp().expand(shape)
        means = mean_raw.reshape(shape) + self.mean_bias[:, None]
        return means, stds, logits.reshape(shape)

    def forward_tensors(self, obs: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step as tensors: (means, stds, logits, next_carry)."""
        h, next_carry = self.gru.step(obs, carry)
        return (*self._head(h), next_carry)

    def forward(self, obs: torch.Tensor, carry: torch.Tensor) -> tuple[MixtureOfGaussians, torch.Tensor]:
        """One step: ``obs`` [B, in] -> (mixture over [B, A, K], next carry)."""
        means, stds, logits, next_carry = self.forward_tensors(obs, carry)
        return MixtureOfGaussians(means, stds, logits), next_carry

    def forward_sequence(
        self, obs: torch.Tensor, carry0: torch.Tensor, resets: torch.Tensor
    ) -> tuple[MixtureOfGaussians, torch.Tensor]:
        """Run a sequence: ``obs`` [B, T, in] -> (mixture over [B, T, A, K], carry after the last step)."""
        h, carry = self.gru.sequence(obs, carry0, resets)
        return MixtureOfGaussians(*self._head(h)), carry


class GRUCritic(_PolicyNet):
    """Recurrent state-value critic: ``GRUStack``, optionally an MLP of ``head_hidden`` layers, then a
    Linear to the value.

    TensorDict keys: reads ``critic_obs`` [B, in], ``critic_carry`` [B, depth, hidden]; writes
    ``state_value`` [B, 1] and ``next_critic_carry``.
    """

    in_keys: ClassVar[tuple[str, ...]] = ("critic_obs", "critic_carry")
    out_keys: ClassVar[tuple[str, ...]] = ("state_value", "next_critic_carry")

    def __init__(self, num_inputs: int, hidden_size: int = 128, depth: int = 5, sequence_method: str = "auto",
                 init: str = "orthogonal", head_hidden: Sequence[int] = (), activation: str = "elu") -> None:
        super().__init__()
        self.gru = GRUStack(num_inputs, hidden_size, depth, sequence_method, init)
        self.head_mlp, width = _hidden_layers(hidden_size, head_hidden, activation, init)
        self.output_proj = init_linear(nn.Linear(width, 1), _CRITIC_OUT_GAIN, init)

    def initial_carry(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Zero carry ``[batch_size, depth, hidden]``."""
        return self.gru.initial_carry(batch_size, device)

    @property
    def output_layer(self) -> nn.Linear:
        """The Linear whose output is the value (``ppo.preserve_values`` rescales it)."""
        return self.output_proj

    def forward_tensors(self, obs: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step as tensors: (value [B, 1], next_carry)."""
        return self.forward(obs, carry)

    def forward(self, obs: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``obs`` [B, in] -> (value [B, 1], next carry)."""
        h, next_carry = self.gru.step(obs, carry)
        return self.output_proj(self.head_mlp(h)), next_carry

    def forward_sequence(
        self, obs: torch.Tensor, carry0: torch.Tensor, resets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run a sequence: ``obs`` [B, T, in] -> (values [B, T, 1], carry after the last step)."""
        h, carry = self.gru.sequence(obs, carry0, resets)
        return self.output_proj(self.head_mlp(h)), carry


class _MLPNet(_PolicyNet):
    """Feed-forward base: an empty carry ``[B, 0]`` passed through unchanged."""

    def initial_carry(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Empty carry ``[batch_size, 0]`` (so PPO code handles recurrent and MLP policies alike)."""
        ref = next(self.parameters())
        return torch.zeros(batch_size, 0, device=device or ref.device, dtype=ref.dtype)


class MLPActor(_MLPNet):
    """Feed-forward Gaussian actor: an MLP for the mean, a learned state-independent log std.

    Args:
        num_inputs: Observation features.
        num_outputs: Action dimensions A.
        hidden_sizes: Widths of the hidden layers.
        init_std: Initial std of every action dimension (log std starts at log(init_std)).
        mean_bias: Per-joint offset of the mean ``[A]`` (a buffer); zeros if None.
        activation: Hidden activation: elu, tanh, relu or silu.
        init: Initialization of the Linear layers (module docstring).
        history: Control steps of input the MLP sees: the current one and ``history - 1`` before it, kept as
            the carry ``[B, history - 1, num_inputs]`` (:mod:`ktorch_sim.policies.history`); 1 (default): the
            current input only, an empty carry ``[B, 0]``.

    TensorDict keys: reads ``actor_obs``, ``actor_carry``; writes ``loc``, ``scale`` (each [B, A]) and
    ``next_actor_carry``.

    """

    in_keys: ClassVar[tuple[str, ...]] = ("actor_obs", "actor_carry")
    out_keys: ClassVar[tuple[str, ...]] = ("loc", "scale", "next_actor_carry")

    def __init__(
        self,
        num_inputs: int,
        num_outputs: int,
        hidden_sizes: Sequence[int] = (512, 256, 128),
        init_std: float = 1.0,
        mean_bias: Sequence[float] | torch.Tensor | None = None,
        activation: str = "elu",
        init: str = "orthogonal",
        history: int = 1,
    ) -> None:
        super().__init__()
        _check_init_std(init_std)
        if history < 1:
            raise ValueError(f"history must be >= 1 (control steps of input, the current one included), got {history}")
        self.num_inputs = num_inputs
        self.history = history
        self.net = _mlp(num_inputs * history, hidden_sizes, num_outputs, _ACTOR_OUT_GAIN, activation, init)
        self.log_std = nn.Parameter(torch.full((num_outputs,), math.log(init_std)))
        self.mean_bias: torch.Tensor
        self.register_buffer("mean_bias", _mean_bias_buffer(mean_bias, num_outputs))

    def _params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std), each ``[..., A]``."""
        mean = self.net(obs) + self.mean_bias
        return mean, self.log_std.exp().expand_as(mean)

    def initial_carry(self, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Zero carry: ``[batch_size, history - 1, num_inputs]`` with a history, else empty ``[batch_size, 0]``."""
        if self.history == 1:
            return super().initial_carry(batch_size, device)
        ref = self.log_std
        return torch.zeros(batch_size, self.history - 1, self.num_inputs, device=device or ref.device, dtype=ref.dtype)

    def forward_tensors(self, obs: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step as tensors: (mean, std, next carry)."""
        if self.history == 1:
            return (*self._params(obs), carry)
        window, next_carry = history_step(obs, carry)
        return (*self._params(window), next_carry)

    def forward(self, obs: torch.Tensor, carry: torch.Tensor) -> tuple[DiagGaussian, torch.Tensor]:
        """One step: ``obs`` [B, in] -> (Gaussian over [B, A], next carry; the empty carry stays as it is)."""
        mean, std, next_carry = self.forward_tensors(obs, carry)
        return DiagGaussian(mean, std), next_carry

    def forward_sequence(
        self, obs: torch.Tensor, carry0: torch.Tensor, resets: torch.Tensor
    ) -> tuple[DiagGaussian, torch.Tensor]:
        """Run a sequence: ``obs`` [B, T, in] -> (Gaussian over [B, T, A], carry after the last step).

        Without a history ``resets`` is unused and ``carry0`` is returned as it is.
        """
        if self.history == 1:
            return DiagGaussian(*self._params(obs)), carry0
        windows, carry = history_sequence(obs, carry0, resets)
        return DiagGaussian(*self._params(windows)), carry


class MLPCritic(_MLPNet):
    """Feed-forward state-value critic: an MLP (``activation`` hidden layers) to ``[..., 1]``.

    TensorDict keys: reads ``critic_obs``, ``critic_carry`` [B, 0]; writes ``state_value`` [B, 1] and
    ``next_critic_carry``.
    """

    in_keys: ClassVar[tuple[str, ...]] = ("critic_obs", "critic_carry")
    out_keys: ClassVar[tuple[str, ...]] = ("state_value", "next_critic_carry")

    def __init__(self, num_inputs: int, hidden_sizes: Sequence[int] = (512, 256, 128), activation: str = "elu",
                 init: str = "orthogonal") -> None:
        super().__init__()
        self.net = _mlp(num_inputs, hidden_sizes, 1, _CRITIC_OUT_GAIN, activation, init)

    @property
    def output_layer(self) -> nn.Linear:
        """The Linear whose output is the value (``ppo.preserve_values`` rescales it)."""
        return self.net[-1]

    def forward_tensors(self, obs: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step as tensors: (value [B, 1], carry)."""
        return self.forward(obs, carry)

    def forward(self, obs: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``obs`` [B, in] -> (value [B, 1], the unchanged empty carry)."""
        return self.net(obs), carry

    def forward_sequence(
        self, obs: torch.Tensor, carry0: torch.Tensor, resets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run a sequence: ``obs`` [B, T, in] -> (values [B, T, 1], ``carry0``); ``resets`` is unused."""
        return self.net(obs), carry0


class ActorCritic(nn.Module):
    """Holds an actor and a critic (any of the classes above) so one optimizer and checkpoint cover both.

    The two have separate networks and carries; ``initial_carry`` returns both.
    """

    def __init__(self, actor: GRUActor | MLPActor, critic: GRUCritic | MLPCritic) -> None:
        super().__init__()
        self.actor = actor
        self.critic = critic

    def initial_carry(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero carries ``(actor_carry, critic_carry)`` for ``batch_size`` environments."""
        return self.actor.initial_carry(batch_size, device), self.critic.initial_carry(batch_size, device)
