"""A real single-node Slurm cluster (Debian's slurm-wlm and munge) started in a temporary
folder for the tests: its own munge key and socket, slurmctld and slurmd on free ports, and
SLURM_CONF pointing at its slurm.conf. Nothing outside the folder is touched."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SBIN = os.pathsep.join([os.environ.get('PATH', ''), '/usr/sbin', '/sbin'])
DAEMONS = ('munged', 'slurmctld', 'slurmd')
CLIENTS = ('sbatch', 'squeue', 'scontrol')


def missing() -> list[str]:
  """Slurm and munge programs this machine lacks (empty when a cluster can start)."""
  return [p for p in DAEMONS + CLIENTS if shutil.which(p, path=SBIN) is None]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _conf(root: Path, host: str) -> str:
  return '\n'.join([
      'ClusterName=bigmodels-test', f'SlurmctldHost={host}(127.0.0.1)',
      'SlurmUser=root', 'SlurmdUser=root', 'AuthType=auth/munge', 'CredType=cred/munge',
      f'AuthInfo=socket={root}/munge.sock',
      f'SlurmctldPort={_free_port()}', f'SlurmdPort={_free_port()}',
      f'StateSaveLocation={root}/state', f'SlurmdSpoolDir={root}/spool',
      f'SlurmctldPidFile={root}/slurmctld.pid', f'SlurmdPidFile={root}/slurmd.pid',
      f'SlurmctldLogFile={root}/slurmctld.log', f'SlurmdLogFile={root}/slurmd.log',
      'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none',
      'JobAcctGatherType=jobacct_gather/none', 'AccountingStorageType=accounting_storage/none',
      'JobCompType=jobcomp/none', 'SelectType=select/cons_tres',
      'SelectTypeParameters=CR_Core', 'MpiDefault=none', 'ReturnToService=2',
      'InactiveLimit=0', 'KillWait=10', 'MinJobAge=2',
      f'NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN',
      'PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP '
      'OverSubscribe=FORCE:4', ''])


@contextmanager
def local_cluster(root: Path) -> Iterator[dict[str, str]]:
  """Starts the cluster; yields the environment (SLURM_CONF, PATH) its clients need."""
  root.mkdir(parents=True, exist_ok=True)
  for sub in ('state', 'spool'):
    (root / sub).mkdir(exist_ok=True)
  key = root / 'munge.key'
  key.write_bytes(os.urandom(128))
  key.chmod(0o600)
  host = socket.gethostname().split('.')[0]
  (root / 'slurm.conf').write_text(_conf(root, host))
  env = {**os.environ, 'SLURM_CONF': str(root / 'slurm.conf'), 'PATH': SBIN}

  def start(*command: str) -> None:
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)

  try:
    start(shutil.which('munged', path=SBIN), '--force', f'--socket={root}/munge.sock',
          f'--key-file={key}', f'--pid-file={root}/munged.pid',
          f'--log-file={root}/munged.log', f'--seed-file={root}/munged.seed')
    start(shutil.which('slurmctld', path=SBIN), '-i')
    start(shutil.which('slurmd', path=SBIN))
    deadline = time.time() + 60
    while time.time() < deadline:
      state = subprocess.run(['sinfo', '-h', '-o', '%T'], env=env, capture_output=True,
                             text=True).stdout.strip()
      if state in ('idle', 'mixed', 'allocated'):
        break
      time.sleep(0.5)
    else:
      raise RuntimeError(f'the test Slurm node did not come up (state {state!r}); see '
                         f'{root}/slurmctld.log and slurmd.log')
    yield {'SLURM_CONF': env['SLURM_CONF'], 'PATH': SBIN}
  finally:
    subprocess.run(['scontrol', 'shutdown'], env=env, capture_output=True, timeout=60)
    for pid_file in ('slurmd.pid', 'slurmctld.pid', 'munged.pid'):
      try:
        os.kill(int((root / pid_file).read_text().split()[0]), 15)
      except (OSError, ValueError):
        pass
