"""Tests of spiral_tf/data/images.py against TensorFlow's resize and plain NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from spiral_tf.data import images


@pytest.mark.parametrize(
    'method,in_size,out_size',
    [('area', 105, 64), ('area', 178, 64), ('area', 90, 35), ('bilinear', 28, 64), ('bilinear', 50, 64)],
)
def test_resize_matches_tensorflow(method, in_size, out_size):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (3, in_size, in_size + 7, 2)).astype(np.uint8)
  mine = images.resize(x, out_size, out_size + 3, method)
  reference = tf.image.resize(x.astype(np.float32), (out_size, out_size + 3), method=method).numpy()
  assert mine.dtype == np.uint8 and mine.shape == (3, out_size, out_size + 3, 2)
  # Rounding of float sums computed in a different order can differ by one level at most.
  assert np.abs(mine.astype(np.float64) - reference).max() <= 0.5 + 1e-3


def test_area_of_an_integer_factor_is_the_block_mean():
  rng = np.random.default_rng(1)
  x = rng.integers(0, 256, (4, 128, 128, 3)).astype(np.uint8)
  block_mean = x.astype(np.float64).reshape(4, 64, 2, 64, 2, 3).mean(axis=(2, 4))
  np.testing.assert_array_equal(images.resize(x, 64, 64, 'area'), np.rint(block_mean))


def test_area_weights_keep_the_amount_of_ink():
  weights = images.area_matrix(105, 64)
  np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)  # each output: a mean
  np.testing.assert_allclose(weights.sum(axis=0), 64 / 105, atol=1e-6)  # each input: same share
  bilinear = images.bilinear_matrix(28, 64)
  np.testing.assert_allclose(bilinear.sum(axis=1), 1.0, atol=1e-6)
  assert (bilinear >= 0).all() and (np.count_nonzero(bilinear, axis=1) <= 2).all()


def test_same_size_is_identity_and_bad_arguments_are_named():
  x = np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5, 1)
  np.testing.assert_array_equal(images.resize(x, 5, 5, 'area'), x)
  with pytest.raises(ValueError, match='nearest'):
    images.resize(x, 3, 3, 'nearest')
  with pytest.raises(ValueError, match=r'\[N, H, W, C\]'):
    images.resize(x[0], 3, 3, 'area')


def test_centre_crop_takes_the_middle_square():
  x = np.arange(218 * 178, dtype=np.int64).reshape(1, 218, 178, 1)
  crop = images.centre_crop(x)
  assert crop.shape == (1, 178, 178, 1)
  np.testing.assert_array_equal(crop[0, :, :, 0], x[0, 20:198, :, 0])
  wide = np.zeros((1, 4, 10, 3))
  assert images.centre_crop(wide).shape == (1, 4, 4, 3)


def test_convert_channels():
  rng = np.random.default_rng(2)
  rgb = rng.integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
  grey = images.convert_channels(rgb, 1)
  luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
  assert grey.shape == (5, 8, 8, 1) and grey.dtype == np.uint8
  assert np.abs(grey[..., 0].astype(np.float64) - luma).max() <= 0.5 + 1e-3
  tf_grey = tf.image.rgb_to_grayscale(rgb.astype(np.float32)).numpy()
  assert np.abs(grey.astype(np.float64) - tf_grey).max() <= 0.55  # TF's red weight is 0.2989
  tiled = images.convert_channels(grey, 3)
  assert tiled.shape == (5, 8, 8, 3) and (tiled == grey).all()
  assert images.convert_channels(rgb, 3) is rgb
  with pytest.raises(ValueError, match='channels must be 1'):
    images.convert_channels(rgb, 4)


def test_to_uint8_rounds_and_clips():
  np.testing.assert_array_equal(
      images.to_uint8(np.array([-3.0, 0.4, 0.6, 254.6, 300.0])), [0, 0, 1, 255, 255]
  )
