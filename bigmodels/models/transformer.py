"""Transformer building blocks shared by the encoder, decoder and language models.

Parameters carry logical axis names ('vocab', 'embed', 'heads', 'kv', 'mlp') and activations
logical constraints ('batch', 'length', 'embed'); the mesh rules in the config map them onto
device axes, so data, FSDP and tensor parallelism need no change here.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
Array = jax.Array

default_init = nn.initializers.truncated_normal(stddev=0.02)


def partitioned(init: nn.initializers.Initializer, *names: str | None) -> Any:
  """An initializer whose parameter is annotated with logical axis names."""
  return nn.with_logical_partitioning(init, names)


def layer_norm(name: str, dtype: Dtype, param_dtype: Dtype) -> nn.LayerNorm:
  """A LayerNorm over the 'embed' axis with logically partitioned scale and bias."""
  return nn.LayerNorm(
      epsilon=1e-6, dtype=dtype, param_dtype=param_dtype, name=name,
      scale_init=partitioned(nn.initializers.ones, 'embed'),
      bias_init=partitioned(nn.initializers.zeros, 'embed'))


class MultiHeadAttention(nn.Module):
  """Multi-head dot-product attention with a boolean mask [batch, 1, q_len, kv_len]."""

  num_heads: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  attention_impl: str | None = None  # None lets JAX choose; 'cudnn' for fused GPU kernels.

  @nn.compact
  def __call__(self, x: Array, mask: Array) -> Array:
    features = x.shape[-1]
    if features % self.num_heads:
      raise ValueError(f'hidden size {features} is not divisible by {self.num_heads} heads')
    head_dim = features // self.num_heads

    def project(name: str) -> Array:
      return nn.DenseGeneral(
          (self.num_heads, head_dim), dtype=self.dtype, param_dtype=self.param_dtype,
          kernel_init=partitioned(default_init, 'embed', 'heads', 'kv'),
          bias_init=partitioned(nn.initializers.zeros, 'heads', 'kv'), name=name)(x)

    query, key, value = project('query'), project('key'), project('value')
    out = jax.nn.dot_product_attention(query, key, value, mask=mask,
                                       implementation=self.attention_impl)
    return nn.DenseGeneral(
        features, axis=(-2, -1), dtype=self.dtype, param_dtype=self.param_dtype,
        kernel_init=partitioned(default_init, 'heads', 'kv', 'embed'),
        bias_init=partitioned(nn.initializers.zeros, 'embed'), name='out')(out)


class MlpBlock(nn.Module):
  """Position-wise feed-forward block: Dense -> GELU -> Dense."""

  mlp_dim: int
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, deterministic: bool) -> Array:
    features = x.shape[-1]
    h = nn.Dense(self.mlp_dim, dtype=self.dtype, param_dtype=self.param_dtype,
                 kernel_init=partitioned(default_init, 'embed', 'mlp'),
                 bias_init=partitioned(nn.initializers.zeros, 'mlp'), name='wi')(x)
    h = nn.gelu(h)
    h = nn.with_logical_constraint(h, ('batch', 'length', 'mlp'))
    h = nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    return nn.Dense(features, dtype=self.dtype, param_dtype=self.param_dtype,
                    kernel_init=partitioned(default_init, 'mlp', 'embed'),
                    bias_init=partitioned(nn.initializers.zeros, 'embed'), name='wo')(h)


class TransformerBlock(nn.Module):
  """One encoder layer: attention and MLP sublayers, pre-LN or post-LN (original BERT)."""

  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  pre_ln: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  attention_impl: str | None = None

  @nn.compact
  def __call__(self, x: Array, mask: Array, deterministic: bool) -> Array:
    norm_kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    attention_norm = layer_norm('attention_norm', **norm_kw)
    mlp_norm = layer_norm('mlp_norm', **norm_kw)

    h = attention_norm(x) if self.pre_ln else x
    h = MultiHeadAttention(self.num_heads, attention_impl=self.attention_impl,
                           name='attention', **norm_kw)(h, mask)
    x = x + nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    if not self.pre_ln:
      x = attention_norm(x)

    h = mlp_norm(x) if self.pre_ln else x
    h = MlpBlock(self.mlp_dim, self.dropout_rate, name='mlp', **norm_kw)(h, deterministic)
    x = x + nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    if not self.pre_ln:
      x = mlp_norm(x)
    return nn.with_logical_constraint(x, ('batch', 'length', 'embed'))


class Encoder(nn.Module):
  """A stack of TransformerBlocks (optionally rematerialised) with a final norm for pre-LN."""

  num_layers: int
  num_heads: int
  mlp_dim: int
  dropout_rate: float = 0.0
  pre_ln: bool = True
  remat: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  attention_impl: str | None = None

  @nn.compact
  def __call__(self, x: Array, mask: Array, deterministic: bool) -> Array:
    block_cls = TransformerBlock
    if self.remat:
      # Argument 0 is the module itself, so `deterministic` is static argument 3.
      block_cls = nn.remat(TransformerBlock, static_argnums=(3,))
    for i in range(self.num_layers):
      x = block_cls(self.num_heads, self.mlp_dim, self.dropout_rate, self.pre_ln,
                    self.dtype, self.param_dtype, self.attention_impl,
                    name=f'layer_{i}')(x, mask, deterministic)
    if self.pre_ln:
      x = layer_norm('final_norm', self.dtype, self.param_dtype)(x)
    return x


def segment_attention_mask(segment_ids: Array) -> Array:
  """Block-diagonal mask [batch, 1, len, len]: a token sees only tokens of its own segment.

  Packed documents carry distinct segment ids, so they never attend to each other; padding
  (segment 0) only attends to padding, which keeps every softmax row well defined.
  """
  return segment_ids[:, None, :, None] == segment_ids[:, None, None, :]
