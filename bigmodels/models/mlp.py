"""A multilayer perceptron classifier over flattened inputs."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigmodels.models.vision_layers import dense


class MLP(nn.Module):
  """Flatten -> (dense -> ReLU -> dropout) per hidden layer -> classifier."""

  num_classes: int
  hidden: tuple[int, ...] = (512, 512)
  dropout_rate: float = 0.2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: jax.Array, train: bool = False) -> jax.Array:
    """Logits [N, num_classes] from inputs [N, ...]; `train` enables dropout."""
    x = inputs.reshape(inputs.shape[0], -1).astype(self.dtype)
    for features in self.hidden:
      x = nn.relu(dense(features, dtype=self.dtype)(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return dense(self.num_classes, dtype=self.dtype, logits=True)(x).astype(jnp.float32)
