"""Native MuJoCo engine: one MjData per world, stepped in parallel threads on the CPU.

MuJoCo computes in float64 and releases the GIL inside ``mj_step``, so a small thread pool
steps disjoint chunks of worlds in parallel, the calling thread taking the first chunk. The
workers make only MuJoCo's calls; the calling thread copies every world's state into the
shared float32 torch buffers of :class:`PhysicsState` (its own chunk while the workers still
step, then theirs). Those copies are Python that holds the GIL: made inside the workers, each
waited on the other's, and the handoffs cost more than the copies. This engine is the
deterministic reference: the same seed and inputs give bit-identical results.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np
import torch

from ktorch_sim.engines.base import Engine, EngineConfig, PhysicsState

# MuJoCo checks every step for NaN, inf or |x| > mjMAXVAL (1e10): in qpos or qvel before it steps,
# in qacc after; it resets that world's MjData to qpos0 by itself (mj_resetData) and counts one
# of these warnings. A bad ctrl is zeroed (every actuator of the world) and counted too. The
# counters are cleared by the next mj_resetData, i.e. by the engine's own reset of the world.
_INSTABILITY_WARNINGS = (int(mujoco.mjtWarning.mjWARN_BADQPOS), int(mujoco.mjtWarning.mjWARN_BADQVEL),
                         int(mujoco.mjtWarning.mjWARN_BADQACC), int(mujoco.mjtWarning.mjWARN_BADCTRL))

# PhysicsState fields copied from MjData after every step / forward, by the same name.
_COPIED_FIELDS = ("qpos", "qvel", "qacc", "ctrl", "actuator_force", "xpos", "xquat", "cvel", "cinert",
                  "subtree_com", "site_xpos", "sensordata")


class MujocoEngine(Engine):
    """N worlds of native MuJoCo on the CPU; see :class:`ktorch_sim.engines.base.Engine`."""

    def __init__(self, model: mujoco.MjModel, config: EngineConfig) -> None:
        """Build one MjData per world (and one MjModel per world if any field is batched)."""
        super().__init__(model, config)
        if self.device.type != "cpu":
            raise ValueError(f"MujocoEngine runs on the CPU only; got device {config.device!r} (use WarpEngine)")
        n = self.num_envs
        if self.batched_fields:
            self._models = [copy.copy(self.model) for _ in range(n)]
        else:
            self._models = [self.model] * n
        self._datas = [mujoco.MjData(m) for m in self._models]
        self._scratch = mujoco.MjData(self.model)

        shapes = PhysicsState.field_shapes(self.model)
        self.state = PhysicsState(**{k: torch.zeros((n, *s), dtype=torch.float32) for k, s in shapes.items()})
        self._np = {k: getattr(self.state, k).numpy() for k in shapes}  # numpy views of the torch buffers
        self._fields = {name: self._defaults[name].expand(n, *self._defaults[name].shape).clone()
                        for name in self.batched_fields}
        self._dirty = np.zeros(n, dtype=bool)
        self._unstable = torch.zeros(n, dtype=torch.bool)  # set when MuJoCo auto-reset a blown-up world
        self._targets = np.zeros((n, self.substeps, self.model.nu), dtype=np.float64)
        self._reset_qpos = np.zeros((n, self.model.nq), dtype=np.float64)
        self._reset_qvel = np.zeros((n, self.model.nv), dtype=np.float64)
        self._reset_mask = np.zeros(n, dtype=bool)
        self._held = True  # this step's targets are constant over its substeps
        # qpos/qvel as last copied out of MjData: a difference means a component wrote the tensors
        self._published = {k: np.zeros_like(self._np[k]) for k in ("qpos", "qvel")}
        # Per world, (destination row, MjData array) pairs for _gather, and MuJoCo's warning counters: live
        # views made once (MjData's arrays never move), so a step copies without attribute lookups.
        self._copies = [[(self._np[name][i], getattr(d, name)) for name in _COPIED_FIELDS]
                        for i, d in enumerate(self._datas)]
        self._warnings = [d.warning.number for d in self._datas]
        self._instability = np.array(_INSTABILITY_WARNINGS)

        threads = config.num_threads or os.cpu_count() or 1
        self._num_threads = max(1, min(threads, n))
        bounds = np.linspace(0, n, self._num_threads + 1).round().astype(int)
        self._chunks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        self._pool = ThreadPoolExecutor(self._num_threads - 1) if self._num_threads > 1 else None

        self._run(self._forward_world)  # derived quantities of the initial state, copied out

    # --- stepping -------------------------------------------------------------------------

    def step(self, targets: torch.Tensor) -> None:
        """Step every world ``substeps`` times with ``targets`` [N, nu] or [N, substeps, nu] in ``ctrl``."""
        self._check_targets(targets)
        values = targets.detach().cpu().numpy()
        np.copyto(self._targets, values[:, None, :] if values.ndim == 2 else values)
        # Worlds whose target is the same in every substep take one mj_step(nstep=substeps) call.
        self._held = values.ndim == 2 or bool(np.all(values == values[:, :1]))
        self._push_state_writes()
        self._run(self._step_world)

    def forward(self) -> None:
        """Run ``mj_forward`` in every world and refresh the state buffers."""
        self._push_state_writes()
        self._run(self._forward_world)

    def _push_state_writes(self) -> None:
        """Copy qpos/qvel rows that components changed in the tensors (e.g. velocity pushes) into MjData.

        The torch buffers are float32 copies of MjData's float64 state, so only rows that differ
        from what the engine last published are written back; untouched worlds keep their
        full-precision state.
        """
        for name in ("qpos", "qvel"):
            current, published = self._np[name], self._published[name]
            for i in np.flatnonzero(np.any(current != published, axis=1)):
                getattr(self._datas[i], name)[:] = current[i]

    def _write_state(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        mask_np = mask.detach().cpu().numpy()
        for i in np.flatnonzero(mask_np):
            d = self._datas[i]
            mujoco.mj_resetData(self._models[i], d)
            d.qpos[:] = qpos[i].detach().cpu().numpy()
            d.qvel[:] = qvel[i].detach().cpu().numpy()
            for name in ("qpos", "qvel"):  # the reset state wins over pending component writes
                self._np[name][i] = getattr(d, name)
                self._published[name][i] = self._np[name][i]
            self._np["xfrc_applied"][i] = 0.0
            self._unstable[i] = False

    def _step_world(self, i: int) -> None:
        m, d = self._models[i], self._datas[i]
        d.xfrc_applied[:] = self._np["xfrc_applied"][i]
        if self._held:
            d.ctrl[:] = self._targets[i, 0]
            mujoco.mj_step(m, d, self.substeps)
        else:
            for ctrl in self._targets[i]:
                d.ctrl[:] = ctrl
                mujoco.mj_step(m, d)

    def _forward_world(self, i: int) -> None:
        d = self._datas[i]
        d.xfrc_applied[:] = self._np["xfrc_applied"][i]
        mujoco.mj_forward(self._models[i], d)

    def _publish(self) -> None:
        """Remember the qpos/qvel just copied out of every world (see :meth:`_push_state_writes`)."""
        for name, published in self._published.items():
            np.copyto(published, self._np[name])

    def _gather(self, i: int) -> None:
        """Copy world ``i``'s MjData into row ``i`` of the float32 state buffers."""
        d, out = self._datas[i], self._np
        for destination, source in self._copies[i]:
            np.copyto(destination, source, casting="unsafe")
        out["time"][i] = d.time
        warnings = self._warnings[i]
        if warnings.any() and warnings[self._instability].any():
            self._unstable[i] = True
        contact = out["geom_contact"][i]
        contact[:] = 0.0
        if d.ncon:
            contacts = d.contact  # the d.ncon active contacts
            contact[contacts.geom[contacts.dist < 0].ravel()] = 1.0

    def _run(self, fn: Callable[[int], None]) -> None:
        """Apply ``fn`` to every world, then copy every world's state out (:meth:`_gather`).

        One contiguous chunk of worlds per thread, the first on this one, which copies its own
        chunk out while the others still step, then each other chunk as it finishes.
        """
        def chunk(bounds: tuple[int, int]) -> None:
            for i in range(*bounds):
                fn(i)

        def gather(bounds: tuple[int, int]) -> None:
            for i in range(*bounds):
                self._gather(i)

        others = self._chunks[1:]
        futures = [self._pool.submit(chunk, c) for c in others] if self._pool is not None else []
        chunk(self._chunks[0])
        gather(self._chunks[0])
        for bounds, future in zip(others, futures, strict=True):
            future.result()
            gather(bounds)
        self._publish()

    # --- checks and model fields ----------------------------------------------------------

    def bad_worlds(self) -> torch.Tensor:
        """Worlds whose state or ctrl went bad since their last reset.

        MuJoCo catches NaN/inf/huge values itself: it resets that world to ``qpos0`` (or zeroes
        a bad ctrl) mid-step and counts a warning, so the state buffers read finite again; the
        warning is what flags those worlds here, so the auto-reset is not mistaken for a
        healthy episode. The check is a few [N]-sized torch ops on the CPU (this engine's state
        lives in MjData on the host anyway). MuJoCo allocates contacts dynamically, so there is
        no buffer overflow to report.
        """
        s = self.state
        finite = torch.isfinite(s.qpos).all(-1) & torch.isfinite(s.qvel).all(-1) & torch.isfinite(s.qacc).all(-1)
        return ~finite | self._unstable

    def model_field(self, name: str) -> torch.Tensor:
        """Per-world values of a batched model field, shape (N, *field_shape)."""
        self._check_field(name)
        return self._fields[name]

    def set_model_field(self, name: str, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Write ``values`` into the masked worlds' own MjModel copies."""
        self._check_field(name)
        buffer = self._fields[name]
        self._check_batch(name, values, tuple(buffer.shape[1:]))
        rows = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask.detach().cpu().numpy())
        values64 = values.detach().cpu().to(torch.float64).numpy()
        for i in rows:
            buffer[i] = values[i]
            getattr(self._models[i], name)[...] = values64[i]
        self._dirty[rows] = True

    def recompute_constants(self) -> None:
        """``mj_setConst`` on every world whose fields changed since the last call."""
        for i in np.flatnonzero(self._dirty):
            mujoco.mj_setConst(self._models[i], self._scratch)
            for name, buffer in self._fields.items():  # derived fields changed too
                buffer[i] = torch.from_numpy(np.asarray(getattr(self._models[i], name)))
        self._dirty[:] = False

    def buffer_usage(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``ncon`` and ``nefc`` of every world's MjData, int32 [N] (MuJoCo allocates them dynamically)."""
        contacts = torch.tensor([d.ncon for d in self._datas], dtype=torch.int32)
        rows = torch.tensor([d.nefc for d in self._datas], dtype=torch.int32)
        return contacts, rows

    def close(self) -> None:
        """Stop the worker threads."""
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self) -> None:
        self.close()
