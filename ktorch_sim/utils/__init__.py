"""Leaf helpers every layer may use: quaternion math, TOML value formatting, objects named by string,
progress lines, run-directory paths and memory bounds. They import nothing else of ktorch_sim but
:mod:`ktorch_sim.errors`.
"""
