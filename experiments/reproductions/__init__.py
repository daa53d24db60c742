"""Paper reproductions for `python -m experiments.reproduce NAME`: each module lists the
stages of runs (bigmodels.sweeps.reproduce.Stage) and writes the side-by-side table and plot."""

NAMES = ('fashion_mnist', 'mask_rate', 'bert_masking')
