"""V-trace targets (Espeholt et al. 2018, IMPALA §4.1), time-major.

  ρ_t = min(ρ̄, π/μ), c_t = min(c̄, π/μ)
  δ_t = ρ_t (r_t + γ_t V(x_{t+1}) − V(x_t))
  v_s − V(x_s) = δ_s + γ_s c_s (v_{s+1} − V(x_{s+1}))          (backwards from v_T = V(x_T) = bootstrap)
  policy-gradient advantage_s = min(ρ̄_pg, π/μ)(r_s + γ_s v_{s+1} − V(x_s))

On-policy (π = μ, log_rhos = 0) with ρ̄, c̄ ≥ 1 this is A2C with full Monte-Carlo-style n-step returns:
v_s = Σ_k (Π γ) r + (Π γ) bootstrap. The results carry no gradient.

Usage:
  out = vtrace.from_importance_weights(log_rhos, discounts, rewards, values, bootstrap_value)
  pg_loss = −Σ log π(a_t) · out.pg_advantages;  baseline_loss = ½ Σ (out.vs − values)²
"""

import collections

import tensorflow as tf

VTraceReturns = collections.namedtuple('VTraceReturns', ['vs', 'pg_advantages'])


def from_importance_weights(
    log_rhos,
    discounts,
    rewards,
    values,
    bootstrap_value,
    clip_rho_threshold: float = 1.0,
    clip_pg_rho_threshold: float = 1.0,
    clip_c_threshold: float = 1.0,
) -> VTraceReturns:
  """All inputs [T, B] float32 except bootstrap_value [B]; thresholds None → no clipping."""
  log_rhos, discounts, rewards, values, bootstrap_value = (
      tf.convert_to_tensor(x, tf.float32) for x in (log_rhos, discounts, rewards, values, bootstrap_value)
  )
  if log_rhos.shape.rank != 2:
    raise ValueError(f'vtrace: log_rhos must be time-major [T, B], got shape {log_rhos.shape}')
  rhos = tf.exp(log_rhos)
  clip = lambda x, threshold: x if threshold is None else tf.minimum(threshold, x)
  clipped_rhos, cs = clip(rhos, clip_rho_threshold), clip(rhos, clip_c_threshold)
  next_values = tf.concat([values[1:], bootstrap_value[None]], 0)
  deltas = clipped_rhos * (rewards + discounts * next_values - values)

  # Backwards recursion on vs − V; reverse=True scans from T − 1 down to 0.
  def backwards(acc, x):
    delta, discount, c = x
    return delta + discount * c * acc

  vs_minus_v = tf.scan(
      backwards, (deltas, discounts, cs), initializer=tf.zeros_like(bootstrap_value), reverse=True
  )
  vs = vs_minus_v + values
  vs_next = tf.concat([vs[1:], bootstrap_value[None]], 0)
  pg_advantages = clip(rhos, clip_pg_rho_threshold) * (rewards + discounts * vs_next - values)
  return VTraceReturns(tf.stop_gradient(vs), tf.stop_gradient(pg_advantages))
