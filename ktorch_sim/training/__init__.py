"""Training: the trainer loop, its run directory (metrics log, profiling, videos) and ``PPOTask.launch``.

Data flows config -> task -> env -> rollout -> algorithm -> trainer: :mod:`.trainer` builds the
task's environment and policy, collects rollouts (:mod:`ktorch_sim.algorithms.rollout`), updates
with :class:`ktorch_sim.algorithms.ppo.PPO` and writes checkpoints (:mod:`ktorch_sim.checkpoint`).
Nothing is imported here, so ``ktorch_sim.training.x`` loads only what ``x`` needs.
"""
