"""Time the compiled train step at steady state on synthetic batches of the config's shape.

  python -m experiments.benchmark --config=configs/mlm.py:size=mini --config.batch_size=32 \
      --config.data.seq_len=128 --config.model.vocab_size=30522

Prints one JSON line: tokens_per_s (or examples_per_s), step_ms (median over windows, after
warm-up), peak_mem_mb, mfu (the task's analytic training FLOPs per example x batch / step time /
(the device's dense bf16 peak FLOP/s x devices); null where the peak is unknown, e.g. on CPU),
devices, backend, plus compile_s, host_batch_ms (time to make and mask one host batch, the
input pipeline's per-step work), model_tflops_per_s and xla_step_gflops (XLA's own FLOP count of
the step, which misses the FLOPs of cuBLAS/cuDNN calls on GPU).

--input also times the step fed by the config's real input pipeline (data preparation, grain
workers, masking or augmentation, host-to-device transfer) and adds input_step_ms (median
window) and input_wait_share (the share of that step time the loop spends blocked waiting for
the next batch). --profile=DIR records one more window with jax.profiler into DIR (open with
TensorBoard's profile plugin or Perfetto); it is not one of the timed windows. It also writes
DIR/op_summary.md (and prints it to stderr): the traced op time per step by kind of work
(matmul, elementwise, copy/transpose, gather/scatter, ...) and by the model code each op came
from, forward and backward (bigmodels.train.profiling).

--compile_only lowers and compiles the train step from abstract shapes (no parameter is
allocated, nothing runs) and prints compile_s and XLA's per-device memory estimate: a cheap
check that a big config on a big mesh still compiles, e.g. BERT-base on 8 fake CPU devices:

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m experiments.benchmark \
      --config=configs/mlm.py:size=base --config.mesh.shape='(1, 4, 2)' --compile_only
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from typing import Any

from absl import flags

from experiments import cli

WARMUP = flags.DEFINE_integer('warmup', 3, 'Untimed steps after compilation.')
WINDOWS = flags.DEFINE_integer('windows', 5, 'Timed windows; the median window is reported.')
STEPS = flags.DEFINE_integer('steps_per_window', 10, 'Steps in each timed window.')
INPUT = flags.DEFINE_bool('input', False, 'Also time the step fed by the real input pipeline '
                          'and report the share of time spent waiting for data.')
COMPILE_ONLY = flags.DEFINE_bool('compile_only', False, 'Only lower and compile the step from '
                                  'abstract shapes; print compile time and memory estimate.')
PROFILE = flags.DEFINE_string('profile', None, 'Write a jax.profiler trace of one extra window '
                              'to this folder (TensorBoard profile plugin / Perfetto).')

# Dense bf16 peak FLOP/s per device, by jax device_kind substring.
PEAK_FLOPS = {'H200': 989e12, 'H100': 989e12, 'A100': 312e12, 'L4': 121e12, 'A10G': 125e12,
              'V100': 125e12, 'TPU v4': 275e12, 'TPU v5 lite': 197e12, 'TPU v5': 459e12,
              'TPU v6': 918e12}


def peak_flops(device: Any) -> float | None:
  """The device's peak dense bf16 FLOP/s, or None if unknown (e.g. CPU)."""
  if device.platform == 'cpu':
    return None
  for name, flops in PEAK_FLOPS.items():
    if name in device.device_kind:
      return flops
  return None


def peak_memory_mb(devices: list) -> tuple[float, str]:
  """Peak device memory if the backend reports it, else this process's peak RSS."""
  stats = [d.memory_stats() or {} for d in devices]
  peaks = [s.get('peak_bytes_in_use', 0) for s in stats]
  if any(peaks):
    return max(peaks) / 2**20, 'device'
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'host_rss'


def time_with_input(setup: Any, compiled: Any, state: Any, windows: int, steps: int
                    ) -> tuple[Any, dict[str, Any]]:
  """Times `compiled` fed by the task's real, per-process input pipeline: the median window's
  step time, and the share of it spent blocked on the next batch (fetch + transfer)."""
  import jax
  from bigmodels.train import loop
  data = setup.task.prepare_data(jax.process_index(), jax.process_count())
  batches = iter(data.train)
  state, metrics = compiled(state, loop.to_global(next(batches), setup.batch_sharding))
  jax.block_until_ready((state, metrics))  # the workers are started and warm
  times, waits = [], []
  for _ in range(windows):
    waited = 0.0
    started = time.perf_counter()
    for _ in range(steps):
      before = time.perf_counter()
      batch = loop.to_global(next(batches), setup.batch_sharding)
      waited += time.perf_counter() - before
      state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append((time.perf_counter() - started) / steps)
    waits.append(waited / steps)
  middle = sorted(range(windows), key=lambda i: times[i])[windows // 2]
  return state, {'input_step_ms': times[middle] * 1e3,
                 'input_wait_share': waits[middle] / times[middle],
                 'input_windows_ms': [round(t * 1e3, 3) for t in times]}


def compile_only(config: Any) -> dict[str, Any]:
  """Compiles the train step for the abstract state and batch; runs and allocates nothing."""
  import jax
  import numpy as np
  from bigmodels.train import loop, profiling
  setup = loop.build(config)
  example = setup.task.synthetic_batch(config.batch_size, np.random.default_rng(0))
  batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=setup.batch_sharding)
           for k, v in example.items()}
  with setup.mesh:
    started = time.perf_counter()
    compiled = setup.train_step.lower(setup.abstract_state, batch).compile()
    compile_s = time.perf_counter() - started
  memory = compiled.memory_analysis()
  per_device = None
  if memory is not None:
    per_device = sum(getattr(memory, f'{kind}_size_in_bytes', 0) for kind in
                     ('argument', 'output', 'temp', 'generated_code')) / 2**20
  n_params = sum(x.size for x in jax.tree.leaves(setup.abstract_state.params))
  return {'compile_s': compile_s, 'estimated_mem_mb_per_device': per_device,
          'params_m': n_params / 1e6, 'devices': jax.device_count(),
          'mesh': dict(setup.mesh.shape),
          'xla_step_gflops': (profiling.compiled_flops(compiled) or 0) / 1e9}


def write_profile_summary(compiled: Any, profile_dir: str, steps: int) -> str:
  """Writes PROFILE_DIR/op_summary.md (op time per step by kind of work and by model code,
  bigmodels.train.profiling), prints it to stderr and returns its path."""
  import sys
  from pathlib import Path
  from bigmodels import atomic
  from bigmodels.train import profiling
  lines = profiling.format_summary(profiling.summarize(compiled.as_text(), profile_dir, steps))
  path = Path(profile_dir) / 'op_summary.md'
  atomic.write_text_atomic(path, '\n'.join(lines) + '\n')
  print('\n'.join(lines), file=sys.stderr)
  return str(path)


def run_benchmark(config: Any, warmup: int, windows: int, steps: int, with_input: bool = False,
                  profile_dir: str | None = None) -> dict[str, Any]:
  """Builds the real training setup and times its train step; returns the result row."""
  import jax
  import numpy as np
  from bigmodels.train import loop, profiling

  setup = loop.build(config)
  state = setup.init_state()
  task = setup.task
  rng = np.random.default_rng(config.seed)
  local = config.batch_size // jax.process_count()
  started = time.perf_counter()
  host_batch = task.synthetic_batch(local, rng)
  host_batch_ms = (time.perf_counter() - started) * 1e3
  batch = loop.to_global(host_batch, setup.batch_sharding)
  with setup.mesh:
    started = time.perf_counter()
    compiled = setup.train_step.lower(state, batch).compile()
    compile_s = time.perf_counter() - started
    for _ in range(warmup):
      state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times = []
    for _ in range(windows):
      started = time.perf_counter()
      for _ in range(steps):
        state, metrics = compiled(state, batch)
      jax.block_until_ready((state, metrics))
      times.append((time.perf_counter() - started) / steps)
    extra = {}
    if with_input:
      state, extra = time_with_input(setup, compiled, state, windows, steps)
    if profile_dir:
      with jax.profiler.trace(profile_dir):
        for _ in range(steps):
          state, metrics = compiled(state, batch)
        jax.block_until_ready((state, metrics))
      extra['profile_dir'] = profile_dir
      extra['profile_summary'] = write_profile_summary(compiled, profile_dir, steps)
  step_s = statistics.median(times)
  devices = jax.devices()
  per_example = task.train_flops_per_example(setup.model)
  model_flops = per_example * config.batch_size / step_s if per_example else None
  peak = peak_flops(devices[0])
  mfu = model_flops / (peak * len(devices)) if model_flops and peak else None
  xla_flops = profiling.compiled_flops(compiled)
  mem_mb, mem_kind = peak_memory_mb(jax.local_devices())
  tokens = task.tokens_per_example()
  row = {'tokens_per_s' if tokens else 'examples_per_s':
             config.batch_size * (tokens or 1) / step_s,
         'step_ms': step_s * 1e3, 'peak_mem_mb': mem_mb, 'peak_mem_kind': mem_kind,
         'mfu': mfu, 'devices': len(devices), 'backend': jax.default_backend(),
         'device_kind': devices[0].device_kind, 'batch_size': config.batch_size,
         'compile_s': compile_s, 'host_batch_ms': host_batch_ms,
         'model_tflops_per_s': model_flops / 1e12 if model_flops else None,
         'xla_step_gflops': xla_flops / 1e9 if xla_flops else None,
         'windows_ms': [round(t * 1e3, 3) for t in times], **extra}
  return row


def main() -> None:
  """Prints the benchmark's JSON line."""
  if COMPILE_ONLY.value:
    row = compile_only(cli.CONFIG.value)
  else:
    row = run_benchmark(cli.CONFIG.value, WARMUP.value, WINDOWS.value, STEPS.value,
                        with_input=INPUT.value, profile_dir=PROFILE.value)
  print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))


if __name__ == '__main__':
  cli.run(main)
