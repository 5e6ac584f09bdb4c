"""V-trace against an independent NumPy IMPALA recursion (clipping included) and the A2C special case."""

import numpy as np
import pytest

from spiral_tf.learning import vtrace


def _numpy_vtrace(log_rhos, discounts, rewards, values, bootstrap, rho_bar, pg_rho_bar, c_bar):
  """IMPALA eq. (1) written as the explicit sum v_s = V(x_s) + Σ_t γ^{t−s}(Π c_i) δ_t."""
  rhos = np.exp(log_rhos)
  length = len(rewards)
  values_next = np.concatenate([values[1:], bootstrap[None]], 0)
  deltas = np.minimum(rho_bar, rhos) * (rewards + discounts * values_next - values)
  cs = np.minimum(c_bar, rhos)
  vs = np.array(values, np.float64)
  for s in range(length):
    weight = np.ones_like(bootstrap)
    for t in range(s, length):
      vs[s] += weight * deltas[t]
      weight = weight * discounts[t] * cs[t]
  vs_next = np.concatenate([vs[1:], bootstrap[None]], 0)
  advantages = np.minimum(pg_rho_bar, rhos) * (rewards + discounts * vs_next - values)
  return vs, advantages


@pytest.mark.parametrize(
    'rho_bar,pg_rho_bar,c_bar', [(1.0, 1.0, 1.0), (2.0, 0.5, 0.9), (100.0, 100.0, 100.0)]
)
def test_matches_numpy_recursion(rho_bar, pg_rho_bar, c_bar):
  rng = np.random.default_rng(0)
  length, batch = 7, 5
  log_rhos = rng.normal(scale=1.0, size=(length, batch))  # Many ratios above and below the thresholds.
  discounts = rng.choice([0.0, 0.9, 1.0], size=(length, batch))
  rewards = rng.normal(size=(length, batch))
  values = rng.normal(size=(length, batch))
  bootstrap = rng.normal(size=batch)
  out = vtrace.from_importance_weights(
      log_rhos, discounts, rewards, values, bootstrap, rho_bar, pg_rho_bar, c_bar
  )
  vs, advantages = _numpy_vtrace(log_rhos, discounts, rewards, values, bootstrap, rho_bar, pg_rho_bar, c_bar)
  np.testing.assert_allclose(out.vs.numpy(), vs, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out.pg_advantages.numpy(), advantages, rtol=1e-5, atol=1e-5)
  assert np.mean(np.exp(log_rhos) > min(rho_bar, c_bar)) > 0.1 or rho_bar > 10  # Clipping was exercised.


def test_on_policy_is_a2c_with_discounted_returns():
  rng = np.random.default_rng(1)
  length, batch, gamma = 6, 3, 0.9
  rewards = rng.normal(size=(length, batch))
  values = rng.normal(size=(length, batch))
  bootstrap = rng.normal(size=batch)
  discounts = np.full((length, batch), gamma)
  out = vtrace.from_importance_weights(np.zeros((length, batch)), discounts, rewards, values, bootstrap)
  returns = np.zeros((length, batch))
  future = bootstrap
  for t in reversed(range(length)):
    future = rewards[t] + gamma * future
    returns[t] = future
  np.testing.assert_allclose(out.vs.numpy(), returns, rtol=1e-5, atol=1e-5)
  next_returns = np.concatenate([returns[1:], bootstrap[None]], 0)
  np.testing.assert_allclose(
      out.pg_advantages.numpy(), rewards + gamma * next_returns - values, rtol=1e-5, atol=1e-5
  )


def test_rejects_batch_major_rank():
  with pytest.raises(ValueError, match=r'time-major \[T, B\]'):
    vtrace.from_importance_weights(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(()))
