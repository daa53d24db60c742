"""The notebooks in notebooks/ run top to bottom headless (smoke mode, synthetic data, kernel
started in notebooks/ as Jupyter would) and are committed without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.helpers import ROOT

NOTEBOOKS = ROOT / 'notebooks'
NAMES = ('quickstart', 'sweep_analysis', 'vision')


def _execute(name: str, monkeypatch, tmp_path: Path, **env: str) -> nbformat.NotebookNode:
  """Runs notebooks/NAME.ipynb in a fresh python3 kernel with BIGMODELS_NOTEBOOK_SMOKE=1 and
  `env` (as BIGMODELS_NOTEBOOK_KEY); a cell that raises fails the test."""
  monkeypatch.setenv('BIGMODELS_NOTEBOOK_SMOKE', '1')
  monkeypatch.setenv('TMPDIR', str(tmp_path))  # The smoke runs' temporary folders.
  # This environment's kernelspec first (python3 = this interpreter), before any user-level one.
  monkeypatch.setenv('JUPYTER_PATH', str(Path(sys.prefix) / 'share' / 'jupyter'))
  for key, value in env.items():
    monkeypatch.setenv(f'BIGMODELS_NOTEBOOK_{key.upper()}', value)
  nb = nbformat.read(NOTEBOOKS / f'{name}.ipynb', as_version=4)
  NotebookClient(nb, kernel_name='python3', timeout=300,
                 resources={'metadata': {'path': str(NOTEBOOKS)}}).execute()
  errors = [o for c in nb.cells for o in c.get('outputs', []) if o.output_type == 'error']
  assert not errors, errors
  return nb


def _cell(nb: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
  return next(c for c in nb.cells if c.get('id') == cell_id)


def _text(cell: nbformat.NotebookNode) -> str:
  """The cell's printed stdout and its displayed Markdown."""
  parts = [o.text for o in cell.outputs if o.output_type == 'stream' and o.name == 'stdout']
  parts += [o.data['text/markdown'] for o in cell.outputs
            if o.output_type == 'display_data' and 'text/markdown' in o.data]
  return ''.join(parts)


def _pngs(cell: nbformat.NotebookNode) -> int:
  return sum('image/png' in o.get('data', {}) for o in cell.outputs)


def test_committed_notebooks_have_no_outputs_and_take_smoke_parameters():
  assert sorted(p.stem for p in NOTEBOOKS.glob('*.ipynb')) == sorted(NAMES)
  for name in NAMES:
    nb = nbformat.read(NOTEBOOKS / f'{name}.ipynb', as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == 'python3', name
    assert nb.cells[0].cell_type == 'markdown' and 'jupyter lab' in nb.cells[0].source, name
    code = [c for c in nb.cells if c.cell_type == 'code']
    for cell in code:
      assert cell.outputs == [] and cell.execution_count is None, (name, cell.get('id'))
    assert code[0].get('id') == 'parameters', name
    assert "os.environ.get('BIGMODELS_NOTEBOOK_SMOKE')" in code[0].source, name


def test_quickstart_trains_plots_fills_masks_and_generates(monkeypatch, tmp_path, corpus_dir):
  nb = _execute('quickstart', monkeypatch, tmp_path, corpus_dir=str(corpus_dir))
  assert _pngs(_cell(nb, 'mlm-curves')) == 1
  filled = _text(_cell(nb, 'fill-mask')).splitlines()
  masks = [line for line in filled if line.startswith('[MASK] ')]
  assert len(masks) == 2 and all(line.count(', ') == 4 for line in masks), filled
  assert _pngs(_cell(nb, 'train-causal')) == 1
  generated = _text(_cell(nb, 'generate'))
  assert generated.count('--- ') == 2 and 'decoded in' in generated, generated


def _fake_sweep(workdir: Path) -> dict[str, float]:
  """A finished 2 mask rates x 2 seeds sweep of configs/mlm.py (sweep.json as the sweep
  writes it, metric rows and status files); returns each run's final eval loss (odd runs'
  best loss is an earlier one)."""
  from bigmodels.sweeps import spec, state
  overrides = spec.product(spec.axis('data.mask_rate', [0.15, 0.3]), spec.axis('seed', [0, 1]))
  runs = state.build_runs(workdir, 'configs/mlm.py', [], overrides, ROOT)
  workdir.mkdir(parents=True, exist_ok=True)
  state.save(workdir, runs, config='configs/mlm.py', shared_overrides=[], launcher='local',
             metric='', jobs={})
  final = {}
  for i, run in enumerate(runs):
    run.workdir.mkdir()
    rows = []
    for step in (5, 10):
      loss = 4.0 - 0.05 * i + (0.3 if step == 5 else 0.0) * (-1) ** i  # Odd runs overfit.
      rows += [{'step': step, 'split': 'train', 'loss': loss + 0.2, 'mlm_accuracy': 0.1},
               {'step': step, 'split': 'eval', 'loss': loss, 'mlm_accuracy': 0.2 + i / 100,
                'perplexity': 2.0 ** loss}]
    final[run.name] = rows[-1]['loss']
    (run.workdir / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    (run.workdir / 'sweep_status.json').write_text(json.dumps(
        {'status': 'done', 'wall_s': 30.0 + i, 'command': list(run.command)}))
  return final


def test_sweep_analysis_shows_the_runs_the_seed_means_and_the_plots(monkeypatch, tmp_path):
  final = _fake_sweep(tmp_path / 'sweep')
  nb = _execute('sweep_analysis', monkeypatch, tmp_path, sweep_dir=str(tmp_path / 'sweep'))
  header, _, *lines = [line.strip('|').split(' | ')
                       for line in _text(_cell(nb, 'runs-table')).splitlines()]
  table = {cells[0].strip(): dict(zip([h.strip() for h in header], cells)) for cells in lines}
  assert sorted(table) == sorted(final)
  for name, loss in final.items():
    assert table[name]['final_loss'].strip() == f'{loss:.4g}', (name, table[name])
    assert table[name]['status'].strip() == 'done'
  seeds = _text(_cell(nb, 'seeds-table'))
  # mask_rate 0.15 pools runs 0 and 1 (final losses 4.0 and 3.95), 0.3 runs 2 and 3.
  assert '| 0.15 | 2/2 | 3.975 ± 0.035 |' in seeds, seeds
  assert '| 0.3 | 2/2 | 3.875 ± 0.035 |' in seeds, seeds
  assert _pngs(_cell(nb, 'plots')) == 2
  assert not list((tmp_path / 'sweep').glob('results.*'))  # Smoke mode writes elsewhere.
  assert len(list(tmp_path.glob('notebook_sweep_*/results.md'))) == 1


def test_vision_shows_the_confusion_matrix_and_misclassified_images(monkeypatch, tmp_path,
                                                                    image_dir):
  nb = _execute('vision', monkeypatch, tmp_path, image_dir=str(image_dir))
  assert _pngs(_cell(nb, 'confusion')) == 1
  predicted = _text(_cell(nb, 'predict'))
  assert 'equal to the run\'s confusion.json: True' in predicted, predicted
  assert _pngs(_cell(nb, 'misclassified')) == 1
