"""Tests of the tf.data pipeline (spiral_tf/data/pipeline.py) against the uint8 arrays it serves."""

import numpy as np
import pytest
import tensorflow as tf

from spiral_tf.data import images as image_ops
from spiral_tf.data import pipeline

N, BATCH = 24, 6


def _images(channels):
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, (N, 8, 8, channels)).astype(np.uint8)


def _index_of(batch, images):
  """Which source image each batch element is (by exact float equality)."""
  flat = images.reshape(N, -1).astype(np.float32) / np.float32(255)
  out = []
  for element in batch.reshape(len(batch), -1):
    matches = np.flatnonzero((flat == element).all(axis=1))
    assert len(matches) == 1
    out.append(int(matches[0]))
  return out


def test_batches_are_shuffled_epochs_of_exact_images():
  images = _images(1)
  batches = [b.numpy() for b in pipeline.image_batches(images, BATCH, seed=3).take(3 * N // BATCH)]
  assert all(b.shape == (BATCH, 8, 8, 1) and b.dtype == np.float32 for b in batches)
  assert all(0.0 <= b.min() and b.max() <= 1.0 for b in batches)
  order = [i for b in batches for i in _index_of(b, images)]
  epochs = [order[k * N : (k + 1) * N] for k in range(3)]
  for epoch in epochs:
    assert sorted(epoch) == list(range(N))  # each epoch shows every image exactly once
  assert epochs[0] != epochs[1] and epochs[0] != list(range(N))  # reshuffled, not in file order


def test_seed_fixes_the_order():
  images = _images(1)
  take = lambda seed: np.concatenate(
      [b.numpy() for b in pipeline.image_batches(images, BATCH, seed=seed).take(4)]
  )
  np.testing.assert_array_equal(take(5), take(5))
  assert not np.array_equal(take(5), take(6))


@pytest.mark.parametrize('have,want', [(3, 1), (1, 3), (3, 3)])
def test_channel_conversion_matches_numpy(have, want):
  images = _images(have)
  expected = image_ops.convert_channels(images, want).astype(np.float32) / 255
  batch = next(iter(pipeline.image_batches(images, N, channels=want, seed=0))).numpy()
  assert batch.shape == (N, 8, 8, want)
  # The batch is a permutation of the images: compare as sorted sets of images.
  key = lambda x: sorted(map(bytes, (x * 255).round().astype(np.uint8).reshape(N, -1)))
  assert key(batch) == key(expected)


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match='batch_size 30 is larger'):
    pipeline.image_batches(_images(1), 30)
  with pytest.raises(ValueError, match='batch_size'):
    pipeline.image_batches(_images(1), 0)
  with pytest.raises(ValueError, match='uint8'):
    pipeline.image_batches(_images(1).astype(np.float32), 2)
  with pytest.raises(ValueError, match='channels'):
    pipeline.image_batches(_images(1), 2, channels=2)


def test_element_spec_is_static():
  spec = pipeline.image_batches(_images(3), BATCH, channels=1).element_spec
  assert spec == tf.TensorSpec((BATCH, 8, 8, 1), tf.float32)
