"""Layers as one nn.scan (model.scan_layers) compute exactly what the unrolled layers compute:
BERT, the causal LM (KV-cache decoding included) and the encoder-decoder."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bigmodels.inference import generate
from bigmodels.models import bert, gpt, t5
from bigmodels.models.transformer import TransformerConfig

CFG = TransformerConfig(vocab_size=61, hidden_size=32, num_layers=3, num_heads=4, mlp_dim=64,
                        max_len=32)
SCANNED = TransformerConfig(**{**CFG.__dict__, 'scan_layers': True})


def stacked(params):
  """The unrolled tree with each stack's layer_0..layer_{n-1} replaced by `layers`, their
  leaves stacked on a leading axis (the scanned layout)."""
  if not isinstance(params, dict):
    return params
  names = sorted((k for k in params if k.startswith('layer_')), key=lambda k: int(k[6:]))
  out = {k: stacked(v) for k, v in params.items() if k not in names}
  if names:
    out['layers'] = jax.tree.map(lambda *xs: jnp.stack(xs), *[params[n] for n in names])
  return out


def _tokens(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(5, 61, shape), jnp.int32)


def test_scanned_bert_equals_unrolled_in_logits_and_gradients():
  ids, positions = _tokens((2, 12)), jnp.asarray([[1, 3, 8], [2, 4, 6]], jnp.int32)
  segments = jnp.asarray([[1] * 6 + [2] * 6, [1] * 12], jnp.int32)
  unrolled, scanned = bert.BertMLM(CFG), bert.BertMLM(SCANNED)
  params = nn.unbox(unrolled.init(jax.random.key(0), ids, segments, positions)['params'])
  boxed = scanned.init(jax.random.key(0), ids, segments, positions)['params']
  kernel = boxed['encoder']['layers']['mlp']['wi']['kernel']
  assert kernel.value.shape == (3, 32, 64) and kernel.names == ('layers', 'embed', 'mlp')
  assert jax.tree.structure(nn.unbox(boxed)) == jax.tree.structure(stacked(params))

  def loss(model, p):
    return jnp.mean(model.apply({'params': p}, ids, segments, positions) ** 2)

  np.testing.assert_allclose(loss(scanned, stacked(params)), loss(unrolled, params), rtol=1e-6)
  grads = jax.grad(lambda p: loss(unrolled, p))(params)
  scanned_grads = jax.grad(lambda p: loss(scanned, p))(stacked(params))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               scanned_grads, stacked(grads))


def test_scanned_decoder_decodes_with_its_stacked_cache_like_the_unrolled_one():
  params = gpt.DecoderLM(CFG).init(jax.random.key(1), _tokens((1, 8)))['params']
  tokens, valid = generate.left_pad([[2, 7, 8], [2, 9, 10, 11]], 0)
  args = (tokens, valid, jax.random.key(3), 10, generate.Sampling(0.0))
  reference = generate.decode_without_cache(gpt.DecoderLM(CFG), params, *args)
  decoder = gpt.DecoderLM(TransformerConfig(**{**SCANNED.__dict__, 'decode': True}))
  cached = generate.decode_with_cache(decoder, stacked(nn.unbox(params)), *args)
  np.testing.assert_array_equal(cached, reference)


def test_scanned_encoder_decoder_equals_unrolled():
  x, y = _tokens((2, 10)), _tokens((2, 7), seed=1)
  ones_x, ones_y = jnp.ones_like(x), jnp.ones_like(y)
  params = nn.unbox(t5.EncoderDecoder(CFG).init(jax.random.key(2), x, ones_x, y, ones_y)[
      'params'])
  a = t5.EncoderDecoder(CFG).apply({'params': params}, x, ones_x, y, ones_y)
  b = t5.EncoderDecoder(SCANNED).apply({'params': stacked(params)}, x, ones_x, y, ones_y)
  np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
