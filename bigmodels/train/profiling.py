"""Where a compiled step's time goes: the XLA ops' times in a jax.profiler trace, attributed to
the kind of work (matmul, elementwise, copy, gather/scatter, ...) and to the model code that
produced each op (the `op_name` metadata JAX writes into the HLO, e.g.
'transpose(jvp(BertMLM))/encoder/layer_1/mlp/wo/dot_general': the backward pass of layer 1's
MLP output projection).

Op times are the trace's events named after the compiled module's instructions: the XLA CPU
runtime's thunks on the host threads, the kernels on a GPU's 'XLA Ops' line. Ops that run
concurrently on several threads each count their own time, so shares are of the summed op time,
which can exceed the wall time of the step.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from pathlib import Path
from typing import Any

_INSTRUCTION = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*\S.*?\s([a-z][\w\-]*)\(')
_CALLS = re.compile(r'calls=%?([\w.\-]+)')
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_COMPUTATION = re.compile(r'^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$')
_LAYER_INDEX = re.compile(r'(layer|layers|block|blocks)_\d+')

KINDS = {'dot': 'matmul', 'convolution': 'matmul', 'gather': 'gather/scatter',
         'scatter': 'gather/scatter', 'dynamic-slice': 'gather/scatter',
         'dynamic-update-slice': 'gather/scatter', 'copy': 'copy/transpose',
         'transpose': 'copy/transpose', 'reduce': 'reduction', 'sort': 'other',
         'all-reduce': 'collective', 'all-gather': 'collective', 'reduce-scatter': 'collective',
         'all-to-all': 'collective', 'collective-permute': 'collective'}


@dataclasses.dataclass(frozen=True)
class Op:
  """One instruction of the compiled module: its kind of work and the code it came from."""
  kind: str
  op_name: str


def parse_hlo(hlo_text: str) -> dict[str, Op]:
  """Every instruction of an optimized HLO module (`compiled.as_text()`) by name. A fusion's
  kind is that of the heaviest work inside it (matmul > gather/scatter > reduction >
  elementwise)."""
  computations: dict[str, list[str]] = collections.defaultdict(list)
  instructions: list[tuple[str, str, str, str]] = []  # name, opcode, calls, op_name
  current = ''
  for line in hlo_text.splitlines():
    header = _COMPUTATION.match(line)
    if header and '=' not in line.split('{')[0]:
      current = header.group(1)
      continue
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    name, opcode = match.groups()
    calls = _CALLS.search(line)
    op_name = _OP_NAME.search(line)
    computations[current].append(opcode)
    instructions.append((name, opcode, calls.group(1) if calls else '',
                         op_name.group(1) if op_name else ''))
  ranking = ['matmul', 'gather/scatter', 'reduction']
  ops = {}
  for name, opcode, calls, op_name in instructions:
    if opcode == 'fusion':
      inner = {KINDS.get(o, 'elementwise') for o in computations.get(calls, [])}
      kind = next((k for k in ranking if k in inner), 'elementwise')
    elif opcode == 'custom-call':
      kind = 'matmul' if re.search(r'gemm|matmul|dot|conv', name, re.I) else 'other'
    else:
      kind = KINDS.get(opcode, 'elementwise' if opcode not in ('while', 'call', 'conditional')
                       else 'other')
    ops[name] = Op(kind, op_name)
  return ops


def op_times(trace_dir: str | Path, names: set[str]) -> dict[str, float]:
  """Seconds spent in each op of `names` over a jax.profiler trace folder (its newest
  .xplane.pb)."""
  from jax.profiler import ProfileData
  files = sorted(Path(trace_dir).glob('plugins/profile/*/*.xplane.pb'))
  if not files:
    raise FileNotFoundError(f'no .xplane.pb trace under {trace_dir}')
  totals: dict[str, float] = collections.defaultdict(float)
  for plane in ProfileData.from_file(str(files[-1])).planes:
    for line in plane.lines:
      for event in line.events:
        if event.name in names:
          totals[event.name] += event.duration_ns * 1e-9
  return totals


def code_location(op_name: str) -> tuple[str, str]:
  """('forward' | 'backward' | 'outside the model', module path with layer numbers folded)
  of an op_name such as 'jit(train_step)/transpose(jvp(BertMLM))/encoder/layer_1/mlp/wo/
  dot_general'."""
  parts = op_name.split('/')[1:] if op_name.startswith('jit(') else op_name.split('/')
  model_at = next((i for i, p in enumerate(parts) if p.startswith(('jvp(', 'transpose('))),
                  None)
  if model_at is None:
    if not op_name:
      return 'outside the model', '(no op_name: inserted by XLA)'
    return 'outside the model', parts[0] if len(parts) > 1 else f'train step ({parts[0]})'
  wrapper = parts[model_at]
  where = 'backward' if wrapper.startswith('transpose(') else 'forward'
  path = [p for p in parts[model_at + 1:-1] if not p.startswith(('jvp(', 'transpose(', 'remat',
                                                                  'checkpoint', 'while'))]
  model = re.sub(r'^(transpose\()?jvp\(|\)+$', '', wrapper) or 'loss (task code)'
  return where, _LAYER_INDEX.sub(r'\1_*', '/'.join([model, *path]))


@dataclasses.dataclass(frozen=True)
class Summary:
  """Per-step op time by kind of work and by code location (largest first)."""
  op_seconds_per_step: float
  by_kind: list[tuple[str, float]]
  by_location: list[tuple[str, str, float]]  # where, module path, seconds per step


def summarize(hlo_text: str, trace_dir: str | Path, steps: int) -> Summary:
  """Attributes the traced op time of `steps` steps of the compiled module to kinds and code."""
  ops = parse_hlo(hlo_text)
  times = op_times(trace_dir, set(ops))
  by_kind: dict[str, float] = collections.defaultdict(float)
  by_location: dict[tuple[str, str], float] = collections.defaultdict(float)
  for name, seconds in times.items():
    by_kind[ops[name].kind] += seconds / steps
    by_location[code_location(ops[name].op_name)] += seconds / steps
  total = sum(by_kind.values())
  return Summary(total, sorted(by_kind.items(), key=lambda kv: -kv[1]),
                 sorted(((w, p, s) for (w, p), s in by_location.items()), key=lambda r: -r[2]))


def format_summary(summary: Summary, top: int = 15) -> list[str]:
  """Markdown lines: op time per step by kind, then the `top` code locations."""
  total = summary.op_seconds_per_step or 1.0
  lines = [f'op time per step: {summary.op_seconds_per_step * 1e3:.1f} ms (summed over threads)',
           '', '| kind of work | ms/step | share |', '|---|---|---|']
  lines += [f'| {kind} | {s * 1e3:.2f} | {s / total:.1%} |' for kind, s in summary.by_kind]
  lines += ['', '| pass | code (module path) | ms/step | share |', '|---|---|---|---|']
  lines += [f'| {where} | {path} | {s * 1e3:.2f} | {s / total:.1%} |'
            for where, path, s in summary.by_location[:top]]
  return lines


def compiled_flops(compiled: Any) -> float | None:
  """FLOPs of one call of a compiled function from XLA's cost analysis (summed over devices),
  or None where the backend gives none. XLA does not count the FLOPs of library calls it cannot
  see into (cuBLAS/cuDNN on GPU)."""
  try:
    analysis = compiled.cost_analysis()
  except Exception:  # Some backends do not implement it.
    return None
  if isinstance(analysis, list):
    analysis = analysis[0] if analysis else {}
  flops = (analysis or {}).get('flops')
  return float(flops) if flops and flops > 0 else None
