"""The tf.data pipeline that feeds real images to the discriminator.

The decoded uint8 array lives in memory once (as one tensor); the dataset shuffles *indices* — a full
permutation per epoch, seeded — and gathers a whole batch at a time, converting to float32 and to the
asked-for channels inside the graph. So there is no per-image Python or per-element tf.data work, the
memory is the uint8 array (not a float copy, not a shuffle buffer of images), and prefetching keeps
the next batches ready: the learner never waits for data (benchmarks/data_throughput.py).

Usage:
  dataset = image_batches(uint8_images, batch_size=64, channels=1, seed=0)
  for batch in dataset: ...        # float32 [64, H, W, channels] in [0, 1], repeats forever
"""

import numpy as np
import tensorflow as tf

from spiral_tf.data import images as image_ops


def image_batches(images, batch_size, channels=None, seed=0):
  """Endless, per-epoch-reshuffled float32 batches of `images` (uint8 [N, H, W, 1|3])."""
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f'images must be uint8 [N, H, W, 1|3], got {images.dtype} {images.shape}')
  if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
    raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}')
  if len(images) < batch_size:
    raise ValueError(f'batch_size {batch_size} is larger than the dataset ({len(images)} images)')
  channels = images.shape[-1] if channels is None else channels
  if channels not in (1, 3):
    raise ValueError(f'channels must be 1 (grey) or 3 (colour), got {channels!r}')
  with tf.device('/cpu:0'):
    table = tf.constant(images)
  weights = tf.constant(image_ops.LUMA_WEIGHTS)

  def gather(indices):
    batch = tf.cast(tf.gather(table, indices), tf.float32)
    if batch.shape[-1] == 3 and channels == 1:
      # Same rounding to uint8 levels as load_images, so both paths give identical images.
      batch = tf.round(tf.tensordot(batch, weights, axes=1))[..., None]
    elif batch.shape[-1] == 1 and channels == 3:
      batch = tf.tile(batch, [1, 1, 1, 3])
    return batch / 255.0

  dataset = tf.data.Dataset.range(len(images))
  dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()
  dataset = dataset.batch(batch_size, drop_remainder=True)
  dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)
