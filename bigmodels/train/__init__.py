"""The one training loop: state, sharded step functions, checkpointing and logging."""
