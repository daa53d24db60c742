"""Batch image augmentation and normalisation on the host, in numpy.

Every function takes a uint8 or float batch [N, H, W, C] and a numpy Generator, so a batch's
augmentation is a pure function of the generator's seed (the loader seeds it by seed, process
and batch index). Vectorised over the batch: no Python loop per image.
"""

from __future__ import annotations

import numpy as np


def random_crop(images: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
  """Pads each side by `padding` zeros and crops back to the original size at a random offset."""
  if padding <= 0:
    return images
  n, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  dy = rng.integers(0, 2 * padding + 1, n)
  dx = rng.integers(0, 2 * padding + 1, n)
  rows = dy[:, None, None] + np.arange(h)[None, :, None]
  cols = dx[:, None, None] + np.arange(w)[None, None, :]
  return padded[np.arange(n)[:, None, None], rows, cols]


def random_flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Mirrors each image left-right with probability 1/2."""
  flip = rng.random(len(images)) < 0.5
  return np.where(flip[:, None, None, None], images[:, :, ::-1], images)


def random_erasing(images: np.ndarray, prob: float, rng: np.random.Generator,
                   area: tuple[float, float] = (0.02, 0.33),
                   aspect: tuple[float, float] = (0.3, 3.3), value: float = 0.0) -> np.ndarray:
  """Random erasing (Zhong et al., 2017): with probability `prob` per image, fills a rectangle
  of random area fraction and log-uniform aspect ratio with `value` (0 = the mean after
  normalisation)."""
  if prob <= 0:
    return images
  n, h, w, _ = images.shape
  erase = rng.random(n) < prob
  target = rng.uniform(*area, n) * h * w
  ratio = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1]), n))
  eh = np.clip(np.round(np.sqrt(target * ratio)), 1, h).astype(np.int64)
  ew = np.clip(np.round(np.sqrt(target / ratio)), 1, w).astype(np.int64)
  top = (rng.random(n) * (h - eh + 1)).astype(np.int64)
  left = (rng.random(n) * (w - ew + 1)).astype(np.int64)
  rows = np.arange(h)[None, :]
  cols = np.arange(w)[None, :]
  in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
  in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
  mask = in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]
  return np.where(mask[..., None], np.asarray(value, images.dtype), images)


def normalize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 with per-channel mean 0 and standard deviation 1."""
  scaled = images.astype(np.float32) * np.float32(1 / 255)
  return (scaled - mean.astype(np.float32)) / std.astype(np.float32)
