"""Residual networks for small images: ResNet (He et al., 2016) and Wide ResNet (Zagoruyko &
Komodakis, 2016), both with BatchNorm statistics in the `batch_stats` collection.

The stems suit 28x28 / 32x32 inputs (a 3x3 convolution, no initial down-sampling), as in the
CIFAR versions of these networks.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigmodels.models.vision_layers import batch_norm, conv, dense


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection (post-activation, ResNet v1)."""

  features: int
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv_ = lambda f, k, s: conv(f, k, s, use_bias=False, dtype=self.dtype)
    y = nn.relu(batch_norm(train, self.dtype)(conv_(self.features, 3, self.strides)(x)))
    # Zero-initialised last scale: each block starts as the identity (Goyal et al., 2017).
    y = batch_norm(train, self.dtype, nn.initializers.zeros)(conv_(self.features, 3, 1)(y))
    if x.shape[-1] != self.features or self.strides != 1:
      x = batch_norm(train, self.dtype)(conv_(self.features, 1, self.strides)(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet with basic blocks; stage_sizes (2, 2, 2, 2) is ResNet-18."""

  num_classes: int
  stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
  width: int = 64
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    """Logits [N, num_classes] from images [N, H, W, C]."""
    x = conv(self.width, 3, use_bias=False, dtype=self.dtype)(images.astype(self.dtype))
    x = nn.relu(batch_norm(train, self.dtype)(x))
    for stage, blocks in enumerate(self.stage_sizes):
      for block in range(blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        x = BasicBlock(self.width * 2 ** stage, strides, self.dtype)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return dense(self.num_classes, dtype=self.dtype, logits=True)(x).astype(jnp.float32)


class WideBlock(nn.Module):
  """Pre-activation block of two 3x3 convolutions with optional dropout between them."""

  features: int
  strides: int = 1
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv_ = lambda f, k, s: conv(f, k, s, use_bias=False, dtype=self.dtype)
    y = nn.relu(batch_norm(train, self.dtype)(x))
    shortcut = x
    if x.shape[-1] != self.features or self.strides != 1:
      shortcut = conv_(self.features, 1, self.strides)(y)
    y = conv_(self.features, 3, self.strides)(y)
    y = nn.relu(batch_norm(train, self.dtype)(y))
    y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
    y = conv_(self.features, 3, 1)(y)
    return shortcut + y


class WideResNet(nn.Module):
  """WRN-depth-widen: three stages of (depth - 4) / 6 wide blocks at 16k, 32k, 64k channels."""

  num_classes: int
  depth: int = 28
  widen: int = 10
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    """Logits [N, num_classes] from images [N, H, W, C]."""
    if (self.depth - 4) % 6:
      raise ValueError(f'Wide ResNet depth {self.depth} must be 6n + 4 (e.g. 16, 28, 40)')
    blocks = (self.depth - 4) // 6
    x = conv(16, 3, use_bias=False, dtype=self.dtype)(images.astype(self.dtype))
    for stage in range(3):
      for block in range(blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        x = WideBlock(16 * self.widen * 2 ** stage, strides, self.dropout_rate, self.dtype)(
            x, train)
    x = nn.relu(batch_norm(train, self.dtype)(x))
    x = jnp.mean(x, axis=(1, 2))
    return dense(self.num_classes, dtype=self.dtype, logits=True)(x).astype(jnp.float32)
