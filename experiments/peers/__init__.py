"""Peer implementations for experiments.compare_peers: the same model shapes trained by our loop,
by Hugging Face's Flax models (transformers 4.x, optax AdamW) and by its PyTorch models
(torch.optim.AdamW), each as a `Trainer` whose `step()` runs one optimizer step on a fixed
synthetic batch. Random initialisation, dropout off, float32, nothing downloaded.

Each implementation computes what its library computes by default: Hugging Face's masked LMs
project every position onto the vocabulary (the loss then ignores unmasked ones), ours only the
masked positions; that difference is part of what is compared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Shape:
  """One model shape to compare: BERT-style masked LM or GPT-2-style causal LM."""
  family: str  # 'bert' or 'gpt2'
  layers: int
  hidden: int
  heads: int
  vocab: int
  seq_len: int
  batch: int

  @property
  def tokens_per_step(self) -> int:
    return self.batch * self.seq_len


SHAPES = {
    'bert-mini': Shape('bert', 4, 256, 4, 30522, 128, 32),
    'bert-base': Shape('bert', 12, 768, 12, 30522, 128, 8),
    'gpt2-mini': Shape('gpt2', 4, 256, 4, 50257, 128, 16),
    'gpt2-small': Shape('gpt2', 12, 768, 12, 50257, 128, 8),
    # Seconds-long shapes for the tests.
    'bert-test': Shape('bert', 1, 32, 2, 500, 32, 4),
    'gpt2-test': Shape('gpt2', 1, 32, 2, 500, 32, 4),
}
MASK_RATE = 0.15
LEARNING_RATE = 1e-4


@dataclasses.dataclass
class Trainer:
  """`step()` runs one training step (asynchronously where the library allows); `sync()`
  waits for it. `flops`: one step's FLOPs by XLA's cost analysis (JAX implementations)."""
  step: Callable[[], None]
  sync: Callable[[], None]
  flops: float | None = None


def _mlm_batch(shape: Shape, seed: int = 0) -> dict[str, np.ndarray]:
  """Token ids, and labels at MASK_RATE of the positions (-100 elsewhere, as HF expects)."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, shape.vocab, (shape.batch, shape.seq_len))
  labels = np.full_like(ids, -100)
  k = max(1, round(MASK_RATE * shape.seq_len))
  for row in range(shape.batch):
    where = rng.choice(shape.seq_len, k, replace=False)
    labels[row, where] = ids[row, where]
    ids[row, where] = 4  # the [MASK] id of our tokenizers
  return {'input_ids': ids, 'labels': labels}


def _hf_config(shape: Shape) -> Any:
  """The transformers BertConfig / GPT2Config of a shape, dropout off."""
  import transformers
  if shape.family == 'bert':
    return transformers.BertConfig(
        vocab_size=shape.vocab, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, intermediate_size=4 * shape.hidden,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        max_position_embeddings=max(512, shape.seq_len))
  return transformers.GPT2Config(
      vocab_size=shape.vocab, n_embd=shape.hidden, n_layer=shape.layers, n_head=shape.heads,
      n_positions=max(1024, shape.seq_len), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def ours(shape: Shape) -> Trainer:
  """Our loop's compiled train step (configs/mlm.py or configs/causal_lm.py at this shape)."""
  import jax
  from bigmodels.train import loop, profiling
  if shape.family == 'bert':
    from configs import mlm
    config = mlm.get_config()
  else:
    from configs import causal_lm
    config = causal_lm.get_config()
  config.batch_size = shape.batch
  config.data.seq_len = shape.seq_len
  config.model.update(dict(vocab_size=shape.vocab, num_layers=shape.layers,
                           hidden_size=shape.hidden, num_heads=shape.heads,
                           mlp_dim=4 * shape.hidden, dropout_rate=0.0))
  config.optimizer.learning_rate = LEARNING_RATE
  setup = loop.build(config)
  holder = {'state': setup.init_state()}
  batch = loop.to_global(setup.task.synthetic_batch(shape.batch, np.random.default_rng(0)),
                         setup.batch_sharding)
  with setup.mesh:
    compiled = setup.train_step.lower(holder['state'], batch).compile()

  def step():
    with setup.mesh:
      holder['state'], holder['metrics'] = compiled(holder['state'], batch)

  return Trainer(step, lambda: jax.block_until_ready(holder['state']),
                 profiling.compiled_flops(compiled))


def hf_flax(shape: Shape) -> Trainer:
  """transformers' FlaxBertForMaskedLM / FlaxGPT2LMHeadModel with optax AdamW, jitted."""
  import jax
  import jax.numpy as jnp
  import optax
  import transformers
  from bigmodels.train import profiling
  if shape.family == 'bert':
    config = _hf_config(shape)
    model = transformers.FlaxBertForMaskedLM(config, seed=0)
    batch = _mlm_batch(shape)
    inputs = {'input_ids': jnp.asarray(batch['input_ids']),
              'attention_mask': jnp.ones_like(jnp.asarray(batch['input_ids']))}
    labels = jnp.asarray(batch['labels'])

    def loss_fn(params):
      logits = model(**inputs, params=params, train=False).logits
      weights = (labels >= 0).astype(jnp.float32)
      xent = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
      return (xent * weights).sum() / weights.sum()
  else:
    config = _hf_config(shape)
    model = transformers.FlaxGPT2LMHeadModel(config, seed=0)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, shape.vocab,
                                                        (shape.batch, shape.seq_len)))

    def loss_fn(params):
      logits = model(input_ids=ids, params=params, train=False).logits
      return optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], ids[:, 1:]).mean()

  optimizer = optax.adamw(LEARNING_RATE, weight_decay=0.01)
  holder = {'params': model.params}
  holder['opt'] = optimizer.init(holder['params'])

  def train_step(params, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  compiled = jax.jit(train_step).lower(holder['params'], holder['opt']).compile()

  def step():
    holder['params'], holder['opt'], holder['loss'] = compiled(holder['params'], holder['opt'])

  return Trainer(step, lambda: jax.block_until_ready(holder['params']),
                 profiling.compiled_flops(compiled))


def pytorch(shape: Shape) -> Trainer:
  """transformers' PyTorch BertForMaskedLM / GPT2LMHeadModel with torch.optim.AdamW (eager)."""
  import torch
  import transformers
  torch.manual_seed(0)
  if shape.family == 'bert':
    config = _hf_config(shape)
    model = transformers.BertForMaskedLM(config)
    batch = {k: torch.tensor(v) for k, v in _mlm_batch(shape).items()}
  else:
    config = _hf_config(shape)
    model = transformers.GPT2LMHeadModel(config)
    ids = torch.tensor(np.random.default_rng(0).integers(0, shape.vocab,
                                                        (shape.batch, shape.seq_len)))
    batch = {'input_ids': ids, 'labels': ids}
  model.train()
  optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)

  def step():
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

  return Trainer(step, lambda: None)


IMPLEMENTATIONS: dict[str, Callable[[Shape], Trainer]] = {
    'ours': ours, 'hf_flax': hf_flax, 'pytorch': pytorch}
