"""``kbot_walk_rough``: ``kbot_walk`` on a generated terrain grid with a legged_gym-style level curriculum.

Same robot, commands, rewards and sim-to-real settings as :mod:`ktorch_sim.tasks.kbot_walk`; what
changes (docs/terrain.md):

- the floor is a :mod:`ktorch_sim.terrain` grid (``terrain_levels`` rows of rising difficulty, one
  column per kind in ``terrain_kinds``), built into K-Bot's scene with MjSpec;
- episodes start on the world's cell (:class:`~ktorch_sim.terrain.TerrainSpawnReset`: random xy on
  the cell's platform, random heading, feet just above the ground under them), and a world
  whose episode ended moves a level up when it walked ``promote_distance`` m from its spawn point,
  down when it fell or covered less than half of what its command asked for;
- the critic also sees a height scan (9 x 5 points, 1.6 m x 1.0 m around the base), and the
  actor too (noisy) with ``actor_height_scan``;
- the fall termination measures the base above the ground under it, not above z = 0;
- :class:`~ktorch_sim.terrain.TerrainCurriculum` keeps kbot_walk's episode-length curriculum for
  the disturbances and adds the terrain levels to the curriculum state (and checkpoints).

Run it with ``--cfg configs/kbot_walk_rough.toml`` (task.name is this module's task class).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mujoco

import ktorch_sim.components as kc
from ktorch_sim.robots.kbot import KBOT_FOOT_GEOMS, KBOT_SCENE_XML
from ktorch_sim.tasks.configs import KbotWalkRoughConfig  # defined there (importable without torch)
from ktorch_sim.tasks.kbot_walk import KbotWalkTask
from ktorch_sim.terrain import (
    HeightScanObservation,
    Terrain,
    TerrainBaseHeightTermination,
    TerrainCurriculum,
    TerrainLevelRule,
    TerrainSpawnReset,
    add_terrain,
    generate_terrain,
)

__all__ = ["KbotWalkRoughConfig", "KbotWalkRoughTask"]


class KbotWalkRoughTask(KbotWalkTask):
    """K-Bot velocity-command walking on a terrain grid; see the module docstring."""

    config_class = KbotWalkRoughConfig

    @property
    def terrain(self) -> Terrain:
        """The generated grid (once per task)."""
        if getattr(self, "_terrain", None) is None:
            self._terrain = generate_terrain(self.config.terrain_config())
        return self._terrain

    @property
    def ACTOR_OBSERVATIONS(self) -> tuple[str, ...]:  # noqa: N802 - the parent's class constant
        """kbot_walk's actor inputs, plus the height scan with ``actor_height_scan``."""
        extra = ("height_scan_observation",) if self.config.actor_height_scan else ()
        return (*KbotWalkTask.ACTOR_OBSERVATIONS, *extra)

    def get_mujoco_model(self) -> mujoco.MjModel:
        """K-Bot's scene (or ``model_path``'s) with its floor replaced by the terrain grid."""
        spec = mujoco.MjSpec.from_file(str(self.config.model_path or KBOT_SCENE_XML))
        add_terrain(spec, self.terrain)
        return spec.compile()

    def spawn_reset(self, model: mujoco.MjModel) -> TerrainSpawnReset:
        """Return the spawn reset (built once: the curriculum shares its per-world state)."""
        if getattr(self, "_spawn", None) is None:
            c = self.config
            qpos = model.key_qpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, "home")]
            self._spawn = TerrainSpawnReset.create(
                model, self.terrain, KBOT_FOOT_GEOMS, qpos, max_init_level=c.terrain_max_init_level,
                xy_range=min(0.5, self.terrain.config.platform),
                rule=TerrainLevelRule(promote_distance=c.promote_distance, command="velocity_command"))
        return self._spawn

    def get_resets(self, model: mujoco.MjModel) -> Sequence[kc.Reset]:
        """kbot_walk's joint and velocity resets, then the spawn on the terrain (with the heading)."""
        walk = [r for r in super().get_resets(model) if not isinstance(r, kc.RandomHeadingReset)]
        return (*walk, self.spawn_reset(model))

    def get_observations(self, model: mujoco.MjModel) -> Sequence[kc.Observation]:
        """kbot_walk's observations and the height scan."""
        noise = self.config.height_scan_noise if self.config.actor_height_scan else 0.0
        scan = HeightScanObservation(ground=self.spawn_reset(model).ground, noise=noise)
        return (*super().get_observations(model), scan)

    def get_terminations(self, model: mujoco.MjModel) -> Sequence[kc.Termination]:
        """Fallen (base below ``min_base_height`` above the ground), tipped beyond 45 deg, or out of time."""
        spawn = self.spawn_reset(model)
        return (
            TerrainBaseHeightTermination(ground=spawn.ground, min_height=self.config.min_base_height),
            kc.NotUprightTermination(max_radians=math.radians(45)),
            kc.EpisodeLengthTermination(max_length_sec=self.config.episode_length_seconds),
        )

    def get_curriculum(self, model: mujoco.MjModel) -> kc.Curriculum:
        """kbot_walk's episode-length curriculum, with the terrain levels in its state."""
        return TerrainCurriculum(state=self.spawn_reset(model).state, inner=super().get_curriculum(model))
