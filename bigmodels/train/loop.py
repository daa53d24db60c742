"""The one training loop: setup, resume, jitted steps, periodic eval, logging, checkpoints.

Resume order: the workdir's latest checkpoint, else a fresh init. The state's RNG is derived
from (seed, step) and the data iterator position is checkpointed, so re-running the same command
continues exactly where the run stopped (bit-identical on CPU).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from bigmodels.errors import RunInterrupted, UserError
from bigmodels.tasks import get_task
from bigmodels.tasks.base import Batch, Task
from bigmodels.train import mesh as mesh_lib
from bigmodels.train import init_from, plots, reporting, resume
from bigmodels.train.checkpoint import Checkpointer
from bigmodels.train.optimizer import make_optimizer
from bigmodels.train.state import TrainState, create_state
from bigmodels.train.steps import GUARDED_STATS, make_eval_step, make_train_step


class TrainingDiverged(UserError):
  """A loss or gradient became NaN/Inf; the last good checkpoint is kept."""


@dataclasses.dataclass
class Setup:
  """Everything the loop (and the benchmark) needs, built once from the config."""

  task: Task
  mesh: jax.sharding.Mesh
  batch_sharding: jax.sharding.NamedSharding
  state_shardings: Any
  abstract_state: Any
  train_step: Any
  eval_step: Any
  model: Any
  init_state: Any  # () -> a freshly initialised, sharded TrainState


def check_batch_layout(config: Any, mesh: jax.sharding.Mesh) -> None:
  """The global batch must split evenly over processes and over the mesh's batch axes."""
  spec = mesh_lib.batch_sharding(mesh, config.mesh).spec[0]
  axes = spec if isinstance(spec, tuple) else (spec,) if spec else ()
  shards = math.prod(mesh.shape[a] for a in axes)
  if config.batch_size % shards:
    raise UserError(f'batch_size={config.batch_size} is not divisible by the {shards} batch '
                    f'shards of mesh {dict(mesh.shape)}: use a multiple of {shards}')
  accum = config.get('grad_accum_steps', 1)
  if accum < 1 or config.batch_size % (accum * shards):
    raise UserError(f'batch_size={config.batch_size} must split into grad_accum_steps={accum} '
                    f'micro-batches of a multiple of the {shards} batch shards: use a '
                    f'multiple of {max(accum, 1) * shards}')
  if config.batch_size % jax.process_count():
    raise UserError(f'batch_size={config.batch_size} is not divisible by the '
                    f'{jax.process_count()} processes')


def build(config: Any, task: Task | None = None) -> Setup:
  """Builds mesh, model, optimizer, state shardings and the jitted steps (no state yet)."""
  task = task or get_task(config)
  mesh = mesh_lib.make_mesh(config.mesh)
  check_batch_layout(config, mesh)
  rules = mesh_lib.logical_rules(config.mesh)
  model = task.build_model()
  tx, schedule = make_optimizer(config.optimizer, config.total_steps)
  abstract, shardings, init_state = create_state(task, model, tx, mesh, config.mesh,
                                                 config.seed, config.batch_size)
  batch_sharding = mesh_lib.batch_sharding(mesh, config.mesh)
  replicated = mesh_lib.replicated(mesh)
  train_step = jax.jit(make_train_step(task, model, tx, schedule, config.seed, rules,
                                       skip_nonfinite=config.skip_nonfinite_steps > 0,
                                       grad_accum_steps=config.get('grad_accum_steps', 1),
                                       batch_sharding=batch_sharding),
                       in_shardings=(shardings, batch_sharding),
                       out_shardings=(shardings, replicated), donate_argnums=0)
  eval_step = jax.jit(make_eval_step(task, model, rules),
                      in_shardings=(shardings, batch_sharding), out_shardings=replicated)
  return Setup(task, mesh, batch_sharding, shardings, abstract, train_step, eval_step, model,
               init_state)


def to_global(batch: Batch, sharding: jax.sharding.NamedSharding) -> dict[str, jax.Array]:
  """Assembles per-process numpy batches into global arrays sharded over the mesh."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def evaluate(setup: Setup, state: TrainState, batches: list[Batch]
             ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Runs the eval step over all eval batches; returns (the task's summarized metrics, the
  summed totals they come from)."""
  totals = None
  for batch in batches:
    sums = setup.eval_step(state, to_global(batch, setup.batch_sharding))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  if totals is None:
    raise UserError('the eval split is empty: add documents or lower data.heldout_percent')
  sums = {k: np.asarray(v) for k, v in jax.device_get(totals).items()}
  return setup.task.summarize(sums), sums


def _evaluate_and_report(setup: Setup, state: TrainState, data: Any, step: int,
                         writer: reporting.MetricWriter, workdir: Path) -> dict[str, float]:
  """Evaluates, logs the row, and (process 0) writes the task's eval artifacts and the
  training-curve PNG."""
  metrics, sums = evaluate(setup, state, data.eval)
  writer.write(step, 'eval', metrics)
  writer.print(f'eval @ {step} | {_format_metrics(metrics, setup.task.display_metrics)}')
  if writer.enabled:
    writer.flush()
    setup.task.write_eval_report(sums, workdir, step)
    plots.plot_curves(workdir / 'metrics.jsonl', workdir / 'curves.png')
  return metrics


# How a stop or skip message names each guarded statistic.
_QUANTITY = {'stats/train_loss': 'loss', 'stats/grad_norm': 'gradient norm (grad_norm)',
             'stats/update_norm': 'parameter update norm (update_norm)',
             'stats/param_norm': 'parameter norm after the update (param_norm)'}


_LAST_VALUE_STATS = ('learning_rate',)


class _TrainWindow:
  """Accumulates step metrics on the host between reports; checks they are finite.

  Statistics are averaged over the window's accepted steps, except the learning rate, which is
  reported as applied by the window's last accepted step. With `max_skips` > 0 the train step
  has already kept the old state for a non-finite step; such steps are left out and counted,
  and the run stops once more than `max_skips` have occurred.
  """

  def __init__(self, max_skips: int = 0, warn=print):
    self.pending: list[tuple[int, dict]] = []
    self.sums: dict[str, float] = {}
    self.stats: dict[str, float] = {}
    self.last: dict[str, float] = {}
    self.steps = 0
    self.skipped = 0
    self.max_skips = max_skips
    self.warn = warn

  def add(self, step: int, metrics: dict) -> None:
    self.pending.append((step, metrics))

  def flush(self) -> None:
    """Fetches pending device metrics; raises TrainingDiverged on a non-finite one."""
    fetched = jax.device_get([m for _, m in self.pending])
    pending, self.pending = self.pending, []
    for (step, _), metrics in zip(pending, fetched):
      bad = [k for k in GUARDED_STATS if not math.isfinite(float(metrics[k]))]
      if bad:
        what, value = _QUANTITY[bad[0]], float(metrics[bad[0]])
        if self.skipped < self.max_skips:
          self.skipped += 1
          self.warn(f'warning: {what} was {value} at step {step}; the step was skipped and '
                    f'the previous state kept ({self.skipped}/{self.max_skips} allowed skips '
                    'used)')
          continue
        raise TrainingDiverged(
            f'{what} became {value} at step {step}: stopped before saving it, the last good '
            'checkpoint is kept; lower optimizer.learning_rate, raise optimizer.warmup_steps '
            'or set skip_nonfinite_steps, then re-run')
      for key, value in metrics.items():
        group, name = key.split('/', 1)
        if name in _LAST_VALUE_STATS:
          self.last[name] = float(value)
          continue
        target = self.sums if group == 'sums' else self.stats
        target[name] = target.get(name, 0.0) + float(value)
      self.steps += 1

  def report(self, task: Task) -> dict[str, float]:
    """Summarized metrics for the window, then a fresh window."""
    self.flush()
    out = task.summarize(self.sums) if self.steps else {}
    out.update({k: v / max(self.steps, 1) for k, v in self.stats.items() if k != 'train_loss'})
    out.update(self.last)
    self.sums, self.stats, self.last, self.steps = {}, {}, {}, 0
    return out


def check_workdir_writable(workdir: Path) -> None:
  """UserError unless `workdir` exists as a writable folder or could be created; creates
  nothing (a rejected run leaves no folder behind)."""
  existing = workdir.absolute()
  while not existing.exists():
    existing = existing.parent
  if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
    reason = 'a file is in the way' if not existing.is_dir() else 'permission denied'
    raise UserError(f'workdir {str(workdir)!r} is not writable ({reason} at {str(existing)!r}): '
                    'choose another --workdir')


def _create_workdir(workdir: Path) -> None:
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / f'.write-test-{os.getpid()}'
    probe.write_text('ok')
    probe.unlink()
  except OSError as e:
    raise UserError(f'workdir {str(workdir)!r} is not writable ({e.strerror}): choose another '
                    '--workdir') from None


def prepare_task_data(task: Task) -> Any:
  """The task's data; process 0 prepares shared caches first, the others then load them."""
  index, count = jax.process_index(), jax.process_count()
  if count > 1 and index != 0:
    multihost_utils.sync_global_devices('bigmodels:data-prepared')
  data = task.prepare_data(index, count)
  if count > 1 and index == 0:
    multihost_utils.sync_global_devices('bigmodels:data-prepared')
  return data


def _format_metrics(metrics: dict[str, float], keys: tuple[str, ...]) -> str:
  return ' | '.join(f'{k} {metrics[k]:.4f}' for k in keys if k in metrics)


def check_config(config: Any, task: Task) -> None:
  """Every check that needs no data: durations and intervals, the task's own keys, and the
  mesh and batch layout on the present devices. UserError on the first problem."""
  for key in ('total_steps', 'log_every', 'eval_every', 'checkpoint_every', 'keep_checkpoints'):
    if config[key] <= 0:
      raise UserError(f'{key}={config[key]} must be a positive number of steps')
  if config.batch_size <= 0:
    raise UserError(f'batch_size={config.batch_size} must be a positive number of examples')
  if config.eval_steps < 0:
    raise UserError(f'eval_steps={config.eval_steps} must be >= 0 (0 = the whole eval split)')
  if config.skip_nonfinite_steps < 0:
    raise UserError(f'skip_nonfinite_steps={config.skip_nonfinite_steps} must be >= 0')
  task.check_config()
  make_optimizer(config.optimizer, config.total_steps)  # Unknown names and schedules.
  check_batch_layout(config, mesh_lib.make_mesh(config.mesh))


def train_and_evaluate(config: Any, workdir: str | os.PathLike,
                       stop_at: int | None = None) -> dict[str, float]:
  """Trains to config.total_steps (resuming from workdir) and returns the last eval metrics.

  The config, the data and the workdir are checked before anything is written: a rejected
  run creates no folder. `stop_at` ends the run early after that step with a checkpoint, as a
  preempted run would (the schedule still spans total_steps); re-running continues from there.
  """
  started = time.perf_counter()
  workdir = Path(workdir)
  is_main = jax.process_index() == 0
  task = get_task(config)
  check_config(config, task)
  if is_main:
    check_workdir_writable(workdir)
  writer = reporting.MetricWriter(workdir, enabled=is_main)
  try:
    return _run(config, workdir, task, writer, started, stop_at)
  finally:
    writer.close()


def _restore_or_init(config: Any, workdir: Path, setup: Setup, ckpt: Checkpointer,
                     writer: reporting.MetricWriter) -> tuple[TrainState, dict | None,
                                                              Checkpointer]:
  """Resume order: the newest readable checkpoint in the workdir, else a fresh init."""
  if ckpt.steps():
    resume.check_compatible(workdir / 'config.json', config)
    try:
      restored = ckpt.restore_newest_readable(setup.abstract_state, warn=writer.print)
    except UserError:
      if not config.allow_fresh_start:
        raise
      moved = ckpt.move_aside()
      writer.print(f'allow_fresh_start: moved the unreadable checkpoints to {moved}; '
                   'starting over')
      ckpt = Checkpointer(workdir / 'checkpoints', max_to_keep=config.keep_checkpoints)
      restored = None
    if restored is not None:
      step, state, data_state = restored
      if writer.enabled:
        resume.rewind_metrics(workdir / 'metrics.jsonl', step)
        writer.resume_after(step)
      writer.print(f'resuming from checkpoint at step {step} in {workdir}')
      return state, data_state, ckpt
  if writer.enabled:
    resume.rewind_metrics(workdir / 'metrics.jsonl', 0)  # Rows of a run killed before a save.
    writer.resume_after(0)  # TensorBoard hides the events of any earlier attempt.
  state = setup.init_state()
  if config.init_from:
    with setup.mesh:
      params = init_from.initialize_from(state.params, config.init_from,
                                         tuple(config.init_fresh), log=writer.print)
    state = state.replace(params=params)
    writer.print(f'starting in {workdir} from the parameters of {config.init_from}')
  else:
    writer.print(f'starting from scratch in {workdir}')
  return state, None, ckpt


def _run(config: Any, workdir: Path, task: Task, writer: reporting.MetricWriter,
         started: float, stop_at: int | None) -> dict[str, float]:
  data = prepare_task_data(task)  # May settle config values (e.g. the tokenizer's real size).
  writer.print(f'data: {data.description} (ready after {time.perf_counter() - started:.0f}s)')
  setup = build(config, task)
  if config.init_from and not Checkpointer.has_checkpoints(workdir / 'checkpoints'):
    init_from.check(setup.abstract_state.params, config.init_from, tuple(config.init_fresh))
  if writer.enabled:
    _create_workdir(workdir)
  writer.print(f'devices: {jax.device_count()} x {jax.devices()[0].platform} in '
               f'{jax.process_count()} process(es), mesh {dict(setup.mesh.shape)}')
  ckpt = Checkpointer(workdir / 'checkpoints', max_to_keep=config.keep_checkpoints)
  try:
    state, loop_state, ckpt = _restore_or_init(config, workdir, setup, ckpt, writer)
    train_iter = iter(data.train)
    if loop_state is not None:
      # Checkpoints hold {'iterator': grain state, 'skipped_steps': n}; older ones held the
      # grain state alone.
      if 'iterator' in loop_state:
        train_iter.set_state(loop_state['iterator'])
      else:
        train_iter.set_state(loop_state)
    if writer.enabled:
      reporting.write_json_atomic(workdir / 'config.json',
                                  json.loads(config.to_json_best_effort()))
      task.save_assets(workdir)
    n_params = sum(x.size for x in jax.tree.leaves(setup.abstract_state.params))
    writer.print(f'model: {type(setup.model).__name__} with {n_params / 1e6:.2f}M parameters')
    with setup.mesh, resume.PreemptionGuard() as guard:
      return _train_steps(config, setup, state, data, train_iter, ckpt, writer, workdir, started,
                          stop_at, guard, skipped=(loop_state or {}).get('skipped_steps', 0))
  finally:
    ckpt.close()  # Lets a pending asynchronous save of a good state finish, even on errors.


def _train_steps(config: Any, setup: Setup, state: TrainState, data: Any, train_iter: Any,
                 ckpt: Checkpointer, writer: reporting.MetricWriter, workdir: Path,
                 started: float, stop_at: int | None, guard: resume.PreemptionGuard,
                 skipped: int = 0) -> dict[str, float]:
  """Runs the steps from state.step to total_steps with logging, evals and checkpoints."""
  task, total = setup.task, config.total_steps
  start = int(jax.device_get(state.step))
  tokens = task.tokens_per_example()
  items_per_step = config.batch_size * (tokens or 1)
  unit, throughput_key = ('tok/s', 'tokens_per_s') if tokens else ('ex/s', 'examples_per_s')
  keys = task.display_metrics
  window = _TrainWindow(config.skip_nonfinite_steps, warn=writer.print)
  window.skipped = skipped  # Non-finite steps skipped before a resume count against the limit.
  meter = reporting.Throughput(start, total)
  batches = _device_batches(train_iter, setup.batch_sharding)
  eval_metrics: dict[str, float] = {}
  if start >= total:
    eval_metrics, _ = evaluate(setup, state, data.eval)
    writer.print(f'already trained to step {start}/{total}; eval: '
                 f'{_format_metrics(eval_metrics, keys)}')
    return eval_metrics
  next_batch = next(batches)
  for step in range(start, total):
    batch, data_state = next_batch
    state, metrics = setup.train_step(state, batch)
    done = step + 1
    window.add(done, metrics)
    if done == start + 1:
      # Compilation is over once the first step is: rates and the ETA count from here.
      jax.block_until_ready(metrics)
      meter.restart(done)
    interrupted = _stop_agreed(guard, done, config.log_every)
    if done < total and not interrupted:
      next_batch = next(batches)  # The host makes the next batch while the device computes.
    if done % config.log_every == 0 or done == total:
      row = window.report(task)
      rate = meter.update(done)
      speed = 'compiling'
      if rate:  # Unknown until a step after the first (compiling) one has been timed.
        row.update({'steps_per_s': rate, throughput_key: rate * items_per_step})
        speed = f'{rate * items_per_step / 1e3:.1f}k {unit} | {rate:.2f} steps/s'
      writer.write(done, 'train', row)
      writer.print(f'step {done:>{len(str(total))}}/{total} | {_format_metrics(row, keys)} | '
                   f'{speed} | ETA {meter.eta(done)}')
    if done % config.eval_every == 0 or done == total:
      window.flush()  # Never evaluate (or plot) a state produced from a non-finite step.
      eval_started = time.perf_counter()
      eval_metrics = _evaluate_and_report(setup, state, data, done, writer, workdir)
      meter.exclude(time.perf_counter() - eval_started)  # Throughput counts training only.
    stopping = (stop_at is not None and done >= stop_at) or interrupted
    if done % config.checkpoint_every == 0 or done == total or stopping:
      window.flush()  # Never save a state produced from a non-finite step.
      ckpt.save(done, state, {'iterator': data_state, 'skipped_steps': window.skipped})
    if interrupted:
      ckpt.wait()
      writer.flush()
      cause = signal.Signals(guard.signal).name if guard.signal else 'a signal to another process'
      raise RunInterrupted(f'stopped by {cause} after step '
                           f'{done}/{total}; checkpoint saved; re-run the same command to '
                           'resume')
    if stopping:
      writer.print(f'stopped at step {done}/{total}; re-run the same command to resume')
      return eval_metrics
  writer.print(f'done: {total} steps, checkpoint saved at step {total}, '
               f'{reporting.format_duration(time.perf_counter() - started)} wall time')
  return eval_metrics


def _stop_agreed(guard: resume.PreemptionGuard, step: int, every: int) -> bool:
  """Whether to stop for a SIGTERM/SIGINT. With several processes, any process's signal
  stops all of them at the same step (checkpoint saves are collective): they agree at every
  `every`-th step, where the loop waits for the device anyway."""
  if jax.process_count() == 1:
    return guard.requested
  if step % every:
    return False
  flags = multihost_utils.process_allgather(np.asarray(guard.requested, np.int32))
  return bool(np.any(flags))


def _device_batches(iterator: Any, sharding: jax.sharding.NamedSharding):
  """Yields (global device batch, iterator state after it) from a grain iterator."""
  while True:
    batch = next(iterator)
    yield to_global(batch, sharding), iterator.get_state()
