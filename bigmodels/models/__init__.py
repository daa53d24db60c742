"""Flax linen modules. Models know nothing of data, tasks or training."""
