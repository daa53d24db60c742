"""Sweeps: declaration, naming, checks, and a local sweep with a killed run and a failing run."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bigmodels.errors import UserError
from bigmodels.sweeps import local, runs, spec, state
from tests.helpers import ROOT, cli_overrides, rows, tiny_overrides

SWEEP_FILE = '''
from bigmodels.sweeps import spec as sweeps
from configs import mlm

HELP = mlm.HELP
get_config = mlm.get_config


def sweep(arg=None):
  runs = sweeps.product(sweeps.axis('data.mask_rate', [0.15, 0.3]),
                        sweeps.axis('seed', [0, 1]))
  return runs + EXTRA
'''


def test_products_zips_and_run_names():
  runs = spec.product(spec.axis('data.mask_rate', [0.15, 0.4]), spec.axis('seed', [0, 1]))
  assert runs == [{'data.mask_rate': 0.15, 'seed': 0}, {'data.mask_rate': 0.15, 'seed': 1},
                  {'data.mask_rate': 0.4, 'seed': 0}, {'data.mask_rate': 0.4, 'seed': 1}]
  assert spec.run_names(runs)[1] == 'mask_rate=0.15,seed=1'
  zipped = spec.zip_axes(spec.axis('optimizer.learning_rate', [1e-3, 3e-3]),
                         spec.axis('optimizer.warmup_steps', [10, 20]))
  assert zipped[1] == {'optimizer.learning_rate': 3e-3, 'optimizer.warmup_steps': 20}
  # Keys with the same last part keep their full path; tuples format as ml_collections parses.
  names = spec.run_names([{'model.dropout_rate': 0.1, 'data.dropout_rate': 0.2}])
  assert names == ['model.dropout_rate=0.1,data.dropout_rate=0.2']
  assert spec.format_value(('pooler/*',)) == '(pooler/*,)'
  with pytest.raises(ValueError, match='one length'):
    spec.zip_axes(spec.axis('a', [1, 2]), spec.axis('b', [1]))


def test_bad_sweeps_are_one_line_user_errors(tmp_path):
  from configs import mlm
  no_sweep = tmp_path / 'plain.py'
  no_sweep.write_text('def get_config(arg=None):\n  return None\n')
  with pytest.raises(UserError, match='defines no sweep'):
    spec.load_sweep(str(no_sweep), None)
  twice = tmp_path / 'twice.py'
  twice.write_text("def sweep():\n  return [{'seed': 1}, {'seed': 1}]\n")
  with pytest.raises(UserError, match='more than once'):
    spec.load_sweep(str(twice), None)
  config = mlm.get_config()
  with pytest.raises(UserError, match='has no key data.mask_rat='):
    state.check_overrides(config, [{'data.mask_rat': 0.2}])
  with pytest.raises(UserError, match='cannot take'):
    state.check_overrides(config, [{'data.mask_rate': 'high'}])
  state.check_overrides(config, [{'data.mask_rate': 0.3, 'seed': 2}])  # Fine.
  result = subprocess.run([sys.executable, '-m', 'experiments.sweep', f'--config={twice}',
                           f'--workdir={tmp_path / "w"}'], cwd=ROOT, capture_output=True,
                          text=True)
  assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
  assert not (tmp_path / 'w').exists()


def _sweep(config: Path, workdir: Path, *flags: str) -> list[str]:
  return [sys.executable, '-m', 'experiments.sweep', f'--config={config}',
          f'--workdir={workdir}', *flags]


def _status(rundir: Path) -> str:
  return json.loads((rundir / 'sweep_status.json').read_text())['status']


def test_the_eta_counts_a_resumed_run_by_its_whole_training_time(tmp_path):
  """A run resumed near its end finishes at once; the ETA still reckons with its 10 minutes."""
  resumed, fresh = (runs.Run(name, {}, tmp_path / name, (sys.executable, '-c', 'pass'))
                    for name in ('resumed', 'fresh'))
  resumed.workdir.mkdir()
  (resumed.workdir / runs.STATUS_FILE).write_text(json.dumps(
      {'command': list(resumed.command), 'status': 'interrupted', 'wall_s': 600.0}))
  lines = []
  statuses = local.run_local([resumed, fresh], parallel=1, log=lines.append)
  assert [statuses[n]['status'] for n in ('resumed', 'fresh')] == ['done', 'done']
  done = next(i for i, line in enumerate(lines) if line.startswith('[sweep] done resumed'))
  assert re.search(r'1 waiting · ETA 10m0\ds$', lines[done + 1]), lines


def test_a_local_sweep_survives_a_kill_and_a_failing_run_and_reports_the_runs(
    tmp_path, corpus_dir):
  config = tmp_path / 'tiny_sweep.py'
  config.write_text(SWEEP_FILE.replace('EXTRA', "[{'data.mask_rate': 1.5, 'seed': 0}]"))
  workdir = tmp_path / 'sweep'
  shared = cli_overrides({**tiny_overrides(corpus_dir), 'total_steps': 24,
                          'checkpoint_every': 4, 'eval_every': 12})
  command = _sweep(config, workdir, '--parallel=2', *shared)
  names = ['mask_rate=0.15,seed=0', 'mask_rate=0.15,seed=1', 'mask_rate=0.3,seed=0',
           'mask_rate=0.3,seed=1', 'mask_rate=1.5,seed=0']

  # 1. Killed once a run has saved a checkpoint: the running trainings save and stop.
  sweep = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
  deadline = time.time() + 240
  while not list(workdir.glob('*/checkpoints/4')) and time.time() < deadline:
    time.sleep(0.2)
  sweep.send_signal(signal.SIGTERM)
  output, _ = sweep.communicate(timeout=240)
  assert sweep.returncode == 75, output
  interrupted = [n for n in names if (workdir / n / 'sweep_status.json').exists()
                 and _status(workdir / n) == 'interrupted']
  assert interrupted, output

  # 2. Re-run: interrupted runs resume, the others train, the failing one is reported.
  second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert second.returncode == 1, second.stdout + second.stderr
  assert 'FAILED mask_rate=1.5,seed=0' in second.stdout
  assert 'mask_rate=1.5' in second.stderr.strip().splitlines()[-1]
  assert [_status(workdir / n) for n in names] == ['done'] * 4 + ['failed']
  for name in interrupted:
    assert 'resuming from checkpoint at step' in (workdir / name / 'train.log').read_text()

  table = list(csv.DictReader((workdir / 'results.csv').open()))
  assert [r['run'] for r in table] == names
  for record in table[:4]:
    final = rows(workdir / record['run'], 'eval')[-1]
    assert int(record['step']) == final['step'] == 24
    assert float(record['final_loss']) == final['loss']
    assert float(record['final_mlm_accuracy']) == final['mlm_accuracy']
    assert float(record['best_loss']) == min(r['loss'] for r in rows(workdir / record['run'],
                                                                      'eval'))
  assert table[4]['status'] == 'failed' and 'mask_rate=1.5' in table[4]['error']
  markdown = (workdir / 'results.md').read_text()
  losses = [float(r['final_loss']) for r in table[:2]]
  mean = sum(losses) / 2
  assert f'| 0.15 | 2/2 | {mean:.4g} ± ' in markdown
  for png in ('curves.png', 'sweep_mlm_accuracy.png'):
    assert (workdir / png).read_bytes()[:4] == b'\x89PNG'

  # 3. The failing run removed from the sweep: nothing trains again, the table is the same.
  config.write_text(SWEEP_FILE.replace('EXTRA', '[]'))
  logs = {n: (workdir / n / 'train.log').read_text() for n in names[:4]}
  third = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert third.returncode == 0, third.stderr
  assert '4 finished before, 0 to train' in third.stdout
  assert {n: (workdir / n / 'train.log').read_text() for n in names[:4]} == logs
  collected = subprocess.run([sys.executable, '-m', 'experiments.sweep', f'--workdir={workdir}',
                              '--collect'], cwd=ROOT, capture_output=True, text=True)
  assert collected.returncode == 0, collected.stderr
  assert list(csv.DictReader((workdir / 'results.csv').open())) == table[:4]
  dry = subprocess.run(command + ['--dry_run'], cwd=ROOT, capture_output=True, text=True)
  assert dry.stdout.count(' done ') == 4


@pytest.fixture(scope='module')
def slurm_env(tmp_path_factory):
  from tests import slurm_cluster
  absent = slurm_cluster.missing()
  if absent:
    if os.environ.get('CI'):
      pytest.fail(f'CI must run the Slurm test but {absent} are missing: install slurm-wlm '
                  'and munge (.ci/run does)')
    pytest.skip(f'no local Slurm: {", ".join(absent)} missing (apt-get install slurm-wlm '
                'munge)')
  with slurm_cluster.local_cluster(Path('/tmp') / f'bm-slurm-{os.getpid()}') as env:
    yield env


def _comparable(path: Path) -> list[dict]:
  return [{k: v for k, v in r.items() if k != 'wall_s'}
          for r in csv.DictReader(path.open())]


def test_a_sweep_on_a_real_slurm_cluster_collects_the_table_of_a_local_sweep(
    tmp_path, corpus_dir, slurm_env):
  config = tmp_path / 'two_runs.py'
  config.write_text(SWEEP_FILE.replace(
      "sweeps.axis('data.mask_rate', [0.15, 0.3])", "sweeps.axis('data.mask_rate', [0.3])")
      .replace('EXTRA', '[]'))
  shared = cli_overrides(tiny_overrides(corpus_dir))
  env = {**os.environ, **slurm_env}
  on_slurm = tmp_path / 'slurm'
  submitted = subprocess.run(
      _sweep(config, on_slurm, '--launcher=slurm', '--time_minutes=10', '--detach', *shared),
      cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
  assert submitted.returncode == 0, submitted.stderr
  assert 'submitted 2 Slurm jobs' in submitted.stdout
  jobs = json.loads((on_slurm / 'sweep.json').read_text())['jobs']
  deadline = time.time() + 300
  while time.time() < deadline:
    queued = subprocess.run(['squeue', '-h', '-r', '-o', '%i'], capture_output=True, text=True,
                            env=env).stdout.split()
    if not set(jobs.values()) & set(queued):
      break
    time.sleep(1)
  collected = subprocess.run([sys.executable, '-m', 'experiments.sweep',
                              f'--workdir={on_slurm}', '--collect'], cwd=ROOT,
                             capture_output=True, text=True, env=env, timeout=120)
  assert collected.returncode == 0, collected.stdout + collected.stderr
  assert '2 done' in collected.stdout
  for name in ('mask_rate=0.3,seed=0', 'mask_rate=0.3,seed=1'):
    assert (on_slurm / name / 'checkpoints').exists()
    assert 'SLURM_JOB_ID' not in (on_slurm / name / 'train.log').read_text()
  local = tmp_path / 'local'
  subprocess.run(_sweep(config, local, '--parallel=2', *shared), cwd=ROOT, check=True,
                 capture_output=True, timeout=300)
  assert _comparable(on_slurm / 'results.csv') == _comparable(local / 'results.csv')


def test_a_slurm_run_with_two_tasks_trains_as_one_two_process_job(tmp_path, corpus_dir,
                                                                  slurm_env):
  config = tmp_path / 'one_run.py'
  config.write_text(SWEEP_FILE.replace(
      "sweeps.product(sweeps.axis('data.mask_rate', [0.15, 0.3]),\n"
      "                        sweeps.axis('seed', [0, 1]))", "sweeps.axis('seed', [0])")
      .replace('EXTRA', '[]'))
  env = {**os.environ, **slurm_env}
  workdir = tmp_path / 'multi'
  result = subprocess.run(
      _sweep(config, workdir, '--launcher=slurm', '--tasks_per_node=2', '--time_minutes=10',
             *cli_overrides(tiny_overrides(corpus_dir))),
      cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
  log = (workdir / 'seed=0' / 'train.log').read_text()
  assert '--distributed' in log and 'in 2 process(es)' in log
  assert rows(workdir / 'seed=0', 'eval')[-1]['step'] == 6
