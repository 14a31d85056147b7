"""Deployment: a trained policy exported for the robot (:mod:`.export`) and checked against the
training-side policy on the native engine (:mod:`.check`).

Nothing is imported here, so ``ktorch_sim.deploy.x`` loads only what ``x`` needs.
"""
