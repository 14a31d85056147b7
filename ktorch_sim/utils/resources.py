"""Memory bounds: refuse a ``task.num_envs`` (or rollout) that cannot fit, before allocating it.

Without a bound, an absurd ``task.num_envs`` allocates for minutes and dies with MuJoCo's "Could not
allocate memory" (or the OOM killer). Two checks, each one :class:`~ktorch_sim.config.ConfigError`
line (key ``task.num_envs``) saying how much would be needed and how much there is:

- :func:`check_worlds_fit`, in :meth:`RLTask.make_env <ktorch_sim.task.RLTask.make_env>` before the
  engine is built: MuJoCo's data per world (an ``mj_sizeof``-style figure: the ``MjData`` main buffer,
  ``nbuffer``, plus the arena and stack that a forward pass of the model at its initial state uses,
  ``maxuse_arena + maxuse_stack``), plus, on the native engine when fields are randomized per world,
  one ``MjModel`` copy per world (``mj_sizeModel``), times ``num_envs``;
- :func:`check_rollout_fits`, in the trainer once the environment exists: the rollout buffer,
  ``num_envs x rollout steps x`` the bytes of one step of one world (observations, commands, the
  action, rewards and flags, measured from the first observation, and the policy's normalized inputs
  where the rollout stores them).

Both are lower bounds (contacts may grow the arena; the PPO update needs more), so they refuse only
what certainly cannot fit. Available memory is the host's ``MemAvailable`` (``/proc/meminfo``, capped
by a cgroup memory limit) for CPU devices, and the free memory of the CUDA device otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ktorch_sim.errors import ConfigError


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human figure: ``512 B``, ``3.1 KiB``, ``14.0 MiB``, ``1.2 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def available_memory(device: str) -> tuple[int, str]:
    """Bytes that new allocations on ``device`` ("cpu", "cuda", "cuda:k") can still take, and where they are."""
    if device.startswith("cuda"):
        import torch

        dev = torch.device(device)
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free), f"free on {dev}"
    return _host_available()


def _host_available() -> tuple[int, str]:
    available, what = None, "available host memory"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available, what = int(line.split()[1]) * 1024, "available host memory (MemAvailable)"
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            available = 1 << 62  # unknown: do not refuse
    limit = _cgroup_room()
    if limit is not None and limit < available:
        available, what = limit, "room under this container's cgroup memory limit"
    return available, what


def _cgroup_room() -> int | None:
    """``memory.max - memory.current`` of this process's cgroup (v2, or v1's limit and usage), if limited."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit_text = Path(limit_file).read_text().strip()
            if limit_text == "max":
                return None
            limit, usage = int(limit_text), int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit >= 1 << 60:  # v1's "no limit" is a huge number
            return None
        return max(0, limit - usage)
    return None


def mujoco_world_bytes(model: Any) -> int:
    """Return MuJoCo's memory for one world of ``model``, in bytes.

    The MjData main buffer plus the arena and stack that one forward pass at the initial state uses
    (``nbuffer + maxuse_arena + maxuse_stack``).
    """
    import mujoco

    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return int(data.nbuffer) + int(data.maxuse_arena) + int(data.maxuse_stack)


def check_worlds_fit(model: Any, num_envs: int, engine: str, device: str, randomized: bool) -> None:
    """Refuse ``num_envs`` worlds of ``model`` that cannot fit in the memory of ``device`` (one ConfigError line).

    ``engine`` is the resolved engine kind ("mujoco" or "warp"); ``randomized``: some model field is
    drawn per world (the native engine then keeps one MjModel copy per world).
    """
    import mujoco

    per_world = mujoco_world_bytes(model)
    parts = [f"{format_bytes(per_world)} of MuJoCo data per world (MjData buffer + arena used)"]
    if engine == "mujoco" and randomized:
        model_bytes = int(mujoco.mj_sizeModel(model))
        per_world += model_bytes
        parts.append(f"{format_bytes(model_bytes)} for its own MjModel copy (randomized fields)")
    _refuse_if_over(num_envs * per_world, num_envs, per_world, device, " + ".join(parts),
                    "use fewer worlds (task.num_envs)")


_FLAGS_PER_STEP = 5  # done, terminated, truncated, bad_physics, bad_action: one bool each


def check_rollout_fits(first: Any, num_envs: int, num_actions: int, num_reward_terms: int, steps: int,
                       device: str, stored_input_width: int = 0) -> None:
    """Refuse a rollout buffer of ``num_envs x steps`` that cannot fit in the memory of ``device``.

    ``first`` is the environment's first observation (a TensorDict with ``observation`` and
    ``command``); one stored step of one world also holds the action, the reward terms, the reward,
    log-probability, value and next value (4 bytes each), the step's five flags (1 byte each), and
    ``stored_input_width`` more floats where the rollout keeps the policy's normalized inputs too
    (``ppo.normalizer_update = "step"``: the actor's and the critic's input widths together). Anything
    else a buffer holds (a recurrent policy's carries, a task's extras) makes the real need larger.
    """
    observed = sum(t.numel() * t.element_size() for key in ("observation", "command") if key in first.keys()
                   for t in first[key].values(include_nested=True, leaves_only=True))
    floats = num_actions + num_reward_terms + 4 + stored_input_width
    per_step = observed // max(num_envs, 1) + 4 * floats + _FLAGS_PER_STEP
    per_world = per_step * steps
    stored = ", normalized policy inputs" if stored_input_width else ""
    _refuse_if_over(num_envs * per_world, num_envs, per_world, device,
                    f"a rollout buffer of {steps} steps x {format_bytes(per_step)} per world and step (observations, "
                    f"commands, action, rewards{stored})", "use fewer worlds (task.num_envs) or a shorter "
                    "ppo.rollout_length_seconds")


def _refuse_if_over(need: int, num_envs: int, per_world: int, device: str, what: str, advice: str) -> None:
    available, where = available_memory(device)
    if need <= available:
        return
    fit = available // max(per_world, 1)
    fits = f"at most {fit} worlds fit" if fit >= 1 else "not even one world fits"
    raise ConfigError(f"{num_envs} worlds need at least {format_bytes(need)} ({what}), but there is "
                      f"{format_bytes(available)} ({where}); {advice}: {fits}", key="task.num_envs")


__all__ = ["available_memory", "check_rollout_fits", "check_worlds_fit", "format_bytes", "mujoco_world_bytes"]
