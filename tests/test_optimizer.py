"""The optimizer: learning-rate schedules, the weight-decay mask, and what a step applies."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bigmodels.models import bert, classifiers
from bigmodels.models.transformer import TransformerConfig
from bigmodels.train import optimizer


def _opt_config(schedule, **kw):
  values = dict(name='adamw', learning_rate=1.0, schedule=schedule, warmup_steps=4,
                end_lr_fraction=0.1, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01,
                grad_clip_norm=1.0)
  values.update(kw)
  return ml_collections.ConfigDict(values)


def _values(schedule, steps):
  return [float(schedule(i)) for i in steps]


def test_warmup_then_linear_decay_to_the_end_fraction():
  schedule = optimizer.learning_rate_schedule(_opt_config('linear'), total_steps=12)
  # Warm-up: peak / 4 at the first update, rising linearly to the peak at update 3.
  np.testing.assert_allclose(_values(schedule, range(4)), [0.25, 0.5, 0.75, 1.0], rtol=1e-6)
  # Decay over the remaining 8 updates: from the peak down to 0.1 x peak, then held.
  expected = [1.0 - 0.9 * k / 8 for k in range(9)] + [0.1, 0.1]
  np.testing.assert_allclose(_values(schedule, range(4, 15)), expected, rtol=1e-6)


def test_cosine_decay_and_constant_schedules():
  cosine = optimizer.learning_rate_schedule(_opt_config('cosine'), total_steps=12)
  expected = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(9)]
  np.testing.assert_allclose(_values(cosine, range(4, 13)), expected, rtol=1e-6)
  assert float(cosine(8)) == pytest.approx(0.55)
  constant = optimizer.learning_rate_schedule(_opt_config('constant'), total_steps=12)
  np.testing.assert_allclose(_values(constant, [0, 3, 4, 11, 50]), [0.25, 1, 1, 1, 1],
                             rtol=1e-6)
  no_warmup = optimizer.learning_rate_schedule(_opt_config('linear', warmup_steps=0,
                                                           end_lr_fraction=0.0), 10)
  np.testing.assert_allclose(_values(no_warmup, [0, 5, 10]), [1.0, 0.5, 0.0], atol=1e-7)
  with pytest.raises(Exception, match="unknown optimizer.schedule='step'"):
    optimizer.learning_rate_schedule(_opt_config('step'), 10)


def _leaf_names(tree):
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _bert_params():
  model = bert.BertMLM(TransformerConfig(vocab_size=50, hidden_size=16, num_layers=1,
                                         num_heads=2, mlp_dim=32, max_len=8))
  ids = jnp.ones((1, 8), jnp.int32)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), ids, ids, ids[:, :2]))
  return jax.tree.map(lambda x: x.value if hasattr(x, 'value') else x, variables['params'],
                      is_leaf=lambda x: hasattr(x, 'value'))


def _classifier_params(name):
  model = classifiers.build_classifier(name, 10, width=4, depth=10 if name == 'wrn' else 0)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 12, 12, 1))))
  return nn.unbox(variables['params'])


@pytest.mark.parametrize('family', ['bert', 'cnn', 'cnn_bn', 'mlp', 'resnet18', 'wrn'])
def test_weight_decay_goes_to_kernels_and_embeddings_only(family):
  params = _bert_params() if family == 'bert' else _classifier_params(family)
  mask = _leaf_names(optimizer.decay_mask(params))
  shapes = _leaf_names(params)
  assert mask.keys() == shapes.keys()
  for name, decayed in mask.items():
    leaf = name.split('/')[-1]
    assert decayed == (leaf in ('kernel', 'embedding', 'position_embed')), name
  assert any(mask.values()) and not all(mask.values())
  if family == 'bert':
    # Attention biases are [heads, head_dim] matrices: decided by role, not by rank.
    query_bias = 'encoder/layer_0/attention/query/bias'
    assert shapes[query_bias].ndim == 2 and not mask[query_bias]
    assert mask['encoder/layer_0/attention/query/kernel'] and mask['position_embed']
    assert not mask['mlm_bias'] and not mask['encoder/layer_0/mlp_norm/scale']


def test_adamw_leaves_undecayed_parameters_alone():
  """With zero gradients, only weight decay moves parameters: kernels shrink, biases stay."""
  params = {'dense': {'kernel': jnp.ones((2, 3)), 'bias': jnp.ones((2, 3))}}
  tx, _ = optimizer.make_optimizer(_opt_config('constant', warmup_steps=0,
                                               weight_decay=0.5), 10)
  state = tx.init(params)
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
  np.testing.assert_allclose(updates['dense']['kernel'], -0.5)
  np.testing.assert_allclose(updates['dense']['bias'], 0.0)


def test_applied_learning_rate_follows_the_optimizer_count():
  tx, schedule = optimizer.make_optimizer(_opt_config('linear'), 12)
  params = {'w': jnp.ones(3)}
  state = tx.init(params)
  assert float(optimizer.applied_learning_rate(schedule, state)) == pytest.approx(0.25)
  for _ in range(2):
    _, state = tx.update({'w': jnp.ones(3)}, state, params)
  assert float(optimizer.applied_learning_rate(schedule, state)) == pytest.approx(0.75)
