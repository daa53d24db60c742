"""Generate text from a causal-LM or encoder-decoder run, or fill masks with a masked-LM run.

  python -m experiments.predict --workdir=runs/causal_lm --prompt="The list type" \
      [--prompt="Another prompt" ...] [--max_new_tokens=64 --temperature=0.8 --top_k=40
      --top_p=0.95 --seed=0 --num_samples=2]
  python -m experiments.predict --workdir=runs/t5_span --prompt="the [MASK] function returns"
  python -m experiments.predict --workdir=runs/mlm --text="the [MASK] module returns a list"

Loads the newest checkpoint. Decoding is jitted with a key/value cache (--nocache re-runs the
whole sequence per token, for comparison). Several --prompt flags decode as one batch.
"""

from __future__ import annotations

import time

from absl import flags

from experiments import cli

WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder to load (its newest checkpoint).')
PROMPT = flags.DEFINE_multi_string('prompt', [], 'Text to continue (causal LM), or to fill in '
                                   'at each [MASK] (encoder-decoder); repeat for a batch.')
TEXT = flags.DEFINE_string('text', None, 'Masked-LM runs: a text with [MASK] tokens to fill.')
MAX_NEW_TOKENS = flags.DEFINE_integer('max_new_tokens', 64, 'Tokens to generate per prompt.')
TEMPERATURE = flags.DEFINE_float('temperature', 1.0, 'Sampling temperature; 0 = greedy.')
TOP_K = flags.DEFINE_integer('top_k', 0, 'Sample among the k likeliest tokens (0 = all); '
                             'for --text, how many tokens to list per mask (0 = 5).')
TOP_P = flags.DEFINE_float('top_p', 1.0, 'Nucleus sampling: the smallest set of tokens whose '
                           'probability reaches p (1.0 = off).')
SEED = flags.DEFINE_integer('seed', 0, 'Random seed of the sampling.')
NUM_SAMPLES = flags.DEFINE_integer('num_samples', 1, 'Continuations per prompt.')
NOCACHE = flags.DEFINE_bool('nocache', False, 'Decode without the key/value cache (slow).')


def main() -> None:
  """Loads the run and prints continuations or mask fillings."""
  from bigmodels.errors import UserError
  from bigmodels.inference import predict
  if not WORKDIR.value:
    raise UserError('--workdir is required: the folder of a training run')
  if MAX_NEW_TOKENS.value < 1 or NUM_SAMPLES.value < 1:
    raise UserError('--max_new_tokens and --num_samples must be at least 1')
  if not 0.0 < TOP_P.value <= 1.0 or TEMPERATURE.value < 0 or TOP_K.value < 0:
    raise UserError('--top_p must be in (0, 1], --temperature and --top_k >= 0')
  started = time.perf_counter()
  predict.run(WORKDIR.value, prompts=PROMPT.value, text=TEXT.value,
              max_new_tokens=MAX_NEW_TOKENS.value, temperature=TEMPERATURE.value,
              top_k=TOP_K.value, top_p=TOP_P.value, seed=SEED.value,
              num_samples=NUM_SAMPLES.value, use_cache=not NOCACHE.value)
  print(f'({time.perf_counter() - started:.1f}s in all)')


if __name__ == '__main__':
  cli.run(main, needs_config=False)
