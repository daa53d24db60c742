"""The BERT model and MLM loss: logits only at masked slots, packed documents isolated."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels.models import bert
from bigmodels.models.transformer import TransformerConfig
from bigmodels.tasks import text_base


def _model(**kw):
  return bert.BertMLM(TransformerConfig(vocab_size=97, hidden_size=32, num_layers=2,
                                        num_heads=2, mlp_dim=64, max_len=16, **kw))


def _inputs():
  rng = np.random.default_rng(0)
  ids = rng.integers(5, 97, (2, 12)).astype(np.int32)
  segments = np.array([[1] * 6 + [2] * 6, [1] * 12], np.int32)
  positions = np.array([[1, 3, 8], [2, 4, 6]], np.int32)
  return ids, segments, positions


def test_logits_only_at_masked_positions_and_tied_embeddings():
  model = _model()
  ids, segments, positions = _inputs()
  params = nn.unbox(model.init(jax.random.key(0), ids, segments, positions)['params'])
  logits, state = model.apply({'params': params}, ids, segments, positions,
                              capture_intermediates=True, mutable=['intermediates'])
  assert logits.shape == (2, 3, 97) and logits.dtype == jnp.float32
  # The output projection is the input embedding itself: logits = h E^T + b, where h is the
  # MLM head's hidden state at the masked slots.
  hidden = state['intermediates']['mlm_norm']['__call__'][0]
  assert hidden.shape == (2, 3, 32)
  expected = hidden @ params['token_embed']['embedding'].T + params['mlm_bias']
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
  assert not [p for p in jax.tree.leaves(params) if p.ndim == 2 and 97 in p.shape
              and p is not params['token_embed']['embedding']]


@pytest.mark.parametrize('pre_ln', [True, False])
def test_packed_documents_do_not_attend_to_each_other(pre_ln):
  model = _model(pre_ln=pre_ln)
  ids, segments, positions = _inputs()
  params = model.init(jax.random.key(0), ids, segments, positions)['params']
  before = model.apply({'params': params}, ids, segments, positions)
  changed = ids.copy()
  changed[0, 6:] = 7  # rewrite document 2 of row 0
  after = model.apply({'params': params}, changed, segments, positions)
  # Slots 0 and 1 of row 0 (positions 1, 3) are in document 1: unchanged. Slot 2 (pos 8) moves.
  np.testing.assert_allclose(before[0, :2], after[0, :2], atol=1e-5)
  assert not np.allclose(before[0, 2], after[0, 2])


def test_loss_counts_only_weighted_slots():
  logits = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 10)), jnp.float32)
  labels = jnp.array([[1, 2, 3], [4, 5, 6]])
  weights = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
  sums = text_base.token_loss_sums(logits, labels, weights)
  other_labels = labels.at[0, 2].set(9).at[1, 1:].set(0)  # only unweighted slots differ
  assert float(sums['loss_sum']) == pytest.approx(
      float(text_base.token_loss_sums(logits, other_labels, weights)['loss_sum']))
  assert float(sums['weight']) == 3.0
  logp = jax.nn.log_softmax(logits)
  expected = -(logp[0, 0, 1] + logp[0, 1, 2] + logp[1, 0, 4])
  assert float(sums['loss_sum']) == pytest.approx(float(expected), rel=1e-6)


def test_bf16_compute_keeps_fp32_params_and_computes_in_bf16():
  ids, segments, positions = _inputs()
  model = _model(dtype=jnp.bfloat16)
  params = model.init(jax.random.key(0), ids, segments, positions)['params']
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  logits, state = model.apply({'params': params}, ids, segments, positions,
                              capture_intermediates=True, mutable=['intermediates'])
  assert logits.dtype == jnp.float32  # cast back for a float32 softmax and loss
  mlp_out = state['intermediates']['encoder']['layer_0']['mlp']['wo']['__call__'][0]
  assert mlp_out.dtype == jnp.bfloat16
  reference = _model().apply({'params': params}, ids, segments, positions)
  np.testing.assert_allclose(logits, reference, atol=0.1)  # the same model, rounded
  assert not np.array_equal(logits, reference)


def test_params_carry_logical_axis_names():
  model = _model()
  ids, segments, positions = _inputs()
  boxed = jax.eval_shape(lambda: model.init(jax.random.key(0), ids, segments, positions))
  names = boxed['params']['token_embed']['embedding'].names
  assert names == ('vocab', 'embed')
  assert boxed['params']['encoder']['layer_0']['mlp']['wi']['kernel'].names == ('embed', 'mlp')


def test_presets_are_the_standard_bert_sizes():
  assert {k: (v['num_layers'], v['hidden_size']) for k, v in bert.PRESETS.items()} == {
      'tiny': (2, 128), 'mini': (4, 256), 'small': (4, 512), 'medium': (8, 512),
      'base': (12, 768), 'large': (24, 1024)}


def test_analytic_flops_match_a_hand_count_and_xla():
  from configs import mlm as mlm_config
  from bigmodels.tasks import get_task
  config = mlm_config.get_config()
  config.data.seq_len, config.model.vocab_size = 16, 97
  config.model.num_layers, config.model.hidden_size, config.model.mlp_dim = 1, 8, 32
  config.model.num_heads = 2
  task = get_task(config)
  model = task.build_model()
  k = task.max_predictions  # ceil(16 * 0.15) = 3
  assert k == 3
  per_token = 2 * (4 * 64 + 2 * 8 * 32) + 4 * 16 * 8
  assert task.train_flops_per_example(model) == 3 * (16 * per_token + 3 * (2 * 64 + 2 * 8 * 97))
  # XLA's own count of the forward pass agrees to within the elementwise work it adds.
  batch = task.synthetic_batch(4, np.random.default_rng(0))
  params = nn.unbox(task.init_variables(model, jax.random.key(0), batch)['params'])
  forward = jax.jit(lambda p: model.apply({'params': p}, batch['input_ids'],
                                          batch['segment_ids'], batch['masked_positions']))
  xla = forward.lower(params).compile().cost_analysis()
  xla = xla[0] if isinstance(xla, list) else xla
  analytic_forward = 4 * task.train_flops_per_example(model) / 3
  assert 0.8 < xla['flops'] / analytic_forward < 1.6
