"""What K-Bot's collision geoms cost: contacts per world and control steps/s, per engine, while robots fall.

    python tools/bench_collision.py --engines mujoco warp --num-envs 16 --seconds 3

Runs the demo's scene (ksim's gains, home pose plus target noise, so the robots sink and fall
without a policy) twice per engine from the same start: once timed, once reading the contact
and constraint counts after every control step. Prints one JSON line per engine with the mean
and peak contacts per world, the peak constraint rows, the lowest base height and the lowest
point of any body origin, and the control steps/s of the timed pass.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ktorch_sim.engines import EngineConfig, make_engine
from ktorch_sim.robots import kbot_home_qpos, load_kbot_pd_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", nargs="+", default=["mujoco", "warp"], choices=("mujoco", "warp"))
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0, help="simulated seconds per pass")
    parser.add_argument("--noise", type=float, default=0.02, help="std of the target noise, rad")
    parser.add_argument("--nconmax", type=int, default=None, help="Warp contacts per world (default: the engine's)")
    parser.add_argument("--njmax", type=int, default=None, help="Warp constraint rows per world")
    parser.add_argument("--scene", default=None, help="another K-Bot scene XML (e.g. an older kbot.xml's, to compare)")
    return parser.parse_args(argv)


def run_pass(engine: object, home: torch.Tensor, steps: int, noise: float, measure: bool) -> dict[str, float]:
    """Reset to the home pose and step ``steps`` times; with ``measure``, read buffer usage every step."""
    n, dev = engine.num_envs, engine.device
    engine.reset(torch.ones(n, dtype=torch.bool, device=dev), home.expand(n, -1).clone(),
                 torch.zeros(n, engine.model.nv, device=dev))
    gen = torch.Generator(device=dev).manual_seed(0)
    contacts, rows, base_z, body_z = [], [], [], []
    start = time.perf_counter()
    for _ in range(steps):
        engine.step(home[7:] + noise * torch.randn(n, engine.model.nu, generator=gen, device=dev))
        if measure:
            c, r = engine.buffer_usage()
            contacts.append(c.float().cpu())
            rows.append(r.float().cpu())
            base_z.append(float(engine.state.qpos[:, 2].min()))
            body_z.append(float(engine.state.xpos[:, 1:, 2].min()))
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)
    elapsed = time.perf_counter() - start
    if not measure:
        return {"control_steps_per_s": n * steps / elapsed}
    c = torch.stack(contacts)
    return {"contacts_mean": float(c.mean()), "contacts_peak": float(c.max()),
            "rows_peak": float(torch.stack(rows).max()), "min_base_z": min(base_z), "min_body_z": min(body_z)}


def main(argv: list[str] | None = None) -> None:
    """Measure each engine and print one JSON line per engine."""
    args = parse_args(argv)
    if args.scene is not None:
        import ktorch_sim.robots.kbot as kbot

        kbot.KBOT_SCENE_XML = Path(args.scene)
    model = load_kbot_pd_model(kp_scale=1.4, kd_scale=1.4, torque_limit_scale=1.5)
    extra = {k: v for k, v in (("nconmax", args.nconmax), ("njmax", args.njmax)) if v is not None}
    for kind in args.engines:
        config = EngineConfig(num_envs=args.num_envs, dt=0.004, ctrl_dt=0.02, device="cpu", **extra)
        engine = make_engine(kind, model, config)
        home = torch.tensor(kbot_home_qpos(model), dtype=torch.float32, device=engine.device)
        steps = int(np.ceil(args.seconds / config.ctrl_dt))
        run_pass(engine, home, 2, args.noise, measure=False)  # compile/capture outside the timed pass
        result = {"engine": kind, "num_envs": args.num_envs, "steps": steps, "ngeom": model.ngeom,
                  **run_pass(engine, home, steps, args.noise, measure=False),
                  **run_pass(engine, home, steps, args.noise, measure=True)}
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}), flush=True)


if __name__ == "__main__":
    main()
