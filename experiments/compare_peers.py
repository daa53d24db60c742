"""Training throughput of our models against Hugging Face's Flax and PyTorch implementations
of the same shapes, measured side by side in one process.

  .venv/bin/pip install -r requirements-hf.txt   # transformers 4.x (with Flax) and torch CPU
  python -m experiments.compare_peers --shapes=bert-mini,bert-base,gpt2-mini

Every implementation trains the same shape (random init, dropout off, float32, AdamW) on a
fixed synthetic batch. After each has compiled and run --warmup steps, the timed windows
alternate between implementations (window 1 of each, then window 2 of each, ...), so a machine
whose speed drifts slows all of them alike; the median window counts. Prints a Markdown table
per shape (tokens/s, step time, FLOPs per step and FLOP/s, our speed-up over each) and one JSON
line per measurement. FLOPs are XLA's count of each JAX step (PyTorch's step is the same model
as transformers' Flax twin and gets its count): the speed-up splits into work not done (FLOP
ratio) and work done faster (FLOP/s ratio).
Shapes: bert-mini (L4/H256, vocab 30522, seq 128, batch 32), bert-base (L12/H768, batch 8),
gpt2-mini (L4/H256, vocab 50257, seq 128, batch 16), gpt2-small (L12/H768, batch 8).
"""

from __future__ import annotations

import json
import statistics
import time

from absl import flags

from experiments import cli

SHAPE_NAMES = flags.DEFINE_list('shapes', ['bert-mini'], 'Shapes to compare (see above).')
IMPLS = flags.DEFINE_list('implementations', ['ours', 'hf_flax', 'pytorch'],
                          'Implementations; the first is the reference of the ratios.')
WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed steps per implementation.')
WINDOWS = flags.DEFINE_integer('windows', 5, 'Timed windows per implementation.')
STEPS = flags.DEFINE_integer('steps_per_window', 3, 'Steps per timed window.')


def compare(shape_name: str) -> list[dict]:
  """Times every implementation on one shape; returns a row per implementation."""
  from experiments import peers
  shape = peers.SHAPES[shape_name]
  trainers, build_s = {}, {}
  for name in IMPLS.value:
    started = time.perf_counter()
    trainer = peers.IMPLEMENTATIONS[name](shape)
    for _ in range(WARMUP.value):
      trainer.step()
    trainer.sync()
    build_s[name] = time.perf_counter() - started
    trainers[name] = trainer
  times = {name: [] for name in trainers}
  for _ in range(WINDOWS.value):
    for name, trainer in trainers.items():
      started = time.perf_counter()
      for _ in range(STEPS.value):
        trainer.step()
      trainer.sync()
      times[name].append((time.perf_counter() - started) / STEPS.value)
  rows = []
  for name, windows in times.items():
    step_s = statistics.median(windows)
    # PyTorch runs the same model as transformers' Flax twin: count its FLOPs as the twin's.
    flops = trainers[name].flops or (trainers['hf_flax'].flops if name == 'pytorch' and
                                     'hf_flax' in trainers else None)
    rows.append({'shape': shape_name, 'implementation': name,
                 'tokens_per_s': shape.tokens_per_step / step_s, 'step_ms': step_s * 1e3,
                 'gflop_per_step': flops / 1e9 if flops else None,
                 'gflop_per_s': flops / 1e9 / step_s if flops else None,
                 'setup_and_warmup_s': build_s[name],
                 'windows_ms': [round(t * 1e3, 1) for t in windows]})
  return rows


def main() -> None:
  """Prints the tables and JSON lines."""
  from bigmodels.errors import UserError
  try:
    from experiments import peers
    import torch  # noqa: F401
    import transformers  # noqa: F401
  except ImportError as e:
    raise UserError(f'{e.name} is not installed: pip install -r requirements-hf.txt') from None
  unknown = [s for s in SHAPE_NAMES.value if s not in peers.SHAPES]
  unknown += [i for i in IMPLS.value if i not in peers.IMPLEMENTATIONS]
  if unknown:
    raise UserError(f'unknown shape or implementation {unknown[0]!r}: shapes '
                    f'{", ".join(peers.SHAPES)}; implementations {", ".join(peers.IMPLEMENTATIONS)}')
  for shape_name in SHAPE_NAMES.value:
    rows = compare(shape_name)
    reference = rows[0]
    print(f'\n{shape_name}: {peers.SHAPES[shape_name]}')
    print(f'| implementation | tokens/s | step ms | GFLOP/step | GFLOP/s | '
          f'{reference["implementation"]} speed-up |')
    print('|---|---|---|---|---|---|')
    for row in rows:
      ratio = reference['tokens_per_s'] / row['tokens_per_s']
      gflop = (f'{row["gflop_per_step"]:.3g} | {row["gflop_per_s"]:.1f}'
               if row['gflop_per_step'] else '? | ?')
      print(f'| {row["implementation"]} | {row["tokens_per_s"]:,.0f} | {row["step_ms"]:.1f} | '
            f'{gflop} | {ratio:.2f}x |')
    for row in rows:
      print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}))


if __name__ == '__main__':
  cli.run(main, needs_config=False)
