"""The jitted train step: the non-finite guard covers the new state, skipped steps keep the
previous one, and the logged learning rate is the one applied."""

import jax
import numpy as np
import pytest

from bigmodels.train import loop
from bigmodels.train.optimizer import learning_rate_schedule
from bigmodels.train.steps import GUARDED_STATS
from tests.helpers import rows


def _setup(config):
  setup = loop.build(config)
  batch = setup.task.synthetic_batch(config.batch_size, np.random.default_rng(0))
  return setup, setup.init_state(), batch


def _step(setup, state, batch):
  with setup.mesh:
    state, metrics = setup.train_step(state, loop.to_global(batch, setup.batch_sharding))
  return state, jax.device_get(metrics)


def _params(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state.params))]


def _leaves(state):
  """Parameters, optimizer state and model state (not the step counter)."""
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(
      (state.params, state.opt_state, state.model_state)))]


def test_an_infinite_update_from_a_finite_gradient_is_not_accepted(tiny_config):
  tiny_config.optimizer.learning_rate = float('inf')
  tiny_config.skip_nonfinite_steps = 1
  setup, state, batch = _setup(tiny_config)
  before = _params(state)
  state, metrics = _step(setup, state, batch)
  assert np.isfinite(metrics['stats/train_loss']) and np.isfinite(metrics['stats/grad_norm'])
  assert not np.isfinite(metrics['stats/update_norm'])
  for a, b in zip(before, _params(state)):  # the step was skipped: parameters kept
    np.testing.assert_array_equal(a, b)
  assert int(state.step) == 1


def test_a_skipped_step_keeps_the_state_then_training_goes_on(tiny_config):
  tiny_config.skip_nonfinite_steps = 1
  tiny_config.optimizer.warmup_steps = 4
  setup, state, batch = _setup(tiny_config)
  schedule = learning_rate_schedule(tiny_config.optimizer, tiny_config.total_steps)
  state, first = _step(setup, state, batch)
  after_first = _leaves(state)
  poisoned = dict(batch, masked_weights=batch['masked_weights'] * np.nan)
  state, skipped = _step(setup, state, poisoned)
  assert not np.isfinite(skipped['stats/train_loss'])
  for a, b in zip(after_first, _leaves(state), strict=True):  # parameters and Adam moments
    np.testing.assert_array_equal(a, b)
  state, third = _step(setup, state, batch)
  assert int(state.step) == 3 and np.isfinite(third['stats/train_loss'])
  assert all(np.isfinite(x).all() for x in _leaves(state))
  assert any(not np.array_equal(a, b) for a, b in zip(after_first, _params(state)))
  # One update was applied before this one, so the schedule is at its second value (not the
  # third, as the state's step counter would say).
  assert float(first['stats/learning_rate']) == pytest.approx(float(schedule(0)))
  assert float(third['stats/learning_rate']) == pytest.approx(float(schedule(1)))
  assert float(schedule(1)) != pytest.approx(float(schedule(2)))


def test_a_skipped_step_keeps_the_batchnorm_statistics(vision_config):
  vision_config.skip_nonfinite_steps = 1
  setup, state, batch = _setup(vision_config)
  state, _ = _step(setup, state, batch)
  before = _leaves(state)
  assert jax.tree.leaves(state.model_state)
  state, skipped = _step(setup, state, dict(batch, image=batch['image'] * np.nan))
  assert not np.isfinite(skipped['stats/train_loss'])
  for a, b in zip(before, _leaves(state), strict=True):
    np.testing.assert_array_equal(a, b)


def _window_error(**values):
  window = loop._TrainWindow()
  metrics = {k: np.float32(1.0) for k in GUARDED_STATS}
  metrics.update({f'stats/{k}': np.float32(v) for k, v in values.items()})
  window.add(7, metrics)
  with pytest.raises(loop.TrainingDiverged) as info:
    window.flush()
  return str(info.value)


def test_the_stop_message_names_the_first_non_finite_quantity():
  nan = float('nan')
  assert _window_error(train_loss=nan, grad_norm=nan, update_norm=nan,
                       param_norm=nan).startswith('loss became nan at step 7')
  assert _window_error(grad_norm=float('inf'), update_norm=nan).startswith(
      'gradient norm (grad_norm) became inf at step 7')
  assert _window_error(param_norm=float('inf')).startswith(
      'parameter norm after the update (param_norm) became inf at step 7')


def test_the_logged_learning_rate_is_the_one_last_applied(tiny_config, tmp_path):
  tiny_config.optimizer.warmup_steps = 4
  loop.train_and_evaluate(tiny_config, tmp_path / 'run')  # log_every=2, 6 steps
  schedule = learning_rate_schedule(tiny_config.optimizer, tiny_config.total_steps)
  logged = [(r['step'], r['learning_rate']) for r in rows(tmp_path / 'run', 'train')]
  assert logged == [(s, pytest.approx(float(schedule(s - 1)))) for s in (2, 4, 6)]
