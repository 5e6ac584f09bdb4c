"""Reward normalisation: a running scale (and centre) of episode returns, applied before V-trace.

Why: SPIRAL's rewards come on whatever scale D's outputs (or −l2) happen to have — D scores of ±100, or
l2 differences of 0.01. V-trace's advantages, the value head (a Dense on an LSTM output in (−1, 1)) and
the entropy bonus (π ∝ exp(A / entropy_cost)) all assume returns of order 1. Dividing by a running
standard deviation of the returns puts every run on that scale, whatever the reward.

Statistics: exponential moving averages of the first and second moments of the per-episode return
G = Σ_t r_t (the undiscounted sum of the episode's rewards: D(final) for `spiral`, −l2 for `l2`,
s_{L−1} − s_0 for `spiral++`), debiased like Adam's moments (so the very first batch gives its own
mean and variance exactly):

  w' = d·w + (1 − d),   m' = d·m + (1 − d)·mean_batch(G),   q' = d·q + (1 − d)·mean_batch(G²)
  μ = m' / w',   σ = max(sqrt(max(q' / w' − μ², 0)), min_std)

Modes:
  none         rewards unchanged (the behaviour before normalisation existed, for comparison).
  std          r_t / σ.
  standardise  r_t / σ, and μ / σ subtracted from the reward of the last action, so that G' = (G − μ) / σ
               (the value head then learns a centred target; the subtraction is the same for every
               action sequence, so the policy gradient's expectation is unchanged).

A batch is normalised with the statistics of the batches before it (the first batch of a run, with none
before it, is left as it is), and the statistics are then updated with it — a functional `updated` and an
`assign` after the gradients are applied, so an update stays a pure function of its inputs and the
variables. Under a multi-replica strategy every replica therefore normalises with the same (synchronised)
statistics, and since the moving averages are linear in the batch moments, the MEAN-aggregated assignment
of the replicas' updated states equals the update with the whole global batch: N replicas compute what one
would.

Usage:
  normaliser = ReturnNormaliser(mode='standardise')         # in strategy scope; checkpoint it
  normalised = normaliser.apply(rewards, normaliser.state)  # rewards [T, B]
  new_state = normaliser.updated(rewards)
  normaliser.assign(new_state)                              # with the optimizer step
"""

import collections

import tensorflow as tf

from spiral_tf import config as config_lib

MODES = config_lib.REWARD_NORMALISATIONS

NormaliserState = collections.namedtuple('NormaliserState', ['weight', 'mean', 'mean_square'])


class ReturnNormaliser(tf.Module):
  """Running statistics of episode returns (see module docstring)."""

  def __init__(
      self,
      mode: str = 'standardise',
      decay: float = 0.99,
      min_std: float = 1e-3,
      name: str = 'reward_normaliser',
  ):
    super().__init__(name=name)
    if mode not in MODES:
      raise ValueError(f'reward normalisation {mode!r} is not one of {MODES}')
    if not 0.0 <= decay < 1.0:
      raise ValueError(f'reward normalisation decay {decay} must be in [0, 1)')
    if min_std <= 0:
      raise ValueError(f'reward normalisation min_std {min_std} must be positive')
    self.mode, self.decay, self.min_std = mode, float(decay), float(min_std)
    variable = lambda name: tf.Variable(
        0.0, trainable=False, name=name, aggregation=tf.VariableAggregation.MEAN
    )
    self.weight, self.mean, self.mean_square = variable('weight'), variable('mean'), variable('mean_square')

  @property
  def state(self) -> NormaliserState:
    return NormaliserState(self.weight.read_value(), self.mean.read_value(), self.mean_square.read_value())

  def updated(self, rewards) -> NormaliserState:
    """The statistics after one batch of episodes, rewards [T, B] (nothing is assigned)."""
    returns = tf.reduce_sum(tf.convert_to_tensor(rewards, tf.float32), 0)
    d = self.decay
    old = self.state
    return NormaliserState(
        d * old.weight + (1.0 - d),
        d * old.mean + (1.0 - d) * tf.reduce_mean(returns),
        d * old.mean_square + (1.0 - d) * tf.reduce_mean(tf.square(returns)),
    )

  def centre_and_scale(self, state: NormaliserState):
    """(μ, σ) of a state; (0, 1) before any update."""
    seen = state.weight > 0
    weight = tf.where(seen, state.weight, 1.0)
    mu = tf.where(seen, state.mean / weight, 0.0)
    variance = tf.maximum(state.mean_square / weight - tf.square(mu), 0.0)
    sigma = tf.where(seen, tf.maximum(tf.sqrt(variance), self.min_std), 1.0)
    return mu, sigma

  def apply(self, rewards, state: NormaliserState):
    """Normalised rewards [T, B] under `state` (the last row is the last action)."""
    rewards = tf.convert_to_tensor(rewards, tf.float32)
    if self.mode == 'none':
      return rewards
    mu, sigma = self.centre_and_scale(state)
    rewards = rewards / sigma
    if self.mode == 'standardise':
      last = tf.one_hot(tf.shape(rewards)[0] - 1, tf.shape(rewards)[0])[:, None]
      rewards -= last * (mu / sigma)
    return rewards

  def assign(self, state: NormaliserState):
    self.weight.assign(state.weight)
    self.mean.assign(state.mean)
    self.mean_square.assign(state.mean_square)
