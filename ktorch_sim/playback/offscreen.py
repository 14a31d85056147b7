"""Offscreen OpenGL for rendering without a display: choose MUJOCO_GL and open a ``mujoco.Renderer``.

MuJoCo's Python bindings pick their OpenGL context class once, when ``mujoco`` is first
imported, from the ``MUJOCO_GL`` environment variable (unset means GLFW, which needs a
display). Headless machines need ``egl`` (GPU or Mesa's EGL) or ``osmesa`` (software).

:func:`select_gl_backend` decides which one to use: ``MUJOCO_GL`` when the user set it, else the
first of :data:`HEADLESS_BACKENDS` that can actually render, tried in a short child process
(a backend that fails inside this process cannot be swapped for another one afterwards, since
PyOpenGL binds its platform on first import). The choice is written to ``os.environ`` and
cached for the process. :func:`open_renderer` then builds a ``mujoco.Renderer`` on that backend,
even in a process that imported ``mujoco`` before the choice was made (the trainer): mujoco's
context class is rebound for the construction only.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["HEADLESS_BACKENDS", "NO_BACKEND_MESSAGE", "GLBackendError", "open_renderer", "select_gl_backend"]

HEADLESS_BACKENDS = ("egl", "osmesa")
NO_BACKEND_MESSAGE = ("no offscreen OpenGL backend: install libegl1 (MUJOCO_GL=egl) or libosmesa6 "
                      "(MUJOCO_GL=osmesa), e.g. sudo apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri; "
                      "see docs/rendering.md")
PROBE_TIMEOUT_S = 120.0  # importing mujoco on a loaded machine can take a while

# Renders one frame of a one-sphere scene: exits 0 only if the backend really works.
_PROBE = """
import mujoco
model = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom type="sphere" size="1"/></worldbody></mujoco>')
renderer = mujoco.Renderer(model, 8, 8)
data = mujoco.MjData(model)
mujoco.mj_forward(model, data)
renderer.update_scene(data)
renderer.render()
renderer.close()
"""


class GLBackendError(RuntimeError):
    """No usable offscreen OpenGL backend; the message is one line saying what to install."""


def probe_backend(backend: str) -> str | None:
    """Try to render one frame with ``MUJOCO_GL=backend`` in a child process; None if it works, else why not."""
    env = {**os.environ, "MUJOCO_GL": backend}
    env.pop("PYOPENGL_PLATFORM", None)  # let mujoco's backend module set the matching platform
    try:
        result = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                                timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"rendering test timed out after {PROBE_TIMEOUT_S:.0f} s"
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {result.returncode}"


@functools.cache
def select_gl_backend() -> str:
    """Return the MUJOCO_GL backend to render with, setting ``os.environ["MUJOCO_GL"]`` if it was unset.

    A user's ``MUJOCO_GL`` is kept as given. Otherwise ``egl`` then ``osmesa`` are tried; raises
    :class:`GLBackendError` (one line naming what to install) when neither renders.
    """
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if chosen:
        return chosen
    for backend in HEADLESS_BACKENDS:
        if probe_backend(backend) is None:
            os.environ["MUJOCO_GL"] = backend
            return backend
    raise GLBackendError(NO_BACKEND_MESSAGE)


@contextlib.contextmanager
def _context_class_for(backend: str) -> Iterator[None]:
    """Make ``mujoco.Renderer`` create a ``backend`` GL context while the block runs.

    Needed when ``mujoco`` was imported before MUJOCO_GL was chosen (it then holds GLFW's class).
    """
    module = importlib.import_module("mujoco.rendering.classic.gl_context")
    if backend not in HEADLESS_BACKENDS:
        yield  # a user's own choice (glfw, glx, ...): mujoco already picked it from MUJOCO_GL
        return
    wanted = importlib.import_module(f"mujoco.{backend}").GLContext
    previous = getattr(module, "GLContext", None)
    module.GLContext = wanted
    try:
        yield
    finally:
        module.GLContext = previous


def open_renderer(model: Any, width: int, height: int) -> Any:
    """Open a ``mujoco.Renderer`` of ``width`` x ``height`` on the selected backend.

    Grows the model's offscreen framebuffer (``model.vis.global_.offwidth/offheight``) when the
    image is larger. Raises :class:`GLBackendError` with one line when no context can be made.
    """
    import mujoco

    backend = select_gl_backend()
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
    try:
        with _context_class_for(backend):
            return mujoco.Renderer(model, height=height, width=width)
    except Exception as e:  # noqa: BLE001 - GL failures come as many types (ImportError, FatalError, GLError)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GLBackendError(f"MUJOCO_GL={backend} cannot render ({reason}); {NO_BACKEND_MESSAGE}") from None
