"""Training-curve PNGs from metrics.jsonl."""

import json

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
