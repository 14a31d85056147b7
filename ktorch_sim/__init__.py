"""ktorch_sim: humanoid locomotion training in PyTorch on MuJoCo Warp (a ksim rewrite)."""
