"""Reward normalisation: running return statistics against NumPy, each mode, checkpoints, the learner."""

import numpy as np
import pytest
import tensorflow as tf

import network_fixtures as nf
from spiral_tf import config as config_lib
from spiral_tf.learning import learner_step
from spiral_tf.learning import normalisation
from spiral_tf.networks import agent as agent_lib
from spiral_tf.networks import discriminator as d_lib


def _numpy_statistics(batches, decay, min_std):
  """Independent reference: the debiased moving averages written out as weighted sums over batches."""
  returns = [np.sum(b, 0).astype(np.float64) for b in batches]
  n = len(returns)
  weights = np.array([(1 - decay) * decay ** (n - 1 - i) for i in range(n)])
  mean = sum(w * r.mean() for w, r in zip(weights, returns)) / weights.sum()
  square = sum(w * (r**2).mean() for w, r in zip(weights, returns)) / weights.sum()
  return mean, max(np.sqrt(max(square - mean**2, 0.0)), min_std)


def test_statistics_match_a_numpy_reference_over_many_batches():
  rng = np.random.default_rng(0)
  normaliser = normalisation.ReturnNormaliser('std', decay=0.9, min_std=1e-3)
  batches = []
  for step in range(12):
    # Scale and offset drift, as D's scores do during training.
    rewards = (rng.normal(size=(5, 8)) * (1 + step) + 3 * step).astype(np.float32)
    batches.append(rewards)
    normaliser.assign(normaliser.updated(rewards))
    mu, sigma = normaliser.centre_and_scale(normaliser.state)
    expected_mu, expected_sigma = _numpy_statistics(batches, 0.9, 1e-3)
    np.testing.assert_allclose(mu.numpy(), expected_mu, rtol=1e-4)
    np.testing.assert_allclose(sigma.numpy(), expected_sigma, rtol=1e-4)


def test_first_batch_statistics_are_its_own_and_nothing_is_scaled_before():
  rewards = np.random.default_rng(1).normal(3.0, 5.0, size=(4, 16)).astype(np.float32)
  normaliser = normalisation.ReturnNormaliser('standardise')
  np.testing.assert_array_equal(normaliser.apply(rewards, normaliser.state).numpy(), rewards)
  normaliser.assign(normaliser.updated(rewards))
  mu, sigma = normaliser.centre_and_scale(normaliser.state)
  returns = rewards.sum(0)
  np.testing.assert_allclose(mu.numpy(), returns.mean(), rtol=1e-5)
  np.testing.assert_allclose(sigma.numpy(), returns.std(), rtol=1e-4)


@pytest.mark.parametrize('mode', normalisation.MODES)
def test_each_mode_against_its_formula(mode):
  rng = np.random.default_rng(2)
  normaliser = normalisation.ReturnNormaliser(mode, decay=0.5)
  for _ in range(3):
    normaliser.assign(normaliser.updated(rng.normal(-40, 20, size=(6, 8)).astype(np.float32)))
  rewards = rng.normal(-40, 20, size=(6, 8)).astype(np.float32)
  mu, sigma = (float(x) for x in normaliser.centre_and_scale(normaliser.state))
  out = normaliser.apply(rewards, normaliser.state).numpy()
  expected = {
      'none': rewards,
      'std': rewards / sigma,
      'standardise': rewards / sigma - np.eye(6)[-1][:, None] * mu / sigma,
  }[mode]
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
  if mode == 'standardise':  # The return is (G − μ)/σ: only the last action's reward moves.
    np.testing.assert_allclose(out.sum(0), (rewards.sum(0) - mu) / sigma, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out[:-1], rewards[:-1] / sigma, rtol=1e-5)


def test_normalised_rewards_do_not_depend_on_the_reward_scale():
  rng = np.random.default_rng(3)
  batches = [rng.normal(size=(5, 8)).astype(np.float32) for _ in range(4)]
  outputs = []
  for scale in (1e-2, 1.0, 300.0):
    normaliser = normalisation.ReturnNormaliser('standardise', min_std=1e-6)
    for b in batches[:-1]:
      normaliser.assign(normaliser.updated(scale * b))
    outputs.append(normaliser.apply(scale * batches[-1], normaliser.state).numpy())
  np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(outputs[2], outputs[1], rtol=1e-3, atol=1e-4)


def test_constant_returns_use_the_floor_not_a_division_by_zero():
  normaliser = normalisation.ReturnNormaliser('std', min_std=1e-3)
  normaliser.assign(normaliser.updated(np.full((3, 4), 0.25, np.float32)))
  _, sigma = normaliser.centre_and_scale(normaliser.state)
  assert float(sigma) == pytest.approx(1e-3)
  assert np.all(np.isfinite(normaliser.apply(np.ones((3, 4), np.float32), normaliser.state).numpy()))


def test_bad_settings_are_named():
  with pytest.raises(ValueError, match='popart'):
    normalisation.ReturnNormaliser('popart')
  with pytest.raises(ValueError, match='decay'):
    normalisation.ReturnNormaliser(decay=1.0)
  with pytest.raises(ValueError, match='reward_normalisation'):
    config_lib.LearnerConfig(reward_normalisation='popart')


def _learner(mode, tmp=None):
  action_spec, obs_spec = nf.painter_specs(grid=8, width=16, conditional=False)
  agent = agent_lib.Agent(action_spec, obs_spec, size=nf.MICRO)
  d = d_lib.Discriminator(channels=nf.MICRO_D, input_shape=[16, 16, 1])
  episodes = nf.sampled_episodes(agent, action_spec, obs_spec, batch=4, length=3, seed=1)
  config = config_lib.LearnerConfig(
      reward='spiral', reward_normalisation=mode, d_learning_rate=1e-9, policy_learning_rate=1e-9
  )
  return learner_step.LearnerUpdate(agent, d, config, jit_compile=False), episodes


def test_learner_standardises_returns_and_checkpoints_the_statistics(tmp_path):
  learner, episodes = _learner('standardise')
  real = np.random.default_rng(4).uniform(size=(4, 16, 16, 1)).astype(np.float32)
  noise = {'epsilon': tf.constant([0.5] * 4), 'half': tf.constant([0] * 4)}
  first = learner.update(episodes, real, None, noise)
  # The first batch is not scaled (no statistics yet); its raw returns are D's scores.
  np.testing.assert_allclose(
      first['diagnostics/return_std'].numpy(), first['diagnostics/return_raw_std'].numpy(), rtol=1e-5
  )
  # D barely moved (learning rate 1e-9): the same batch again is standardised by its own statistics.
  second = learner.update(episodes, real, None, noise)
  np.testing.assert_allclose(second['diagnostics/return_std'].numpy(), 1.0, rtol=1e-3)
  np.testing.assert_allclose(
      second['diagnostics/normaliser_mean'].numpy(), first['reward_mean'].numpy(), rtol=1e-4, atol=1e-6
  )

  path = tf.train.Checkpoint(reward_normaliser=learner.normaliser).write(str(tmp_path / 'ckpt'))
  restored, _ = _learner('standardise')
  assert float(restored.normaliser.weight) == 0.0
  tf.train.Checkpoint(reward_normaliser=restored.normaliser).read(path).assert_consumed()
  for a, b in zip(restored.normaliser.state, learner.normaliser.state):
    assert float(a) == float(b)
  rewards = np.random.default_rng(5).normal(size=(2, 4)).astype(np.float32)
  np.testing.assert_array_equal(
      restored.normaliser.apply(rewards, restored.normaliser.state).numpy(),
      learner.normaliser.apply(rewards, learner.normaliser.state).numpy(),
  )


def test_learner_without_normalisation_keeps_raw_rewards():
  learner, episodes = _learner('none')
  real = np.zeros((4, 16, 16, 1), np.float32)
  noise = {'epsilon': tf.constant([0.5] * 4), 'half': tf.constant([0] * 4)}
  for _ in range(2):
    metrics = learner.update(episodes, real, None, noise)
  np.testing.assert_allclose(
      metrics['diagnostics/return_std'].numpy(), metrics['diagnostics/return_raw_std'].numpy(), rtol=1e-5
  )
