"""The physics settings both engines take, by name, and their checks: one place for each.

Imports neither torch nor MuJoCo, so the config loader checks a task's ``[task]`` physics values
(:meth:`ktorch_sim.task_config.RLConfig.check`, keys ``task.<field>``) with the same code that
:class:`ktorch_sim.engines.base.EngineConfig` runs on construction (keys ``<field>``). The
engines map these names to MuJoCo's enums (:mod:`ktorch_sim.engines.base`).
"""

from __future__ import annotations

import math
from typing import Any

from ktorch_sim.errors import require
from ktorch_sim.utils.limits import C_INT_MAX
from ktorch_sim.utils.toml_values import choice_problem

ENGINE_KINDS = ("auto", "mujoco", "warp")
FROM_MODEL = "model"
"""An integrator, solver or cone of "model" keeps what the model's own ``<option>`` declares."""
INTEGRATOR_NAMES = (FROM_MODEL, "euler", "implicitfast", "implicit", "rk4", "discrete")
SOLVER_NAMES = (FROM_MODEL, "newton", "cg", "pgs")
CONE_NAMES = (FROM_MODEL, "pyramidal", "elliptic")
OPTION_NAMES: dict[str, tuple[str, ...]] = {"integrator": INTEGRATOR_NAMES, "solver": SOLVER_NAMES,
                                            "cone": CONE_NAMES}


def check_physics(settings: Any, prefix: str = "") -> None:
    """Check the physics fields of ``settings`` (an EngineConfig or an RLConfig); one ConfigError line.

    The error's key is ``prefix + field`` (``"task.dt"`` from the config loader, ``"dt"`` from
    EngineConfig). Checked: worlds >= 1; dt > 0 and ctrl_dt a whole multiple of it (at most
    2**31 - 1 substeps); integrator, solver and cone among the names above; solver iterations and
    Warp buffer sizes in [1, 2**31 - 1]; native threads in [0, 2**31 - 1].
    """
    s, p = settings, prefix
    require(s.num_envs >= 1, f"{p}num_envs", f"must be >= 1, got {s.num_envs}")
    require(s.dt > 0, f"{p}dt", f"must be > 0 seconds, got {s.dt}")
    ratio = s.ctrl_dt / s.dt
    require(ratio <= C_INT_MAX, f"{p}dt", f"must give at most {C_INT_MAX} physics steps per {p}ctrl_dt "
                                         f"({s.ctrl_dt}), got {s.dt} ({ratio:.4g} steps)")
    require(ratio >= 1 - 1e-9 and math.isclose(ratio, round(ratio), rel_tol=1e-6), f"{p}ctrl_dt",
            f"must be a whole multiple of {p}dt ({s.dt}), got {s.ctrl_dt} ({ratio:.4g} x dt)")
    for name, names in OPTION_NAMES.items():
        value = getattr(s, name)
        require(value in names, f"{p}{name}", choice_problem(value, names))
    for name in ("iterations", "ls_iterations", "nconmax", "njmax"):
        value = getattr(s, name)
        require(1 <= value <= C_INT_MAX, f"{p}{name}", f"must be in [1, {C_INT_MAX}], got {value}")
    require(0 <= s.num_threads <= C_INT_MAX, f"{p}num_threads",
            f"must be in [0, {C_INT_MAX}] (0: one per core), got {s.num_threads}")
