"""Tasks shipped with ktorch_sim, by name (``kbot_stand``, ``kbot_walk``)."""

from ktorch_sim.tasks.kbot_stand import KbotStandConfig, KbotStandTask
from ktorch_sim.tasks.kbot_walk import KbotWalkConfig, KbotWalkTask

TASKS = {"kbot_stand": (KbotStandTask, KbotStandConfig), "kbot_walk": (KbotWalkTask, KbotWalkConfig)}

__all__ = ["TASKS", "KbotStandConfig", "KbotStandTask", "KbotWalkConfig", "KbotWalkTask"]
