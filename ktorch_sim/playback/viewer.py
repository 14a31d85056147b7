"""Watch a trained policy live in MuJoCo's interactive viewer, steering it from the keyboard.

One world runs on the native engine in real time (one control step per ``ctrl_dt`` of wall
time, when the machine keeps up); each step its state is copied into the viewer's ``MjData``.
Keys change the pinned velocity command ``[vx, vy, wz]`` (see :data:`KEY_MAP`); the policy sees
the new command from the next step on. Closing the window ends the session.

The viewer needs a display. MuJoCo's viewer ends the whole process (no Python exception) when
GLFW cannot start, so :func:`display_problem` probes GLFW first and callers turn a problem into
one clear line instead.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from typing import TYPE_CHECKING

import torch

from ktorch_sim.playback.policy_rollout import pin_velocity_command, velocity_command_name

if TYPE_CHECKING:
    from ktorch_sim.playback.trained import TrainedPolicy

__all__ = ["KEY_MAP", "display_problem", "key_map_text", "run_viewer"]

# GLFW key codes -> (command column, change); column None zeroes the command.
KEY_MAP: dict[int, tuple[str, int | None, float]] = {
    265: ("Up", 0, +0.1),
    264: ("Down", 0, -0.1),
    266: ("Page Up", 1, +0.1),
    267: ("Page Down", 1, -0.1),
    263: ("Left", 2, +0.1),
    262: ("Right", 2, -0.1),
    268: ("Home", None, 0.0),
}
COMMAND_LIMITS = (2.0, 1.0, 2.0)  # |vx| m/s, |vy| m/s, |wz| rad/s the keys can reach
COLUMN_NAMES = ("vx (forward, m/s)", "vy (left, m/s)", "wz (yaw rate, counter-clockwise, rad/s)")


def key_map_text() -> str:
    """Return the key map, one key per line, for printing when the viewer starts."""
    lines = []
    for name, column, change in KEY_MAP.values():
        what = "zero the command" if column is None else f"{COLUMN_NAMES[column]} {change:+.1f}"
        lines.append(f"  {name:<10} {what}")
    return "\n".join(lines)


def display_problem() -> str | None:
    """Return why no viewer window can open here (one phrase), or None when GLFW starts."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no DISPLAY or WAYLAND_DISPLAY is set"
    try:
        import glfw
    except ImportError as e:
        return f"the glfw package cannot be imported ({e})"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = glfw.init()
    if not started:
        details = "; ".join(str(w.message) for w in caught) or "glfw.init() failed"
        return f"GLFW cannot start ({details})"
    glfw.terminate()
    return None


def run_viewer(policy: TrainedPolicy) -> None:
    """Run ``policy`` (one world, native engine) in the interactive viewer until the window closes.

    Raises RuntimeError from MuJoCo's viewer when it cannot open (e.g. macOS without ``mjpython``).
    """
    import mujoco.viewer

    env = policy.env
    data = mujoco.MjData(env.model)
    command = torch.zeros(3, device=env.device)
    lock = threading.Lock()
    steerable = velocity_command_name(env) is not None

    def on_key(keycode: int) -> None:
        if keycode not in KEY_MAP:
            return
        if not steerable:
            print("this task has no velocity command to steer", flush=True)
            return
        _, column, change = KEY_MAP[keycode]
        with lock:
            if column is None:
                command.zero_()
            else:
                command[column] = max(-COMMAND_LIMITS[column], min(COMMAND_LIMITS[column],
                                                                   float(command[column]) + change))
            print("command vx={:+.2f} vy={:+.2f} wz={:+.2f}".format(*command.tolist()), flush=True)

    current = env.reset()
    carry = policy.initial_carry(env.num_envs)
    with mujoco.viewer.launch_passive(env.model, data, key_callback=on_key) as viewer:
        while viewer.is_running():
            start = time.perf_counter()
            if steerable:
                with lock:
                    pin_velocity_command(env, command, current)
            action, carry = policy.act(current["observation"], current["command"], carry)
            nxt = env.step(action)["next"]
            carry = policy.reset_carry(carry, nxt["done"][:, 0])
            current = nxt.select("observation", "command")
            with viewer.lock():
                data.qpos[:] = env.engine.state.qpos[0].cpu().numpy()
                data.qvel[:] = env.engine.state.qvel[0].cpu().numpy()
                mujoco.mj_forward(env.model, data)
            viewer.sync()
            time.sleep(max(0.0, env.ctrl_dt - (time.perf_counter() - start)))
