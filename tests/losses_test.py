"""Masking of sub-action log-probs/entropies and the actor-critic loss, on hand-built cases."""

import numpy as np
import pytest
import tensorflow as tf

from spiral_tf.learning import losses
from spiral_tf.learning import vtrace


def test_effect_mask_shifts_by_one_step():
  # Observation masks of an episode with L = 3: FIRST (all ones), after a move, after a paint.
  action_mask = {'flag': np.array([[1.0], [1.0], [1.0]]), 'size': np.array([[1.0], [0.0], [1.0]])}
  mask = losses.effect_mask(action_mask)
  np.testing.assert_array_equal(mask['flag'].numpy(), [[1.0], [1.0], [0.0]])
  np.testing.assert_array_equal(mask['size'].numpy(), [[0.0], [1.0], [0.0]])


def test_masked_sum_hand_case():
  log_prob = {
      'flag': np.array([[-0.1, -0.2]]),
      'end': np.array([[-1.0, -2.0]]),
      'size': np.array([[-3.0, -4.0]]),
  }
  mask = {'flag': np.array([[1.0, 1.0]]), 'end': np.array([[1.0, 1.0]]), 'size': np.array([[0.0, 1.0]])}
  np.testing.assert_allclose(losses.masked_sum(log_prob, mask).numpy(), [[-1.1, -6.2]])
  with pytest.raises(ValueError, match='keys'):
    losses.masked_sum(log_prob, {'flag': mask['flag']})


def test_actor_critic_loss_matches_numpy():
  rng = np.random.default_rng(0)
  length, batch = 4, 3
  log_prob = tf.Variable(rng.normal(size=(length, batch)) - 2.0, dtype=tf.float32)
  behaviour = rng.normal(size=(length, batch)).astype(np.float32) - 2.0
  entropy = rng.uniform(1, 2, size=(length, batch)).astype(np.float32)
  values = rng.normal(size=(length, batch)).astype(np.float32)
  bootstrap = rng.normal(size=batch).astype(np.float32)
  rewards = rng.normal(size=(length, batch)).astype(np.float32)
  discounts = np.ones((length, batch), np.float32)
  with tf.GradientTape() as tape:
    out = losses.actor_critic_loss(
        log_prob,
        behaviour,
        entropy,
        values,
        bootstrap,
        rewards,
        discounts,
        entropy_cost=0.01,
        baseline_cost=0.5,
    )
  returns = vtrace.from_importance_weights(
      log_prob.numpy() - behaviour, discounts, rewards, values, bootstrap
  )
  adv, vs = returns.pg_advantages.numpy(), returns.vs.numpy()
  np.testing.assert_allclose(out.policy.numpy(), np.mean(np.sum(-log_prob.numpy() * adv, 0)), rtol=1e-5)
  np.testing.assert_allclose(
      out.baseline.numpy(), 0.5 * np.mean(np.sum(0.5 * (vs - values) ** 2, 0)), rtol=1e-5
  )
  np.testing.assert_allclose(out.entropy.numpy(), -0.01 * np.mean(np.sum(entropy, 0)), rtol=1e-5)
  np.testing.assert_allclose(out.total.numpy(), out.policy + out.baseline + out.entropy, rtol=1e-6)
  # The advantage is a constant: ∂loss/∂log π = −A / B.
  np.testing.assert_allclose(tape.gradient(out.total, log_prob).numpy(), -adv / batch, rtol=1e-5)
