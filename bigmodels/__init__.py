"""bigmodels: Flax models trained by one jit-compiled, mesh-sharded training loop."""
