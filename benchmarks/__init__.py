"""Learning benchmarks: Gymnasium's MuJoCo locomotion tasks ported to ktorch_sim, and the runner.

:mod:`benchmarks.gym_tasks` holds the ported tasks (``GYM_TASKS``); :mod:`benchmarks.learning`
trains one (library, task, seed) with ktorch_sim's PPO or Stable-Baselines3's. Both need the
``benchmark`` extra: ``pip install -e ".[benchmark]"``.
"""
