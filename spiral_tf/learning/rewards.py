"""SPIRAL rewards as pure functions of canvases, scores and actions. Time-major.

An episode has L canvases c_0 (blank, FIRST) … c_{L−1} (final, LAST) and L − 1 actions; reward r_t pays
for action t (c_t → c_{t+1}), so every reward tensor is [L − 1, B].

  final_step      r_{L−2} = value, r_t = 0 before (SPIRAL: value = D(c_{L−1}); l2: value = −l2).
  differences     r_t = s_{t+1} − s_t for canvas scores s [L, B] (SPIRAL++ temporal credit assignment;
                  Σ_t r_t = s_{L−1} − s_0; with a discount γ < 1 in the return, later strokes weigh less).
  l2_distance     mean over pixels and channels of (final − target)² → [B] (the paper's −‖·‖² up to the
                  constant 1/(W·W·C), so it does not depend on the image size).
  new_stroke_penalty   −cost at every action that paints (flag = 1) after a move or as the first action:
                  one per disjoint stroke, as the paper's MNIST agents had.
  blank_penalty   −cost at the last action when nothing visible was drawn: max_pixel |c_{L−1} − c_0| below
                  `threshold` (default 1/255, one 8-bit grey level).

Usage:
  r = final_step(d_final, length) + new_stroke_penalty(action['flag'], cost=0.01)
"""

import tensorflow as tf


def final_step(value, num_canvases: int):
  """[B] → [L − 1, B], the value at the last action."""
  value = tf.convert_to_tensor(value, tf.float32)
  zeros = tf.zeros([num_canvases - 2, tf.shape(value)[0]])
  return tf.concat([zeros, value[None]], 0)


def differences(scores):
  """[L, B] canvas scores → [L − 1, B] rewards s_{t+1} − s_t."""
  scores = tf.convert_to_tensor(scores, tf.float32)
  return scores[1:] - scores[:-1]


def l2_distance(images, targets):
  """Mean squared difference per example: [B, H, W, C] × 2 → [B]."""
  diff = tf.cast(images, tf.float32) - tf.cast(targets, tf.float32)
  return tf.reduce_mean(tf.square(diff), axis=[1, 2, 3])


def new_stroke_penalty(flag, cost: float):
  """flag [L, B] (action t, row L − 1 unused) → [L − 1, B]: −cost where a disjoint stroke begins."""
  paint = tf.equal(tf.convert_to_tensor(flag)[:-1], 1)
  after_move = tf.concat([tf.ones_like(paint[:1]), tf.logical_not(paint[:-1])], 0)
  return -cost * tf.cast(paint & after_move, tf.float32)


def blank_penalty(first_canvas, final_canvas, cost: float, num_canvases: int, threshold: float = 1 / 255):
  """[B, H, W, C] × 2 → [L − 1, B]: −cost at the last action of episodes that left no visible mark."""
  change = tf.reduce_max(
      tf.abs(tf.cast(final_canvas, tf.float32) - tf.cast(first_canvas, tf.float32)), axis=[1, 2, 3]
  )
  return final_step(-cost * tf.cast(change < threshold, tf.float32), num_canvases)
