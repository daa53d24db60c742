"""Training-curve PNGs from metrics.jsonl."""

import json
import subprocess
import sys

from bigmodels.train.plots import plot_curves


def test_curves_png_is_written(tmp_path):
  rows = [{'step': s, 'split': 'train', 'loss': 5.0 - s / 10, 'mlm_accuracy': s / 100,
           'grad_norm': 1.0} for s in range(1, 6)]
  rows.append({'step': 5, 'split': 'eval', 'loss': 4.7, 'mlm_accuracy': 0.04,
               'perplexity': 110.0})
  metrics = tmp_path / 'metrics.jsonl'
  metrics.write_text('\n'.join(json.dumps(r) for r in rows) + '\n')
  out = plot_curves(metrics, tmp_path / 'curves.png')
  data = out.read_bytes()
  assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 5000


def _write_run(folder, scale):
  folder.mkdir()
  rows = [{'step': s, 'split': 'train', 'loss': scale * (5.0 - s / 10), 'perplexity': 99.0}
          for s in range(1, 6)]
  rows.append({'step': 5, 'split': 'eval', 'loss': scale * 4.7, 'perplexity': 110.0})
  (folder / 'metrics.jsonl').write_text('\n'.join(json.dumps(r) for r in rows) + '\n')
  return folder


def test_several_runs_share_one_figure_through_the_command_line(tmp_path):
  a, b = _write_run(tmp_path / 'a', 1.0), _write_run(tmp_path / 'b', 1.2)
  command = [sys.executable, '-m', 'experiments.plot_metrics', f'--workdir={a}',
             f'--workdir={b}', '--metric=loss', '--metric=perplexity']
  missing_output = subprocess.run(command, capture_output=True, text=True)
  assert missing_output.returncode != 0
  assert 'need --output' in missing_output.stderr.strip().splitlines()[-1]
  out = tmp_path / 'both.png'
  subprocess.run([*command, f'--output={out}'], check=True, capture_output=True)
  assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  gone = subprocess.run([*command[:3], f'--workdir={tmp_path / "c"}', f'--output={out}'],
                        capture_output=True, text=True)
  assert gone.returncode != 0 and 'does not exist' in gone.stderr
