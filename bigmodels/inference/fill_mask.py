"""Fill-mask for masked-LM runs: the most likely tokens at each [MASK] of a text."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bigmodels.data import tokenizer as tokenizer_lib


def fill_mask(model: Any, params: Any, tok: tokenizer_lib.Tokenizer, text: str, top_k: int = 5
              ) -> list[list[tuple[str, float]]]:
  """For each [MASK] in `text`, in order: the top_k (token, probability) pairs."""
  ids = [tok.cls_id] + tok.encode_masked(text) + [tok.sep_id]
  positions = [i for i, t in enumerate(ids) if t == tok.mask_id]
  if not positions:
    raise ValueError('the text has no [MASK] token: write [MASK] where a word should be '
                     'predicted')
  tokens = jnp.asarray([ids], jnp.int32)
  logits = model.apply({'params': params}, tokens, jnp.ones_like(tokens),
                       jnp.asarray([positions], jnp.int32))
  probs = np.asarray(jax.nn.softmax(logits[0], axis=-1))
  out = []
  for row in probs:
    best = np.argsort(-row)[:top_k]
    out.append([(tok.id_to_piece(int(i)), float(row[i])) for i in best])
  return out
