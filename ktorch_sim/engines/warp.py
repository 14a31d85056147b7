"""MuJoCo Warp engine: N worlds in float32 on a CUDA GPU (or on the CPU, for tests).

State tensors are zero-copy torch views of the Warp arrays (``wp.to_torch``), so writing a
tensor in place writes the simulator's memory. No Warp array is ever rebound after a graph
has captured it: inputs (targets, reset masks and states) go through persistent buffers.

The whole control step (``substeps`` x ``mujoco_warp.step`` plus the per-geom contact
reduction) is captured once as a Warp graph after an eager warm-up call and replayed from
then on; Warp supports capture on the CPU as well, so the CPU tests exercise the same path.
Reset (masked ``reset_data``, the new qpos/qvel, ``forward``) is captured the same way.

Broken worlds (:meth:`WarpEngine.bad_worlds`): a world is bad when its qpos, qvel or qacc is not
finite, or when mujoco_warp set one of its hard overflow bits (``Data.overflow``, int32 per
world, sticky until that world is reset). In mujoco_warp 4.0 the constraint-row overflow
(``NEFC``: the world's ``nefc`` exceeded ``njmax``) is per world, but the contact overflows
(``BROADPHASE``, ``NARROWPHASE``) compare the *pooled* contact count of all worlds with
``naconmax = nconmax * nworld`` and set the bit in every world, because which world's contacts
were dropped depends on the order of atomic adds; every world is then flagged and reset.

A non-finite ctrl does not turn into a NaN state: the actuator force is clamped to its
``forcerange`` and comes out finite (measured: NaN ctrl -> exactly the lower force limit), so
the world would run on silently with a wrong torque. The engine therefore checks the targets it
is given with a torch op and flags such worlds itself (as native MuJoCo's BADCTRL warning does).

A reset also zeroes the reset worlds' constraint arrays (``efc``): mujoco_warp's tiled Hessian
loads whole tiles of ``efc.J``/``efc.D``, including stale rows past the world's ``nefc``, and
masks them by multiplying by zero, so a NaN left there by a blown-up state would make the world
NaN again after every reset (measured: a world reset after a NaN qpos stayed NaN for good).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import mujoco
import torch

from ktorch_sim.engines.base import Engine, EngineConfig, PhysicsState, check_warp_options
from ktorch_sim.engines.warp_notice import compile_notice, init_quietly

_warp_ready = False


def init_warp(cpu_only: bool = False) -> None:
    """Initialise Warp once, with its kernel cache in a stable per-user place.

    ``WARP_CACHE_PATH`` wins if set; otherwise kernels are cached under
    ``~/.cache/ktorch_sim/warp`` so the first compile happens once per machine. ``cpu_only``: the
    caller asked for the CPU, so Warp's warning about a missing CUDA driver is not shown.
    """
    global _warp_ready
    if _warp_ready:
        return
    import warp as wp

    if "WARP_CACHE_PATH" not in os.environ:
        wp.config.kernel_cache_dir = str(Path.home() / ".cache" / "ktorch_sim" / "warp")
    wp.config.log_level = wp.LOG_WARNING
    init_quietly(wp.init, cpu_only)
    _warp_ready = True


def _kernels():  # noqa: ANN202 - returns Warp kernels, defined lazily so importing needs no Warp init
    import warp as wp

    @wp.kernel
    def geom_contact_kernel(
        nacon: wp.array(dtype=int),
        worldid: wp.array(dtype=int),
        geom: wp.array(dtype=wp.vec2i),
        dist: wp.array(dtype=float),
        out: wp.array2d(dtype=float),
    ) -> None:
        """Mark both geoms of every penetrating contact in its world."""
        c = wp.tid()
        if c < nacon[0]:
            if dist[c] < 0.0:
                w = worldid[c]
                g = geom[c]
                out[w, g[0]] = 1.0
                out[w, g[1]] = 1.0

    @wp.kernel
    def masked_state_kernel(
        mask: wp.array(dtype=bool),
        qpos_in: wp.array2d(dtype=float),
        qvel_in: wp.array2d(dtype=float),
        qpos_out: wp.array2d(dtype=float),
        qvel_out: wp.array2d(dtype=float),
    ) -> None:
        """Copy the requested qpos/qvel into the worlds being reset."""
        w, i = wp.tid()
        if mask[w]:
            if i < qpos_out.shape[1]:
                qpos_out[w, i] = qpos_in[w, i]
            if i < qvel_out.shape[1]:
                qvel_out[w, i] = qvel_in[w, i]

    @wp.kernel
    def zero_rows_kernel(mask: wp.array(dtype=bool), rows: wp.array2d(dtype=float)) -> None:
        """Zero the rows of masked worlds in a [N, k] array."""
        w, i = wp.tid()
        if mask[w]:
            rows[w, i] = 0.0

    @wp.kernel
    def zero_blocks_kernel(mask: wp.array(dtype=bool), blocks: wp.array3d(dtype=float)) -> None:
        """Zero the blocks of masked worlds in a [N, k, m] array."""
        w, i, j = wp.tid()
        if mask[w]:
            blocks[w, i, j] = 0.0

    @wp.kernel
    def substep_ctrl_kernel(sequence: wp.array3d(dtype=float), substep: int, ctrl: wp.array2d(dtype=float)) -> None:
        """ctrl = the targets of one substep."""
        w, u = wp.tid()
        ctrl[w, u] = sequence[w, substep, u]

    return geom_contact_kernel, masked_state_kernel, substep_ctrl_kernel, zero_rows_kernel, zero_blocks_kernel


# Overflow bits that mean lost contacts or constraints. The solver's ITERATIONS and
# LS_ITERATIONS bits only say a limit was reached; they are routine and do not poison a world.
def _hard_overflow_bits() -> int:
    import mujoco_warp as mjw

    o = mjw.OverflowType
    return int(o.NEFC | o.NJMAX_NNZ | o.BROADPHASE | o.NARROWPHASE | o.CCD | o.HFIELD | o.CONTACT_MATCH
               | o.NVMAX | o.EPA_HORIZON)


class WarpEngine(Engine):
    """N worlds on mujoco_warp; see :class:`ktorch_sim.engines.base.Engine` for the contract."""

    def __init__(self, model: mujoco.MjModel, config: EngineConfig) -> None:
        """Upload the model, allocate N worlds and build the zero-copy torch views."""
        super().__init__(model, config)
        check_warp_options(self.model, config)  # PGS etc.: one clear error before any Warp work
        init_warp(cpu_only=self.device.type == "cpu")
        import mujoco_warp as mjw
        import warp as wp

        self._wp = wp
        self._mjw = mjw
        self._wp_device = "cpu" if self.device.type == "cpu" else f"cuda:{self.device.index or 0}"
        self._torch_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        (self._contact_kernel, self._state_kernel, self._ctrl_kernel, self._zero_rows_kernel,
         self._zero_blocks_kernel) = _kernels()
        n = self.num_envs
        with self._scope():
            self._m = mjw.put_model(self.model, batch_sizes={f: n for f in self.batched_fields})
            self._m.opt.warn_overflow = 0  # overflow is reported through bad_worlds(), not printf
            host = mujoco.MjData(self.model)
            mujoco.mj_forward(self.model, host)
            self._d = mjw.put_data(self.model, host, nworld=n, nconmax=config.nconmax, njmax=config.njmax)
            self._geom_contact = wp.zeros((n, self.model.ngeom), dtype=float)
            self._targets = wp.zeros((n, self.substeps, self.model.nu), dtype=float)
            self._reset_mask = wp.zeros(n, dtype=bool)
            self._reset_qpos = wp.zeros((n, self.model.nq), dtype=float)
            self._reset_qvel = wp.zeros((n, self.model.nv), dtype=float)

        d = self._d
        views = {name: wp.to_torch(getattr(d, name)) for name in PhysicsState.field_shapes(self.model)
                 if name != "geom_contact"}
        self.state = PhysicsState(geom_contact=wp.to_torch(self._geom_contact), **views)
        self._overflow = wp.to_torch(d.overflow)
        self._bad_ctrl = torch.zeros(n, dtype=torch.bool, device=self.device)  # sticky until reset
        self._hard_overflow = _hard_overflow_bits()
        self._targets_t = wp.to_torch(self._targets)
        self._reset_mask_t = wp.to_torch(self._reset_mask)
        self._reset_qpos_t = wp.to_torch(self._reset_qpos)
        self._reset_qvel_t = wp.to_torch(self._reset_qvel)
        self._fields = {name: wp.to_torch(getattr(self._m, name)) for name in self.batched_fields}
        self._graphs: dict[str, object] = {}
        self._compiled: set[str] = set()  # bodies whose first call (compiling their kernels) is done
        self.forward()

    # --- graph plumbing -------------------------------------------------------------------

    def _scope(self) -> ExitStack:
        """Warp device (and on CUDA, the engine's stream shared with torch) for a block of work."""
        stack = ExitStack()
        stack.enter_context(self._wp.ScopedDevice(self._wp_device))
        if self._outer_capture():
            # A torch CUDA graph is recording on the current stream (the whole-step rollout graph):
            # stay on that stream and let Warp record its kernels into the same graph.
            stream = self._wp.stream_from_torch(torch.cuda.current_stream(self.device))
            stack.enter_context(self._wp.ScopedStream(stream))
            stack.enter_context(self._wp.ScopedCapture(stream=stream, external=True))
            return stack
        if self._torch_stream is not None:
            self._torch_stream.wait_stream(torch.cuda.current_stream(self.device))
            stack.enter_context(torch.cuda.stream(self._torch_stream))
            stack.enter_context(self._wp.ScopedStream(self._wp.stream_from_torch(self._torch_stream)))
            stack.callback(lambda: torch.cuda.current_stream(self.device).wait_stream(self._torch_stream))
        return stack

    def _outer_capture(self) -> bool:
        """True while torch is capturing a CUDA graph on this engine's device."""
        return self.device.type == "cuda" and torch.cuda.is_current_stream_capturing()

    def _launch(self, name: str, body: Callable[[], None]) -> None:
        """Run ``body`` eagerly the first time (compiling its kernels), then replay it as a graph.

        Inside an outer torch CUDA graph capture the body's kernels are recorded into that
        graph instead (``_scope`` opened Warp's external capture).
        """
        if name not in self._compiled:  # the first call compiles (or loads) the body's kernels: say so if slow
            self._compiled.add(name)
            with compile_notice(name, self._wp_device, self._wp.config.kernel_cache_dir):
                self._launch(name, body)
            return
        if not self.config.capture or self._outer_capture():
            body()
            return
        graph = self._graphs.get(name)
        if graph is not None:
            self._wp.capture_launch(graph)
            return
        body()
        with self._wp.ScopedCapture() as capture:
            body()
        self._graphs[name] = capture.graph

    def _update_contacts(self) -> None:
        c = self._d.contact
        self._geom_contact.zero_()
        self._wp.launch(self._contact_kernel, dim=self._d.naconmax,
                        inputs=[self._d.nacon, c.worldid, c.geom, c.dist], outputs=[self._geom_contact])

    def _step_body(self) -> None:
        for k in range(self.substeps):
            self._wp.launch(self._ctrl_kernel, dim=(self.num_envs, self.model.nu), inputs=[self._targets, k],
                            outputs=[self._d.ctrl])
            self._mjw.step(self._m, self._d)
        self._update_contacts()

    def _forward_body(self) -> None:
        self._mjw.forward(self._m, self._d)
        self._update_contacts()

    def _reset_body(self) -> None:
        self._mjw.reset_data(self._m, self._d, self._reset_mask)
        self._zero_constraint_arrays()
        width = max(self.model.nq, self.model.nv)
        self._wp.launch(self._state_kernel, dim=(self.num_envs, width),
                        inputs=[self._reset_mask, self._reset_qpos, self._reset_qvel],
                        outputs=[self._d.qpos, self._d.qvel])
        self._forward_body()

    def _zero_constraint_arrays(self) -> None:
        """Zero every per-world float array of ``efc`` in the worlds being reset (see module docstring)."""
        for array in vars(self._d.efc).values():
            if not isinstance(array, self._wp.array) or array.dtype != self._wp.float32 or array.size == 0:
                continue
            if array.ndim == 2:
                self._wp.launch(self._zero_rows_kernel, dim=array.shape, inputs=[self._reset_mask], outputs=[array])
            elif array.ndim == 3:
                self._wp.launch(self._zero_blocks_kernel, dim=array.shape, inputs=[self._reset_mask], outputs=[array])

    # --- the contract ---------------------------------------------------------------------

    def step(self, targets: torch.Tensor) -> None:
        """Step every world ``substeps`` times with ``targets`` [N, nu] or [N, substeps, nu] in ``ctrl``."""
        self._check_targets(targets)
        with self._scope():
            self._targets_t.copy_(targets.unsqueeze(1) if targets.dim() == 2 else targets)
            self._bad_ctrl |= ~torch.isfinite(self._targets_t).flatten(1).all(-1)
            self._launch("step", self._step_body)

    def forward(self) -> None:
        """``mujoco_warp.forward`` in every world."""
        with self._scope():
            self._launch("forward", self._forward_body)

    def reset(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Masked reset and forward, as one captured graph (see :meth:`Engine.reset`)."""
        self._check_batch("mask", mask, (), torch.bool)
        self._check_batch("qpos", qpos, (self.model.nq,))
        self._check_batch("qvel", qvel, (self.model.nv,))
        with self._scope():
            self._write_state(mask, qpos, qvel)
            self._launch("reset", self._reset_body)

    def _write_state(self, mask: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        self._bad_ctrl.masked_fill_(mask.to(self.device), False)
        self._reset_mask_t.copy_(mask)
        self._reset_qpos_t.copy_(qpos)
        self._reset_qvel_t.copy_(qvel)

    def bad_worlds(self) -> torch.Tensor:
        """Non-finite state, a non-finite ctrl, or contacts/constraints lost to a full buffer (sticky until reset)."""
        s = self.state
        finite = torch.isfinite(s.qpos).all(-1) & torch.isfinite(s.qvel).all(-1) & torch.isfinite(s.qacc).all(-1)
        return ~finite | self._bad_ctrl | self.overflowed_worlds()

    def overflowed_worlds(self) -> torch.Tensor:
        """Worlds with a hard overflow bit set (contact overflows are set in every world; see module docstring)."""
        return (self._overflow & self._hard_overflow) != 0

    def overflow_flags(self) -> torch.Tensor:
        """Raw per-world mujoco_warp overflow bitmask (``mujoco_warp.OverflowType``), int32 [N]."""
        return self._overflow

    # --- per-world model fields -----------------------------------------------------------

    def model_field(self, name: str) -> torch.Tensor:
        """Zero-copy view of a batched Warp model field, shape (N, *field_shape)."""
        self._check_field(name)
        return self._fields[name]

    def set_model_field(self, name: str, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Write masked worlds' values in place (graph-safe: the array is never replaced)."""
        self._check_field(name)
        view = self._fields[name]
        self._check_batch(name, values, tuple(view.shape[1:]))
        values = values.to(device=view.device, dtype=view.dtype)
        with self._scope():
            if mask is None:
                view.copy_(values)
            else:
                view.copy_(torch.where(mask.view(-1, *[1] * (view.dim() - 1)), values, view))

    def buffer_usage(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Contacts per world (counted from the pooled contact array) and ``nefc`` per world, int32 [N]."""
        d, wp = self._d, self._wp
        worldid = wp.to_torch(d.contact.worldid).long()
        active = torch.arange(worldid.numel(), device=self.device) < wp.to_torch(d.nacon)[0]
        contacts = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)
        contacts.index_add_(0, worldid.clamp(0, self.num_envs - 1), active.to(torch.int32))
        return contacts, wp.to_torch(d.nefc)

    def recompute_constants(self) -> None:
        """``mujoco_warp.set_const`` (all worlds; state restored afterwards)."""
        with self._scope():
            self._mjw.set_const(self._m, self._d)
