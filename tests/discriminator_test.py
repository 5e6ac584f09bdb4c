"""Discriminator: gradient penalty vs finite differences, spectral norm vs SVD, losses, pairings vs NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from spiral_tf.networks import discriminator as d_lib


def _d64(**kwargs):
  """A small float64 critic on 16×16×2 inputs, for exact numerical checks."""
  return d_lib.Discriminator(channels=(4, 8, 8, 8), input_shape=[16, 16, 2], dtype=tf.float64, **kwargs)


def test_gradient_penalty_matches_finite_differences():
  d = _d64()
  rng = np.random.default_rng(0)
  real, fake = rng.uniform(size=(2, 3, 16, 16, 2))
  epsilon = np.array([0.2, 0.5, 0.9])
  penalty, norms = d_lib.gradient_penalty(d, tf.constant(real), tf.constant(fake), epsilon, slope=1.0)
  # Central differences along every input coordinate of every interpolate.
  mixed = epsilon[:, None, None, None] * real + (1 - epsilon[:, None, None, None]) * fake
  h, n = 1e-5, mixed[0].size
  fd_norms = []
  for x in mixed:
    steps = np.eye(n).reshape(n, 16, 16, 2) * h
    diff = d(tf.constant(x[None] + steps)).numpy() - d(tf.constant(x[None] - steps)).numpy()
    fd_norms.append(np.linalg.norm(diff / (2 * h)))
  fd_norms = np.array(fd_norms)
  np.testing.assert_allclose(norms.numpy(), fd_norms, rtol=1e-6)
  np.testing.assert_allclose(penalty.numpy(), np.mean((fd_norms - 1.0) ** 2), rtol=1e-6)
  penalty10, _ = d_lib.gradient_penalty(d, tf.constant(real), tf.constant(fake), epsilon, slope=10.0)
  np.testing.assert_allclose(penalty10.numpy(), np.mean((fd_norms - 10.0) ** 2), rtol=1e-6)


def test_wgan_gp_loss_composition():
  d = _d64()
  rng = np.random.default_rng(1)
  real, fake = (tf.constant(x) for x in rng.uniform(size=(2, 4, 16, 16, 2)))
  epsilon = rng.uniform(size=4)
  out = d_lib.wgan_gp_loss(d, real, fake, epsilon, penalty_weight=10.0, slope=1.0, centring_weight=0.5)
  d_real, d_fake = d(real).numpy(), d(fake).numpy()
  penalty, _ = d_lib.gradient_penalty(d, real, fake, epsilon, 1.0)
  expected = (
      d_fake.mean()
      - d_real.mean()
      + 10.0 * penalty.numpy()
      + 0.5 * ((d_real.mean() + d_fake.mean()) / 2) ** 2
  )
  np.testing.assert_allclose(out['loss'].numpy(), expected, rtol=1e-9)
  np.testing.assert_allclose(out['loss_real'].numpy(), -d_real.mean(), rtol=1e-9)
  np.testing.assert_allclose(out['score_fake'].numpy(), d_fake.mean(), rtol=1e-9)


def test_sn_gan_loss_and_reward_score():
  d = _d64(spectral_norm=True)
  rng = np.random.default_rng(2)
  real, fake = (tf.constant(x) for x in rng.uniform(size=(2, 4, 16, 16, 2)))
  # The loss's training calls each take one power-iteration step, so the reference takes the same two
  # steps from the same state: the power iteration's vectors are saved, the scores computed, the vectors
  # restored, then the loss. (Relying on the iteration having converged is not exact: after 300 steps σ
  # still moved by 2e-8 relative on some random initialisations.)
  assert d.non_trainable_variables  # The power iteration's vectors.
  saved = [v.numpy() for v in d.non_trainable_variables]
  d_real, d_fake = d(real, training=True).numpy(), d(fake, training=True).numpy()
  for v, value in zip(d.non_trainable_variables, saved):
    v.assign(value)
  out = d_lib.sn_gan_loss(d, real, fake)
  softplus = lambda x: np.log1p(np.exp(x))
  np.testing.assert_allclose(
      out['loss'].numpy(), softplus(-d_real).mean() + softplus(d_fake).mean(), rtol=1e-9
  )
  scores = np.array([-3.0, 0.0, 2.0])
  np.testing.assert_allclose(
      d_lib.reward_score(tf.constant(scores), 'sn-gan').numpy(), 1.0 / (1.0 + np.exp(-scores)), rtol=1e-12
  )
  np.testing.assert_array_equal(d_lib.reward_score(tf.constant(scores), 'wgan-gp').numpy(), scores)
  with pytest.raises(ValueError, match='lsgan'):
    d_lib.reward_score(tf.constant(scores), 'lsgan')


def test_spectral_norm_converges_to_largest_singular_value():
  layer = d_lib.SpectralNormalized(tf.keras.layers.Dense(6, dtype=tf.float64), dtype=tf.float64)
  x = tf.constant(np.random.default_rng(3).normal(size=(5, 9)))
  for _ in range(200):  # One power iteration per training call.
    layer(x, training=True)
  w = layer.layer.kernel.numpy()
  sigma = np.linalg.svd(w, compute_uv=False)[0]
  np.testing.assert_allclose(layer(x).numpy(), x.numpy() @ (w / sigma) + layer.layer.bias.numpy(), rtol=1e-6)
  # The gradient flows through σ(W) too, so it differs from the gradient with σ held constant.
  with tf.GradientTape() as tape:
    y = tf.reduce_sum(layer(x))
  grad = tape.gradient(y, layer.layer.kernel).numpy()
  plain = np.tile(x.numpy().sum(0)[:, None], [1, 6]) / sigma
  assert np.max(np.abs(grad - plain)) > 1e-6


def test_pair_inputs_and_half_masks():
  rng = np.random.default_rng(4)
  images, targets = rng.uniform(size=(2, 4, 16, 16, 1)).astype(np.float32)
  half = np.array([0, 1, 2, 3])
  masks = np.zeros((4, 16, 16, 1), np.float32)
  masks[0, :8], masks[1, 8:], masks[2, :, :8], masks[3, :, 8:] = 1, 1, 1, 1
  np.testing.assert_array_equal(d_lib.half_masks(half, 16).numpy(), masks)
  out = d_lib.pair_inputs(images, targets, 'complement', half).numpy()
  np.testing.assert_array_equal(out, np.concatenate([targets * (1 - masks), images * masks], -1))
  np.testing.assert_array_equal(
      d_lib.pair_inputs(images, targets, 'pair').numpy(), np.concatenate([images, targets], -1)
  )
  assert d_lib.pair_inputs(images, None, 'none') is images
  with pytest.raises(ValueError, match='half'):
    d_lib.pair_inputs(images, targets, 'complement')
  with pytest.raises(ValueError, match='bogus'):
    d_lib.pair_inputs(images, targets, 'bogus')


def test_bad_input_shape_is_named():
  d = d_lib.Discriminator('tiny')
  with pytest.raises(ValueError, match='multiple of 16'):
    d(tf.zeros([1, 20, 20, 1]))
  with pytest.raises(ValueError, match='size'):
    d_lib.Discriminator('giant')
