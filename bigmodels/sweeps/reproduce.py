"""Paper reproductions on the sweep machinery: stages of runs (e.g. pre-train at each masking
rate, then fine-tune each, then evaluate each), trained in order with the local runner.

A reproduction (experiments/reproductions/NAME.py) lists its stages; every run lives in
WORKDIR/STAGE/RUN with the same train.log and sweep_status.json as a sweep's runs, so finished
runs are skipped, interrupted ones resume and a failing one is reported while the others go
on. The reproduction then turns the runs' metrics into its side-by-side table and plot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bigmodels.sweeps import aggregate, local
from bigmodels.sweeps.runs import Run, command, is_finished


@dataclasses.dataclass(frozen=True)
class StageRun:
  """One run of a stage: its folder name, config file (with ':ARG'), overrides and whether
  it needs an accelerator to finish in reasonable time."""
  name: str
  config: str
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
  needs_gpu: bool = False


@dataclasses.dataclass(frozen=True)
class Stage:
  """Runs of one kind; `module` is the command that executes them (training or evaluation)."""
  name: str
  runs: tuple[StageRun, ...]
  module: str = 'experiments.main'


def to_runs(stage: Stage, workdir: Path, repo_root: Path, shared: Sequence[str]) -> list[Run]:
  """The stage's runs as sweep Runs in WORKDIR/STAGE/NAME (config paths are relative to the
  repository root, where the commands run)."""
  out = []
  for item in stage.runs:
    rundir = (workdir / stage.name / item.name).resolve()
    out.append(Run(item.name, dict(item.overrides), rundir,
                   command(stage.module, item.config, rundir, shared, item.overrides),
                   repo_root.resolve()))
  return out


def run_stages(stages: Sequence[Stage], workdir: Path, repo_root: Path,
               shared: Callable[[Stage], Sequence[str]], parallel: int = 1,
               include: Callable[[StageRun], bool] = lambda r: True,
               time_limit_s: float = 0.0, log: Callable[[str], None] = print
               ) -> dict[str, dict[str, dict[str, Any]]]:
  """Trains the included runs of each stage in order (finished ones skipped; `shared(stage)`
  gives the --config.KEY=VALUE flags every run of the stage gets); returns each
  run's status by stage and name. `time_limit_s` > 0 stops each run after that long (its
  checkpoint kept: reported as partial). A stop signal ends the current stage's runs
  gracefully and skips the later stages."""
  statuses: dict[str, dict[str, dict[str, Any]]] = {}
  for stage in stages:
    runs = to_runs(stage, workdir, repo_root, shared(stage))
    chosen = [r for r, item in zip(runs, stage.runs) if include(item)]
    todo = [r for r in chosen if not is_finished(r)]
    for run in chosen:
      if run not in todo:
        log(f'== {stage.name}/{run.name}: already trained (skipped)')
    log(f'== stage {stage.name}: {len(todo)} of {len(stage.runs)} runs to train')
    results = local.run_local(todo, parallel, log=log, time_limit_s=time_limit_s)
    statuses[stage.name] = results
    if any(s.get('status') == 'interrupted' for s in results.values()) and not time_limit_s:
      break  # Stopped by a signal: the later stages would start from unfinished runs.
  return statuses


def stage_results(stage: Stage, workdir: Path, repo_root: Path) -> dict[str, dict[str, Any]]:
  """Each run's row (status, wall time, final and best held-out metrics) by name."""
  return {run.name: aggregate.run_result(run)
          for run in to_runs(stage, workdir, repo_root, ())}
