"""Integer bounds config values are held to (they end up in C ints and 64-bit tensors)."""

INT64_MAX = 2**63 - 1
"""The largest integer a config value may hold (stored as a 64-bit integer downstream)."""
C_INT_MAX = 2**31 - 1
"""The largest count MuJoCo and Warp take as a C int (iterations, buffer sizes, steps per control period)."""
