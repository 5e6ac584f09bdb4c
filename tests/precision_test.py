"""--precision=mixed_bfloat16: bfloat16 compute, float32 weights and outputs, close to float32.

The reference is the float32 network holding the same weights. bfloat16 keeps 8 bits of mantissa (relative
rounding 2⁻⁸ ≈ 0.4 %); after a dozen layers the outputs differ by a few per cent (measured: up to 4 % of
an output's scale; one interpolate's gradient norm can move more, their mean less), so the tolerances
below are 5 % of each quantity's scale — far below the differences a learning bug makes (a sign, a
missing mask, a wrong target), and far above float32's own rounding.
"""

import numpy as np
import pytest
import tensorflow as tf

import network_fixtures as nf
from spiral_tf import config as config_lib
from spiral_tf.learning import learner_step
from spiral_tf.networks import agent as agent_lib
from spiral_tf.networks import discriminator as d_lib
from spiral_tf.networks import precision


def _copy_weights(source, destination):
  assert len(source.variables) == len(destination.variables)
  for a, b in zip(source.variables, destination.variables):
    assert a.shape == b.shape and b.dtype == tf.float32, (a.name, b.name, b.dtype)
    b.assign(a)


@pytest.fixture(autouse=True)
def _seeded():
  tf.random.set_seed(0)  # The same initial weights every run.


def _agents(conditional=True):
  action_spec, obs_spec = nf.painter_specs(grid=8, width=16, conditional=conditional)
  agents = [
      agent_lib.Agent(action_spec, obs_spec, size=nf.MICRO, conditional=conditional, precision=p)
      for p in config_lib.PRECISIONS
  ]
  _copy_weights(*agents)
  return agents, action_spec, obs_spec


def test_layers_in_sets_the_policy_only_inside_and_rejects_unknown_precisions():
  before = tf.keras.mixed_precision.global_policy().name
  with precision.layers_in('mixed_bfloat16'):
    layer = tf.keras.layers.Dense(3)
  assert tf.keras.mixed_precision.global_policy().name == before
  assert layer.compute_dtype == 'bfloat16' and layer.variable_dtype == 'float32'
  assert precision.compute_dtype('float32') == tf.float32
  with pytest.raises(ValueError, match='float16'):
    precision.compute_dtype('float16')
  with pytest.raises(config_lib.ConfigError, match='--precision'):
    config_lib.validate(config_lib.Config(precision='float16'))


def test_mixed_agent_keeps_float32_weights_and_outputs_and_matches_float32():
  (agent32, agent16), action_spec, obs_spec = _agents()
  assert all(v.dtype == tf.float32 for v in agent16.variables)
  episodes = nf.sampled_episodes(agent32, action_spec, obs_spec, batch=4, length=5, seed=3)
  time_major = lambda x: tf.nest.map_structure(learner_step.time_major, x)
  args = (
      time_major(tf.constant(episodes['step_type'])),
      time_major(episodes['observation']),
      time_major(episodes['action']),
      episodes['core_state'],
  )
  out32, out16 = agent32.unroll(*args), agent16.unroll(*args)
  for field in ('log_prob', 'entropy', 'value', 'core_output'):
    for a, b in zip(tf.nest.flatten(getattr(out32, field)), tf.nest.flatten(getattr(out16, field))):
      assert b.dtype == tf.float32, field
      a, b = a.numpy(), b.numpy()
      scale = max(np.abs(a).max(), 1e-3)
      # log-probs of near-uniform heads are ≈ −log(64); 5 % of the largest magnitude of each output.
      np.testing.assert_allclose(b, a, atol=0.05 * scale, err_msg=field)
  # A step (the actors' call) gives float32 values and a float32 state (the trajectory spec's).
  observation = tf.nest.map_structure(lambda x: x[:, 0], episodes['observation'])
  step_type = tf.constant(episodes['step_type'][:, 0])
  output, state = agent16.step(step_type, observation, agent16.initial_state(4))
  assert output.value.dtype == tf.float32 and state.core['h'].dtype == tf.float32
  assert all(v.dtype == tf.float32 for v in output.log_prob.values())


@pytest.mark.parametrize('spectral_norm', [False, True])
def test_mixed_discriminator_scores_match_float32_and_its_gradient_penalty_too(spectral_norm):
  ds = [
      d_lib.Discriminator(
          channels=nf.MICRO_D, spectral_norm=spectral_norm, input_shape=[16, 16, 2], precision=p
      )
      for p in config_lib.PRECISIONS
  ]
  _copy_weights(*ds)
  rng = np.random.default_rng(0)
  real, fake = (tf.constant(rng.uniform(size=[8, 16, 16, 2]).astype(np.float32)) for _ in range(2))
  scores32, scores16 = ds[0](real).numpy(), ds[1](real)
  assert scores16.dtype == tf.float32
  np.testing.assert_allclose(scores16.numpy(), scores32, atol=0.05 * np.abs(scores32).max())
  epsilon = tf.constant(rng.uniform(size=[8]).astype(np.float32))
  (p32, n32), (p16, n16) = (d_lib.gradient_penalty(d, real, fake, epsilon) for d in ds)
  # Per example a bfloat16 rounding can flip a pre-activation across LeakyReLU's kink and move one norm
  # by tens of per cent; the penalty uses their mean, which must agree.
  assert float(tf.reduce_mean(n16)) == pytest.approx(float(tf.reduce_mean(n32)), rel=0.05)
  assert float(p16) == pytest.approx(float(p32), rel=0.05)
  with pytest.raises(ValueError, match='float32 weights'):
    d_lib.Discriminator(channels=nf.MICRO_D, dtype=tf.float64, precision='mixed_bfloat16')


def _cosine(a, b):
  a, b = np.concatenate([x.numpy().ravel() for x in a]), np.concatenate([x.numpy().ravel() for x in b])
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_mixed_update_stays_within_tolerance_of_float32_on_a_fixed_batch():
  (agent32, agent16), action_spec, obs_spec = _agents()
  ds = [
      d_lib.Discriminator(channels=nf.MICRO_D, input_shape=[16, 16, 2], precision=p)
      for p in config_lib.PRECISIONS
  ]
  _copy_weights(*ds)
  episodes = nf.sampled_episodes(agent32, action_spec, obs_spec, batch=8, length=5, seed=5)
  real = np.random.default_rng(6).uniform(size=(8, 16, 16, 1)).astype(np.float32)
  config = config_lib.LearnerConfig(reward='spiral++', discount=0.9, d_conditioning='pair')
  noise = {'epsilon': tf.constant(np.linspace(0.1, 0.9, 8), tf.float32), 'half': tf.zeros([8], tf.int32)}
  results = [
      learner_step.LearnerUpdate(agent, d, config, conditional=True, jit_compile=False).gradients(
          episodes, real, None, noise
      )
      for agent, d in ((agent32, ds[0]), (agent16, ds[1]))
  ]
  (policy32, d32, metrics32, _), (policy16, d16, metrics16, _) = results
  assert all(g.dtype == tf.float32 for g in policy16 + d16)
  # The gradients point the same way (cosine similarity) and have the same size.
  assert _cosine(policy32, policy16) > 0.98 and _cosine(d32, d16) > 0.98
  norm_ratio = float(tf.linalg.global_norm(policy16) / tf.linalg.global_norm(policy32))
  assert norm_ratio == pytest.approx(1, abs=0.05)
  for key in (
      'policy_loss',
      'value_loss',
      'entropy',
      'd_loss_real',
      'd_loss_fake',
      'gradient_penalty',
      'reward_mean',
  ):
    a, b = float(metrics32[key]), float(metrics16[key])
    assert b == pytest.approx(a, rel=0.05, abs=0.02), key


def test_a_mixed_learner_checkpoint_restores_into_the_float32_agent_of_actors_and_exports(tmp_path):
  (agent32, agent16), _, _ = _agents()
  for v in agent16.trainable_variables:  # Weights the float32 agent does not hold yet.
    v.assign(v + 0.5)
  path = tf.train.Checkpoint(agent=agent16).write(str(tmp_path / 'ckpt'))
  tf.train.Checkpoint(agent=agent32).read(path).assert_existing_objects_matched()
  for a, b in zip(agent16.variables, agent32.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
