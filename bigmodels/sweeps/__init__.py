"""Ablation sweeps: runs declared by a config file's `sweep()`, run locally or on Slurm, and
aggregated into tables and plots. `experiments/sweep.py` is the command line."""
