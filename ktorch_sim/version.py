"""The package version, in a leaf module so that any layer may record it (exported policies, checkpoints)."""

__version__ = "0.1.0"
