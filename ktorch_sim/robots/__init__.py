"""Robots that ktorch_sim ships: model files, joint metadata and loaders."""

from ktorch_sim.robots.kbot import (
    KBOT_DIR,
    KBOT_JOINTS_TOML,
    KBOT_SCENE_XML,
    KBOT_XML,
    kbot_home_qpos,
    kbot_metadata,
    load_kbot_model,
    load_kbot_pd_model,
)

__all__ = [
    "KBOT_DIR",
    "KBOT_JOINTS_TOML",
    "KBOT_SCENE_XML",
    "KBOT_XML",
    "kbot_home_qpos",
    "kbot_metadata",
    "load_kbot_model",
    "load_kbot_pd_model",
]
