"""What the text tasks share: the tokenizer and packed rows of `data.*`, the model size preset,
per-process loaders, and the tokenizer file every text run keeps in its workdir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bigmodels import atomic
from bigmodels.data import loader, text, tokenizer as tokenizer_lib
from bigmodels.errors import UserError
from bigmodels.models import transformer
from bigmodels.tasks.base import Batch, Task, TaskData

TOKENIZER_FILE = 'tokenizer.model'


def token_loss_sums(logits: Any, labels: Any, weights: Any) -> dict[str, Any]:
  """Summed cross-entropy, correct predictions and weight over weighted token positions."""
  import jax.numpy as jnp
  import optax
  xent = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  # Correct where the label's logit is the largest: the max is the one the loss's logsumexp
  # takes anyway, so this costs no second pass over the [..., vocab] logits (an argmax does).
  label_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
  correct = (label_logit >= jnp.max(logits, axis=-1)).astype(jnp.float32)
  return {'loss_sum': jnp.sum(xent * weights), 'correct': jnp.sum(correct * weights),
          'weight': jnp.sum(weights)}


def token_summary(sums: dict[str, Any]) -> dict[str, float]:
  """loss, token accuracy and perplexity from token_loss_sums totals."""
  import math
  weight = max(float(sums['weight']), 1.0)
  loss = float(sums['loss_sum']) / weight
  return {'loss': loss, 'accuracy': float(sums['correct']) / weight,
          'perplexity': math.exp(min(loss, 50.0))}


class TextTask(Task):
  """Base of the language-model tasks (masked, causal, span corruption) on packed text."""

  # Packed rows with a [CLS] per document (causal LMs) rather than per row.
  bos_per_document = False
  # Hugging Face architectures `init_from=hf:FOLDER` may load into this task's model.
  hf_kinds: tuple[str, ...] = ()

  def __init__(self, config):
    super().__init__(config)
    self.tokenizer: Any = None  # tokenizer_lib.Tokenizer, or a checkpoint's HFTokenizer.
    if 'size' in config.model:
      transformer.resolve_size(config.model)
    self._apply_hf_architecture()

  @property
  def ids(self) -> Any:
    """The special token ids (pad_id, cls_id, sep_id, mask_id, num_special) of the tokenizer,
    or of our own tokenizers before it is loaded."""
    return self.tokenizer or tokenizer_lib.Tokenizer

  def _apply_hf_architecture(self) -> None:
    """For init_from=hf:FOLDER: the model block takes the checkpoint's architecture."""
    from bigmodels.hf import checkpoint as hf
    c = self.config
    folder = hf.strip_prefix(c.get('init_from') or '')
    if folder is None:
      return
    kind, fields = hf.read_architecture(folder)
    if kind not in self.hf_kinds or c.model.get('arch', 'transformer') != 'transformer':
      takes = ' or '.join(self.hf_kinds) or 'no Hugging Face'
      raise UserError(f'init_from={c.init_from} holds a {kind} checkpoint, but task {c.task!r}'
                      f' (model.arch={c.model.get("arch", "transformer")}) takes {takes} '
                      'checkpoints: choose the matching config')
    changed = {k: v for k, v in fields.items() if k in c.model and c.model[k] != v}
    for key, value in changed.items():
      c.model[key] = value
    if changed:
      print(f'note: model set from {folder}/config.json: '
            + ', '.join(f'{k}={v}' for k, v in changed.items()), flush=True)

  def hf_tokenizer(self) -> Any:
    """The tokenizer of an init_from=hf: checkpoint, or of an init_from run that kept one;
    else None (the run uses our own tokenizer)."""
    from bigmodels.hf import checkpoint as hf
    from bigmodels.hf.tokenizer import RUN_FOLDER, HFTokenizer
    init_from = self.config.get('init_from') or ''
    folder = hf.strip_prefix(init_from)
    if folder is not None:
      return HFTokenizer(folder, hf.read_architecture(folder)[0])
    if init_from and (Path(init_from) / RUN_FOLDER).is_dir():
      return HFTokenizer(Path(init_from) / RUN_FOLDER)
    return None

  def check_tokenizer_fits(self, tok: Any) -> None:
    """UserError if a checkpoint's tokenizer has ids beyond the model's vocabulary."""
    if tok.vocab_size > self.config.model.vocab_size:
      raise UserError(f'the tokenizer of {tok.folder} has {tok.vocab_size} tokens but the '
                      f'model only {self.config.model.vocab_size}: use the checkpoint\'s own '
                      'tokenizer files')

  def check_config(self) -> None:
    c = self.config
    if 'size' in c.model and c.model.size not in transformer.SIZES:
      raise UserError(f'unknown model.size={c.model.size!r}: choose one of '
                      f'{", ".join(transformer.SIZES)}')
    if 'max_len' in c.model and c.data.seq_len > c.model.max_len:
      raise UserError(f'data.seq_len={c.data.seq_len} exceeds model.max_len={c.model.max_len}: '
                      'lower data.seq_len or raise model.max_len')
    if c.data.seq_len < 8:
      raise UserError(f'data.seq_len={c.data.seq_len} is too short: use at least 8')
    if c.model.vocab_size <= tokenizer_lib.NUM_SPECIAL + 1:
      raise UserError(f'model.vocab_size={c.model.vocab_size} is too small: use at least 100')
    if not 0.0 <= c.model.get('dropout_rate', 0.0) < 1.0:
      raise UserError(f'model.dropout_rate={c.model.dropout_rate} must be in [0, 1)')
    if 'remat' in c.model:
      try:
        transformer.remat_policy(c.model.remat)
      except ValueError as e:
        raise UserError(str(e)) from None

  def extra_vocab(self) -> int:
    """Ids the model needs beyond the tokenizer's (e.g. T5 sentinels)."""
    return 0

  def tokenizer_vocab_size(self) -> int:
    """The tokenizer size asked of the data preparation."""
    return self.config.model.vocab_size - self.extra_vocab()

  def prepare_rows(self) -> text.TextData:
    """Tokenizer and packed rows of both splits; lowers model.vocab_size to what the corpus
    filled (recorded in config.json)."""
    c = self.config
    hf_tok = self.hf_tokenizer()
    if hf_tok is not None:
      self.check_tokenizer_fits(hf_tok)
    data = text.prepare_text_data(c.data, self.tokenizer_vocab_size(), self.bos_per_document,
                                  tokenizer=hf_tok)
    self.tokenizer = data.tokenizer
    wanted = self.tokenizer_vocab_size()
    if data.tokenizer.vocab_size < wanted and hf_tok is None:
      used = data.tokenizer.vocab_size + self.extra_vocab()
      extra = f' ({self.extra_vocab()} of them reserved)' if self.extra_vocab() else ''
      print(f'note: the corpus filled only {data.tokenizer.vocab_size} tokens of the requested '
            f'model.vocab_size={c.model.vocab_size}{extra}; the model is built with '
            f'model.vocab_size={used} (recorded in config.json)', flush=True)
      c.model.vocab_size = used
    return data

  def text_task_data(self, data: text.TextData, process_index: int, process_count: int,
                     train_transform: Any, eval_transform: Any, eval_pad_row: dict) -> TaskData:
    """Per-process train iterator and eval batches of packed rows, and the description."""
    c = self.config
    train = loader.train_dataset(
        data.train, c.batch_size, c.seed, train_transform, process_index=process_index,
        process_count=process_count, num_threads=c.data.num_threads, prefetch=c.data.prefetch)
    evals = loader.eval_batches(data.eval, c.batch_size, c.seed + 1, eval_transform,
                                pad_row=eval_pad_row, max_batches=c.eval_steps,
                                process_index=process_index, process_count=process_count)
    n_train, n_eval = len(data.train['tokens']), len(data.eval['tokens'])
    description = (f'{data.description}: {n_train} train rows, {n_eval} held-out rows of '
                   f'{c.data.seq_len} tokens ({n_train * c.data.seq_len / 1e6:.2f}M train '
                   f'tokens), vocab {data.tokenizer.vocab_size}, cache {data.prepared_dir}')
    return TaskData(train=train, eval=evals, description=description)

  def save_assets(self, workdir: Path) -> None:
    """Keeps the tokenizer beside the checkpoints (for predict and fine-tuning): ours as
    tokenizer.model, a checkpoint's as its files in hf_tokenizer/."""
    from bigmodels.hf.tokenizer import RUN_FOLDER, HFTokenizer
    if isinstance(self.tokenizer, HFTokenizer):
      self.tokenizer.save(workdir / RUN_FOLDER)
    elif self.tokenizer is not None:
      atomic.write_bytes_atomic(workdir / TOKENIZER_FILE, self.tokenizer.model_proto)

  def tokens_per_example(self) -> int:
    return self.config.data.seq_len

  def random_rows(self, batch_size: int, rng: np.random.Generator) -> Batch:
    """Random packed rows (two documents each) with the real rows' shapes."""
    seq_len = self.config.data.seq_len
    vocab = self.tokenizer_vocab_size()
    tokens = rng.integers(self.ids.num_special, vocab, (batch_size, seq_len))
    tokens[:, 0] = self.ids.cls_id
    segments = np.ones((batch_size, seq_len), np.int32)
    segments[:, seq_len // 2:] = 2
    return {'tokens': tokens.astype(np.int32), 'segment_ids': segments}
