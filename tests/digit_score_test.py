"""Digit score: figures against NumPy for a classifier of known logits; the real classifier learns MNIST.

The second needs the real MNIST (tests/real_data.py): skipped, with the reason, on a fresh clone.
"""

import numpy as np
import pytest

import real_data
from spiral_tf.data import mnist
from spiral_tf.inference import digit_score


class _KnownLogits:
  """A stand-in model whose logits are given (score() only calls predict)."""

  def __init__(self, logits):
    self.logits = logits

  def predict(self, canvases, batch_size, verbose):
    del batch_size, verbose
    return self.logits[: len(canvases)]


def test_figures_match_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(200, 10)).astype(np.float32) * 3
  logits[:150, 3] += 10  # Three quarters are confident threes.
  canvases = np.ones((200, 64, 64, 1), np.float32)
  out = digit_score.score(_KnownLogits(logits), canvases)
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  fractions = np.bincount(p.argmax(-1), minlength=10) / 200
  assert out['mean_confidence'] == pytest.approx(p.max(-1).mean(), rel=1e-5)
  np.testing.assert_allclose(out['class_fractions'], fractions)
  assert out['classes_with_2_percent'] == int(np.sum(fractions >= 0.02))
  assert fractions[3] > 0.7
  with pytest.raises(ValueError, match='64, 64, 1'):
    digit_score.score(_KnownLogits(logits), canvases[:, :32])


def test_classifier_trained_here_recognises_real_test_digits():
  """A quick version (10,000 training digits, two epochs) of what the R2 report trains in full."""
  data_dir = str(real_data.require('mnist'))
  classifier = digit_score.train_classifier(data_dir, epochs=2, train_limit=10000, test_limit=2000)
  assert classifier.test_accuracy > 0.95
  real = mnist.load(data_dir, 'test', limit=500).astype(np.float32) / 255
  out = digit_score.score(classifier.model, real)
  assert out['classes_with_2_percent'] == 10 and out['mean_confidence'] > 0.9
  blank = digit_score.score(classifier.model, np.ones((100, 64, 64, 1), np.float32))
  assert blank['classes_with_2_percent'] == 1  # One input, one class: a collapse is visible.
