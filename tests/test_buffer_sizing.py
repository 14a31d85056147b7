"""Buffer usage per world matches MuJoCo's own ncon/nefc; peaks and recommendations are right."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import torch

from ktorch_sim.buffer_sizing import BufferPeaks, measure_buffer_peaks, recommend
from ktorch_sim.config import load_config, resolve_task
from tests.conftest import build_engine


def test_buffer_usage_equals_mujoco(engine_spec, kbot_model, home_qpos):
    n = 3
    qpos = np.tile(home_qpos, (n, 1))
    qpos[1, 2] += 0.05  # airborne: no contacts
    qpos[2, 2] -= 0.004  # feet pressed into the floor
    engine = build_engine(engine_spec, kbot_model, num_envs=n, dt=0.004, ctrl_dt=0.02)
    engine.reset(torch.ones(n, dtype=torch.bool), torch.tensor(qpos, dtype=torch.float32),
                 torch.zeros(n, kbot_model.nv))
    contacts, rows = engine.buffer_usage()
    data = mujoco.MjData(kbot_model)
    for i in range(n):
        data.qpos[:] = torch.tensor(qpos[i], dtype=torch.float32).double().numpy()
        mujoco.mj_forward(kbot_model, data)
        assert int(contacts[i]) == data.ncon, i
        assert int(rows[i]) == data.nefc, i
    assert int(contacts[1]) == 0 and int(contacts[2]) > 0


def test_recommend_by_hand():
    peaks = BufferPeaks(num_envs=4, steps=10, contacts_per_world=8, contacts_mean_per_world=5.0,
                        constraint_rows_per_world=53)
    assert recommend(peaks) == {"nconmax": 12, "njmax": math.ceil(1.5 * 53)}
    assert recommend(peaks, margin=1.0) == {"nconmax": 8, "njmax": 53}


def test_kbot_walk_peaks_within_the_geometric_bounds():
    # K-Bot collides only its 4 foot capsules with the floor: at most 2 contacts each (8), and
    # rows <= 8 contacts x 4 (pyramidal, condim 3) + 20 friction-loss dofs + 20 joint limits = 72.
    config = load_config(None, ["task.name=kbot_walk", "task.num_envs=4", "task.engine=mujoco", "task.device=cpu",
                                "ppo.batch_size=1"])
    env = resolve_task(config.task_name)[0](config.task).make_env()
    peaks = measure_buffer_peaks(env, steps=40)
    assert 1 <= peaks.contacts_per_world <= 8
    assert 20 < peaks.constraint_rows_per_world <= 72
    assert peaks.contacts_mean_per_world <= peaks.contacts_per_world
    sizes = recommend(peaks)
    assert sizes["nconmax"] <= config.task.nconmax and sizes["njmax"] <= config.task.njmax
