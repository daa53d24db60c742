"""BERT's masking procedure: Devlin et al. (2019), appendix C.2, Table 8 ("Ablation over
different masking strategies"). Pre-train at 15% with six MASK/SAME/RND mixes and fine-tune
each on WordNet gloss classification, beside the paper's MNLI and NER dev figures.

We have no NER task offline, so the NER columns are the paper's alone; our fine-tuning task is
WordNet gloss -> lexicographer category (45 classes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bigmodels.train import plots
from experiments.reproductions import common
from experiments.reproductions.pretrain_finetune import Strategy, stages as pipeline, summary

TITLE = 'BERT masking strategies (Devlin et al. 2019, Table 8): ours vs published'

WORKDIR = 'reproduce_masking'  # Named for its runs; mask_rate has its own (other recipe).

# Table 8 of arXiv 1810.04805 (dev), MASK/SAME/RND of 15% chosen tokens -> MNLI fine-tune
# accuracy, NER fine-tune F1, NER feature-based F1.
PUBLISHED = {Strategy(0.15, 0.8, 0.1): (84.2, 95.4, 94.9),
             Strategy(0.15, 1.0, 0.0): (84.3, 94.9, 94.0),
             Strategy(0.15, 0.8, 0.2): (84.1, 95.2, 94.6),
             Strategy(0.15, 0.8, 0.0): (84.4, 95.2, 94.7),
             Strategy(0.15, 0.0, 0.8): (83.7, 94.8, 94.6),
             Strategy(0.15, 0.0, 1.0): (83.6, 94.9, 94.6)}
STRATEGIES = list(PUBLISHED)


def stages(args: dict[str, str], workdir: Path):
  """Pre-train (6 strategies) -> fine-tune (x seeds)."""
  return pipeline(STRATEGIES, args, workdir)


def report(workdir: Path, results: dict[str, dict[str, dict[str, Any]]], args: dict[str, str]
           ) -> tuple[list[str], Any]:
  """Table: mix, the paper's MNLI / NER figures, our fine-tuned accuracy and macro-F1 (mean ±
  std over seeds), the pre-training run's held-out MLM accuracy on 15%-masked text (all
  [MASK], whatever the training mix), wall time."""
  del workdir, args
  rows, points = [], []
  for s in STRATEGIES:
    ours = summary(s, results)
    mnli, ner, ner_feature = PUBLISHED[s]
    pre = ours['pretrain_accuracy']
    rows.append([s.mix(), f'{mnli:.1f}', f'{ner:.1f}', f'{ner_feature:.1f}',
                 common.mean_std(ours['accuracy'], 100), common.mean_std(ours['macro_f1'], 100),
                 (f'{pre * 100:.1f}' if pre is not None else '') + ours['pretrain_note'],
                 ours['wall']])
    points.append((s, ours))
  lines = common.markdown_table(
      ['MASK/SAME/RND', 'MNLI (published)', 'NER fine-tune (published)',
       'NER feature-based (published)', 'ours: WordNet accuracy %', 'ours: macro-F1 %',
       'ours: MLM acc. % @15% masked', 'wall time'], rows)

  def figure():
    import numpy as np
    fig, ax = plots.new_figure(figsize=(9, 4))
    x = np.arange(len(points))
    means = [np.mean(o['accuracy']) * 100 if o['accuracy'] else np.nan for _, o in points]
    stds = [np.std(o['accuracy'], ddof=1) * 100 if len(o['accuracy']) > 1 else 0
            for _, o in points]
    ax.errorbar(x, means, yerr=stds, marker='o', capsize=3, ls='none', label='ours (WordNet)')
    ax.set_ylabel('ours: WordNet gloss accuracy (%)')
    twin = ax.twinx()
    twin.plot(x, [PUBLISHED[s][0] for s, _ in points], 's--', color='gray',
              label='published MNLI')
    twin.set_ylabel('published: MNLI dev accuracy (%)')
    ax.set_xticks(x, [s.mix() for s, _ in points])
    ax.set_xlabel('MASK / SAME / RND (%) of the 15% chosen tokens')
    ax.legend(loc='lower left', fontsize=8)
    twin.legend(loc='lower right', fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig

  return lines, figure
