"""Playback: a trained policy loaded from its checkpoint, run, evaluated, viewed and rendered.

:mod:`.trained` loads a run's policy; :mod:`.policy_rollout` runs it; :mod:`.evaluate` scores it;
:mod:`.play` and :mod:`.viewer` show it live; :mod:`.render` and :mod:`.offscreen` write videos.
Nothing is imported here, so ``ktorch_sim.playback.x`` loads only what ``x`` needs.
"""
