"""Shared command-line plumbing: config flag, one-line errors, optional multi-host init."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from bigmodels.errors import RunInterrupted, UserError

CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, optionally with an argument: configs/NAME.py[:ARG]. '
    'Override keys with --config.KEY=VALUE.', lock_config=True)
PRINT_CONFIG = flags.DEFINE_bool(
    'print_config', False, 'Print the resolved config (every key, its value and its meaning) '
    'and exit.')
VERBOSE = flags.DEFINE_bool('verbose', False, 'Show full tracebacks for errors.')
DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False, 'Call jax.distributed.initialize() first (multi-host runs; the '
    'coordinator comes from the cluster environment unless the flags below give it).')
COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'With --distributed: HOST:PORT '
                                  'of process 0 (else detected from the cluster).')
NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'With --distributed: how many '
                                     'processes take part.')
PROCESS_ID = flags.DEFINE_integer('process_id', None, 'With --distributed: this process\'s '
                                  'index, 0 .. num_processes - 1.')


def initialize_distributed() -> None:
  """jax.distributed.initialize() from the flags (or the cluster environment). Collectives
  between CPU devices of different processes go through gloo (accelerators use their own)."""
  import jax
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=COORDINATOR.value,
                             num_processes=NUM_PROCESSES.value, process_id=PROCESS_ID.value)


def fail(message: str, code: int = 2) -> None:
  """Prints a one-line error to stderr and exits with `code`."""
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(code)


def _one_line(error: BaseException) -> str:
  """The most specific line of an exception's message (config loaders nest several)."""
  text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
  lines = [l.strip() for l in text.splitlines() if l.strip()]
  if isinstance(error, KeyError) and lines:
    return f'unknown key {lines[0]}' + (f' ({lines[-1]})' if len(lines) > 1 else '')
  return lines[-1] if lines else type(error).__name__


HELP_FLAGS = ('--help', '-h', '-?', '--helpfull', '--helpshort')


def print_help() -> None:
  """The entry point's docstring, its flags and the shared ones, and how to list config keys."""
  main_module = sys.modules['__main__']
  print((main_module.__doc__ or '').strip())
  print('\nflags of this command:')
  print(flags.FLAGS.main_module_help() or '  (none)')
  print('\nflags of every command:')
  print(flags.FLAGS.module_help(sys.modules[__name__]))
  print('\nConfig keys: add --print_config to list every key of a config with its value and '
        'meaning, e.g.\n  python -m experiments.main --config=configs/mlm.py --print_config\n'
        'and override any of them with --config.KEY=VALUE.')


def _config_help(config_file: str) -> dict[str, str]:
  """BASE_HELP plus the config file's own HELP dict (one line per key)."""
  from configs import base
  help_lines = dict(base.BASE_HELP)
  spec = importlib.util.spec_from_file_location('_config_help', config_file)
  if spec and spec.loader:
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    help_lines.update(getattr(module, 'HELP', {}))
  return help_lines


def config_file() -> str:
  """The --config file's path, without its ':ARG' part."""
  return flags.FLAGS['config'].config_filename.split(':')[0]


def print_config() -> None:
  """Prints `KEY = VALUE  # meaning` for every key of the resolved config (size presets
  filled in), then returns."""
  from bigmodels.tasks import get_task
  from bigmodels.train.resume import flatten
  config = CONFIG.value
  get_task(config)  # Resolves what the task derives from the config (e.g. size presets).
  help_lines = _config_help(config_file())
  items = flatten(config)
  width = min(max(len(f'{k} = {v!r}') for k, v in items.items()), 48)
  for key, value in items.items():
    text = f'{key} = {value!r}'
    print(f'{text:<{width}}  # {help_lines.get(key, "")}'.rstrip(' #'))


def _parse_flags(argv: list[str], needs_config: bool = True) -> list[str]:
  if any(arg.split('=')[0] in HELP_FLAGS for arg in argv[1:]):
    print_help()
    sys.exit(0)
  try:
    rest = flags.FLAGS(argv)
    config = CONFIG.value  # Loads the config file and applies --config.* overrides.
    if config is not None:
      config.keys()  # A config file that failed to load raises here, not at parse time.
  except flags.Error as e:
    fail(_one_line(e))
  except (ValueError, KeyError, TypeError, AttributeError, OSError) as e:
    cause = e.__cause__ or e.__context__
    if isinstance(e, OSError) and cause is not None:  # The loader wraps the real error.
      e = cause
    elif e.args and isinstance(e.args[0], BaseException):  # Overrides wrap a KeyError.
      e = e.args[0]
    fail(f'bad --config: {_one_line(e)}')
  if config is None and needs_config:
    fail('--config is required, e.g. --config=configs/mlm.py')
  return rest


def run(main: Callable[[], None], needs_config: bool = True) -> None:
  """Runs `main` under absl; user errors become one line and exit code 2 (traceback with
  --verbose); a run stopped by SIGTERM/SIGINT after saving exits with code 75. Commands that
  read a run folder instead of a config file pass needs_config=False."""

  def wrapped(argv: list[str]) -> None:
    if len(argv) > 1:
      fail(f'unexpected arguments {argv[1:]}: use --flag=value forms')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    if not VERBOSE.value:  # Library chatter (backend probing, TFDS, orbax) only with --verbose.
      absl_logging.set_verbosity(absl_logging.ERROR)
    try:
      if PRINT_CONFIG.value:
        print_config()
        return
      if DISTRIBUTED.value:
        initialize_distributed()
      main()
    except UserError as e:
      if VERBOSE.value:
        raise
      fail(str(e).replace('\n', ' '))
    except RunInterrupted as e:
      print(str(e), file=sys.stderr, flush=True)
      sys.exit(RunInterrupted.exit_code)
    except KeyboardInterrupt:
      fail('interrupted', code=130)

  app.run(wrapped, flags_parser=lambda argv: _parse_flags(argv, needs_config))
