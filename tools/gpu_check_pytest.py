"""pytest plugin of ``tools/gpu_check.py``: run the engine tests on the engines it names, and no other.

``tests/conftest.py`` lists the (engine, device) pairs every engine test runs on: the native engine,
Warp on the CPU and, with a GPU, Warp on CUDA. On the GPU machine Warp has no CPU compiler, so a
test whose fixture builds every listed engine (the parity test) would fail on ``warp-cpu`` before it
compared ``warp-cuda``. With ``GPU_CHECK_ENGINE_SPECS=mujoco-cpu,warp-cuda`` this plugin narrows
that list, in place, before the test modules are collected (they read it when imported, and the
parity fixture when it runs). Tests parametrized by conftest's own ``engine_spec`` fixture keep
their ids; select them with ``-k warp-cuda``.

    GPU_CHECK_ENGINE_SPECS=mujoco-cpu,warp-cuda python -m pytest -p gpu_check_pytest tests/test_engine_parity.py
"""

from __future__ import annotations

import importlib
import os

import pytest

SPECS_ENV = "GPU_CHECK_ENGINE_SPECS"


def pytest_configure(config: pytest.Config) -> None:
    """Keep only the engine specs named in ``$GPU_CHECK_ENGINE_SPECS`` (nothing to do when unset)."""
    wanted = [s.strip() for s in os.environ.get(SPECS_ENV, "").split(",") if s.strip()]
    if not wanted:
        return
    conftest = importlib.import_module("tests.conftest")
    keep = [spec for spec in conftest.ENGINE_SPECS if f"{spec[0]}-{spec[1]}" in wanted]
    missing = sorted(set(wanted) - {f"{k}-{d}" for k, d in keep})
    if missing:
        raise pytest.UsageError(f"{SPECS_ENV}: {', '.join(missing)} not among tests/conftest.py's ENGINE_SPECS "
                                f"on this machine ({', '.join(f'{k}-{d}' for k, d in conftest.ENGINE_SPECS)})")
    conftest.ENGINE_SPECS[:] = keep
    conftest.ENGINE_IDS[:] = [f"{k}-{d}" for k, d in keep]
