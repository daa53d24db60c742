"""What `experiments.predict` does for each kind of run: generate (causal LM), fill spans
(encoder-decoder) or fill masks (masked LM), printing the results."""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from bigmodels.errors import UserError
from bigmodels.inference import fill_mask, generate
from bigmodels.inference.run import LoadedRun, load_run


def _timed(fn, *args, **kwargs):
  """(result, seconds of a second call): the first call compiles, the second is timed."""
  jax.block_until_ready(fn(*args, **kwargs))
  started = time.perf_counter()
  out = jax.block_until_ready(fn(*args, **kwargs))
  return out, time.perf_counter() - started


def generate_tokens(run: LoadedRun, prompts: Sequence[str], *, max_new_tokens: int,
                    sampling: generate.Sampling, seed: int, num_samples: int,
                    use_cache: bool = True) -> tuple[list[list[int]], float]:
  """Continuations (token ids, cut at end of text) of each prompt num_samples times, and the
  steady-state seconds the batch took."""
  task, tok = run.task, run.tokenizer
  rng = jax.random.key(seed)
  batch_prompts = [p for p in prompts for _ in range(num_samples)]
  if run.config.task == 'causal_lm':
    if run.config.model.arch != 'transformer':
      raise UserError('predict generates with Transformer runs (causal_lm, t5_span); this '
                      'run is an LSTM')
    ids = [[tok.cls_id] + tok.encode(p) for p in batch_prompts]
    tokens, valid = generate.left_pad(ids, tok.pad_id)
    if tokens.shape[1] + max_new_tokens > run.config.model.max_len:
      raise UserError(f'prompt ({tokens.shape[1]} tokens) + max_new_tokens={max_new_tokens} '
                      f'exceed the model\'s {run.config.model.max_len} positions: shorten them')
    model = task.build_model(decode=use_cache)
    fn = generate.decode_with_cache if use_cache else generate.decode_without_cache
    out, seconds = _timed(fn, model, run.params, jnp.asarray(tokens), jnp.asarray(valid), rng,
                          max_new_tokens, sampling)
  elif run.config.task == 'span_corruption':
    rows = []
    for p in batch_prompts:
      ids, k = [], 0
      for t in tok.encode_masked(p):
        if t == tok.mask_id:
          t, k = task.sentinel_id(k), k + 1
        ids.append(t)
      rows.append(ids)
    longest = max(len(r) for r in rows)
    inputs = np.zeros((len(rows), longest), np.int32)
    for i, r in enumerate(rows):
      inputs[i, :len(r)] = r
    if max(longest, max_new_tokens) > run.config.model.max_len:
      raise UserError(f'prompt or max_new_tokens exceed the model\'s '
                      f'{run.config.model.max_len} positions: shorten them')
    model = task.build_model(decode=use_cache)
    out, seconds = _timed(generate.seq2seq_decode, model, run.params, jnp.asarray(inputs),
                          jnp.asarray((inputs != 0).astype(np.int32)), rng,
                          tok.cls_id, max_new_tokens, sampling, use_cache)
  else:
    raise UserError(f'predict generates from causal_lm and span_corruption runs; this run is '
                    f'{run.config.task!r} (masked-LM runs: use --text with [MASK])')
  return generate.cut_at(np.asarray(out), tok.sep_id), seconds


def _span_text(run: LoadedRun, ids: list[int]) -> str:
  """Decoded target of an encoder-decoder, sentinels shown as <extra_id_k>."""
  parts, current = [], []
  for t in ids:
    if t >= run.task.tokenizer_vocab_size():
      if current:
        parts.append(run.tokenizer.decode(current))
        current = []
      parts.append(f'<extra_id_{run.task.sentinel_id(0) - t}>')
    else:
      current.append(t)
  if current:
    parts.append(run.tokenizer.decode(current))
  return ' '.join(parts)


def run(workdir: str, *, prompts: Sequence[str], text: str | None, max_new_tokens: int,
        temperature: float, top_k: int, top_p: float, seed: int, num_samples: int,
        use_cache: bool = True) -> None:
  """Loads the run in `workdir` and prints what it predicts."""
  loaded = load_run(workdir)
  print(f'{workdir}: {loaded.config.task} run, checkpoint at step {loaded.step}')
  if loaded.config.task == 'mlm':
    if not text:
      raise UserError('this is a masked-LM run: pass --text="... [MASK] ..." to fill masks')
    model = loaded.task.build_model()
    try:
      filled = fill_mask.fill_mask(model, loaded.params, loaded.tokenizer, text, top_k or 5)
    except ValueError as e:
      raise UserError(str(e)) from None
    for i, candidates in enumerate(filled):
      shown = ', '.join(f'{piece.replace(chr(9601), " ").strip() or repr(piece)} {p:.3f}'
                        for piece, p in candidates)
      print(f'[MASK] {i + 1}: {shown}')
    return
  if text:
    raise UserError('--text fills masks of masked-LM runs; for this run use --prompt')
  if not prompts:
    raise UserError('pass --prompt="..." (repeat it for a batch)')
  sampling = generate.Sampling(temperature, top_k, top_p)
  outputs, seconds = generate_tokens(loaded, prompts, max_new_tokens=max_new_tokens,
                                     sampling=sampling, seed=seed, num_samples=num_samples,
                                     use_cache=use_cache)
  batch_prompts = [p for p in prompts for _ in range(num_samples)]
  for prompt, ids in zip(batch_prompts, outputs):
    if loaded.config.task == 'span_corruption':
      print(f'--- {prompt}\n{_span_text(loaded, ids)}')
    else:
      print(f'--- {prompt}\n{prompt}{"" if not ids else " "}{loaded.tokenizer.decode(ids)}')
  generated = len(outputs) * max_new_tokens
  print(f'decoded {len(outputs)} x {max_new_tokens} tokens in {seconds:.2f}s after compiling '
        f'({generated / seconds:.0f} tokens/s, {"with" if use_cache else "without"} the '
        'key/value cache)')
