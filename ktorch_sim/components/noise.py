"""Sensor noise (drawn every step) and bias (drawn once per episode), as in ksim's noise module.

A float given where a noise or bias is expected means additive Gaussian with that std.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Noise:
    """Per-step noise: ``x -> x'``, same shape."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return a noisy copy of ``x``."""
        raise NotImplementedError


@dataclass(frozen=True)
class NoNoise(Noise):
    """Identity."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``x`` unchanged."""
        return x


@dataclass(frozen=True)
class AdditiveGaussianNoise(Noise):
    """x + N(0, std^2)."""

    std: float

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Add Gaussian noise."""
        return x + self.std * torch.randn(x.shape, generator=generator, device=x.device)


@dataclass(frozen=True)
class MultiplicativeGaussianNoise(Noise):
    """x * N(1, std^2)."""

    std: float

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Scale by Gaussian noise around 1."""
        return x * (1.0 + self.std * torch.randn(x.shape, generator=generator, device=x.device))


@dataclass(frozen=True)
class AdditiveUniformNoise(Noise):
    """x + U(-mag, mag)."""

    mag: float

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Add uniform noise."""
        return x + self.mag * (2.0 * torch.rand(x.shape, generator=generator, device=x.device) - 1.0)


@dataclass(frozen=True)
class MultiplicativeUniformNoise(Noise):
    """x * U(1 - mag, 1 + mag)."""

    mag: float

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Scale by uniform noise around 1."""
        return x * (1.0 + self.mag * (2.0 * torch.rand(x.shape, generator=generator, device=x.device) - 1.0))


@dataclass(frozen=True)
class ChainedNoise(Noise):
    """Apply several noises in order."""

    noises: tuple[Noise, ...]

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Apply each noise in turn."""
        for noise in self.noises:
            x = noise(x, generator)
        return x


@dataclass(frozen=True)
class Bias:
    """Per-episode bias: :meth:`sample` once at reset, :meth:`apply` every step."""

    multiplicative: bool = False

    def sample(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Draw a bias of ``shape`` (identity element: 0 additive, 1 multiplicative)."""
        raise NotImplementedError

    def apply(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Apply a drawn bias to ``x``."""
        return x * bias if self.multiplicative else x + bias


@dataclass(frozen=True)
class NoBias(Bias):
    """Zero bias."""

    def sample(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Zeros."""
        return torch.zeros(shape, device=device)


@dataclass(frozen=True)
class AdditiveGaussianBias(Bias):
    """b ~ N(0, std^2), x + b."""

    std: float = 0.0

    def sample(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Gaussian bias."""
        return self.std * torch.randn(shape, generator=generator, device=device)


@dataclass(frozen=True)
class AdditiveUniformBias(Bias):
    """b ~ U(-mag, mag), x + b."""

    mag: float = 0.0

    def sample(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Uniform bias."""
        return self.mag * (2.0 * torch.rand(shape, generator=generator, device=device) - 1.0)


@dataclass(frozen=True)
class MultiplicativeGaussianBias(Bias):
    """b ~ N(1, std^2), x * b."""

    std: float = 0.0
    multiplicative: bool = True

    def sample(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Gaussian scale around 1."""
        return 1.0 + self.std * torch.randn(shape, generator=generator, device=device)


@dataclass(frozen=True)
class MultiplicativeUniformBias(Bias):
    """b ~ U(1 - mag, 1 + mag), x * b."""

    mag: float = 0.0
    multiplicative: bool = True

    def sample(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Uniform scale around 1."""
        return 1.0 + self.mag * (2.0 * torch.rand(shape, generator=generator, device=device) - 1.0)


def as_noise(value: float | Noise) -> Noise:
    """A float std becomes :class:`AdditiveGaussianNoise`; 0 becomes :class:`NoNoise`."""
    if isinstance(value, Noise):
        return value
    return AdditiveGaussianNoise(float(value)) if value else NoNoise()


def as_bias(value: float | Bias) -> Bias:
    """A float std becomes :class:`AdditiveGaussianBias`; 0 becomes :class:`NoBias`."""
    if isinstance(value, Bias):
        return value
    return AdditiveGaussianBias(std=float(value)) if value else NoBias()


def is_active(value: float | Noise | Bias) -> bool:
    """Whether a noise/bias setting does anything."""
    return not (isinstance(value, (NoNoise, NoBias)) or (not isinstance(value, (Noise, Bias)) and not value))
