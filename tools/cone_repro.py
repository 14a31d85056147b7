"""Minimal repro: C MuJoCo and MuJoCo Warp disagree on a capsule-plane contact with the pyramidal cone.

One capsule, tilted ``--tilt`` degrees from the vertical, rests on a plane with one end and
slides sideways: one contact, condim 3, isotropic friction. The same state is handed to C
MuJoCo (``mujoco.mj_forward``, float64) and to MuJoCo Warp (``mujoco_warp.forward``, float32 on
the CPU), called directly (no ktorch_sim code), and the pipeline's quantities are compared in
the order they are computed: contacts, contact frame, constraint rows (count, type, Jacobian,
pos, margin, D, aref, frictionloss), solver iterations, constraint forces, qacc. The first
quantity beyond float32 rounding is reported with both values, then a short rollout shows what
it does to the trajectory. The solver runs to convergence (100 iterations, tolerance 1e-10 in C,
Warp's floor of 1e-6), so what differs is the formulation, not the convergence.

Cause (docs/engine_fidelity.md): C MuJoCo's tangent frame for a plane-capsule contact is the
capsule axis projected on the plane (``mju_makeFrame`` only falls back to a fixed axis when the
given axis has norm < 0.5, and the unprojected capsule axis has norm 1); MuJoCo Warp's
``plane_capsule`` tests the norm *after* projection and falls back to world y when the capsule
is within 30 degrees of the plane normal. A pyramidal cone's edges follow the tangent frame, so
the friction pyramid is rotated and the friction force differs; an isotropic elliptic cone does
not depend on the frame, so it agrees.

    python tools/cone_repro.py                      # tilt 20 deg: pyramidal differs, elliptic agrees
    python tools/cone_repro.py --tilt 40            # tilt 40 deg: both agree (Warp keeps the capsule frame)
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

MODEL_XML = """
<mujoco model="capsule_on_plane">
  <option timestep="0.002" cone="{cone}" iterations="100" ls_iterations="50" tolerance="1e-10"/>
  <worldbody>
    <geom name="floor" type="plane" size="5 5 0.1" friction="1 0.005 0.0001"/>
    <body name="capsule" pos="0 0 0.3">
      <freejoint/>
      <geom name="capsule" type="capsule" size="0.05 0.2" mass="1" friction="1 0.005 0.0001"/>
    </body>
  </worldbody>
</mujoco>
"""

# Relative tolerance that float32 arithmetic comfortably meets on this model.
REL_TOL = 1e-4


@dataclass
class Snapshot:
    """The pipeline's quantities after one forward call, in the order they are computed."""

    ncon: int
    contact_dist: np.ndarray
    contact_frame: np.ndarray
    nefc: int
    efc_type: np.ndarray
    efc_J: np.ndarray
    efc_pos: np.ndarray
    efc_margin: np.ndarray
    efc_D: np.ndarray
    efc_aref: np.ndarray
    efc_frictionloss: np.ndarray
    solver_niter: int
    efc_force: np.ndarray
    qacc: np.ndarray


def build_model(cone: str) -> mujoco.MjModel:
    """The one-capsule model with the given friction cone."""
    return mujoco.MjModel.from_xml_string(MODEL_XML.format(cone=cone))


def initial_state(model: mujoco.MjModel, tilt_deg: float, azimuth_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Capsule axis tilted ``tilt_deg`` from vertical towards ``azimuth_deg``, lower end 1 mm in the plane, sliding."""
    tilt, azimuth = math.radians(tilt_deg), math.radians(azimuth_deg)
    rot_axis = np.array([-math.sin(azimuth), math.cos(azimuth), 0.0])  # tilts +z towards the azimuth direction
    quat = np.zeros(4)
    mujoco.mju_axisAngle2Quat(quat, rot_axis, tilt)
    radius, half_length = model.geom_size[1, :2]
    qpos = np.zeros(model.nq)
    qpos[2] = half_length * math.cos(tilt) + radius - 0.001
    qpos[3:7] = quat
    qvel = np.array([0.6, -0.25, 0.0, 0.0, 0.0, 1.5])  # slide in x and y, spin about z
    # Warp takes float32: start C MuJoCo from the same rounded numbers.
    return qpos.astype(np.float32).astype(np.float64), qvel.astype(np.float32).astype(np.float64)


def c_mujoco_snapshot(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray) -> Snapshot:
    """mj_forward from (qpos, qvel) with a zero warm start."""
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = qpos, qvel
    mujoco.mj_forward(model, data)
    n = data.nefc
    jac = np.zeros((n, model.nv))
    if mujoco.mj_isSparse(model):
        mujoco.mju_sparse2dense(jac, data.efc_J, data.efc_J_rownnz, data.efc_J_rowadr, data.efc_J_colind)
    else:
        jac = data.efc_J[: n * model.nv].reshape(n, model.nv).copy()
    return Snapshot(
        ncon=data.ncon, contact_dist=data.contact.dist[: data.ncon].copy(),
        contact_frame=data.contact.frame[: data.ncon].copy(), nefc=n, efc_type=data.efc_type[:n].copy(), efc_J=jac,
        efc_pos=data.efc_pos[:n].copy(), efc_margin=data.efc_margin[:n].copy(), efc_D=data.efc_D[:n].copy(),
        efc_aref=data.efc_aref[:n].copy(), efc_frictionloss=data.efc_frictionloss[:n].copy(),
        solver_niter=int(data.solver_niter[0]), efc_force=data.efc_force[:n].copy(), qacc=data.qacc.copy(),
    )


def init_warp() -> None:
    """Initialise Warp quietly, with the kernel cache ktorch_sim uses (unless WARP_CACHE_PATH is set)."""
    import warp as wp

    if "WARP_CACHE_PATH" not in os.environ:
        wp.config.kernel_cache_dir = str(Path.home() / ".cache" / "ktorch_sim" / "warp")
    wp.config.log_level = wp.LOG_WARNING
    wp.config.quiet = True
    wp.init()


def warp_snapshot(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, device: str) -> Snapshot:
    """mujoco_warp.forward from (qpos, qvel), one world, zero warm start."""
    import mujoco_warp as mjw
    import warp as wp

    with wp.ScopedDevice(device):
        host = mujoco.MjData(model)
        host.qpos[:], host.qvel[:] = qpos, qvel
        m = mjw.put_model(model)
        d = mjw.put_data(model, host, nconmax=8, njmax=32)
        mjw.forward(m, d)
        ncon, n = int(d.nacon.numpy()[0]), int(d.nefc.numpy()[0])
        jac = d.efc.J.numpy()[0]
        if jac.ndim != 2:
            raise RuntimeError("expected a dense constraint Jacobian for this small model")
        efc = {name: getattr(d.efc, name).numpy()[0, :n].astype(np.float64)
               for name in ("pos", "margin", "D", "aref", "frictionloss", "force")}
        return Snapshot(
            ncon=ncon, contact_dist=d.contact.dist.numpy()[:ncon].astype(np.float64),
            contact_frame=d.contact.frame.numpy()[:ncon].reshape(ncon, 9).astype(np.float64), nefc=n,
            efc_type=d.efc.type.numpy()[0, :n].copy(), efc_J=jac[:n, : model.nv].astype(np.float64),
            efc_pos=efc["pos"], efc_margin=efc["margin"], efc_D=efc["D"], efc_aref=efc["aref"],
            efc_frictionloss=efc["frictionloss"], solver_niter=int(d.solver_niter.numpy()[0]),
            efc_force=efc["force"], qacc=d.qacc.numpy()[0].astype(np.float64),
        )


def differs(a: np.ndarray | int, b: np.ndarray | int) -> bool:
    """True when a and b differ beyond float32 rounding (exactly, for integers and shapes)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return True
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return bool(np.any(a != b))
    scale = max(1.0, float(np.abs(a).max(initial=0.0)))
    return bool(np.abs(a - b).max(initial=0.0) > REL_TOL * scale)


def compare(c: Snapshot, w: Snapshot) -> list[tuple[str, bool, str]]:
    """(quantity, differs, 'C ... | Warp ...') for every quantity, in pipeline order."""
    rows = []
    for name in ("ncon", "contact_dist", "contact_frame", "nefc", "efc_type", "efc_J", "efc_pos", "efc_margin",
                 "efc_D", "efc_aref", "efc_frictionloss", "solver_niter", "efc_force", "qacc"):
        a, b = getattr(c, name), getattr(w, name)
        flag = differs(a, b) if name != "solver_niter" else False  # iteration counts are informative only
        rows.append((name, flag, f"C {_fmt(a)} | Warp {_fmt(b)}"))
    return rows


def rollout_gap(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray, steps: int, device: str) -> float:
    """Max |qvel_C - qvel_Warp| after ``steps`` mj_step / mujoco_warp.step calls from the same state."""
    import mujoco_warp as mjw
    import warp as wp

    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = qpos, qvel
    with wp.ScopedDevice(device):
        m = mjw.put_model(model)
        d = mjw.put_data(model, data, nconmax=8, njmax=32)
        for _ in range(steps):
            mjw.step(m, d)
        warp_qvel = d.qvel.numpy()[0]
    mujoco.mj_step(model, data, steps)
    return float(np.abs(data.qvel - warp_qvel).max())


def _fmt(x: np.ndarray | int) -> str:
    return np.array2string(np.asarray(x), precision=5, suppress_small=True, max_line_width=400).replace("\n", "")


def run_case(cone: str, tilt: float, azimuth: float, device: str, steps: int) -> bool:
    """Compare one cone; print every quantity and the first that differs. True when qacc agrees.

    The contact frame and the rows' Jacobian may differ while qacc agrees: an elliptic cone
    with isotropic friction is the same cone in any tangent frame.
    """
    model = build_model(cone)
    qpos, qvel = initial_state(model, tilt, azimuth)
    rows = compare(c_mujoco_snapshot(model, qpos, qvel), warp_snapshot(model, qpos, qvel, device))
    first = next((name for name, flag, _ in rows if flag), None)
    print(f"\n=== cone={cone} tilt={tilt} deg azimuth={azimuth} deg ===")
    for name, flag, text in rows:
        print(f"  {'DIFF' if flag else 'same'}  {name:17s} {text}")
    gap = rollout_gap(model, qpos, qvel, steps, device)
    qacc_agrees = not dict((name, flag) for name, flag, _ in rows)["qacc"]
    print(f"  first differing quantity: {first or 'none'}; qacc {'agrees' if qacc_agrees else 'DIFFERS'}; "
          f"max |qvel C - Warp| after {steps} steps ({steps * model.opt.timestep:.2f} s): {gap:.3g}")
    return qacc_agrees


def main(argv: list[str] | None = None) -> int:
    """Run the pyramidal and the elliptic case; exit status 1 when either one's qacc differs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tilt", type=float, default=20.0, help="capsule tilt from vertical, degrees")
    parser.add_argument("--azimuth", type=float, default=30.0, help="direction of the tilt in the plane, degrees")
    parser.add_argument("--steps", type=int, default=100, help="steps of the rollout comparison")
    parser.add_argument("--device", default="cpu", help="Warp device: cpu or cuda:0")
    args = parser.parse_args(argv)
    init_warp()
    import mujoco_warp
    import warp as wp

    print(f"mujoco {mujoco.__version__}, mujoco_warp {getattr(mujoco_warp, '__version__', '?')}, "
          f"warp {wp.__version__}, python {platform.python_version()}, Warp device {args.device}")
    agree = {cone: run_case(cone, args.tilt, args.azimuth, args.device, args.steps)
             for cone in ("pyramidal", "elliptic")}
    print(f"\nqacc agrees: {agree}")
    return 0 if all(agree.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
