"""Transformer building blocks shared by the encoder (BERT), the decoder (GPT) and the
encoder-decoder (T5): attention with any boolean mask and optional cross-attention and KV cache,
the MLP block, one layer, a stack of layers, embeddings and the masks.

Hyper-parameters travel as one frozen `TransformerConfig` (as in the flax lm1b/wmt examples).
Parameters carry logical axis names ('vocab', 'embed', 'heads', 'kv', 'mlp', 'layers') and
activations their own (HIDDEN_AXES, 'activation_mlp'); the mesh rules in the run config
(`mesh.rules`, configs/base.py) map them onto device axes, so data, FSDP and tensor
parallelism need no change here.

Masks are boolean [batch, 1, q_len, kv_len] (True = may attend). Packed rows carry segment ids
(documents numbered from 1, padding 0): a token only sees tokens of its own segment, and
positions restart at 0 in every segment.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
Array = jax.Array

default_init = nn.initializers.truncated_normal(stddev=0.02)

# Logical axes of the hidden states [batch, length, hidden] (activation names, distinct from
# the weights' 'embed', so the rules shard the two independently).
HIDDEN_AXES = ('activation_batch', 'activation_length', 'activation_embed')

# The standard BERT sizes (Turc et al., 2019): layers, hidden size, attention heads. The causal
# LM and the encoder-decoder use the same names (the encoder-decoder has this many layers on
# each side).
SIZES: dict[str, dict[str, int]] = {
    'tiny': dict(num_layers=2, hidden_size=128, num_heads=2),
    'mini': dict(num_layers=4, hidden_size=256, num_heads=4),
    'small': dict(num_layers=4, hidden_size=512, num_heads=8),
    'medium': dict(num_layers=8, hidden_size=512, num_heads=8),
    'base': dict(num_layers=12, hidden_size=768, num_heads=12),
    'large': dict(num_layers=24, hidden_size=1024, num_heads=16),
}


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Every hyper-parameter of the Transformer models, in one immutable value.

  decode: build the modules for cached autoregressive decoding (self-attention keeps its keys
  and values in the 'cache' collection, so each new token costs one position).
  """

  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  mlp_dim: int
  num_decoder_layers: int = 0  # Encoder-decoder only; 0 = num_layers.
  max_len: int = 512
  dropout_rate: float = 0.0
  pre_ln: bool = True
  remat: str = 'none'  # A REMAT_POLICIES key.
  scan_layers: bool = False
  tied_embedding: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  attention_impl: str | None = None  # None lets JAX choose; 'cudnn' for fused GPU kernels.
  layer_norm_eps: float = 1e-6
  gelu_approximate: bool = True  # tanh GELU (GPT-2's); False: the exact erf GELU (BERT's).
  type_vocab_size: int = 0  # BERT token-type (segment A/B) embeddings; 0 = none.
  decode: bool = False

  @classmethod
  def from_model_config(cls, model: Any, vocab_size: int | None = None,
                        **overrides: Any) -> TransformerConfig:
    """The config of a run's `config.model` block (size preset already resolved)."""
    return cls(
        vocab_size=vocab_size or model.vocab_size, hidden_size=model.hidden_size,
        num_layers=model.num_layers, num_heads=model.num_heads, mlp_dim=model.mlp_dim,
        num_decoder_layers=model.get('num_decoder_layers', 0), max_len=model.max_len,
        dropout_rate=model.dropout_rate, pre_ln=model.pre_ln, remat=remat_policy(model.remat),
        scan_layers=model.get('scan_layers', False),
        tied_embedding=model.get('tied_embedding', True), dtype=jnp.dtype(model.dtype),
        param_dtype=jnp.dtype(model.param_dtype),
        attention_impl=model.attention_impl or None,
        layer_norm_eps=model.get('layer_norm_eps', 1e-6),
        gelu_approximate=model.get('gelu_approximate', True),
        type_vocab_size=model.get('type_vocab_size', 0), **overrides)


# What a rematerialised layer keeps from its forward pass for the backward pass: 'none' (no
# remat: keep everything), 'dots' (the matmul outputs that carry no batch dimension of their
# own, i.e. the projections; attention scores and elementwise results are recomputed) or 'full'
# (only the layer's input; everything else is recomputed).
REMAT_POLICIES: dict[str, Any] = {
    'none': None,
    'dots': jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    'full': jax.checkpoint_policies.nothing_saveable,
}


def remat_policy(value: Any) -> str:
  """A `model.remat` value as a REMAT_POLICIES key (runs saved before the policies: True is
  'full', False 'none'); ValueError for an unknown one."""
  if isinstance(value, bool):
    return 'full' if value else 'none'
  if value not in REMAT_POLICIES:
    raise ValueError(f'unknown model.remat={value!r}: use {", ".join(REMAT_POLICIES)}')
  return value


def resolve_size(model: Any) -> None:
  """Fills the zero (= from the preset) dimension keys of a `config.model` block from its
  `size` preset; mlp_dim 0 becomes 4 x hidden_size. Unknown sizes are left for the check."""
  if model.size not in SIZES:
    return
  for key, value in SIZES[model.size].items():
    if not model[key]:
      model[key] = value
  if not model.mlp_dim:
    model.mlp_dim = 4 * model.hidden_size


def partitioned(init: nn.initializers.Initializer, *names: str | None) -> Any:
  """An initializer whose parameter is annotated with logical axis names."""
  return nn.with_logical_partitioning(init, names)


def layer_norm(name: str, cfg: TransformerConfig) -> nn.LayerNorm:
  """A LayerNorm over the 'embed' axis with logically partitioned scale and bias."""
  return nn.LayerNorm(
      epsilon=cfg.layer_norm_eps, dtype=cfg.dtype, param_dtype=cfg.param_dtype, name=name,
      scale_init=partitioned(nn.initializers.ones, 'embed'),
      bias_init=partitioned(nn.initializers.zeros, 'embed'))


# ----------------------------------------------------------------------------------------------
# Masks and positions.

def segment_attention_mask(segment_ids: Array) -> Array:
  """Block-diagonal mask [batch, 1, len, len]: a token sees only tokens of its own segment.

  Padding (segment 0) only attends to padding, which keeps every softmax row well defined.
  """
  return segment_ids[:, None, :, None] == segment_ids[:, None, None, :]


def causal_segment_mask(segment_ids: Array) -> Array:
  """Block-diagonal and lower-triangular [batch, 1, len, len]: a token sees the earlier tokens
  of its own segment (and itself)."""
  length = segment_ids.shape[-1]
  causal = jnp.tril(jnp.ones((length, length), jnp.bool_))
  return segment_attention_mask(segment_ids) & causal[None, None]


def cross_segment_mask(query_segments: Array, key_segments: Array) -> Array:
  """[batch, 1, q_len, kv_len]: a decoder token sees the encoder tokens of its own segment."""
  return query_segments[:, None, :, None] == key_segments[:, None, None, :]


def segment_positions(segment_ids: Array) -> Array:
  """Position of every token within its segment [batch, len]: 0 at each segment's start."""
  length = segment_ids.shape[-1]
  index = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), segment_ids.shape)
  starts = jnp.concatenate([jnp.ones_like(segment_ids[:, :1], jnp.bool_),
                            segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1)
  start_index = jax.lax.cummax(jnp.where(starts, index, 0), axis=1)
  return index - start_index


# ----------------------------------------------------------------------------------------------
# Modules.

class MultiHeadAttention(nn.Module):
  """Multi-head dot-product attention under a boolean mask [batch, 1, q_len, kv_len].

  Self-attention by default; `inputs_kv` makes it cross-attention. With `decode`, the keys and
  values of self-attention go into a cache ('cache' collection, sized by the input the module
  was initialised with) at `cache_index`, and the queries attend over the whole cache (the
  mask then covers every cache slot).
  """

  config: TransformerConfig
  decode: bool = False

  @nn.compact
  def __call__(self, x: Array, mask: Array, inputs_kv: Array | None = None) -> Array:
    cfg = self.config
    features = x.shape[-1]
    if features % cfg.num_heads:
      raise ValueError(f'hidden size {features} is not divisible by {cfg.num_heads} heads')
    head_dim = features // cfg.num_heads

    def project(name: str, inputs: Array) -> Array:
      return nn.DenseGeneral(
          (cfg.num_heads, head_dim), dtype=cfg.dtype, param_dtype=cfg.param_dtype,
          kernel_init=partitioned(default_init, 'embed', 'heads', 'kv'),
          bias_init=partitioned(nn.initializers.zeros, 'heads', 'kv'), name=name)(inputs)

    kv = x if inputs_kv is None else inputs_kv
    query, key, value = project('query', x), project('key', kv), project('value', kv)
    if self.decode:
      key, value = self._update_cache(key, value)
    out = jax.nn.dot_product_attention(query, key, value, mask=mask,
                                       implementation=cfg.attention_impl)
    return nn.DenseGeneral(
        features, axis=(-2, -1), dtype=cfg.dtype, param_dtype=cfg.param_dtype,
        kernel_init=partitioned(default_init, 'heads', 'kv', 'embed'),
        bias_init=partitioned(nn.initializers.zeros, 'embed'), name='out')(out)

  def _update_cache(self, key: Array, value: Array) -> tuple[Array, Array]:
    """Writes this call's keys and values at the cache index; returns the whole cache."""
    initialized = self.has_variable('cache', 'cached_key')
    cached_key = self.variable('cache', 'cached_key', jnp.zeros, key.shape, key.dtype)
    cached_value = self.variable('cache', 'cached_value', jnp.zeros, value.shape, value.dtype)
    index = self.variable('cache', 'cache_index', lambda: jnp.zeros((), jnp.int32))
    if not initialized:  # model.init: the cache takes the shape of the init input.
      return key, value
    start = (0, index.value, 0, 0)
    cached_key.value = jax.lax.dynamic_update_slice(cached_key.value, key, start)
    cached_value.value = jax.lax.dynamic_update_slice(cached_value.value, value, start)
    index.value = index.value + key.shape[1]
    return cached_key.value, cached_value.value


class MlpBlock(nn.Module):
  """Position-wise feed-forward block: Dense -> GELU -> Dense."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, deterministic: bool) -> Array:
    cfg = self.config
    features = x.shape[-1]
    h = nn.Dense(cfg.mlp_dim, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                 kernel_init=partitioned(default_init, 'embed', 'mlp'),
                 bias_init=partitioned(nn.initializers.zeros, 'mlp'), name='wi')(x)
    h = nn.gelu(h, approximate=cfg.gelu_approximate)
    h = nn.with_logical_constraint(h, ('activation_batch', 'activation_length', 'activation_mlp'))
    h = nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
    return nn.Dense(features, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                    kernel_init=partitioned(default_init, 'mlp', 'embed'),
                    bias_init=partitioned(nn.initializers.zeros, 'embed'), name='wo')(h)


class TransformerLayer(nn.Module):
  """One layer: self-attention, optional cross-attention, MLP; pre-LN or post-LN (BERT).

  An encoder layer passes a bidirectional mask, a decoder layer (`causal`) a causal one and
  keeps a key/value cache when `config.decode`; a decoder layer of an encoder-decoder
  (`cross_attention`) also attends to the encoder's output.
  """

  config: TransformerConfig
  cross_attention: bool = False
  causal: bool = False

  @nn.compact
  def __call__(self, x: Array, mask: Array, deterministic: bool,
               encoded: Array | None = None, cross_mask: Array | None = None) -> Array:
    cfg = self.config

    def sublayer(x: Array, name: str, fn) -> Array:
      norm = layer_norm(f'{name}_norm', cfg)
      h = fn(norm(x) if cfg.pre_ln else x)
      x = x + nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
      return x if cfg.pre_ln else norm(x)

    x = sublayer(x, 'attention', lambda h: MultiHeadAttention(
        cfg, decode=cfg.decode and self.causal, name='attention')(h, mask))
    if self.cross_attention:
      x = sublayer(x, 'cross_attention', lambda h: MultiHeadAttention(
          cfg, name='cross_attention')(h, cross_mask, inputs_kv=encoded))
    x = sublayer(x, 'mlp', lambda h: MlpBlock(cfg, name='mlp')(h, deterministic))
    return nn.with_logical_constraint(x, HIDDEN_AXES)


class _ScannedLayer(TransformerLayer):
  """A TransformerLayer with nn.scan's (carry, output) signature."""

  @nn.compact
  def __call__(self, x: Array, mask: Array, deterministic: bool,
               encoded: Array | None = None, cross_mask: Array | None = None
               ) -> tuple[Array, None]:
    return super().__call__(x, mask, deterministic, encoded, cross_mask), None


class TransformerStack(nn.Module):
  """`num_layers` TransformerLayers, a final norm for pre-LN.

  `config.remat` picks what each layer keeps for the backward pass (REMAT_POLICIES). With
  `config.scan_layers` the layers are one `nn.scan` over a layer whose parameters (and decode
  cache) have a leading 'layers' axis (parameters under `layers/...` instead of
  `layer_0/...`): the program, so compile time, no longer grows with depth.
  """

  config: TransformerConfig
  num_layers: int
  cross_attention: bool = False
  causal: bool = False

  @nn.compact
  def __call__(self, x: Array, mask: Array, deterministic: bool,
               encoded: Array | None = None, cross_mask: Array | None = None) -> Array:
    cfg = self.config
    layer_cls = _ScannedLayer if cfg.scan_layers else TransformerLayer
    if cfg.remat != 'none':
      # Argument 0 is the module itself, so `deterministic` is static argument 3.
      layer_cls = nn.remat(layer_cls, static_argnums=(3,), prevent_cse=not cfg.scan_layers,
                           policy=REMAT_POLICIES[cfg.remat])
    if cfg.scan_layers:
      stack = nn.scan(layer_cls, variable_axes={'params': 0, 'cache': 0},
                      split_rngs={'params': True, 'dropout': True},
                      in_axes=(nn.broadcast,) * 4, length=self.num_layers,
                      metadata_params={nn.PARTITION_NAME: 'layers'})
      x, _ = stack(cfg, self.cross_attention, self.causal, name='layers')(
          x, mask, deterministic, encoded, cross_mask)
    else:
      for i in range(self.num_layers):
        x = layer_cls(cfg, self.cross_attention, self.causal, name=f'layer_{i}')(
            x, mask, deterministic, encoded, cross_mask)
    if cfg.pre_ln:
      x = layer_norm('final_norm', cfg)(x)
    return x


def embed_tokens(module: nn.Module, cfg: TransformerConfig, tokens: Array, positions: Array
                 ) -> tuple[Array, nn.Embed]:
  """Token plus learned position embeddings, created as `token_embed` and `position_embed`
  in `module` (call from its compact method). Returns (embeddings, the token table, whose
  `attend` gives tied output logits)."""
  if positions.shape[-1] > cfg.max_len:
    raise ValueError(f'sequence length {positions.shape[-1]} exceeds model.max_len='
                     f'{cfg.max_len}')
  embed = nn.Embed(cfg.vocab_size, cfg.hidden_size, dtype=cfg.dtype,
                   param_dtype=cfg.param_dtype,
                   embedding_init=partitioned(default_init, 'vocab', 'embed'),
                   name='token_embed')
  table = module.param('position_embed', partitioned(default_init, None, 'embed'),
                       (cfg.max_len, cfg.hidden_size), cfg.param_dtype)
  x = embed(tokens) + jnp.take(table, positions, axis=0).astype(cfg.dtype)
  return nn.with_logical_constraint(x, HIDDEN_AXES), embed


def output_logits(module: nn.Module, cfg: TransformerConfig, x: Array, embed: nn.Embed
                  ) -> Array:
  """float32 vocabulary logits: the tied token table's `attend`, or an untied `lm_head`."""
  if cfg.tied_embedding:
    logits = embed.attend(x)
  else:
    logits = nn.Dense(cfg.vocab_size, use_bias=False, dtype=cfg.dtype,
                      param_dtype=cfg.param_dtype,
                      kernel_init=partitioned(default_init, 'embed', 'vocab'),
                      name='lm_head')(x)
  return logits.astype(jnp.float32)
