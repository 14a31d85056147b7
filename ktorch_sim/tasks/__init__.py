"""Tasks shipped with ktorch_sim, by name (``kbot_stand``, ``kbot_walk``, ``g1_velocity``)."""

from ktorch_sim.tasks.g1_velocity import G1VelocityConfig, G1VelocityTask
from ktorch_sim.tasks.kbot_stand import KbotStandConfig, KbotStandTask
from ktorch_sim.tasks.kbot_walk import KbotWalkConfig, KbotWalkTask

TASKS = {"kbot_stand": (KbotStandTask, KbotStandConfig), "kbot_walk": (KbotWalkTask, KbotWalkConfig),
         "g1_velocity": (G1VelocityTask, G1VelocityConfig)}

__all__ = ["TASKS", "G1VelocityConfig", "G1VelocityTask", "KbotStandConfig", "KbotStandTask", "KbotWalkConfig",
           "KbotWalkTask"]
