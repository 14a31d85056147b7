"""The names of the terrain kinds (no imports, so the torch-free task configs can read them)."""

KINDS: tuple[str, ...] = ("flat", "rough", "waves", "slope_up", "slope_down", "stairs_up", "stairs_down",
                          "stepping_stones", "obstacles")
"""Every kind :func:`ktorch_sim.terrain.generate_terrain` knows, in the default grid's column order."""
