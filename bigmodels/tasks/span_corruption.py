"""T5-style span-corruption pre-training of an encoder-decoder on packed text."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bigmodels.data import spans, tokenizer as tokenizer_lib
from bigmodels.errors import UserError
from bigmodels.models import t5
from bigmodels.models.transformer import TransformerConfig
from bigmodels.tasks.base import Batch, TaskData
from bigmodels.tasks.text_base import TextTask, token_loss_sums, token_summary


class SpanCorruptionTask(TextTask):
  """Corrupted input -> encoder; decoder predicts sentinels and the spans they replaced.
  Metrics: target-token loss, accuracy and perplexity on held-out documents."""

  display_metrics = ('loss', 'accuracy', 'perplexity')

  def check_config(self) -> None:
    super().check_config()
    d = self.config.data
    if not 0.0 < d.noise_density < 0.5:
      raise UserError(f'data.noise_density={d.noise_density} must be in (0, 0.5), e.g. 0.15')
    if d.mean_span_length < 1:
      raise UserError(f'data.mean_span_length={d.mean_span_length} must be >= 1, e.g. 3')
    if d.num_sentinels < 1:
      raise UserError(f'data.num_sentinels={d.num_sentinels} must be >= 1')
    if self.target_len > self.config.model.max_len:
      raise UserError(f'the target length {self.target_len} exceeds model.max_len='
                      f'{self.config.model.max_len}')

  def extra_vocab(self) -> int:
    return self.config.data.num_sentinels

  @property
  def target_len(self) -> int:
    d = self.config.data
    return d.target_len or spans.target_length(d.seq_len, d.noise_density, d.mean_span_length)

  def sentinel_id(self, k: int) -> int:
    """Id of sentinel k (k = 0 is the top id of the vocabulary)."""
    return self.config.model.vocab_size - 1 - k

  def corrupt(self, batch: Batch, rng: np.random.Generator) -> Batch:
    """Span-corrupts a batch of packed rows."""
    d = self.config.data
    return spans.corrupt_rows(
        batch['tokens'], batch['segment_ids'], rng, noise_density=d.noise_density,
        mean_span_length=d.mean_span_length, target_len=self.target_len,
        sentinel_start=self.sentinel_id(0), max_sentinels=d.num_sentinels,
        bos_id=tokenizer_lib.CLS_ID, eos_id=tokenizer_lib.SEP_ID, pad_id=tokenizer_lib.PAD_ID)

  def prepare_data(self, process_index: int, process_count: int) -> TaskData:
    self.check_config()
    data = self.prepare_rows()
    pad_row = {'tokens': tokenizer_lib.PAD_ID, 'segment_ids': 0}
    return self.text_task_data(data, process_index, process_count, self.corrupt, self.corrupt,
                               pad_row)

  def transformer_config(self, **overrides) -> TransformerConfig:
    """The model's TransformerConfig (overrides e.g. decode=True for generation)."""
    return TransformerConfig.from_model_config(self.config.model, **overrides)

  def build_model(self, decode: bool = False) -> nn.Module:
    self.check_config()
    return t5.EncoderDecoder(self.transformer_config(decode=decode))

  def synthetic_batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
    return self.corrupt(self.random_rows(batch_size, rng), rng)

  def init_variables(self, model: nn.Module, rng: jax.Array, batch: Batch) -> dict:
    return model.init({'params': rng, 'dropout': rng}, batch['inputs'], batch['input_segments'],
                      batch['decoder_inputs'], batch['target_segments'], train=False)

  def loss_and_metrics(self, model, variables, batch, rng, train):
    logits = model.apply(variables, batch['inputs'], batch['input_segments'],
                         batch['decoder_inputs'], batch['target_segments'], train=train,
                         rngs={'dropout': rng})
    sums = token_loss_sums(logits, batch['targets'], batch['target_weights'])
    return sums['loss_sum'] / jnp.maximum(sums['weight'], 1.0), sums, {}

  def summarize(self, sums):
    return token_summary(sums)

  def train_flops_per_example(self, model: nn.Module) -> float:
    """3 x forward matmul FLOPs: encoder layers over the input, decoder layers (with
    cross-attention) and the vocabulary projection over the target."""
    m = self.config.model
    t, s, h, f = self.config.data.seq_len, self.target_len, m.hidden_size, m.mlp_dim
    dec_layers = m.num_decoder_layers or m.num_layers
    encoder = m.num_layers * t * (2 * (4 * h * h + 2 * h * f) + 4 * t * h)
    decoder = dec_layers * s * (2 * (8 * h * h + 2 * h * f) + 4 * s * h + 4 * t * h)
    return 3.0 * (encoder + decoder + s * 2 * h * m.vocab_size)
