"""A short simulation demo: N K-Bots hold their home pose under PD control on either engine.

    python -m ktorch_sim.demo --engine mujoco --num-envs 16 --seconds 2

It prints the mean base height and how many robots are still up every 0.5 s, then the
throughput. With ksim's K-Bot gains (kp, kd x1.4) the ankles are too soft to balance the
robot without a policy (kbot_facts.md section 8), so the robots sink and tip over within a
few seconds and then lie on the floor (base about 0.13 m up: the chest, pelvis, thigh, shin and
hand collision geoms hold them on it): exactly what a trained policy has to fix.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ktorch_sim.engines import ENGINE_KINDS, EngineConfig, make_engine
from ktorch_sim.robots import kbot_home_qpos, load_kbot_pd_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags of the demo."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=ENGINE_KINDS, default="auto")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0, help="simulated seconds")
    parser.add_argument("--noise", type=float, default=0.02, help="std of target noise, rad")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_envs < 1 or args.seconds <= 0:
        parser.error("--num-envs must be >= 1 and --seconds > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the demo and print progress and throughput."""
    args = parse_args(argv)
    model = load_kbot_pd_model(kp_scale=1.4, kd_scale=1.4, torque_limit_scale=1.5)
    config = EngineConfig(num_envs=args.num_envs, dt=0.004, ctrl_dt=0.02, device=args.device)
    engine = make_engine(args.engine, model, config)
    n, dev = args.num_envs, engine.device
    home = torch.tensor(kbot_home_qpos(model), dtype=torch.float32, device=dev)
    engine.reset(torch.ones(n, dtype=torch.bool, device=dev), home.expand(n, -1).clone(),
                 torch.zeros(n, model.nv, device=dev))
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    steps = int(np.ceil(args.seconds / config.ctrl_dt))
    report_every = max(1, int(round(0.5 / config.ctrl_dt)))
    print(f"{type(engine).__name__} on {dev}: {n} K-Bots, {steps} control steps of {config.substeps} substeps")
    start = time.perf_counter()
    for t in range(1, steps + 1):
        noise = args.noise * torch.randn(n, model.nu, generator=gen, device=dev)
        engine.step(home[7:] + noise)
        if t % report_every == 0 or t == steps:
            z = engine.state.qpos[:, 2]
            print(f"t={t * config.ctrl_dt:5.2f}s  mean base z {z.mean():.3f} m  standing {(z > 0.5).sum()}/{n}")
    elapsed = time.perf_counter() - start
    print(f"{n * steps / elapsed:,.0f} control steps/s ({n * steps * config.substeps / elapsed:,.0f} physics steps/s)")


if __name__ == "__main__":
    main()
