"""The classic small CNN: two convolution + max-pool stages, a dense layer, a classifier.

`batch_norm=True` gives the "2 Conv + pooling + BatchNorm" variant: BatchNorm after each
convolution (and the dense layer), running statistics in the `batch_stats` collection.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigmodels.models.vision_layers import batch_norm, conv, dense


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pooling with stride 2 over [N, H, W, C], written as a reshape and a max.

  Same values as `nn.max_pool(x, (2, 2), strides=(2, 2))`, but the gradient is elementwise
  instead of XLA's select-and-scatter, which is slow on CPU (measured: the cnn_bn train step is
  1.45x faster on 2 cores). Odd sizes fall back to nn.max_pool.
  """
  n, h, w, c = x.shape
  if h % 2 or w % 2:
    return nn.max_pool(x, (2, 2), strides=(2, 2))
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class SmallCNN(nn.Module):
  """conv(c1) -> pool -> conv(c2) -> pool -> dense -> classifier, with optional BatchNorm."""

  num_classes: int
  features: tuple[int, int] = (32, 64)
  kernel_size: int = 3
  dense_features: int = 512
  dropout_rate: float = 0.25
  batch_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    """Logits [N, num_classes] from images [N, H, W, C]; `train` enables dropout and batch
    statistics."""
    x = images.astype(self.dtype)
    norm = lambda: batch_norm(train, self.dtype)
    for features in self.features:
      x = conv(features, self.kernel_size, use_bias=not self.batch_norm, dtype=self.dtype)(x)
      if self.batch_norm:
        x = norm()(x)
      x = nn.relu(x)
      x = max_pool_2x2(x)
    x = x.reshape(x.shape[0], -1)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    x = dense(self.dense_features, use_bias=not self.batch_norm, dtype=self.dtype)(x)
    if self.batch_norm:
      x = norm()(x)
    x = nn.relu(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return dense(self.num_classes, dtype=self.dtype, logits=True)(x).astype(jnp.float32)
