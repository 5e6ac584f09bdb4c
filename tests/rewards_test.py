"""Rewards on hand-computed cases."""

import numpy as np

from spiral_tf.learning import rewards


def test_final_step_and_differences():
  np.testing.assert_array_equal(rewards.final_step([2.0, -1.0], 4).numpy(), [[0, 0], [0, 0], [2.0, -1.0]])
  scores = np.array([[0.0, 1.0], [0.5, 1.0], [0.25, 3.0]])
  np.testing.assert_allclose(rewards.differences(scores).numpy(), [[0.5, 0.0], [-0.25, 2.0]])


def test_l2_distance_is_mean_over_pixels_and_channels():
  images = np.zeros((2, 2, 2, 1), np.float32)
  targets = np.zeros((2, 2, 2, 1), np.float32)
  targets[0, 0, 0, 0] = 1.0  # One pixel off by 1: 1/4.
  targets[1] = 0.5  # Every pixel off by 0.5: 0.25.
  np.testing.assert_allclose(rewards.l2_distance(images, targets).numpy(), [0.25, 0.25])


def test_new_stroke_penalty():
  # Columns: paint paint move paint | move move | paint move paint ; the last row is the LAST placeholder.
  flag = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]]).astype(np.int32)
  expected = -0.5 * np.array([[1, 0, 1], [0, 0, 0], [0, 1, 1], [1, 0, 0]])
  np.testing.assert_allclose(rewards.new_stroke_penalty(flag, 0.5).numpy(), expected)


def test_blank_penalty():
  first = np.ones((3, 4, 4, 1), np.float32)
  final = first.copy()
  final[1, 2, 2, 0] = 0.5  # A visible mark.
  final[2, 0, 0, 0] = 1 - 0.5 / 255  # Below one grey level: not visible.
  out = rewards.blank_penalty(first, final, 0.1, num_canvases=3).numpy()
  np.testing.assert_allclose(out, [[0, 0, 0], [-0.1, 0, -0.1]])
