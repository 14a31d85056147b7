"""Terrain (issue 18): generator formulas, spawn on every kind, height scan vs mj_ray, level rule, stepping.

One small grid (2 levels x 9 kinds, 4 m cells) and one K-Bot scene serve every test; the
environments are built once per engine (module scope) to keep the Warp compile to one.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import torch

import ktorch_sim.components as kc
from ktorch_sim.actuators import PositionActuators
from ktorch_sim.engines import EngineConfig
from ktorch_sim.env import Env, EnvSpec
from ktorch_sim.robots import kbot_metadata
from ktorch_sim.robots.kbot import KBOT_FOOT_GEOMS, KBOT_SCENE_XML, kbot_home_qpos
from ktorch_sim.terrain import (
    KINDS,
    HeightField,
    HeightScanObservation,
    TerrainConfig,
    TerrainCurriculum,
    TerrainLevelRule,
    TerrainSpawnReset,
    TerrainState,
    add_terrain,
    generate_terrain,
)
from tests.conftest import ENGINE_IDS, ENGINE_SPECS

CONFIG = TerrainConfig(num_levels=2, cell_size=4.0, border=0.5, platform=0.5, horizontal_scale=0.1, seed=3)
CLEARANCE = 0.002


@pytest.fixture(scope="module")
def terrain():
    return generate_terrain(CONFIG)


@pytest.fixture(scope="module")
def scene(terrain) -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_file(str(KBOT_SCENE_XML))
    add_terrain(spec, terrain)
    return spec.compile()


def _expected(kind: str, d: float, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """The docstring's formula for the deterministic kinds (None for the random ones)."""
    c = CONFIG.cell_size / 2
    r = np.maximum(np.maximum(np.abs(x - c), np.abs(y - c)) - CONFIG.platform, 0.0)
    if kind == "flat":
        return np.zeros_like(x)
    if kind == "waves":
        k = 2 * math.pi / CONFIG.wave_length
        return (0.02 + 0.13 * d) * np.sin(k * x) * np.sin(k * y) * np.minimum(1.0, r / 0.5)
    if kind in ("slope_up", "slope_down"):
        return (1 if kind == "slope_up" else -1) * 0.45 * d * r
    if kind in ("stairs_up", "stairs_down"):
        steps = np.ceil(np.round(r / CONFIG.stair_width, 9))
        return (1 if kind == "stairs_up" else -1) * (0.03 + 0.15 * d) * steps
    if kind == "stepping_stones":
        side, gap = 1.0 - 0.65 * d, 0.05 + 0.25 * d
        stone = (np.mod(x, side + gap) < side) & (np.mod(y, side + gap) < side)
        return np.where((r > 0) & ~stone, -CONFIG.pit_depth, 0.0)
    return None


def test_heights_match_the_generator_formula_at_sampled_points(terrain, scene):
    """The compiled height field's elevation at sampled grid points equals each kind's formula (float32)."""
    field = HeightField.from_model(scene)
    rng = np.random.default_rng(0)
    p, b, h = CONFIG.cell_pixels, CONFIG.border_pixels, CONFIG.horizontal_scale
    for level in range(CONFIG.num_levels):
        d = CONFIG.difficulty(level)
        for k, kind in enumerate(CONFIG.kinds):
            i, j = rng.integers(0, p, size=(2, 400))
            x, y = j * h, i * h
            got = field.elevation[b + k * p + i, b + level * p + j]
            want = _expected(kind, d, x, y)
            if kind == "rough":
                amp = 0.01 + 0.06 * d
                r = np.maximum(np.abs(x - 2.0), np.abs(y - 2.0)) - CONFIG.platform
                assert np.all(np.abs(got) <= amp + 1e-5) and np.all(got[r <= 0] == pytest.approx(0, abs=1e-5))
                assert np.std(got[r > 0]) > amp / 4  # really rough
                continue
            if kind == "obstacles":
                want = np.zeros_like(x)
                r = np.maximum(np.abs(x - 2.0), np.abs(y - 2.0)) - CONFIG.platform
                for x0, y0, x1, y1, top in terrain.obstacles[(level, k)]:
                    want[(x >= x0) & (x < x1) & (y >= y0) & (y < y1) & (r > 0)] = top
            np.testing.assert_allclose(got, want, atol=2e-5, err_msg=f"{kind} at level {level}")
    # seeded and reproducible; another seed gives other random cells
    np.testing.assert_array_equal(generate_terrain(CONFIG).heights, terrain.heights)
    other = generate_terrain(TerrainConfig(**{**CONFIG.__dict__, "seed": 4}))
    assert not np.array_equal(other.heights, terrain.heights)


def test_config_rejects_unknown_kinds_and_misaligned_sizes():
    with pytest.raises(ValueError, match="not known"):
        TerrainConfig(kinds=("lava",))
    with pytest.raises(ValueError, match="multiple of horizontal_scale"):
        TerrainConfig(cell_size=4.05)


# --- environments on the terrain --------------------------------------------------------------

def _make_env(scene, terrain, engine: str, device: str, rule: TerrainLevelRule | None = None) -> Env:
    n = 2 * len(KINDS)
    home = kbot_home_qpos(scene)
    spawn = TerrainSpawnReset.create(scene, terrain, KBOT_FOOT_GEOMS, home, max_init_level=1, rule=rule,
                                     clearance=CLEARANCE)
    spec = EnvSpec(actuators=PositionActuators.create(scene, kbot_metadata().in_policy_order()), resets=(spawn,),
                   observations=(HeightScanObservation.create(scene),),
                   terminations=(kc.EpisodeLengthTermination(max_length_sec=10.0),))
    env = Env(scene, spec, EngineConfig(num_envs=n, device=device, dt=0.004, ctrl_dt=0.02, nconmax=64, njmax=256),
              engine=engine)
    spawn.state.levels.copy_(torch.arange(n, device=env.device) // len(KINDS))  # every kind on both levels
    env.reset()
    return env


@pytest.fixture(scope="module", params=ENGINE_SPECS, ids=ENGINE_IDS)
def terrain_env(request, scene, terrain) -> Env:
    kind, device = request.param
    return _make_env(scene, terrain, kind, device)


def _foot_gaps(scene: mujoco.MjModel, qpos: np.ndarray) -> np.ndarray:
    """Per foot geom, min over 21 points along its lowest line of (point z - ground z by mj_ray), m."""
    data = mujoco.MjData(scene)
    data.qpos[:] = qpos
    mujoco.mj_kinematics(scene, data)
    floor = mujoco.mj_name2id(scene, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    gaps = []
    for name in KBOT_FOOT_GEOMS:
        g = scene.geom(name).id
        pos, axis = data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3)[:, 2] * scene.geom_size[g, 1]
        low = [pos + t * axis - [0, 0, scene.geom_size[g, 0]] for t in np.linspace(-1, 1, 21)]
        ground = [10.0 - mujoco.mj_rayHfield(scene, data, floor, np.array([q[0], q[1], 10.0]), np.array([0, 0, -1.0]))
                  for q in low]
        gaps.append(min(q[2] - z for q, z in zip(low, ground, strict=True)))
    return np.array(gaps)


def test_spawn_puts_the_feet_on_the_ground_on_every_kind(scene, terrain):
    """Right after the reset the lowest foot point is CLEARANCE above the ground (mj_ray), none below, every kind."""
    env = _make_env(scene, terrain, "mujoco", "cpu")
    qpos = env.engine.state.qpos.double().numpy()
    for w in range(env.num_envs):
        gaps = _foot_gaps(scene, qpos[w])
        kind = KINDS[w % len(KINDS)]
        assert gaps.min() == pytest.approx(CLEARANCE, abs=1.5e-3), f"world {w} ({kind}): foot gaps {gaps}"
        assert gaps.min() >= -1e-3
    # the spawn point is in the world's cell
    centres = torch.as_tensor(terrain.cell_centres(), dtype=torch.float32)
    state = env.spec.resets[0].state
    offset = env.engine.state.qpos[:, :2] - centres[state.levels, state.kinds]
    assert offset.abs().max() <= 0.5 + 1e-5


def test_height_scan_equals_mj_ray(terrain_env, scene):
    """The scan's ground heights equal mj_ray cast straight down onto the height field, on each engine."""
    env = terrain_env
    env.reset()
    for _ in range(3):
        td = env.step(torch.zeros(env.num_envs, env.num_actions, device=env.device))
    scan_obs = env.spec.observations[0]
    scan = td["next", "observation", scan_obs.name].cpu().double().numpy()
    points = scan_obs.scan_points(env.ctx).cpu().double().numpy()
    base_z = env.engine.state.qpos[:, 2].cpu().double().numpy()
    data = mujoco.MjData(scene)
    mujoco.mj_forward(scene, data)
    floor = mujoco.mj_name2id(scene, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    ray = np.array([[10.0 - mujoco.mj_rayHfield(scene, data, floor, np.array([x, y, 10.0]), np.array([0, 0, -1.0]))
                     for x, y in world] for world in points])
    np.testing.assert_allclose(scan, np.minimum(base_z[:, None] - ray, scan_obs.clip), atol=1e-4)
    if hasattr(env.engine, "_m"):  # MuJoCo Warp: its own ray casts on its own model and data agree too
        np.testing.assert_allclose(ray, _warp_ray_ground(env.engine, points), atol=1e-4)


def _warp_ray_ground(engine, points: np.ndarray) -> np.ndarray:
    """Ground z under ``points`` (N, P, 2): ``mujoco_warp.rays`` cast down from z = 10 onto geom group 0 (the floor)."""
    import mujoco_warp as mjw
    import warp as wp
    from mujoco_warp._src.types import vec6

    n, p = points.shape[:2]
    device = engine._d.qpos.device
    pnt = np.zeros((n, p, 3), dtype=np.float32)
    pnt[..., :2], pnt[..., 2] = points, 10.0
    vec = np.zeros_like(pnt)
    vec[..., 2] = -1.0
    dist = wp.empty((n, p), dtype=float, device=device)
    geomid = wp.empty((n, p), dtype=int, device=device)
    normal = wp.empty((n, p), dtype=wp.vec3, device=device)
    origins, directions = (wp.array(a, dtype=wp.vec3, device=device) for a in (pnt, vec))
    no_body = wp.full(p, -1, dtype=int, device=device)
    mjw.rays(engine._m, engine._d, origins, directions, vec6(1, 0, 0, 0, 0, 0), True, no_body, dist, geomid, normal)
    assert np.all(geomid.numpy() == 0)
    return 10.0 - dist.numpy()


def test_both_engines_step_every_kind_without_nan(terrain_env):
    """Every kind at both levels: 10 control steps of the home pose, finite state, no broken world."""
    env = terrain_env
    env.reset()
    for _ in range(10):
        td = env.step(torch.zeros(env.num_envs, env.num_actions, device=env.device))
        assert not bool(td["next", "bad_physics"].any())
    assert bool(torch.isfinite(env.engine.state.qpos).all())


# --- the level rule ---------------------------------------------------------------------------

def _rule_ctx(n: int, xy: torch.Tensor, terminated: torch.Tensor, command: torch.Tensor, steps: int):
    physics = type("P", (), {})()
    physics.qpos = torch.zeros(n, 7)
    physics.qpos[:, :2] = xy
    return kc.EnvContext(physics=physics, model=None, ctrl_dt=0.02, action=torch.zeros(n, 1),
                         prev_action=torch.zeros(n, 1), prev_prev_action=torch.zeros(n, 1),
                         commands={"cmd": command}, observations={}, curriculum_level=torch.zeros(n),
                         episode_steps=torch.full((n,), steps), generator=torch.Generator().manual_seed(0),
                         extras={"terminated": terminated})


def test_promotion_and_demotion_follow_the_rule(terrain):
    """Far enough: up (past the top: random level); failed or short of the command: down; else stay."""
    state = TerrainState(terrain)
    state.allocate(6, torch.device("cpu"), torch.Generator().manual_seed(0))
    state.levels.copy_(torch.tensor([0, 0, 1, 1, 0, 1]))
    state.spawn_xy.zero_()
    # walked: 2.5 m, 2.5 m (but failed), 0.1 m failed, 1 m with 0.5 m/s x 5 s asked, 0.2 m, 2.5 m at the top
    xy = torch.tensor([[2.5, 0], [0, 2.5], [0.1, 0], [1.0, 0], [0.2, 0], [2.5, 0]])
    terminated = torch.tensor([False, True, True, False, False, False])
    command = torch.tensor([[0.1, 0, 0], [0.1, 0, 0], [0.1, 0, 0], [0.5, 0, 0], [0.0, 0, 0], [0.1, 0, 0]])
    ctx = _rule_ctx(6, xy, terminated, command, steps=250)
    rule = TerrainLevelRule(promote_distance=2.0, command="cmd", demote_fraction=0.5, resample_past_last=False)
    ended = torch.ones(6, dtype=torch.bool)
    assert rule.new_levels(state, ended, ctx).tolist() == [1, 1, 0, 0, 0, 1]
    not_ended = torch.tensor([False] * 6)
    assert rule.new_levels(state, not_ended, ctx).tolist() == state.levels.tolist()
    no_command = TerrainLevelRule(promote_distance=2.0, demote_on_failure=False, resample_past_last=False)
    assert no_command.new_levels(state, ended, ctx).tolist() == [1, 1, 1, 1, 0, 1]
    resampling = TerrainLevelRule(promote_distance=2.0)
    assert 0 <= resampling.new_levels(state, ended, ctx)[5] <= 1


def test_spawn_reset_applies_the_rule_at_episode_ends_and_curriculum_reports_levels(scene, terrain):
    """A world that walked far is promoted by its next reset; the curriculum state carries the levels."""
    env = _make_env(scene, terrain, "mujoco", "cpu", rule=TerrainLevelRule(promote_distance=1.0))
    spawn = env.spec.resets[0]
    spawn.state.levels.zero_()
    curriculum = TerrainCurriculum(state=spawn.state, inner=kc.ConstantCurriculum(level=0.5))
    cstate = curriculum.init_curriculum(env.device)
    assert float(cstate["level"]) == 0.5 and cstate["terrain_level_counts"].tolist() == [env.num_envs, 0]
    spawn.state.levels[2] = 1
    env.ctx.episode_steps.fill_(100)
    terminated, truncated = env.ctx.extras["terminated"], env.ctx.extras["truncated"]
    terminated.zero_()
    truncated.zero_()
    truncated[0] = True  # world 0's time ran out after it "walked" 1.5 m: up
    env.engine.state.qpos[:2, :2] = spawn.state.spawn_xy[:2] + torch.tensor([1.5, 0.0])  # so did world 1
    terminated[2] = True  # world 2 fell: down
    mask = torch.zeros(env.num_envs, dtype=torch.bool)
    mask[[0, 1, 2]] = True  # world 1 is reset without its episode ending (a full env.reset()): stays
    env._reset_worlds(mask)
    assert spawn.state.levels[:4].tolist() == [1, 0, 0, 0]
    curriculum.step(cstate, {})
    assert cstate["terrain_level_counts"].tolist() == [env.num_envs - 1, 1]
    assert float(cstate["terrain_level_mean"]) == pytest.approx(1 / env.num_envs)


def test_kbot_walk_rough_config_trains_one_iteration(tmp_path):
    """configs/kbot_walk_rough.toml loads, builds the terrain scene and trains; the levels are checkpointed."""
    from ktorch_sim.config import load_config
    from ktorch_sim.training.trainer import Trainer

    config = load_config("configs/kbot_walk_rough.toml", [
        "task.num_envs=4", "task.engine=mujoco", "task.device=cpu", "ppo.batch_size=2",
        "ppo.rollout_length_seconds=0.2", "ppo.max_steps=40", "model.hidden_size=16", "model.depth=1",
        "model.num_mixtures=2", "logging.wandb_mode=disabled", "logging.video_every_minutes=0",
        f"logging.run_dir={tmp_path}", "task.terrain_levels=3", "task.terrain_cell_size=4.0"])
    trainer = Trainer(config)
    assert trainer.env.model.geom("floor").type == mujoco.mjtGeom.mjGEOM_HFIELD
    metrics = trainer.iterate()
    state = trainer.curriculum_state
    assert state["terrain_levels"].shape == (4,) and float(state["terrain_level_counts"].sum()) == 4
    # the level distribution is logged every iteration: worlds per level sum to the worlds, mean in [0, 1]
    assert sum(metrics[f"curriculum/terrain_level_{i}"] for i in range(3)) == 4
    assert 0.0 <= metrics["curriculum/terrain_level_mean"] <= 1.0 and "curriculum/level" in metrics
    state["terrain_levels"].copy_(torch.tensor([2, 1, 0, 2]))  # as if worlds had moved
    trainer.save()
    trainer.logger.close()
    resumed = Trainer(config, resume=trainer.run_dir)  # every world's level comes back with the checkpoint
    assert resumed.curriculum_state["terrain_levels"].tolist() == [2, 1, 0, 2]
    assert resumed.curriculum_state["terrain_levels"] is resumed.env.spec.resets[-1].state.levels
    resumed.logger.close()
    with pytest.raises(Exception, match="terrain_kinds"):
        load_config("configs/kbot_walk_rough.toml", ["task.terrain_kinds=['lava']"])


def test_hfield_xy_position_reset_matches_mj_ray_on_the_grid(scene):
    """ksim's HFieldXYPositionReset follows MuJoCo's triangles too, on a non-planar field (stairs, stones)."""
    reset = kc.get_xy_position_reset(scene, x_range=8.0, y_range=18.0, x_edge_padding=0.0, y_edge_padding=0.0,
                                     robot_base_height=0.0)
    field = HeightField.from_model(scene)
    xy = torch.rand(4000, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([8.0, 18.0]) * 2 - \
        torch.tensor([8.0, 18.0])
    np.testing.assert_allclose(reset.ground_height(xy).numpy(), field.height(xy).numpy(), atol=1e-4)


def test_graphed_collector_body_equals_the_plain_collector_on_terrain(tmp_path):
    """The static-buffer step body (what CUDA graph capture replays) collects what the plain collector does,
    levels moving included (promote_distance 1 cm: every ended episode moves)."""
    from ktorch_sim.algorithms.graphed_rollout import GraphedRolloutCollector
    from ktorch_sim.algorithms.rollout import RolloutCollector
    from ktorch_sim.config import load_config
    from ktorch_sim.training.trainer import Trainer

    def trainer(name: str) -> Trainer:
        return Trainer(load_config("configs/kbot_walk_rough.toml", [
            "task.num_envs=4", "task.engine=mujoco", "task.device=cpu", "ppo.batch_size=2", "model.hidden_size=16",
            "model.depth=1", "model.num_mixtures=2", "task.episode_length_seconds=0.1", "ppo.max_steps=100",
            "logging.wandb_mode=disabled", "logging.video_every_minutes=0", f"logging.run_dir={tmp_path / name}",
            "task.terrain_levels=3", "task.terrain_cell_size=4.0", "task.promote_distance=0.01"]))

    plain, graphed = trainer("a"), trainer("b")
    collectors = [RolloutCollector(plain.env, plain.task, 12, plain.generator),
                  GraphedRolloutCollector(graphed.env, graphed.task, 12, graphed.generator, mode="eager")]
    buffers = []
    for t, collector in zip((plain, graphed), collectors, strict=True):
        collector.current = t.collector.current
        buffers.append(collector.collect(t.model, t.carry)[0].clone())
    assert buffers[0]["next", "done"].any()
    for key in buffers[0].keys(include_nested=True, leaves_only=True):
        assert torch.equal(buffers[0][key], buffers[1][key]), key
    levels = [t.env.spec.resets[-1].state.levels for t in (plain, graphed)]
    assert torch.equal(*levels) and bool(levels[0].any())
    for t in (plain, graphed):
        t.logger.close()


def test_terrain_preview_tool_writes_a_png_and_rejects_bad_kinds(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "terrain_preview.py"
    spec = importlib.util.spec_from_file_location("terrain_preview", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "t.png"
    assert tool.main(["--out", str(out), "--levels", "2", "--cell-size", "4", "--kinds", "flat,stairs_up"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert tool.main(["--out", str(out), "--kinds", "lava"]) == 2
    assert "error: terrain kinds ['lava'] are not known" in capsys.readouterr().err
