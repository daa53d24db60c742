"""experiments.reproduce: trains the rows, resumes them, writes the table and the chart."""

from tests.helpers import rows, run_module


def test_reproduce_writes_table_and_chart_and_skips_finished_rows(image_dir, tmp_path):
  args = ['fashion_mnist', f'--workdir={tmp_path}', '--runlocal', '--rows=cnn,mlp',
          f'--set=data.image_dir={image_dir}', '--set=data.image_shape=(12,12,1)']
  result = run_module('experiments.reproduce', args)
  assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
  table = (tmp_path / 'results.md').read_text()
  lines = {line.split('|')[1].strip(): line for line in table.splitlines()
           if line.startswith('| ') and not line.startswith('| Model')}
  assert set(lines) == {'cnn', 'cnn_bn', 'mlp', 'resnet18', 'wrn', 'wrn40_4'}
  assert '0.934' in lines['cnn_bn'] and 'not run' in lines['cnn_bn']
  assert 'needs a GPU' in lines['resnet18'] and '0.949' in lines['resnet18']
  for trained in ('cnn', 'mlp'):
    cells = [c.strip() for c in lines[trained].split('|')]
    assert cells[4] == f"{rows(tmp_path / trained, 'eval')[-1]['accuracy']:.3f}"  # ours
    assert 'experiments.main' in cells[9] and f'model={trained},runlocal=1' in cells[9]
  png = (tmp_path / 'results.png').read_bytes()
  assert png.startswith(b'\x89PNG') and len(png) > 5000
  status = (tmp_path / 'cnn' / 'sweep_status.json').read_text()

  again = run_module('experiments.reproduce', args)  # finished rows: nothing to train
  assert again.returncode == 0
  assert 'already trained' in again.stdout
  assert (tmp_path / 'cnn' / 'sweep_status.json').read_text() == status


def test_reproduce_rejects_unknown_rows_and_experiments(tmp_path):
  result = run_module('experiments.reproduce', ['fashion_mnist', f'--workdir={tmp_path}',
                                                '--rows=vgg'])
  assert result.returncode != 0 and 'unknown rows' in result.stderr
  result = run_module('experiments.reproduce', ['nope', f'--workdir={tmp_path}'])
  assert result.returncode != 0 and "no reproduction 'nope'" in result.stderr


def test_mask_rate_pipeline_pretrains_and_fine_tunes_and_reports_the_15_percent_loss(
    corpus_dir, tmp_path):
  from tests.helpers import write_wordnet
  wordnet = write_wordnet(tmp_path / 'wordnet')
  run = 'rate40-mask100-rnd0'
  args = ['mask_rate', f'--workdir={tmp_path / "rep"}', '--runlocal', f'--rows={run}',
          f'--set=pretrain:data.corpus_dir={corpus_dir}',
          f'--set=finetune:data.wordnet_dir={wordnet}']
  result = run_module('experiments.reproduce', args)
  assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
  rep = tmp_path / 'rep'
  finetune = rep / 'finetune' / f'{run},seed=0'
  assert 'from the parameters of' in (finetune / 'train.log').read_text()
  import json
  data = json.loads((rep / 'pretrain' / run / 'config.json').read_text())['data']
  assert (data['mask_rate'], data['mask_token_prob'], data['eval_mask_rate']) == (0.4, 1.0, 0.15)
  evaluation = rows(rep / 'pretrain' / run, 'eval')[-1]
  line = next(l for l in (rep / 'results_mask_rate.md').read_text().splitlines()
              if l.startswith('| 40% | 100/0/0 '))
  cells = [c.strip() for c in line.split('|')]
  assert cells[3] == '84.5'  # the published figure
  assert cells[4] == f"{rows(finetune, 'eval')[-1]['accuracy'] * 100:.1f} (n=1)"
  assert cells[6] == f"{evaluation['loss']:.3f}"
  assert cells[7] == f"{evaluation['mlm_accuracy'] * 100:.1f}"
  assert '| 15% | 100/0/0 | 84.2 |' in (rep / 'results_mask_rate.md').read_text()
  assert (rep / 'results_mask_rate.png').read_bytes()[:4] == b'\x89PNG'


def test_mask_rate_pretrains_at_its_own_reduced_learning_rate(tmp_path):
  from experiments.reproductions import bert_masking, mask_rate
  ours = mask_rate.stages({}, tmp_path)[0].runs
  assert len(ours) == 10 and all(r.overrides['optimizer.learning_rate'] == 1e-3 for r in ours)
  assert {r.overrides['data.mask_rate'] for r in ours} == {
      0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8}
  theirs = bert_masking.stages({}, tmp_path)[0].runs  # bert_masking: the default recipe.
  assert len(theirs) == 6 and not any('optimizer.learning_rate' in r.overrides for r in theirs)
  paper = mask_rate.stages({'scale': 'paper'}, tmp_path)[0].runs[0].overrides
  assert paper['optimizer.learning_rate'] == 2e-3 and paper['total_steps'] == 23000
  assert mask_rate.WORKDIR != bert_masking.WORKDIR
