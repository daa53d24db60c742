"""Convolution, dense and BatchNorm layers of the vision models, with logical axis names on
their parameters so the mesh rules shard them like the Transformers' (input channels 'embed'
-> fsdp, output channels 'mlp' -> tensor, class logits unsharded)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn

_KERNEL_INIT = nn.initializers.lecun_normal()  # flax's default for Conv and Dense


def _names(init: Any, *names: str | None) -> Any:
  return nn.with_logical_partitioning(init, names)


def conv(features: int, kernel: int, strides: int = 1, *, use_bias: bool = True,
         dtype: Any = None) -> nn.Conv:
  """A kernel x kernel convolution (SAME padding) whose kernel is [kh, kw, 'embed', 'mlp']."""
  return nn.Conv(features, (kernel, kernel), (strides, strides), use_bias=use_bias, dtype=dtype,
                 kernel_init=_names(_KERNEL_INIT, None, None, 'embed', 'mlp'),
                 bias_init=_names(nn.initializers.zeros, 'mlp'))


def dense(features: int, *, use_bias: bool = True, dtype: Any = None,
          logits: bool = False) -> nn.Dense:
  """A dense layer, kernel ['embed', 'mlp']; with `logits` (the classifier) ['embed', None]."""
  out = None if logits else 'mlp'
  return nn.Dense(features, use_bias=use_bias, dtype=dtype,
                  kernel_init=_names(_KERNEL_INIT, 'embed', out),
                  bias_init=_names(nn.initializers.zeros, out))


def batch_norm(train: bool, dtype: Any = None, scale_init: Any = nn.initializers.ones
               ) -> nn.BatchNorm:
  """BatchNorm (momentum 0.9, eps 1e-5) over channels; scale and bias named ['mlp']."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                      scale_init=_names(scale_init, 'mlp'),
                      bias_init=_names(nn.initializers.zeros, 'mlp'))
