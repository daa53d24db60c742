"""TFDS builder for MNIST-format idx image files (lives in its own package, as TFDS requires)."""

from bigmodels.data.idx_images.idx_images import (IdxImages, idx_config, read_idx_split,
                                                  split_files)

__all__ = ['IdxImages', 'idx_config', 'read_idx_split', 'split_files']
