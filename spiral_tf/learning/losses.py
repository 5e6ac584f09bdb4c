"""The actor-critic loss over autoregressive actions, with sub-actions that had no effect masked out.

Time-major, over one stored episode of L observations and L − 1 actions (spiral_tf/replay/trajectory.py):
  effect_mask     mask of action t = observation t+1's action_mask (the env reports whether the previous
                  action's sub-actions mattered: after a move only `end` and `flag` did). Row L − 1 (no
                  action) is 0.
  masked_sum      log π(a_t) = Σ_k mask_t[k] · log π(a_t[k] | …), the same for entropies and μ.
  actor_critic    V-trace (ρ̄, c̄) targets; policy loss −Σ_t log π(a_t) A_t, baseline loss
                  baseline_cost · ½ Σ_t (v_t − V_t)², entropy loss −entropy_cost · Σ_t H_t.
                  Each is summed over time and averaged over the batch (so the learning rate does not
                  depend on the batch size).

Usage:
  mask = effect_mask(observation['action_mask'])                 # {k: [L, B]}
  out = actor_critic_loss(masked_sum(unrolled.log_prob, mask)[:-1], ..., rewards, discounts)
"""

import collections
from typing import Mapping

import tensorflow as tf

from spiral_tf.learning import vtrace

LossOutput = collections.namedtuple(
    'LossOutput', ['total', 'policy', 'baseline', 'entropy', 'mean_entropy', 'vs', 'pg_advantages']
)


def effect_mask(action_mask: Mapping[str, tf.Tensor]) -> dict:
  """{k: [L, B]} → {k: [L, B]}: row t says whether sub-action k of action t had an effect."""

  def shift(mask):
    mask = tf.cast(mask, tf.float32)
    return tf.concat([mask[1:], tf.zeros_like(mask[:1])], 0)

  return {k: shift(v) for k, v in action_mask.items()}


def masked_sum(per_key: Mapping[str, tf.Tensor], mask: Mapping[str, tf.Tensor]):
  """Σ_k per_key[k] · mask[k]; keys must agree."""
  if set(per_key) != set(mask):
    raise ValueError(f'masked_sum: keys {sorted(per_key)} and mask keys {sorted(mask)} differ')
  return tf.add_n([tf.cast(per_key[k], tf.float32) * tf.cast(mask[k], tf.float32) for k in sorted(per_key)])


def actor_critic_loss(
    log_prob,
    behaviour_log_prob,
    entropy,
    values,
    bootstrap_value,
    rewards,
    discounts,
    entropy_cost: float = 1e-2,
    baseline_cost: float = 0.5,
    clip_rho: float = 1.0,
    clip_pg_rho: float = 1.0,
    clip_c: float = 1.0,
) -> LossOutput:
  """V-trace actor-critic loss; all inputs [T, B] (already masked and summed over sub-actions).

  With behaviour_log_prob = stop_gradient(log_prob) it is A2C.
  """
  returns = vtrace.from_importance_weights(
      tf.stop_gradient(log_prob) - behaviour_log_prob,
      discounts,
      rewards,
      tf.stop_gradient(values),
      tf.stop_gradient(bootstrap_value),
      clip_rho,
      clip_pg_rho,
      clip_c,
  )
  over_time_mean_batch = lambda x: tf.reduce_mean(tf.reduce_sum(x, 0))
  policy = over_time_mean_batch(-log_prob * returns.pg_advantages)
  baseline = baseline_cost * over_time_mean_batch(0.5 * tf.square(returns.vs - values))
  entropy_sum = over_time_mean_batch(entropy)
  entropy_loss = -entropy_cost * entropy_sum
  return LossOutput(
      total=policy + baseline + entropy_loss,
      policy=policy,
      baseline=baseline,
      entropy=entropy_loss,
      mean_entropy=entropy_sum / entropy.shape[0],
      vs=returns.vs,
      pg_advantages=returns.pg_advantages,
  )
